"""The per-symbol strategy state that bytewax recovery persists (schema: keep it stable).

A snapshot is small, immutable plain data: one :class:`SlotState` per enabled strategy, keyed by
strategy id, inside a versioned :class:`RuntimeState`. ``plugin_state`` is whatever the plugin returned
(tuples, numbers, strings). ``fingerprint`` identifies the catalog entry the slot was built with; when
the entry changes, the slot restarts from the plugin's initial state with a closed breaker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from torghut.contracts.frozen import EMPTY as EMPTY_MAP
from torghut.contracts.frozen import FrozenMap
from torghut.contracts.strategy import StrategyDefinition

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class SlotState:
    """One strategy's state for one symbol.

    ``bars_seen`` counts successful evaluations up to the plugin's ``warmup_bars`` and then stays there
    (it only gates the warm-up), so the slot of a stateless plugin is not rebuilt on every event.
    """

    fingerprint: str
    plugin_state: Any
    bars_seen: int = 0
    consecutive_errors: int = 0
    degraded_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class RuntimeState:
    """All strategies' state for one symbol; ``version`` is the snapshot schema version."""

    strategies: FrozenMap[str, SlotState] = EMPTY_MAP
    version: int = STATE_VERSION


def fingerprint(definition: StrategyDefinition) -> str:
    """Return ``type@version|parameter_hash|enabled``: what must not change for state to carry over."""
    return (
        f"{definition.strategy_type}@{definition.version}|{definition.parameter_hash}|"
        f"{'enabled' if definition.enabled else 'disabled'}"
    )

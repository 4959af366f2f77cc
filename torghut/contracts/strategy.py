"""Strategy catalog entries as the engine resolves them, and the intents strategies emit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, NewType

from torghut.contracts.frozen import FrozenMap
from torghut.contracts.signal import InputPosition

StrategyId = NewType("StrategyId", str)
Direction = Literal["buy", "sell"]


@dataclass(frozen=True, slots=True)
class StrategyDefinition:
    """A validated catalog entry: which plugin (type and exact version) runs with which parameters.

    ``params`` is the effective parameter map the parameter hash is taken over (for a V3-shape entry,
    torghut's ``{max_position_pct_equity, max_notional_per_trade, base_timeframe, universe_symbols}``).
    """

    strategy_id: StrategyId
    strategy_name: str
    strategy_type: str
    version: str
    params: FrozenMap[str, Any]
    feature_requirements: tuple[str, ...]
    risk_profile: str = "default"
    execution_profile: str = "market"
    enabled: bool = True
    priority: int = 100
    base_timeframe: str = "1Min"
    universe_symbols: tuple[str, ...] = ()
    max_notional_per_trade: Decimal | None = None
    max_position_pct_equity: Decimal | None = None
    parameter_hash: str = ""
    description: str | None = None


@dataclass(frozen=True, slots=True)
class StrategyIntent:
    """One strategy's wish for one symbol at one event, with its full provenance."""

    strategy_id: StrategyId
    symbol: str
    direction: Direction
    confidence: Decimal
    target_notional: Decimal
    horizon: str
    explain: tuple[str, ...]
    feature_snapshot_hash: str
    strategy_type: str
    strategy_version: str
    parameter_hash: str
    event_ts: datetime
    seq: int
    required_features: tuple[str, ...] = ()
    price: Decimal | None = None
    position: InputPosition | None = None

    @property
    def action(self) -> Direction:
        """Torghut's alias of ``direction``."""
        return self.direction

    @property
    def rationale(self) -> tuple[str, ...]:
        """Torghut's alias of ``explain``."""
        return self.explain


@dataclass(frozen=True, slots=True)
class StrategyError:
    """A strategy that could not be evaluated for an event: torghut's ``RuntimeErrorRecord`` in event time."""

    strategy_id: StrategyId
    strategy_type: str
    plugin_id: str
    reason: str
    symbol: str
    event_ts: datetime
    seq: int

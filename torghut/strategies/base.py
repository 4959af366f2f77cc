"""The strategy plugin interface: parameters, intent drafts and the :class:`StrategyPlugin` base.

A plugin is a small class identified by ``strategy_type`` and a semantic ``version``. It declares its
parameter model, the features it reads and its warm-up length, and it evaluates one feature view at a
time as a pure function of ``(params, features, state)``. The runtime owns everything else: resolving
the plugin, per-symbol state, warm-up, circuit breakers and turning drafts into ``StrategyIntent`` s.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from torghut.contracts.strategy import Direction
from torghut.strategies.view import FeatureView

PLUGIN_API_VERSION = 1
"""The interface version a plugin class is written against; the registry refuses any other."""

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
DEFAULT_TARGET_NOTIONAL = Decimal(100)
_DIRECTIONS = frozenset(("buy", "sell"))


class StrategyParams(BaseModel):
    """Base of every plugin's parameter model: frozen, unknown keys rejected.

    It carries the four catalog-level keys torghut puts in every strategy's params. Values arrive as
    strings (torghut stores ``str(Decimal)``); pydantic parses them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_notional_per_trade: Decimal | None = None
    max_position_pct_equity: Decimal | None = None
    base_timeframe: str | None = None
    universe_symbols: tuple[str, ...] | None = None


def default_target_notional(params: StrategyParams) -> Decimal:
    """Torghut's target notional: ``max_notional_per_trade`` when it is > 0, else 100."""
    notional = params.max_notional_per_trade
    if notional is not None and notional > 0:
        return notional
    return DEFAULT_TARGET_NOTIONAL


@dataclass(frozen=True, slots=True)
class IntentDraft:
    """What a plugin proposes; the runtime adds identity, provenance and the feature hash.

    Raises:
        ValueError: the direction is not ``buy``/``sell`` or an amount is not a ``Decimal`` (inside a
            plugin this counts as a plugin failure).
    """

    direction: Direction
    confidence: Decimal
    target_notional: Decimal
    explain: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.direction not in _DIRECTIONS:
            msg = f"IntentDraft.direction must be 'buy' or 'sell', got {self.direction!r}"
            raise ValueError(msg)
        if not isinstance(self.confidence, Decimal) or not isinstance(self.target_notional, Decimal):
            msg = "IntentDraft.confidence and target_notional must be Decimal"
            raise ValueError(msg)


P = TypeVar("P", bound=StrategyParams)
S = TypeVar("S")


class StrategyPlugin(ABC, Generic[P, S]):
    """Base class of every strategy plugin.

    Subclasses set the class attributes and implement :meth:`initial_state` and :meth:`evaluate`.
    ``evaluate`` must be pure: no I/O (network access is blocked while it runs), no clock, no mutation of
    its inputs. Its state is small plain data (tuples, numbers, strings) because bytewax snapshots it.

    >>> from decimal import Decimal
    >>> class RsiFloor(StrategyPlugin[StrategyParams, int]):
    ...     strategy_type = "rsi_floor"
    ...     version = "1.0.0"
    ...     params_model = StrategyParams
    ...     required_features = ("rsi14",)
    ...     warmup_bars = 0
    ...
    ...     def initial_state(self, params):
    ...         return 0
    ...
    ...     def evaluate(self, params, features, state):
    ...         rsi = features.decimal("rsi14")
    ...         if rsi is not None and rsi < 20:
    ...             notional = default_target_notional(params)
    ...             return (IntentDraft("buy", Decimal("0.5"), notional, ("rsi_floor",)),), state + 1
    ...         return (), state
    >>> plugin = RsiFloor()
    >>> params = plugin.validate_params({"max_notional_per_trade": "250"})
    >>> view = plugin.view({"rsi14": Decimal(12)})
    >>> drafts, state = plugin.evaluate(params, view, plugin.initial_state(params))
    >>> drafts[0].target_notional, state
    (Decimal('250'), 1)
    >>> plugin.key
    'rsi_floor@1.0.0'
    """

    api_version: ClassVar[int] = PLUGIN_API_VERSION
    strategy_type: ClassVar[str]
    version: ClassVar[str]
    params_model: ClassVar[type[StrategyParams]]
    required_features: ClassVar[tuple[str, ...]]
    warmup_bars: ClassVar[int] = 0

    @property
    def key(self) -> str:
        """``strategy_type@version``, the pin a catalog entry uses."""
        return f"{self.strategy_type}@{self.version}"

    def validate_params(self, raw: Mapping[str, Any]) -> P:
        """Validate an effective parameter map against :attr:`params_model`.

        Raises:
            pydantic.ValidationError: a parameter is unknown, missing or of the wrong type.
        """
        return cast(P, self.params_model.model_validate(dict(raw)))

    def view(self, values: Mapping[str, Any]) -> FeatureView:
        """Return a :class:`FeatureView` of ``values`` restricted to :attr:`required_features`."""
        return FeatureView(values, self.required_features)

    @abstractmethod
    def initial_state(self, params: P) -> S:
        """Return the state a symbol starts from (and restarts from after a catalog change)."""

    @abstractmethod
    def evaluate(self, params: P, features: FeatureView, state: S) -> tuple[Sequence[IntentDraft], S]:
        """Evaluate one event: return the intent drafts (often none) and the next state."""

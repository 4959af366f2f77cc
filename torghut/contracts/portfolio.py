"""Symbol-level and portfolio-level intents: what the aggregator and the allocator emit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from torghut.contracts.frozen import EMPTY as EMPTY_MAP
from torghut.contracts.frozen import FrozenMap
from torghut.contracts.strategy import Direction, StrategyId


@dataclass(frozen=True, slots=True)
class LosingIntent:
    """A strategy intent that did not win its symbol window, and why."""

    strategy_id: StrategyId
    direction: Direction
    confidence: Decimal
    target_notional: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class SymbolIntent:
    """One aggregated intent per (symbol, horizon, event-time window): torghut's ``AggregatedIntent``."""

    symbol: str
    direction: Direction
    confidence: Decimal
    target_notional: Decimal
    horizon: str
    explain: tuple[str, ...]
    source_strategy_ids: tuple[StrategyId, ...]
    feature_snapshot_hashes: tuple[str, ...]
    event_ts: datetime
    window_end: datetime
    seq: int
    policy: str
    conflict: bool = False
    losers: tuple[LosingIntent, ...] = ()
    price: Decimal | None = None
    strategy_versions: FrozenMap[str, str] = EMPTY_MAP
    parameter_hashes: FrozenMap[str, str] = EMPTY_MAP


@dataclass(frozen=True, slots=True)
class PortfolioIntent:
    """An account-aware exposure target for one symbol, with the allocator's trace."""

    account: str
    symbol: str
    net_target_qty: Decimal
    allocator_trace: tuple[FrozenMap[str, object], ...]
    regime_label: str
    capacity_bucket: str
    event_ts: datetime
    source_strategy_ids: tuple[StrategyId, ...]
    direction: Direction
    requested_qty: Decimal
    approved_qty: Decimal
    price: Decimal | None
    status: str
    reason_codes: tuple[str, ...] = ()


OrderSide = Direction
OrderType = str
TimeInForce = str


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """A broker-neutral order; ``client_order_id`` is the idempotency hash (torghut's decision hash)."""

    account: str
    symbol: str
    side: OrderSide
    qty: Decimal
    order_type: OrderType
    time_in_force: TimeInForce
    limit_price: Decimal | None
    client_order_id: str
    event_ts: datetime
    audit: FrozenMap[str, object] = EMPTY_MAP

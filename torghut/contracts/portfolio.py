"""Symbol-level and portfolio-level intents: what the aggregator and the allocator emit.

The aggregate stage emits :class:`SymbolIntent` (one per symbol, horizon and event-time window) or,
when a group yields no intent (a vetoed conflict, intents that arrived after their window closed),
:class:`DroppedIntents`; either way every strategy intent that did not win is kept as a
:class:`LosingIntent` with its reason. The allocate stage turns a symbol intent into a
:class:`PortfolioIntent`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from torghut.contracts.frozen import EMPTY as EMPTY_MAP
from torghut.contracts.frozen import FrozenMap
from torghut.contracts.hashing import sha256_hex
from torghut.contracts.signal import InputPosition
from torghut.contracts.strategy import Direction, StrategyId


@dataclass(frozen=True, slots=True)
class LosingIntent:
    """A strategy intent that did not win its symbol window, and why.

    ``reason`` is one of the aggregator's loser reasons (``outvoted_by_net_direction``,
    ``net_tie_break``, ``lower_priority``, ``outranked_at_equal_priority``, ``conflict_veto``,
    ``late``); the remaining fields say which strategy event it was.
    """

    strategy_id: StrategyId
    direction: Direction
    confidence: Decimal
    target_notional: Decimal
    reason: str
    event_ts: datetime | None = None
    seq: int | None = None
    strategy_version: str = ""
    parameter_hash: str = ""


@dataclass(frozen=True, slots=True)
class SymbolIntent:
    """One aggregated intent per (symbol, horizon, event-time window): torghut's ``AggregatedIntent``.

    ``event_ts``, ``seq`` and ``price`` are those of the group's latest strategy intent;
    ``strategy_versions`` and ``parameter_hashes`` are keyed by contributing strategy id;
    ``regime_label`` is the regime the allocator sizes under (None: the allocator's default).
    """

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
    regime_label: str | None = None
    position: InputPosition | None = None


def symbol_intent_key(account: str, intent: SymbolIntent) -> str:
    """The identity of ``intent`` on ``account``, independent of how the allocator sizes it.

    sha256 over the canonical JSON of what makes the intent (account, symbol, horizon, window end,
    direction, the contributing strategies and their feature snapshot hashes): the same input and catalog
    give the same key whatever the account held when the intent was sized.

    >>> from datetime import UTC, datetime
    >>> ts = datetime(2026, 2, 19, 14, 30, tzinfo=UTC)
    >>> intent = SymbolIntent(symbol="AAPL", direction="buy", confidence=Decimal("0.65"),
    ...     target_notional=Decimal("1000"), horizon="1Sec", explain=("macd_cross_up",),
    ...     source_strategy_ids=("s1",), feature_snapshot_hashes=("h",), event_ts=ts, window_end=ts,
    ...     seq=1, policy="torghut")
    >>> symbol_intent_key("paper", intent)[:16]
    '54407de1e1ef51ee'
    """
    return sha256_hex(
        {
            "account": account,
            "symbol": intent.symbol,
            "horizon": intent.horizon,
            "window_end": intent.window_end.isoformat(),
            "direction": intent.direction,
            "source_strategy_ids": list(intent.source_strategy_ids),
            "feature_snapshot_hashes": list(intent.feature_snapshot_hashes),
        }
    )


@dataclass(frozen=True, slots=True)
class DroppedIntents:
    """A (symbol, horizon, window) group that produced no symbol intent, with every intent it dropped.

    ``reason`` is ``conflict_veto`` (the veto policy met a conflict) or ``late`` (the intents arrived
    after their window had closed); each loser carries the same reason.
    """

    symbol: str
    horizon: str
    window_end: datetime
    policy: str
    reason: str
    losers: tuple[LosingIntent, ...]
    event_ts: datetime
    seq: int
    conflict: bool = False


AggregateOutput = SymbolIntent | DroppedIntents


@dataclass(frozen=True, slots=True)
class PortfolioIntent:
    """An account-aware exposure target for one symbol, with the allocator's trace.

    ``status`` is ``approved`` or ``rejected`` (torghut's); ``clipped`` says whether a cap or the
    integer floor cut the requested quantity. ``net_target_qty`` is the signed position the account
    should hold after this intent (``current_qty`` plus or minus ``approved_qty``). ``allocator_trace``
    holds one entry per check the allocator evaluated, in order.
    """

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
    clipped: bool = False
    enabled: bool = False
    current_qty: Decimal = Decimal(0)
    requested_notional: Decimal | None = None
    approved_notional: Decimal = Decimal(0)
    budget_multiplier: Decimal = Decimal(1)
    capacity_multiplier: Decimal = Decimal(1)
    correlation_group: str | None = None
    horizon: str = ""
    window_end: datetime | None = None
    seq: int = 0


OrderSide = Direction
OrderType = str
TimeInForce = str


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """A broker-neutral order; ``client_order_id`` is the idempotency hash (torghut's decision hash).

    ``intent_key`` names what the order carries out, independently of its sizing: the symbol intent
    (:func:`~torghut.contracts.portfolio.symbol_intent_key`) or, for a legacy decision, the hash of the
    decision as planned (sized against the starting equity, before any re-sizing in live mode). A
    decision re-made against a different account (a restart that reads the broker's account anew) gets a
    new client order id but the same intent key, by which the service's order guard recognises an intent
    already sent.
    """

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
    intent_key: str = ""

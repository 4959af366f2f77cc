"""The risk gate chain: an ordered, configurable list of small pure gates over a draft order.

Each gate is ``(draft, context) -> GateVerdict``. The chain runs every configured gate in order (so the trace
is complete even after a rejection, as torghut collects every reason), applies ``"clip"`` verdicts to the
draft as it goes, and returns a :class:`RiskOutcome` holding the approved draft or ``None`` and the trace.

Torghut's gates and reason strings (contracts section 5.2): ``trading_disabled``, ``live_trading_disabled``,
``strategy_disabled``, ``symbol_not_allowed``, ``missing_price``, ``max_notional_exceeded``,
``insufficient_buying_power``, ``max_position_pct_exceeded``, ``shorts_not_allowed``, ``cooldown_active``.
The engine's: ``trading_halted``, ``reducing_only``, ``order_rate_limited``, ``daily_loss_stop:<ratio>``,
``max_open_orders_exceeded``, ``price_collar_breached``.

Risk state is plain, frozen data updated by pure functions; every window is measured in event time.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_right, insort
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from torghut.contracts.account import AccountView
from torghut.contracts.decision import (
    GateVerdict,
    Rejection,
    clipped,
    passed,
    rejected,
    rejection_from_trace,
)
from torghut.contracts.frozen import EMPTY as EMPTY_MAP
from torghut.contracts.frozen import FrozenMap
from torghut.contracts.portfolio import OrderIntent
from torghut.contracts.strategy import StrategyDefinition
from torghut.operators.policy import is_short_increasing
from torghut.operators.trading_config import RISK_GATE_NAMES, TradingConfig

ORDER_RATE_WINDOW = timedelta(minutes=1)
_BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class StrategyLimits:
    """The strategy fields the gates read (torghut's ``strategies`` row columns)."""

    strategy_id: str
    enabled: bool = True
    max_notional_per_trade: Decimal | None = None
    max_position_pct_equity: Decimal | None = None

    @classmethod
    def from_definition(cls, definition: StrategyDefinition) -> StrategyLimits:
        """Take the limits from a catalog entry."""
        return cls(
            definition.strategy_id,
            definition.enabled,
            definition.max_notional_per_trade,
            definition.max_position_pct_equity,
        )


@dataclass(frozen=True, slots=True)
class RiskState:
    """Per-account risk state in event time: plain data a bytewax snapshot can hold.

    ``last_decision_ts`` is the event time of the latest non-rejected decision per symbol (cooldown);
    ``order_ts`` the event times of approved orders within the last rate window, ascending.
    """

    last_decision_ts: FrozenMap[str, datetime] = EMPTY_MAP
    order_ts: tuple[datetime, ...] = ()
    open_orders: int = 0
    session_start_equity: Decimal | None = None
    session_day: date | None = None


def record_decision(state: RiskState, symbol: str, event_ts: datetime, *, was_rejected: bool) -> RiskState:
    """Record a decision for the cooldown; rejected decisions do not start a cooldown (as in torghut)."""
    if was_rejected:
        return state
    return dataclasses.replace(
        state, last_decision_ts=FrozenMap({**state.last_decision_ts, symbol: event_ts})
    )


def record_order(state: RiskState, event_ts: datetime) -> RiskState:
    """Record an approved order: one more open order, and its time in the rate window (pruned, sorted)."""
    times = list(state.order_ts)
    insort(times, event_ts)
    kept = times[bisect_right(times, event_ts - ORDER_RATE_WINDOW) :]
    return dataclasses.replace(state, order_ts=tuple(kept), open_orders=state.open_orders + 1)


def record_order_closed(state: RiskState) -> RiskState:
    """Record that an open order reached a final status."""
    return dataclasses.replace(state, open_orders=max(state.open_orders - 1, 0))


def roll_session(state: RiskState, event_ts: datetime, equity: Decimal) -> RiskState:
    """Start a new session (UTC trading day) at ``equity`` when ``event_ts`` falls on a new day."""
    day = event_ts.date()
    if state.session_day == day and state.session_start_equity is not None:
        return state
    return dataclasses.replace(state, session_day=day, session_start_equity=equity)


@dataclass(frozen=True, slots=True)
class RiskContext:
    """Everything the gates may read besides the draft."""

    account: AccountView
    config: TradingConfig
    strategy: StrategyLimits | None
    allowlist: frozenset[str]
    reference_price: Decimal | None
    state: RiskState = RiskState()

    def price(self, draft: OrderIntent) -> Decimal | None:
        """The price gates use: the signal reference price, else the limit price; ``None`` when ≤ 0."""
        price = self.reference_price if self.reference_price is not None else draft.limit_price
        return price if price is not None and price > 0 else None


def _is_reducing(draft: OrderIntent, position_qty: Decimal) -> bool:
    # reduces only when it trades against the position and does not flip it
    if position_qty == 0:
        return False
    against = (draft.side == "sell") == (position_qty > 0)
    return against and draft.qty <= position_qty.copy_abs()


def _increases_exposure(draft: OrderIntent, position_qty: Decimal) -> bool:
    # torghut applies its notional and buying-power limits to buys and short-increasing sells
    return draft.side == "buy" or is_short_increasing(draft.side, draft.qty, position_qty)


def gate_trading_state(draft: OrderIntent, ctx: RiskContext) -> GateVerdict:
    """Halted trading blocks everything; reducing-only blocks anything that is not a pure reduction."""
    state = ctx.config.trading_state
    position = ctx.account.position(draft.symbol)
    if state == "halted":
        return rejected("trading_state", "trading_halted", state=state)
    if state == "reducing_only" and not _is_reducing(draft, position):
        return rejected("trading_state", "reducing_only", state=state, position_qty=position, qty=draft.qty)
    return passed("trading_state", state=state)


def gate_trading_enabled(draft: OrderIntent, ctx: RiskContext) -> GateVerdict:
    """``trading_disabled`` when ``TRADING_ENABLED`` is false."""
    enabled = ctx.config.trading_enabled
    if not enabled:
        return rejected("trading_enabled", "trading_disabled", trading_enabled=enabled)
    return passed("trading_enabled", trading_enabled=enabled)


def gate_live_trading(draft: OrderIntent, ctx: RiskContext) -> GateVerdict:
    """``live_trading_disabled`` when the mode is live and ``TRADING_LIVE_ENABLED`` is false."""
    mode, live = ctx.config.trading_mode, ctx.config.trading_live_enabled
    if mode == "live" and not live:
        return rejected("live_trading", "live_trading_disabled", mode=mode, live_enabled=live)
    return passed("live_trading", mode=mode, live_enabled=live)


def gate_strategy_enabled(draft: OrderIntent, ctx: RiskContext) -> GateVerdict:
    """``strategy_disabled`` when the originating strategy is disabled."""
    strategy = ctx.strategy
    if strategy is not None and not strategy.enabled:
        return rejected("strategy_enabled", "strategy_disabled", strategy_id=strategy.strategy_id)
    return passed("strategy_enabled", strategy_id=None if strategy is None else strategy.strategy_id)


def gate_symbol_allowed(draft: OrderIntent, ctx: RiskContext) -> GateVerdict:
    """``symbol_not_allowed`` when the symbol is not in the allowlist; an empty allowlist rejects all."""
    if draft.symbol not in ctx.allowlist:
        return rejected(
            "symbol_allowed", "symbol_not_allowed", symbol=draft.symbol, allowlist_size=len(ctx.allowlist)
        )
    return passed("symbol_allowed", symbol=draft.symbol)


def gate_price_present(draft: OrderIntent, ctx: RiskContext) -> GateVerdict:
    """``missing_price`` when neither a reference price nor a limit price is known."""
    price = ctx.price(draft)
    inputs = {"reference_price": ctx.reference_price, "limit_price": draft.limit_price}
    if price is None:
        return rejected("price_present", "missing_price", **inputs)
    return passed("price_present", price=price, **inputs)


def _max_notional(ctx: RiskContext) -> Decimal | None:
    strategy = ctx.strategy
    if strategy is not None and strategy.max_notional_per_trade is not None:
        return strategy.max_notional_per_trade
    return ctx.config.trading_max_notional_per_trade


def gate_max_notional(draft: OrderIntent, ctx: RiskContext) -> GateVerdict:
    """``max_notional_exceeded``: an exposure-increasing trade with notional > strategy (else global) max."""
    price, limit = ctx.price(draft), _max_notional(ctx)
    position = ctx.account.position(draft.symbol)
    if price is None or limit is None:
        return passed("max_notional", price=price, max_notional=limit)
    notional = price * draft.qty
    inputs = {"notional": notional, "max_notional": limit, "position_qty": position}
    if _increases_exposure(draft, position) and notional > limit:
        return rejected("max_notional", "max_notional_exceeded", **inputs)
    return passed("max_notional", **inputs)


def gate_buying_power(draft: OrderIntent, ctx: RiskContext) -> GateVerdict:
    """``insufficient_buying_power``: an exposure-increasing trade with notional > buying power."""
    price = ctx.price(draft)
    if price is None:
        return passed("buying_power", price=None)
    notional, power = price * draft.qty, ctx.account.buying_power
    position = ctx.account.position(draft.symbol)
    inputs = {"notional": notional, "buying_power": power, "position_qty": position}
    if _increases_exposure(draft, position) and notional > power:
        return rejected("buying_power", "insufficient_buying_power", **inputs)
    return passed("buying_power", **inputs)


def gate_max_position_pct(draft: OrderIntent, ctx: RiskContext) -> GateVerdict:
    """``max_position_pct_exceeded``: |position value ± notional| > equity * pct, unless it reduces exposure.

    With ``TRADING_RISK_CLIP_ENABLED`` the order is clipped to the largest whole quantity that fits, when that
    is at least 1; otherwise it is rejected.
    """
    strategy, price = ctx.strategy, ctx.price(draft)
    pct = strategy.max_position_pct_equity if strategy is not None else None
    pct = pct if pct is not None else ctx.config.trading_max_position_pct_equity
    if pct is None or price is None:
        return passed("max_position_pct", pct=pct, price=price)
    position = ctx.account.position(draft.symbol)
    value = position * ctx.account.marks.get(draft.symbol, price)
    signed_notional = price * draft.qty * (1 if draft.side == "buy" else -1)
    projected = (value + signed_notional).copy_abs()
    limit = ctx.account.equity * pct
    inputs = {"projected": projected, "limit": limit, "position_value": value, "qty": draft.qty}
    if projected <= limit or projected < value.copy_abs():
        return passed("max_position_pct", **inputs)
    room = limit - value if draft.side == "buy" else limit + value
    fit = (room / price).to_integral_value(rounding=ROUND_DOWN)
    if ctx.config.trading_risk_clip_enabled and 1 <= fit < draft.qty:
        return clipped("max_position_pct", "max_position_pct_exceeded", fit, **inputs)
    return rejected("max_position_pct", "max_position_pct_exceeded", **inputs)


def gate_shorts(draft: OrderIntent, ctx: RiskContext) -> GateVerdict:
    """``shorts_not_allowed``: a short-increasing sell while ``TRADING_ALLOW_SHORTS`` is false."""
    position = ctx.account.position(draft.symbol)
    short_increasing = is_short_increasing(draft.side, draft.qty, position)
    inputs = {"short_increasing": short_increasing, "position_qty": position}
    if short_increasing and not ctx.config.trading_allow_shorts:
        return rejected("shorts", "shorts_not_allowed", **inputs)
    return passed("shorts", **inputs)


def gate_cooldown(draft: OrderIntent, ctx: RiskContext) -> GateVerdict:
    """``cooldown_active``: the symbol's last non-rejected decision is within the cooldown (inclusive)."""
    cooldown_s = ctx.config.trading_cooldown_seconds
    last = ctx.state.last_decision_ts.get(draft.symbol)
    inputs = {"cooldown_s": cooldown_s, "last_decision_ts": last, "event_ts": draft.event_ts}
    if cooldown_s > 0 and last is not None and last >= draft.event_ts - timedelta(seconds=cooldown_s):
        return rejected("cooldown", "cooldown_active", **inputs)
    return passed("cooldown", **inputs)


def gate_order_rate(draft: OrderIntent, ctx: RiskContext) -> GateVerdict:
    """``order_rate_limited``: the orders in the minute of event time before this one reach the limit."""
    limit = ctx.config.trading_order_rate_limit_per_minute
    start = draft.event_ts - ORDER_RATE_WINDOW
    times = ctx.state.order_ts  # ascending (record_order)
    count = bisect_right(times, draft.event_ts) - bisect_right(times, start)
    if limit is not None and limit > 0 and count >= limit:
        return rejected("order_rate", "order_rate_limited", orders_last_minute=count, limit=limit)
    return passed("order_rate", orders_last_minute=count, limit=limit)


def gate_daily_loss(draft: OrderIntent, ctx: RiskContext) -> GateVerdict:
    """``daily_loss_stop:<ratio>``: loss since session start ≥ the stop; pure reductions still pass.

    The ratio is ``(start - equity) / start``, rounded half-up to 4 places in the reason.
    """
    stop = ctx.config.trading_daily_loss_stop_pct_equity
    start = ctx.state.session_start_equity or ctx.account.session_start_equity
    if stop is None or stop <= 0 or start is None or start <= 0:
        return passed("daily_loss", stop=stop, session_start_equity=start)
    ratio = (start - ctx.account.equity) / start
    inputs = {"loss_ratio": ratio, "stop": stop, "session_start_equity": start, "equity": ctx.account.equity}
    if ratio >= stop and not _is_reducing(draft, ctx.account.position(draft.symbol)):
        label = ratio.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
        return rejected("daily_loss", f"daily_loss_stop:{label}", **inputs)
    return passed("daily_loss", **inputs)


def gate_max_open_orders(draft: OrderIntent, ctx: RiskContext) -> GateVerdict:
    """``max_open_orders_exceeded``: the account already has the maximum number of open orders."""
    limit, open_orders = ctx.config.trading_max_open_orders, ctx.state.open_orders
    if limit is not None and open_orders >= limit:
        return rejected("max_open_orders", "max_open_orders_exceeded", open_orders=open_orders, limit=limit)
    return passed("max_open_orders", open_orders=open_orders, limit=limit)


def gate_price_collar(draft: OrderIntent, ctx: RiskContext) -> GateVerdict:
    """``price_collar_breached``: the limit price is more than the collar (bps) from the reference price."""
    collar, ref, limit_price = ctx.config.trading_price_collar_bps, ctx.reference_price, draft.limit_price
    if collar is None or ref is None or ref <= 0 or limit_price is None:
        return passed("price_collar", collar_bps=collar, reference_price=ref, limit_price=limit_price)
    deviation_bps = (limit_price - ref).copy_abs() / ref * _BPS
    inputs = {
        "deviation_bps": deviation_bps,
        "collar_bps": collar,
        "reference_price": ref,
        "limit_price": limit_price,
    }
    if deviation_bps > collar:
        return rejected("price_collar", "price_collar_breached", **inputs)
    return passed("price_collar", **inputs)


Gate = Callable[[OrderIntent, RiskContext], GateVerdict]

GATES: Mapping[str, Gate] = FrozenMap(
    {
        "trading_state": gate_trading_state,
        "trading_enabled": gate_trading_enabled,
        "live_trading": gate_live_trading,
        "strategy_enabled": gate_strategy_enabled,
        "symbol_allowed": gate_symbol_allowed,
        "price_present": gate_price_present,
        "max_notional": gate_max_notional,
        "buying_power": gate_buying_power,
        "max_position_pct": gate_max_position_pct,
        "shorts": gate_shorts,
        "cooldown": gate_cooldown,
        "order_rate": gate_order_rate,
        "daily_loss": gate_daily_loss,
        "max_open_orders": gate_max_open_orders,
        "price_collar": gate_price_collar,
    }
)
if tuple(GATES) != RISK_GATE_NAMES:  # pragma: no cover - guards the two lists against drifting apart
    _msg = "risk.GATES and trading_config.RISK_GATE_NAMES differ"
    raise RuntimeError(_msg)


@dataclass(frozen=True, slots=True)
class RiskOutcome:
    """The chain's result: the approved (possibly clipped) draft, or ``None``, and every verdict."""

    approved: OrderIntent | None
    draft: OrderIntent
    trace: tuple[GateVerdict, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        """The rejection reasons, in chain order."""
        return tuple(v.reason for v in self.trace if v.blocks and v.reason)

    def rejection(self) -> Rejection | None:
        """Return the :class:`Rejection` when the draft was rejected, else ``None``."""
        if self.approved is not None:
            return None
        return rejection_from_trace(
            decision_hash=self.draft.client_order_id,
            symbol=self.draft.symbol,
            event_ts=self.draft.event_ts,
            stage="risk",
            gate_trace=self.trace,
        )


def run_risk_chain(draft: OrderIntent, ctx: RiskContext, gates: Sequence[str] | None = None) -> RiskOutcome:
    """Run the configured gates (``TRADING_RISK_GATES`` unless ``gates`` is given) over ``draft``, in order.

    A ``"clip"`` verdict replaces the draft's quantity for the gates after it. Every gate runs even after a
    rejection, so the trace always covers the whole configured chain.
    """
    names = ctx.config.trading_risk_gates if gates is None else tuple(gates)
    current = draft
    trace: list[GateVerdict] = []
    for name in names:
        gate = GATES.get(name)
        if gate is None:
            msg = f"unknown risk gate {name!r}; expected one of {list(GATES)}"
            raise ValueError(msg)
        verdict = gate(current, ctx)
        if verdict.gate != name:
            msg = f"risk gate {name!r} returned a verdict for {verdict.gate!r}"
            raise ValueError(msg)
        if verdict.clipped_qty is not None:
            current = dataclasses.replace(current, qty=verdict.clipped_qty)
        trace.append(verdict)
    approved = None if any(v.blocks for v in trace) else current
    return RiskOutcome(approved, current, tuple(trace))

"""Portfolio allocation: torghut's ``PortfolioAllocator`` over symbol intents, and the account ledger.

:class:`Allocator` sizes one :class:`SymbolIntent` against the account (contracts §4.7, V3+alloc):

1. Requested qty is ``floor(target_notional / price)`` (whole shares; the engine sizes from the
   aggregated notional where torghut took the decision's qty). No price, or a price ≤ 0, rejects with
   ``allocator_reject_no_price``; a requested qty ≤ 0 with ``allocator_reject_zero_qty``. These two
   checks also run when the allocator is disabled, because without them there is no quantity.
2. Disabled (torghut's default): the requested qty passes through approved, with metadata only.
3. The regime is the intent's ``regime_label`` or the configured default; its budget and capacity
   multipliers are ``map[regime]``, else ``map["default"]``, else the configured default, clamped to
   ``[min_multiplier, max_multiplier]``.
4. The requested notional ``price * qty`` is cut by each cap in turn: symbol capacity, gross
   exposure, strategy budget, symbol budget, correlation capacity (formulas in torghut's table). A
   cap ≤ 0 zeroes it with ``allocator_reject_<cap>``; a binding cap clips it with
   ``allocator_clip_<cap>``.
5. The approved qty is ``floor(approved_notional / price)``; below 1 share the intent is rejected with
   ``allocator_reject_qty_below_min`` (or, when a cap had already zeroed it and neither symbol
   capacity nor gross exposure was the reason, torghut's extra ``allocator_reject_symbol_capacity``).

Strategy weight: each contributing strategy (``source_strategy_ids``) has an equal share,
``1 / len(source_strategy_ids)``; its budget cap is ``(cap * budget_mult - used) / weight`` and it is
charged ``approved_notional * weight``.

Risk-reducing intents: the part of an intent that brings ``|position|`` towards zero (a sell against
a long, a buy against a short, up to the position size) is never blocked or clipped by any cap and is
not charged to usage; only the excess that would open the opposite side goes through the caps.

``capacity_bucket`` is how much of the symbol cap the approved notional uses: ``rejected``,
``uncapped`` (allocator disabled or no symbol cap), ``light`` (≤ 25%), ``moderate`` (≤ 75%),
``heavy`` (< 100%) or ``at_capacity``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from operator import mul
from typing import Any

from torghut.contracts.account import AccountEvent, AccountSnapshot, AccountView, Fill
from torghut.contracts.frozen import EMPTY as EMPTY_MAP
from torghut.contracts.frozen import FrozenMap
from torghut.contracts.portfolio import PortfolioIntent, SymbolIntent
from torghut.operators.portfolio_config import AllocationConfig

ALLOCATOR_REJECT_NO_PRICE = "allocator_reject_no_price"
ALLOCATOR_REJECT_ZERO_QTY = "allocator_reject_zero_qty"
ALLOCATOR_REJECT_QTY_BELOW_MIN = "allocator_reject_qty_below_min"
CAP_SYMBOL_CAPACITY = "symbol_capacity"
CAP_GROSS_EXPOSURE = "gross_exposure"
CAP_STRATEGY_BUDGET = "strategy_budget"
CAP_SYMBOL_BUDGET = "symbol_budget"
CAP_CORRELATION_CAPACITY = "correlation_capacity"
CAP_ORDER: tuple[str, ...] = (
    CAP_SYMBOL_CAPACITY,
    CAP_GROSS_EXPOSURE,
    CAP_STRATEGY_BUDGET,
    CAP_SYMBOL_BUDGET,
    CAP_CORRELATION_CAPACITY,
)
ALLOCATOR_REJECT_SYMBOL_CAPACITY = f"allocator_reject_{CAP_SYMBOL_CAPACITY}"
ALLOCATOR_REJECT_GROSS_EXPOSURE = f"allocator_reject_{CAP_GROSS_EXPOSURE}"

_ZERO = Decimal(0)
_ONE = Decimal(1)


def clip_reason(cap: str) -> str:
    """Return torghut's clip reason code for ``cap`` (e.g. ``allocator_clip_gross_exposure``)."""
    return f"allocator_clip_{cap}"


def reject_reason(cap: str) -> str:
    """Return torghut's reject reason code for ``cap`` (e.g. ``allocator_reject_gross_exposure``)."""
    return f"allocator_reject_{cap}"


def _add(usage: FrozenMap[str, Decimal], key: str, amount: Decimal) -> FrozenMap[str, Decimal]:
    merged = dict(usage)
    merged[key] = merged.get(key, _ZERO) + amount
    return FrozenMap(sorted(merged.items()))


@dataclass(frozen=True, slots=True)
class AllocatorUsage:
    """What one allocation window has approved so far (torghut accumulates these within a call).

    Keys: strategy ids lower case, symbols upper case, correlation groups lower case. Start each
    window with ``AllocatorUsage()``.
    """

    approved_gross: Decimal = _ZERO
    strategy_used: FrozenMap[str, Decimal] = EMPTY_MAP
    symbol_used: FrozenMap[str, Decimal] = EMPTY_MAP
    correlation_used: FrozenMap[str, Decimal] = EMPTY_MAP

    def charge(
        self, notional: Decimal, weights: Mapping[str, Decimal], symbol: str, group: str | None
    ) -> AllocatorUsage:
        """Return the usage after approving ``notional`` for ``symbol`` split by strategy ``weights``."""
        strategy_used = self.strategy_used
        for strategy_id, weight in sorted(weights.items()):
            strategy_used = _add(strategy_used, strategy_id, notional * weight)
        return AllocatorUsage(
            approved_gross=self.approved_gross + notional,
            strategy_used=strategy_used,
            symbol_used=_add(self.symbol_used, symbol, notional),
            correlation_used=self.correlation_used
            if group is None
            else _add(self.correlation_used, group, notional),
        )


def _min_positive(*values: Decimal | None) -> Decimal | None:
    # torghut's _min_decimal: missing and non-positive limits are ignored.
    present = [v for v in values if v is not None and v > 0]
    return min(present) if present else None


def _remaining(limit: Decimal, used: Decimal) -> Decimal:
    left = limit - used
    return left if left > 0 else _ZERO


def _step(check: str, **fields: Any) -> FrozenMap[str, object]:
    return FrozenMap({"check": check, **fields})


def gross_exposure(view: AccountView, symbol: str, price: Decimal) -> Decimal:
    """Return Σ |position * mark| over the account, marking ``symbol`` at ``price``.

    A position is marked at its last mark, else its average price; one with neither counts as 0. The
    terms are added in position order, so the Decimal result (rounding included) is the same however it
    is computed.

    >>> from torghut.contracts.account import AccountView
    >>> view = AccountView(account="a", equity=Decimal(1), cash=Decimal(1), buying_power=Decimal(1),
    ...     positions=FrozenMap({"A": Decimal(2), "B": Decimal(-3), "C": Decimal(1)}),
    ...     marks=FrozenMap({"A": Decimal("10.5"), "B": Decimal(4)}), avg_prices=FrozenMap({"C": Decimal(7)}))
    >>> gross_exposure(view, "B", Decimal(5)), _gross_exposure_each(view, "B", Decimal(5))
    (Decimal('43.0'), Decimal('43.0'))
    """
    positions = view.positions
    if not view.marks.keys() >= positions.keys():  # a position never marked (a broker snapshot's)
        return _gross_exposure_each(view, symbol, price)
    marks = list(map(view.marks.__getitem__, positions))
    if symbol in positions:
        marks[list(positions).index(symbol)] = price
    # sum() adds left to right from _ZERO, as the loop in _gross_exposure_each does.
    return sum(map(abs, map(mul, positions.values(), marks)), _ZERO)


def _gross_exposure_each(view: AccountView, symbol: str, price: Decimal) -> Decimal:
    total = _ZERO
    for held, qty in view.positions.items():
        mark = price if held == symbol else view.marks.get(held, view.avg_prices.get(held))
        if mark is not None:
            total += abs(qty * mark)
    return total


class Allocator:
    """Torghut's portfolio allocator for one symbol intent at a time; pure and deterministic.

    >>> from datetime import UTC, datetime
    >>> from torghut.contracts.account import AccountView
    >>> ts = datetime(2026, 2, 19, 14, 30, tzinfo=UTC)
    >>> intent = SymbolIntent(symbol="AAPL", direction="buy", confidence=Decimal("0.65"),
    ...     target_notional=Decimal("1000"), horizon="1Sec", explain=("macd_cross_up",),
    ...     source_strategy_ids=("s1",), feature_snapshot_hashes=("h",), event_ts=ts, window_end=ts,
    ...     seq=1, policy="torghut", price=Decimal("150"))
    >>> view = AccountView(account="paper", equity=Decimal("10000"), cash=Decimal("10000"),
    ...     buying_power=Decimal("10000"))
    >>> allocator = Allocator(AllocationConfig(enabled=True, max_symbol_notional=Decimal("500")))
    >>> result, usage = allocator.allocate(view, intent, AllocatorUsage())
    >>> result.status, result.requested_qty, result.approved_qty, result.reason_codes
    ('approved', Decimal('6'), Decimal('3'), ('allocator_clip_symbol_capacity',))
    >>> usage.approved_gross
    Decimal('450')
    """

    __slots__ = ("config",)

    def __init__(self, config: AllocationConfig) -> None:
        self.config = config

    def regime_label(self, intent: SymbolIntent) -> str:
        """Return the intent's regime label normalized (trimmed, lower case), else the default."""
        label = (intent.regime_label or "").strip().lower()
        return label or self.config.default_regime

    def multipliers(self, regime: str) -> tuple[Decimal, Decimal]:
        """Return the clamped ``(budget, capacity)`` multipliers for ``regime``."""
        cfg = self.config

        def resolve(values: Mapping[str, Decimal], default: Decimal) -> Decimal:
            raw = values.get(regime, values.get("default", default))
            return min(cfg.max_multiplier, max(cfg.min_multiplier, raw))

        return (
            resolve(cfg.regime_budget_multipliers, cfg.default_budget_multiplier),
            resolve(cfg.regime_capacity_multipliers, cfg.default_capacity_multiplier),
        )

    def symbol_cap(self, equity: Decimal, budget_mult: Decimal, capacity_mult: Decimal) -> Decimal | None:
        """Return ``min(max_symbol_notional, equity * max_symbol_pct_equity) * budget * capacity``."""
        pct = self.config.max_symbol_pct_equity
        pct_cap = equity * pct if pct is not None and pct > 0 and equity > 0 else None
        base = _min_positive(self.config.max_symbol_notional, pct_cap)
        return None if base is None else base * budget_mult * capacity_mult

    def allocate(
        self, view: AccountView, intent: SymbolIntent, usage: AllocatorUsage
    ) -> tuple[PortfolioIntent, AllocatorUsage]:
        """Size ``intent`` against ``view`` and this window's ``usage``.

        Returns:
            The portfolio intent (approved or rejected, with its reasons and trace) and the usage
            after it; a rejected or disabled allocation leaves the usage unchanged.
        """
        cfg = self.config
        regime = self.regime_label(intent)
        budget_mult, capacity_mult = self.multipliers(regime)
        symbol = intent.symbol.strip().upper()
        group = cfg.symbol_correlation_groups.get(symbol)
        price = intent.price if intent.price is not None and intent.price > 0 else None
        current_qty = view.position(intent.symbol)
        requested_qty = _ZERO if price is None else intent.target_notional // price
        current_gross = None if price is None else gross_exposure(view, intent.symbol, price)
        inputs = _step(
            "inputs",
            enabled=cfg.enabled,
            regime_label=regime,
            budget_multiplier=budget_mult,
            capacity_multiplier=capacity_mult,
            price=intent.price,
            target_notional=intent.target_notional,
            requested_qty=requested_qty,
            current_qty=current_qty,
            equity=view.equity,
            gross_exposure=current_gross,
            approved_gross_so_far=usage.approved_gross,
            correlation_group=group,
        )
        rejected = PortfolioIntent(
            account=view.account,
            symbol=intent.symbol,
            net_target_qty=current_qty,
            allocator_trace=(inputs,),
            regime_label=regime,
            capacity_bucket="rejected",
            event_ts=intent.event_ts,
            source_strategy_ids=intent.source_strategy_ids,
            direction=intent.direction,
            requested_qty=requested_qty,
            approved_qty=_ZERO,
            price=intent.price,
            status="rejected",
            enabled=cfg.enabled,
            current_qty=current_qty,
            requested_notional=None if price is None else price * requested_qty,
            budget_multiplier=budget_mult,
            capacity_multiplier=capacity_mult,
            correlation_group=group,
            horizon=intent.horizon,
            window_end=intent.window_end,
            seq=intent.seq,
        )
        if price is None:
            step = _step("price", price=intent.price, result="reject", reason=ALLOCATOR_REJECT_NO_PRICE)
            return _rejected(rejected, [ALLOCATOR_REJECT_NO_PRICE], [inputs, step]), usage
        if requested_qty <= 0:
            step = _step(
                "requested_qty", qty=requested_qty, result="reject", reason=ALLOCATOR_REJECT_ZERO_QTY
            )
            return _rejected(rejected, [ALLOCATOR_REJECT_ZERO_QTY], [inputs, step]), usage

        sign = _ONE if intent.direction == "buy" else -_ONE
        if not cfg.enabled:
            step = _step("allocator", result="disabled", approved_qty=requested_qty)
            approved = _approved(rejected, requested_qty, sign, [inputs, step], [], "uncapped")
            return approved, usage

        # Only the part of the intent that does not reduce |position| goes through the caps.
        reducing_qty = min(requested_qty, abs(current_qty)) if current_qty * sign < 0 else _ZERO
        capped_qty = requested_qty - reducing_qty
        trace = [inputs]
        if reducing_qty > 0:
            trace.append(
                _step("risk_reducing", exempt_qty=reducing_qty, capped_qty=capped_qty, result="exempt")
            )
        weights = {
            s.strip().lower(): _ONE / len(intent.source_strategy_ids) for s in intent.source_strategy_ids
        }
        reasons: list[str] = []
        notional = price * capped_qty
        if capped_qty > 0:
            held = (current_gross or _ZERO) - abs(current_qty * price)
            caps = self._caps(view.equity, held, symbol, group, weights, usage, budget_mult, capacity_mult)
            notional = _apply_caps(notional, caps, reasons, trace)
        extra_qty = notional // price
        approved_qty = reducing_qty + extra_qty
        if approved_qty < 1:
            if notional > 0:
                reasons.append(ALLOCATOR_REJECT_QTY_BELOW_MIN)
            elif (
                ALLOCATOR_REJECT_SYMBOL_CAPACITY not in reasons
                and ALLOCATOR_REJECT_GROSS_EXPOSURE not in reasons
            ):
                reasons.append(ALLOCATOR_REJECT_SYMBOL_CAPACITY)
            trace.append(_step("qty_min", approved_notional=notional, qty=approved_qty, result="reject"))
            return _rejected(rejected, reasons, trace), usage

        trace.append(_step("qty_min", approved_notional=notional, qty=approved_qty, result="pass"))
        symbol_cap = self.symbol_cap(view.equity, budget_mult, capacity_mult)
        bucket = capacity_bucket(price * approved_qty, symbol_cap)
        result = _approved(rejected, approved_qty, sign, trace, reasons, bucket)
        if extra_qty > 0:
            usage = usage.charge(price * extra_qty, weights, symbol, group)
        return result, usage

    def _caps(
        self,
        equity: Decimal,
        other_gross: Decimal,
        symbol: str,
        group: str | None,
        weights: Mapping[str, Decimal],
        usage: AllocatorUsage,
        budget_mult: Decimal,
        capacity_mult: Decimal,
    ) -> dict[str, Decimal | None]:
        """Return each cap's limit (None: not configured); ``other_gross`` excludes this symbol's value."""
        cfg = self.config
        gross_cap: Decimal | None = None
        if cfg.max_gross_exposure is not None:
            # torghut: max_gross * budget - (current_gross + approved_so_far - |symbol_value|)
            gross_cap = _remaining(cfg.max_gross_exposure * budget_mult, other_gross + usage.approved_gross)
        strategy_cap: Decimal | None = None
        for strategy_id, weight in sorted(weights.items()):
            cap = cfg.strategy_notional_caps.get(strategy_id)
            if cap is not None:
                left = _remaining(cap * budget_mult, usage.strategy_used.get(strategy_id, _ZERO))
                candidate = left / weight
                strategy_cap = candidate if strategy_cap is None else min(strategy_cap, candidate)
        symbol_budget = cfg.symbol_notional_caps.get(symbol)
        group_budget = cfg.correlation_group_caps.get(group) if group is not None else None
        return {
            CAP_SYMBOL_CAPACITY: self.symbol_cap(equity, budget_mult, capacity_mult),
            CAP_GROSS_EXPOSURE: gross_cap,
            CAP_STRATEGY_BUDGET: strategy_cap,
            CAP_SYMBOL_BUDGET: None
            if symbol_budget is None
            else _remaining(symbol_budget * budget_mult, usage.symbol_used.get(symbol, _ZERO)),
            CAP_CORRELATION_CAPACITY: None
            if group is None or group_budget is None
            else _remaining(group_budget * budget_mult, usage.correlation_used.get(group, _ZERO)),
        }


def _apply_caps(
    notional: Decimal,
    caps: Mapping[str, Decimal | None],
    reasons: list[str],
    trace: list[FrozenMap[str, object]],
) -> Decimal:
    # torghut evaluates every cap in order, even after one has zeroed the notional.
    for cap in CAP_ORDER:
        limit = caps[cap]
        before = notional
        reason: str | None = None
        if limit is None:
            outcome = "not_configured"
        elif limit <= 0:
            notional, outcome, reason = _ZERO, "reject", reject_reason(cap)
        elif notional > limit:
            notional, outcome, reason = limit, "clip", clip_reason(cap)
        else:
            outcome = "pass"
        if reason is not None:
            reasons.append(reason)
        trace.append(
            _step(cap, limit=limit, requested=before, approved=notional, result=outcome, reason=reason)
        )
    return notional


def _rejected(
    template: PortfolioIntent, reasons: Iterable[str], trace: Iterable[FrozenMap[str, object]]
) -> PortfolioIntent:
    return replace(template, allocator_trace=tuple(trace), reason_codes=tuple(sorted(set(reasons))))


def _approved(
    template: PortfolioIntent,
    qty: Decimal,
    sign: Decimal,
    trace: Iterable[FrozenMap[str, object]],
    reasons: Iterable[str],
    bucket: str,
) -> PortfolioIntent:
    price = template.price if template.price is not None else _ZERO
    return replace(
        template,
        net_target_qty=template.current_qty + sign * qty,
        allocator_trace=tuple(trace),
        capacity_bucket=bucket,
        approved_qty=qty,
        status="approved",
        reason_codes=tuple(sorted(set(reasons))),
        clipped=qty != template.requested_qty,
        approved_notional=price * qty,
    )


def capacity_bucket(approved_notional: Decimal, symbol_cap: Decimal | None) -> str:
    """Return the capacity bucket of an approved notional against the effective symbol cap."""
    if symbol_cap is None or symbol_cap <= 0:
        return "uncapped"
    used = approved_notional / symbol_cap
    if used <= Decimal("0.25"):
        return "light"
    if used <= Decimal("0.75"):
        return "moderate"
    return "heavy" if used < 1 else "at_capacity"


def canonical_order(intents: Iterable[SymbolIntent]) -> list[SymbolIntent]:
    """Order symbol intents by ``(window_end, symbol, seq)`` (then horizon and side), not by arrival."""
    return sorted(
        intents,
        key=lambda i: (
            i.window_end,
            i.symbol,
            i.seq,
            i.horizon,
            i.direction,
            i.source_strategy_ids,
            i.event_ts,
        ),
    )


def _mark_delta(view: AccountView, symbol: str, price: Decimal) -> Decimal:
    previous = view.marks.get(symbol, view.avg_prices.get(symbol))
    return _ZERO if previous is None else view.position(symbol) * (price - previous)


def _with(mapping: FrozenMap[str, Decimal], key: str, value: Decimal | None) -> FrozenMap[str, Decimal]:
    """``mapping`` with ``key`` set to ``value`` (removed when None), in key order as the ledger keeps it."""
    merged = dict(mapping)
    if value is None:
        merged.pop(key, None)
        return FrozenMap(merged)  # removing a key keeps the order
    known = key in merged
    merged[key] = value
    return FrozenMap(merged) if known else FrozenMap(sorted(merged.items()))


class AccountLedger:
    """Applies account events to an :class:`AccountView`; pure, so replay gives the same views.

    A broker snapshot is authoritative for equity, cash, buying power and positions. Between
    snapshots a fill moves cash and buying power by ``-signed_qty * price - fee``, marks the symbol
    at the fill price (equity follows the mark move of the position held before the fill, less the
    fee), and keeps average entry prices: adding to a position averages in, reducing it realizes
    ``closed_qty * (price - avg_price)`` (sign-adjusted for shorts), crossing zero re-opens at the fill
    price. ``realized_pnl`` is net of fees.

    >>> from datetime import UTC, datetime
    >>> ts = datetime(2026, 2, 19, 14, 30, tzinfo=UTC)
    >>> view = AccountView(account="paper", equity=Decimal("1000"), cash=Decimal("1000"),
    ...     buying_power=Decimal("1000"))
    >>> buy = Fill("paper", "AAPL", "buy", Decimal("2"), Decimal("100"), Decimal("0"), "c1", ts)
    >>> sell = Fill("paper", "AAPL", "sell", Decimal("1"), Decimal("110"), Decimal("0"), "c2", ts)
    >>> view = AccountLedger.apply(AccountLedger.apply(view, buy), sell)
    >>> view.position("AAPL"), view.realized_pnl, view.cash, view.equity
    (Decimal('1'), Decimal('10'), Decimal('910'), Decimal('1020'))
    """

    __slots__ = ()

    @staticmethod
    def apply(view: AccountView, event: AccountEvent) -> AccountView:
        """Return ``view`` after ``event``.

        Raises:
            ValueError: The event belongs to another account (a wiring error), or a fill's qty is not
                positive.
        """
        if event.account != view.account:
            msg = f"account event for {event.account!r} applied to the view of {view.account!r}"
            raise ValueError(msg)
        if isinstance(event, AccountSnapshot):
            return AccountLedger._snapshot(view, event)
        return AccountLedger._fill(view, event)

    @staticmethod
    def mark(view: AccountView, symbol: str, price: Decimal) -> AccountView:
        """Return ``view`` with ``symbol`` marked at ``price`` (equity follows the position's value)."""
        return replace(
            view,
            equity=view.equity + _mark_delta(view, symbol, price),
            marks=_with(view.marks, symbol, price),
        )

    @staticmethod
    def _snapshot(view: AccountView, snap: AccountSnapshot) -> AccountView:
        positions = FrozenMap(sorted((s, q) for s, q in snap.positions.items() if q != 0))
        # The broker's entry prices win; a position the broker gives none for keeps the ledger's. A symbol
        # the stage has marked keeps its mark (the signals' price, in event time); the broker's current
        # price marks the others, so that their exposure counts before their first signal.
        avg_prices = {s: p for s, p in view.avg_prices.items() if s in positions}
        avg_prices.update((s, p) for s, p in snap.avg_prices.items() if s in positions)
        marks = view.marks
        unmarked = [(s, p) for s, p in snap.marks.items() if s in positions and s not in marks]
        if unmarked:
            marks = FrozenMap(sorted((*marks.items(), *unmarked)))
        return replace(
            view,
            equity=snap.equity,
            cash=snap.cash,
            buying_power=snap.buying_power,
            positions=positions,
            marks=marks,
            avg_prices=FrozenMap(sorted(avg_prices.items())),
            session_start_equity=snap.equity
            if view.session_start_equity is None
            else view.session_start_equity,
        )

    @staticmethod
    def _fill(view: AccountView, fill: Fill) -> AccountView:
        if fill.qty <= 0:
            msg = f"fill {fill.client_order_id!r} has qty {fill.qty}; fills carry a positive qty and a side"
            raise ValueError(msg)
        signed = fill.qty if fill.side == "buy" else -fill.qty
        old = view.position(fill.symbol)
        new = old + signed
        avg = view.avg_prices.get(fill.symbol, fill.price)
        realized = -fill.fee
        if old == 0 or (old > 0) == (signed > 0):
            new_avg: Decimal | None = (abs(old) * avg + fill.qty * fill.price) / abs(new)
        else:
            closed = min(abs(old), fill.qty)
            realized += closed * (fill.price - avg) * (_ONE if old > 0 else -_ONE)
            new_avg = avg if abs(signed) < abs(old) else (None if new == 0 else fill.price)
        cash_delta = -signed * fill.price - fill.fee
        return replace(
            view,
            equity=view.equity + _mark_delta(view, fill.symbol, fill.price) - fill.fee,
            cash=view.cash + cash_delta,
            buying_power=view.buying_power + cash_delta,
            positions=_with(view.positions, fill.symbol, new if new != 0 else None),
            avg_prices=_with(view.avg_prices, fill.symbol, new_avg),
            marks=_with(view.marks, fill.symbol, fill.price),
            realized_pnl=view.realized_pnl + realized,
        )

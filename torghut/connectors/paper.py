"""The paper broker: deterministic fills in event time, idempotent by client order id.

An order fills completely at its base price, the limit price for a limit order or the signal reference price
(``audit["reference_price"]``) for a market order, moved against the taker by the slippage in bps (a buy
pays more, a sell receives less). The model is deliberately conservative: it never fills better than the
order's own price. Fees are ``qty * fee_per_share + notional * fee_bps / 10^4``. Prices and fees are rounded
half-up to 0.0001.

>>> from datetime import UTC, datetime
>>> from torghut.contracts.portfolio import OrderIntent
>>> ts = datetime(2026, 2, 19, 14, 30, tzinfo=UTC)
>>> order = OrderIntent("paper", "NVDA", "buy", Decimal(2), "limit", "day", Decimal("100.00"), "h1", ts)
>>> costs = PaperCosts(slippage_bps=Decimal(10))
>>> book, report, fill = paper_execute(PaperBook.open("paper", Decimal(10_000), ts), order, costs)
>>> report.status, report.avg_fill_price, book.cash
('filled', Decimal('100.1000'), Decimal('9799.8000'))
>>> paper_execute(book, order, costs)[2] is None
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from torghut.contracts.account import AccountSnapshot, Fill
from torghut.contracts.execution import ExecutionReport
from torghut.contracts.frozen import EMPTY as EMPTY_MAP
from torghut.contracts.frozen import FrozenMap, freeze
from torghut.contracts.portfolio import OrderIntent
from torghut.operators.trading_config import TradingConfig

_BPS = Decimal(10_000)
_PRICE_STEP = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class PaperCosts:
    """Slippage (bps against the taker) and fees (per share and bps of notional)."""

    slippage_bps: Decimal = Decimal(0)
    fee_per_share: Decimal = Decimal(0)
    fee_bps: Decimal = Decimal(0)

    @classmethod
    def from_config(cls, config: TradingConfig) -> PaperCosts:
        """Take the ``TRADING_PAPER_SLIPPAGE_BPS``, ``_FEE_PER_SHARE`` and ``_FEE_BPS`` settings."""
        return cls(
            config.trading_paper_slippage_bps,
            config.trading_paper_fee_per_share,
            config.trading_paper_fee_bps,
        )


@dataclass(frozen=True, slots=True)
class PaperBook:
    """The paper account: cash, signed positions, last fill price per symbol, and every report by id.

    ``as_of`` is the event time of the latest order executed (or of the opening).
    """

    account: str
    cash: Decimal
    as_of: datetime
    positions: FrozenMap[str, Decimal] = EMPTY_MAP
    marks: FrozenMap[str, Decimal] = EMPTY_MAP
    reports: FrozenMap[str, ExecutionReport] = EMPTY_MAP

    @classmethod
    def open(cls, account: str, cash: Decimal, as_of: datetime) -> PaperBook:
        """Return a flat book holding ``cash`` at event time ``as_of``."""
        return cls(account, cash, as_of)

    @property
    def equity(self) -> Decimal:
        """Cash plus positions marked at their last fill price."""
        return self.cash + sum((qty * self.marks[sym] for sym, qty in self.positions.items()), Decimal(0))

    def snapshot(self) -> AccountSnapshot:
        """Return the account as an :class:`AccountSnapshot`; buying power is the cash (no margin)."""
        return AccountSnapshot(self.account, self.equity, self.cash, self.cash, self.positions, self.as_of)


def _round(value: Decimal) -> Decimal:
    return value.quantize(_PRICE_STEP, rounding=ROUND_HALF_UP)


def base_price(order: OrderIntent) -> Decimal | None:
    """The price an order fills at before slippage: its limit price, else the audited reference price."""
    if order.order_type == "limit" and order.limit_price is not None:
        return order.limit_price
    reference = order.audit.get("reference_price")
    return reference if isinstance(reference, Decimal) and reference > 0 else None


def fill_price(order: OrderIntent, slippage_bps: Decimal) -> Decimal | None:
    """Return the deterministic fill price, or ``None`` when the order has no price to fill at."""
    base = base_price(order)
    if base is None:
        return None
    direction = 1 if order.side == "buy" else -1
    return _round(base * (1 + direction * slippage_bps / _BPS))


def _report(
    order: OrderIntent, status: str, price: Decimal | None, fee: Decimal, **raw: object
) -> ExecutionReport:
    filled = order.qty if price is not None else Decimal(0)
    return ExecutionReport(
        client_order_id=order.client_order_id,
        broker_order_id=f"paper-{order.client_order_id}",
        account=order.account,
        symbol=order.symbol,
        side=order.side,
        qty=order.qty,
        filled_qty=filled,
        avg_fill_price=price,
        fee=fee,
        status=status,
        adapter="paper",
        event_ts=order.event_ts,
        raw=freeze(
            {
                "order_type": order.order_type,
                "time_in_force": order.time_in_force,
                "limit_price": order.limit_price,
                **raw,
            }
        ),
    )


def paper_execute(
    book: PaperBook, order: OrderIntent, costs: PaperCosts
) -> tuple[PaperBook, ExecutionReport, Fill | None]:
    """Execute ``order`` against ``book``: the new book, the report, and the fill (``None`` if none).

    A ``client_order_id`` already in the book returns the stored report, the same book and no fill. An order
    without a price is reported ``rejected`` with ``raw["reason"] = "missing_reference_price"``.
    """
    existing = book.reports.get(order.client_order_id)
    if existing is not None:
        return book, existing, None
    price = fill_price(order, costs.slippage_bps)
    if price is None:
        report = _report(order, "rejected", None, Decimal(0), reason="missing_reference_price")
        return (
            dataclasses.replace(book, reports=FrozenMap({**book.reports, order.client_order_id: report})),
            report,
            None,
        )
    notional = price * order.qty
    fee = _round(order.qty * costs.fee_per_share + notional * costs.fee_bps / _BPS)
    signed_qty = order.qty if order.side == "buy" else -order.qty
    cash = book.cash - signed_qty * price - fee
    position = book.positions.get(order.symbol, Decimal(0)) + signed_qty
    positions = {sym: qty for sym, qty in book.positions.items() if sym != order.symbol}
    if position != 0:
        positions[order.symbol] = position
    report = _report(
        order, "filled", price, fee, slippage_bps=costs.slippage_bps, base_price=base_price(order)
    )
    fill = Fill(
        order.account, order.symbol, order.side, order.qty, price, fee, order.client_order_id, order.event_ts
    )
    new_book = PaperBook(
        account=book.account,
        cash=cash,
        as_of=max(book.as_of, order.event_ts),
        positions=FrozenMap(positions),
        marks=FrozenMap({**book.marks, order.symbol: price}),
        reports=FrozenMap({**book.reports, order.client_order_id: report}),
    )
    return new_book, report, fill


class PaperAdapter:
    """The paper broker as an ``ExecutionAdapter`` over a :class:`PaperBook`."""

    __slots__ = ("_book", "_costs", "_fills")

    def __init__(self, book: PaperBook, costs: PaperCosts) -> None:
        self._book = book
        self._costs = costs
        self._fills: list[Fill] = []

    @property
    def name(self) -> str:
        """Always ``paper``."""
        return "paper"

    @property
    def book(self) -> PaperBook:
        """The current book (immutable; safe to snapshot)."""
        return self._book

    @property
    def fills(self) -> tuple[Fill, ...]:
        """Every fill produced by this adapter instance, in order."""
        return tuple(self._fills)

    def execute(self, order: OrderIntent) -> tuple[ExecutionReport, Fill | None]:
        """Execute ``order``: the report, and the fill when this call produced one."""
        self._book, report, fill = paper_execute(self._book, order, self._costs)
        if fill is not None:
            self._fills.append(fill)
        return report, fill

    def submit(self, order: OrderIntent) -> ExecutionReport:
        """Execute ``order`` and return its report (the stored one for a repeated id)."""
        return self.execute(order)[0]

    def get_by_client_order_id(self, client_order_id: str) -> ExecutionReport | None:
        """Return the stored report, if any."""
        return self._book.reports.get(client_order_id)

    def account_snapshot(self) -> AccountSnapshot:
        """Return the book as an account snapshot as of its latest order."""
        return self._book.snapshot()

"""Paper fills: price, slippage against the taker, fees, book updates, idempotency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from torghut.connectors.broker import ExecutionAdapter
from torghut.connectors.paper import PaperAdapter, PaperBook, PaperCosts, fill_price, paper_execute
from torghut.contracts.frozen import FrozenMap
from torghut.contracts.portfolio import OrderIntent
from torghut.operators.trading_config import TradingConfig

TS = datetime(2026, 2, 19, 14, 30, 5, tzinfo=UTC)
D = Decimal


def order(
    side: str = "buy",
    qty: str = "10",
    limit: str | None = "100.00",
    reference: str | None = None,
    coid: str = "x" * 64,
) -> OrderIntent:
    return OrderIntent(
        account="paper",
        symbol="NVDA",
        side=side,  # type: ignore[arg-type]
        qty=D(qty),
        order_type="limit" if limit else "market",
        time_in_force="day",
        limit_price=None if limit is None else D(limit),
        client_order_id=coid,
        event_ts=TS,
        audit=FrozenMap({} if reference is None else {"reference_price": D(reference)}),
    )


@pytest.mark.parametrize(
    ("side", "limit", "reference", "bps", "expected"),
    [
        ("buy", "100.00", None, "0", "100.0000"),
        ("buy", "100.00", "99", "25", "100.2500"),  # limit price is the base for a limit order
        ("sell", "100.00", None, "25", "99.7500"),
        ("buy", None, "187.1", "10", "187.2871"),  # market: reference price
        ("sell", None, "187.1", "10", "186.9129"),
        ("buy", None, "0.5", "3", "0.5002"),  # 0.500150 rounds half-up to 0.0002
        ("buy", None, None, "10", None),
    ],
)
def test_fill_price(
    side: str, limit: str | None, reference: str | None, bps: str, expected: str | None
) -> None:
    price = fill_price(order(side=side, limit=limit, reference=reference), D(bps))
    assert price == (None if expected is None else D(expected))


def test_fill_updates_cash_positions_marks_and_fees() -> None:
    costs = PaperCosts(slippage_bps=D("10"), fee_per_share=D("0.005"), fee_bps=D("1"))
    book = PaperBook.open("paper", D("10000"), TS - timedelta(minutes=1))
    book, report, fill = paper_execute(book, order(qty="10"), costs)
    # price 100.1; notional 1001; fee 10 x 0.005 + 1001 x 1bp = 0.05 + 0.1001
    assert report.status == "filled"
    assert report.is_final
    assert report.avg_fill_price == D("100.1000")
    assert report.filled_qty == D(10)
    assert report.fee == D("0.1501")
    assert report.broker_order_id == "paper-" + "x" * 64
    assert report.raw["slippage_bps"] == D("10")
    assert fill is not None
    assert (fill.price, fill.qty, fill.fee, fill.client_order_id) == (
        D("100.1000"),
        D(10),
        D("0.1501"),
        "x" * 64,
    )
    assert book.cash == D("10000") - D("1001") - D("0.1501")
    assert book.positions == {"NVDA": D(10)}
    assert book.as_of == TS
    assert book.equity == book.cash + D("1001")

    book, report, fill = paper_execute(
        book, order(side="sell", qty="10", limit="110.00", coid="y" * 64), costs
    )
    assert report.avg_fill_price == D("109.8900")
    assert book.positions == {}  # flat positions are dropped
    snapshot = book.snapshot()
    assert snapshot.equity == snapshot.cash == book.cash
    assert snapshot.event_ts == TS


def test_repeated_client_order_id_returns_the_same_report_and_no_second_fill() -> None:
    adapter = PaperAdapter(PaperBook.open("paper", D("10000"), TS), PaperCosts.from_config(TradingConfig()))
    first, fill = adapter.execute(order())
    second, again = adapter.execute(order())
    assert fill is not None
    assert again is None
    assert second is first
    assert adapter.submit(order()) is first
    assert adapter.fills == (fill,)
    assert adapter.account_snapshot().positions == {"NVDA": D(10)}
    assert adapter.get_by_client_order_id("x" * 64) is first
    assert adapter.get_by_client_order_id("nope") is None


def test_order_without_a_price_is_reported_rejected_without_a_fill() -> None:
    book = PaperBook.open("paper", D("10000"), TS)
    new_book, report, fill = paper_execute(book, order(limit=None), PaperCosts())
    assert fill is None
    assert report.status == "rejected"
    assert report.raw["reason"] == "missing_reference_price"
    assert report.filled_qty == 0
    assert new_book.cash == book.cash
    assert paper_execute(new_book, order(limit=None), PaperCosts())[1] is report


def test_execution_is_deterministic() -> None:
    def run() -> tuple[object, ...]:
        book = PaperBook.open("paper", D("5000"), TS)
        out = []
        for i in range(5):
            book, report, _ = paper_execute(book, order(qty=str(i + 1), coid=f"{i:064d}"), PaperCosts(D("3")))
            out.append(report)
        return (book, *out)

    first = run()
    assert run() == first  # the same orders on the same book: the same book and reports, field by field
    book = first[0]
    assert isinstance(book, PaperBook)
    # Five buys of 1..5 shares at the 100.00 limit, 3 bps against the taker: 15 shares at 100.03 each.
    assert book.positions["NVDA"] == D(15)
    assert book.cash == D(5000) - D(15) * D("100.03") == D("3499.55")
    assert [r.filled_qty for r in first[1:]] == [D(q) for q in range(1, 6)]  # type: ignore[attr-defined]


def test_paper_adapter_satisfies_the_protocol() -> None:
    adapter: ExecutionAdapter = PaperAdapter(PaperBook.open("paper", D(1), TS), PaperCosts())
    assert isinstance(adapter, ExecutionAdapter)
    assert adapter.name == "paper"

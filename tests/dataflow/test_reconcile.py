"""Start-up reconciliation: the pure comparison, then each policy against the local Alpaca server and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.connectors.alpaca.support import serve
from tests.connectors.postgres.conftest import dsn, pg_server, template_db
from tests.integration.support import service_config
from torghut.connectors.alpaca import AlpacaAdapter, AlpacaConfig
from torghut.connectors.alpaca_server import AlpacaTestServer, Fault
from torghut.connectors.broker import IntentAlreadySent
from torghut.connectors.postgres import upsert_executions
from torghut.contracts.execution import ExecutionReport
from torghut.contracts.portfolio import OrderIntent
from torghut.dataflow.reconcile import (
    RECONCILED_ADAPTER,
    UNKNOWN_AT_BROKER,
    OrderStatusRefresh,
    PersistedOrderGuard,
    PositionDifference,
    ReconcileHalt,
    compare,
    reconcile_at_startup,
)
from torghut.dataflow.service import run_service

__all__ = ["dsn", "pg_server", "template_db"]

T0 = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)


def _report(
    cid: str, status: str = "accepted", *, symbol: str = "AAPL", filled: str = "0"
) -> ExecutionReport:
    return ExecutionReport(
        client_order_id=cid,
        broker_order_id=f"b-{cid}",
        account="paper",
        symbol=symbol,
        side="buy",
        qty=Decimal(10),
        filled_qty=Decimal(filled),
        avg_fill_price=Decimal(100) if Decimal(filled) else None,
        fee=Decimal(0),
        status=status,
        adapter="alpaca",
        event_ts=T0,
    )


def test_compare_sorts_every_kind_of_difference() -> None:
    result = compare(
        broker_open=(_report("open-known"), _report("open-unknown")),
        broker_positions={"AAPL": Decimal(10), "MSFT": Decimal(-5)},
        stored_open=("open-known", "closed", "gone"),
        known_ids=("open-known", "closed", "gone"),
        stored_positions={"AAPL": Decimal(10), "NVDA": Decimal(3)},
        closed_lookup={"closed": _report("closed", "filled", filled="10"), "gone": None},
    )
    assert result.missing_at_broker == ("gone",)
    assert [r.client_order_id for r in result.closed_at_broker] == ["closed"]
    assert [r.client_order_id for r in result.unknown_to_postgres] == ["open-unknown"]
    assert result.positions == (
        PositionDifference("MSFT", Decimal(-5), Decimal(0)),
        PositionDifference("NVDA", Decimal(0), Decimal(3)),
    )
    assert not result.clean and len(result.describe()) == 5


def test_compare_of_agreeing_views_is_clean() -> None:
    result = compare(
        broker_open=(_report("a"),),
        broker_positions={"AAPL": Decimal(10)},
        stored_open=("a",),
        known_ids=("a", "old"),
        stored_positions={"AAPL": Decimal(10)},
        closed_lookup={},
    )
    assert result.clean and result.describe() == []


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[AlpacaTestServer]:
    yield from serve(monkeypatch)


def _place(server: AlpacaTestServer, cid: str, **body: Any) -> None:
    order = {"symbol": "AAPL", "qty": "10", "side": "buy", "type": "market", "time_in_force": "day"}
    server.brokerage.place({**order, **body, "client_order_id": cid})


def _diverged(server: AlpacaTestServer, dsn: str) -> None:
    """Broker: an unknown open limit order and a filled order PostgreSQL still thinks open; PostgreSQL: an
    open order the broker never saw. Positions: broker 10 AAPL, PostgreSQL fills 0."""
    _place(server, "unknown-open", type="limit", limit_price="50")
    _place(server, "closed-since")
    with psycopg.connect(dsn, autocommit=True) as conn:
        upsert_executions(conn, [_report("closed-since"), _report("never-at-broker", symbol="MSFT")])


def _rows(dsn: str) -> dict[str, tuple[str, str | None, str | None]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT client_order_id, status, execution_actual_adapter, execution_fallback_reason FROM executions"
        ).fetchall()
    return {str(r[0]): (str(r[1]), r[2], r[3]) for r in rows}


def _adapter() -> AlpacaAdapter:
    return AlpacaAdapter(AlpacaConfig.from_env())


def test_report_marks_and_refreshes_stored_orders_and_adopts_nothing(
    server: AlpacaTestServer, dsn: str
) -> None:
    _diverged(server, dsn)
    said: list[str] = []

    result = reconcile_at_startup(dsn, _adapter(), "report", say=said.append)

    assert result.missing_at_broker == ("never-at-broker",)
    assert [r.status for r in result.closed_at_broker] == ["filled"]
    assert [r.client_order_id for r in result.unknown_to_postgres] == ["unknown-open"]
    assert result.positions == (PositionDifference("AAPL", Decimal(10), Decimal(0)),)
    assert _rows(dsn) == {
        "closed-since": ("filled", "alpaca", None),
        "never-at-broker": ("accepted", "alpaca", UNKNOWN_AT_BROKER),
    }
    assert "4 difference(s), 0 adopted" in said[-1]


def test_adopt_inserts_unknown_broker_orders_with_the_reconciled_marker(
    server: AlpacaTestServer, dsn: str
) -> None:
    _diverged(server, dsn)

    reconcile_at_startup(dsn, _adapter(), "adopt")

    rows = _rows(dsn)
    assert rows["unknown-open"] == ("new", RECONCILED_ADAPTER, None)
    assert rows["closed-since"] == ("filled", "alpaca", None)
    assert rows["never-at-broker"] == ("accepted", "alpaca", UNKNOWN_AT_BROKER)
    # Adopted, the broker's open order is known, the fills match its position and the marked order was
    # reported once: a second start under halt finds nothing.
    assert reconcile_at_startup(dsn, _adapter(), "halt").clean


def test_halt_refuses_to_start_with_a_clear_message_and_changes_nothing(
    server: AlpacaTestServer, dsn: str
) -> None:
    _diverged(server, dsn)
    before = _rows(dsn)

    with pytest.raises(ReconcileHalt) as raised:
        reconcile_at_startup(dsn, _adapter(), "halt")

    message = str(raised.value)
    assert "4 difference(s)" in message
    assert "order never-at-broker is open in PostgreSQL but unknown at the broker" in message
    assert "broker order unknown-open (buy 10 AAPL, new) is unknown to PostgreSQL" in message
    assert "position AAPL: broker 10, PostgreSQL fills 0" in message
    assert "adapter.reconcile" in message
    assert _rows(dsn) == before


def test_halt_with_agreeing_views_starts(server: AlpacaTestServer, dsn: str) -> None:
    _place(server, "both")
    with psycopg.connect(dsn, autocommit=True) as conn:
        upsert_executions(conn, [_report("both", "filled", filled="10")])
    assert reconcile_at_startup(dsn, _adapter(), "halt").clean


def test_the_service_refuses_to_start_under_halt_before_any_order(
    server: AlpacaTestServer, dsn: str, clean_signals: Path
) -> None:
    _place(server, "foreign", type="limit", limit_price="50")
    config = service_config(
        {"kind": "file", "path": str(clean_signals)}, dsn, adapter={"kind": "alpaca", "reconcile": "halt"}
    )
    with pytest.raises(ReconcileHalt, match="foreign"):
        run_service(config, once=True)
    assert server.brokerage.control_orders()["received"] == {}
    assert _rows(dsn) == {}


def test_the_guard_returns_a_stored_report_without_calling_the_broker(
    server: AlpacaTestServer, dsn: str
) -> None:
    from tests.connectors.alpaca.support import make_order

    order = make_order("c" * 64, qty="1000000")  # refused by the broker: insufficient buying power
    guard = PersistedOrderGuard(_adapter(), dsn)
    first = guard.submit(order)
    again = guard.submit(order)
    assert first.status == again.status == "rejected"
    assert server.received("c" * 64) == 1
    assert _rows(dsn)["c" * 64][0] == "rejected"
    assert "<redacted>" in repr(guard) and dsn not in repr(guard)


def _intent_order(cid_char: str, qty: str = "10") -> OrderIntent:
    from tests.connectors.alpaca.support import make_order

    return dataclasses.replace(make_order(cid_char * 64, qty=qty), intent_key="intent-1")


def _claim_earlier(dsn: str) -> None:
    """Claim intent-1 for order a, as a run that was killed after the claim did."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO order_intents (account_label, intent_key, client_order_id) VALUES (%s, %s, %s)",
            ("paper", "intent-1", "a" * 64),
        )


def _claims(dsn: str) -> dict[tuple[str, str], str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT account_label, intent_key, client_order_id FROM order_intents").fetchall()
    return {(str(a), str(k)): str(c) for a, k, c in rows}


def test_an_intent_already_sent_under_another_id_is_refused_without_a_post(
    server: AlpacaTestServer, dsn: str
) -> None:
    guard = PersistedOrderGuard(_adapter(), dsn)
    first = guard.submit(_intent_order("a"))
    # The same intent re-made with another size (another client order id), as after a restart.
    with pytest.raises(IntentAlreadySent) as refused:
        guard.submit(_intent_order("b", qty="7"))

    assert first.status == "filled"
    assert (refused.value.intent_key, refused.value.client_order_id) == ("intent-1", "a" * 64)
    assert server.received("b" * 64) == 0
    assert _claims(dsn) == {("paper", "intent-1"): "a" * 64}
    assert set(_rows(dsn)) == {"a" * 64}
    # The order that carries the intent out is still answered from PostgreSQL.
    assert guard.submit(_intent_order("a")).status == "filled"
    assert server.received("a" * 64) == 1


def test_an_earlier_order_found_only_at_the_broker_refuses_the_new_one_and_is_stored(
    server: AlpacaTestServer, dsn: str
) -> None:
    # A crash between the broker's answer and the executions row: the claim and the broker hold order a.
    _place(server, "a" * 64)
    _claim_earlier(dsn)
    guard = PersistedOrderGuard(_adapter(), dsn)

    with pytest.raises(IntentAlreadySent):
        guard.submit(_intent_order("b", qty="7"))

    assert server.received("b" * 64) == 0
    assert _rows(dsn)["a" * 64][0] == "filled"


def test_an_earlier_order_that_never_reached_the_broker_passes_the_claim_to_the_new_one(
    server: AlpacaTestServer, dsn: str
) -> None:
    _claim_earlier(dsn)
    guard = PersistedOrderGuard(_adapter(), dsn)

    report = guard.submit(_intent_order("b", qty="7"))

    assert report.status == "filled" and report.qty == Decimal(7)
    assert server.received("b" * 64) == 1
    assert _claims(dsn) == {("paper", "intent-1"): "b" * 64}


def test_a_failed_look_up_of_the_earlier_order_sends_nothing_and_reports_retry_pending(
    server: AlpacaTestServer, dsn: str
) -> None:
    _claim_earlier(dsn)
    server.inject(*[Fault(status=503, body="unavailable", method="GET", path=BY_CLIENT_ID)] * 3)
    guard = PersistedOrderGuard(_adapter(), dsn)

    report = guard.submit(_intent_order("b", qty="7"))

    assert report.status == "retry_pending"
    assert str(report.raw["reason"]).startswith("intent_lookup_failed:")
    assert server.received("b" * 64) == 0
    assert _rows(dsn)["b" * 64][0] == "retry_pending"
    assert _claims(dsn) == {("paper", "intent-1"): "a" * 64}


def test_the_status_refresh_follows_orders_at_the_broker_and_rewrites_only_what_changed(
    server: AlpacaTestServer, dsn: str
) -> None:
    from tests.connectors.alpaca.support import make_order

    adapter = _adapter()
    guard = PersistedOrderGuard(adapter, dsn)
    # Two buy limits far below the market (100): both stay open at the broker.
    for cid in ("a", "b"):
        guard.submit(make_order(cid * 64, order_type="limit", limit_price="1"))
    assert {cid: row[0] for cid, row in _rows(dsn).items()} == {"a" * 64: "new", "b" * 64: "new"}
    refresh = OrderStatusRefresh(dsn, adapter, "paper")
    untouched = _xmins(dsn)

    assert refresh(adapter.open_orders()) == 0  # nothing changed at the broker: no row rewritten
    assert _xmins(dsn) == untouched
    (order_a,) = [o for o in server.stored_orders() if o["client_order_id"] == "a" * 64]
    server.brokerage.cancel(order_a["id"])  # cancelled at the broker (by hand, or torghut)
    server.inject(Fault(status=503, body="unavailable", method="GET", path=BY_CLIENT_ID))
    assert refresh(adapter.open_orders()) == 0  # the look-up failed: retried at the next read
    assert _rows(dsn)["a" * 64][0] == "new"

    assert refresh(adapter.open_orders()) == 1
    assert _rows(dsn)["a" * 64][0] == "canceled"
    assert _xmins(dsn)["b" * 64] == untouched["b" * 64]
    assert refresh(adapter.open_orders()) == 0  # a final row is not looked at again
    assert "<redacted>" in repr(refresh) and dsn not in repr(refresh)


BY_CLIENT_ID = "/v2/orders:by_client_order_id"


def _xmins(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT client_order_id, xmin::text FROM executions").fetchall()
    return {str(c): str(x) for c, x in rows}


def test_the_status_refresh_marks_an_order_the_broker_does_not_know_once(
    server: AlpacaTestServer, dsn: str
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        upsert_executions(conn, [_report("ghost")])
    adapter = _adapter()
    refresh = OrderStatusRefresh(dsn, adapter, "paper")

    assert refresh(()) == 1
    assert _rows(dsn)["ghost"] == ("accepted", "alpaca", UNKNOWN_AT_BROKER)
    marked = _xmins(dsn)
    assert refresh(()) == 0  # marked: neither looked up nor rewritten again
    assert _xmins(dsn) == marked

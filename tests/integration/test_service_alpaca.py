"""The service flow with the Alpaca adapter against the local Alpaca-protocol server.

The server is the real one (alpaca-py talks HTTP to it); :class:`ServerLog` only records, in order, what
its brokerage does with the requests: look-ups by client order id, POSTs received, orders placed, orders
cancelled. The runtime kill switch is flipped with the ``torghut`` console script, as an operator does,
against the real PostgreSQL ``trading_control`` table.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.connectors.alpaca.support import serve
from tests.integration.support import service_config
from torghut.connectors.alpaca_server import AlpacaTestServer, Brokerage, Fault
from torghut.dataflow.service import RETRY_PENDING, run_service
from torghut.dataflow.service_config import ServiceConfig
from torghut.metrics import METRICS

pytestmark = pytest.mark.integration

LIVE_TRADING = {"trading_mode": "live", "trading_live_enabled": True, "trading_kill_switch_enabled": False}
BY_CLIENT_ID = "/v2/orders:by_client_order_id"
Event = tuple[str, str]


class ServerLog:
    """Records what the server's brokerage does, in order, by wrapping its own methods (which still run).

    Events: ``("lookup", cid)`` a look-up by client order id answered; ``("post", cid)`` a ``POST
    /v2/orders`` received (counted before any scripted fault); ``("placed", cid)`` an order stored;
    ``("cancel", order id)`` one order cancelled (by ``DELETE /v2/orders/{id}`` or within a cancel-all);
    ``("cancel_all", "")`` a ``DELETE /v2/orders`` processed; ``("mark", label)`` the test's own marks.
    ``after_place`` is called with the number of orders placed so far, before the POST is answered.
    """

    def __init__(self, brokerage: Brokerage, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[Event] = []
        self.after_place: Callable[[int], None] | None = None
        lookup, received, place = brokerage.order_by_client_id, brokerage.note_received, brokerage.place
        cancel, cancel_all = brokerage.cancel, brokerage.cancel_all

        def logged_lookup(client_id: str) -> dict[str, Any]:
            self.events.append(("lookup", client_id))
            return lookup(client_id)

        def logged_received(body: dict[str, Any]) -> None:
            self.events.append(("post", str(body.get("client_order_id"))))
            received(body)

        def logged_place(body: Any) -> dict[str, Any]:
            order = place(body)
            self.events.append(("placed", str(order["client_order_id"])))
            if self.after_place is not None:
                self.after_place(len(self.of("placed")))
            return order

        def logged_cancel(order_id: str) -> None:
            cancel(order_id)
            self.events.append(("cancel", order_id))

        def logged_cancel_all() -> list[dict[str, Any]]:
            self.events.append(("cancel_all", ""))
            return cancel_all()

        monkeypatch.setattr(brokerage, "order_by_client_id", logged_lookup)
        monkeypatch.setattr(brokerage, "note_received", logged_received)
        monkeypatch.setattr(brokerage, "place", logged_place)
        monkeypatch.setattr(brokerage, "cancel", logged_cancel)
        monkeypatch.setattr(brokerage, "cancel_all", logged_cancel_all)

    def of(self, kind: str, events: list[Event] | None = None) -> list[str]:
        """The subjects of the events of ``kind`` (among ``events``, default all), in order."""
        return [subject for k, subject in (self.events if events is None else events) if k == kind]

    def mark(self, label: str) -> None:
        """Record the test's own event between the server's."""
        self.events.append(("mark", label))

    def since(self, label: str) -> list[Event]:
        """The events after the mark ``label``."""
        return self.events[self.events.index(("mark", label)) + 1 :]


def _serve(monkeypatch: pytest.MonkeyPatch, price: int, mode: str) -> Iterator[AlpacaTestServer]:
    env = {
        "TRADING_LIVE_ENABLED": "true" if mode == "live" else "false",
        # live: the kill-switch test runs the CLI while the server holds an order's answer
        "ALPACA_REQUEST_TIMEOUT_S": "30" if mode == "live" else "2",
    }
    yield from serve(monkeypatch, price=Decimal(price), mode=mode, env=env)


@pytest.fixture
def paper_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[AlpacaTestServer]:
    """Paper mode, market price 100: every buy (limits near the signals' prices, 186 to 578) fills at once."""
    yield from _serve(monkeypatch, 100, "paper")


@pytest.fixture
def live_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[AlpacaTestServer]:
    """Live mode (both switches on), market price 1000: no buy limit is marketable, every order stays open."""
    yield from _serve(monkeypatch, 1000, "live")


def _executions(dsn: str) -> dict[str, tuple[str, str | None]]:
    """``client_order_id -> (status, raw_order.retryable)`` of every stored order."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT client_order_id, status, raw_order->>'retryable' FROM executions"
        ).fetchall()
    return {str(r[0]): (str(r[1]), r[2]) for r in rows}


def _firewall_rejections(dsn: str, field: str = "control_revision") -> list[tuple[str, str]]:
    """``(reasons, the firewall verdict's input field)`` of every order the firewall rejected."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT reasons, gate_trace -> -1 -> 'inputs' ->> %s FROM rejections WHERE stage = 'firewall'",
            (field,),
        ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def _refused_intents(dsn: str) -> list[str]:
    """The earlier order named by every ``duplicate_intent`` refusal."""
    return [
        sent
        for reasons, sent in _firewall_rejections(dsn, "sent_client_order_id")
        if reasons == "duplicate_intent"
    ]


def _torghut_control(dsn: str, *args: str) -> None:
    """Run ``torghut control ...`` as an operator does: the console script with TORGHUT_DATABASE_URL."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("torghut")), "control", *args],
        env={"TORGHUT_DATABASE_URL": dsn, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _live_config(dsn: str, signals: Path) -> ServiceConfig:
    return service_config(
        {"kind": "file", "path": str(signals)}, dsn, adapter={"kind": "alpaca"}, trading=LIVE_TRADING
    )


def _open_order_ids(server: AlpacaTestServer) -> set[str]:
    return {o["id"] for o in server.stored_orders() if o["status"] == "new"}


def test_orders_go_to_alpaca_and_a_retryable_failure_is_a_report_not_a_crash(
    dsn: str, clean_signals: Path, paper_server: AlpacaTestServer
) -> None:
    server = paper_server
    # The first order POST answers 503 without placing anything: outcome unknown, retryable.
    server.brokerage.push_faults([Fault(status=503, body="unavailable", method="POST", path="/v2/orders")])
    config = service_config({"kind": "file", "path": str(clean_signals)}, dsn, adapter={"kind": "alpaca"})

    result = run_service(config, once=True)

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT client_order_id, status, execution_actual_adapter, raw_order->>'retryable' FROM executions"
        ).fetchall()
    pending = [r for r in rows if r[1] == RETRY_PENDING]
    placed = [r for r in rows if r[1] != RETRY_PENDING]
    assert len(pending) == 1
    assert pending[0][3] == "true"
    assert placed, "no order reached the Alpaca server after the failure"
    assert {r[2] for r in rows} == {"alpaca"}
    assert result.counts["orders"] == len(rows)
    # A later submission of the same decision finds nothing placed under the id, so sending it is safe;
    # every placed order is at the server under its client order id.
    orders = server.brokerage.orders
    assert str(pending[0][0]) not in {o["client_order_id"] for o in orders.values()}
    assert {str(r[0]) for r in placed} <= {o["client_order_id"] for o in orders.values()}


@pytest.mark.parametrize(
    ("faults", "after_restart"),
    [
        pytest.param(
            # The look-up that precedes the POST answers 503: nothing was sent.
            [Fault(status=503, body="unavailable", method="GET", path=BY_CLIENT_ID)],
            ["lookup", "post", "placed"],
            id="lookup_failed_before_any_post",
        ),
        pytest.param(
            # The POST is accepted (the order fills) but answered 503, and the look-up after it fails
            # too: the order is at the broker while PostgreSQL holds retry_pending.
            [
                Fault(action="delay", method="GET", path=BY_CLIENT_ID),  # the look-up before: answered
                Fault(status=503, body="unavailable", accept=True, method="POST", path="/v2/orders"),
                Fault(status=503, body="unavailable", method="GET", path=BY_CLIENT_ID),
            ],
            ["lookup"],
            id="placed_but_unanswered",
        ),
    ],
)
def test_a_retry_pending_order_goes_to_the_broker_again_on_the_next_run_looked_up_before_any_post(
    dsn: str,
    clean_signals: Path,
    paper_server: AlpacaTestServer,
    monkeypatch: pytest.MonkeyPatch,
    faults: list[Fault],
    after_restart: list[str],
) -> None:
    server = paper_server
    log = ServerLog(server.brokerage, monkeypatch)
    server.inject(*faults)
    # The stage's own ledger: the second run re-makes the decision byte for byte, under the same id.
    # (Against the broker's account it may size it anew; test_decisions_remade_... covers that.)
    adapter = {"kind": "alpaca", "account_refresh_s": None}
    config = service_config({"kind": "file", "path": str(clean_signals)}, dsn, adapter=adapter)

    run_service(config, once=True)

    assert server.brokerage.faults == [], "a scripted fault was not used"
    pending = {cid: row for cid, row in _executions(dsn).items() if row[0] == RETRY_PENDING}
    assert len(pending) == 1
    ((cid, row),) = pending.items()
    assert row == (RETRY_PENDING, "true")
    log.mark("restart")

    run_service(config, once=True)

    # The second run sent the order to the adapter again, which looked it up by client order id first.
    assert [kind for kind, subject in log.since("restart") if subject == cid] == after_restart
    assert server.received(cid) == 1  # one POST with this id at the server over both runs
    assert [o["status"] for o in server.stored_orders() if o["client_order_id"] == cid] == ["filled"]
    assert _executions(dsn)[cid] == ("filled", None)  # the broker's order replaced the pending report


def test_kill_switch_flipped_on_a_running_live_service_cancels_every_open_order_once(
    dsn: str, clean_signals: Path, live_server: AlpacaTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = live_server
    log = ServerLog(server.brokerage, monkeypatch)
    open_at_flip: set[str] = set()

    def flip_after_the_third_order(placed: int) -> None:
        # Still inside the third order's POST: the service waits for its answer while the operator acts.
        if placed == 3:
            open_at_flip.update(_open_order_ids(server))
            _torghut_control(dsn, "kill-switch", "on", "--reason", "incident 42", "--by", "tests")
            log.mark("flipped")

    log.after_place = flip_after_the_third_order

    run_service(_live_config(dsn, clean_signals), once=True)

    assert len(open_at_flip) == 3, "the orders placed before the flip are not all open at the server"
    after = log.since("flipped")
    # At the service's next read of the control: one DELETE /v2/orders, every open order cancelled once,
    # and not again at the later reads that still see the kill switch engaged.
    assert log.of("cancel_all", after) == [""]
    assert Counter(log.of("cancel")) == Counter(dict.fromkeys(open_at_flip, 1))
    assert log.of("cancel") == log.of("cancel", after)
    assert {o["status"] for o in server.stored_orders()} == {"canceled"}
    # Nothing reached the server after the flip, though the service went on deciding: the firewall
    # rejected those orders with the kill switch of the row the CLI wrote.
    assert log.of("post", after) == []
    assert sum(server.brokerage.control_orders()["received"].values()) == 3
    rejected = _firewall_rejections(dsn)
    assert rejected, "no order reached the firewall after the flip"
    assert set(rejected) == {("kill_switch_enabled", "*@1")}
    assert set(_executions(dsn)) == {o["client_order_id"] for o in server.stored_orders()}


def test_kill_switch_engaged_while_the_service_is_down_cancels_at_start_and_a_failed_cancel_is_retried(
    dsn: str, clean_signals: Path, live_server: AlpacaTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = live_server
    log = ServerLog(server.brokerage, monkeypatch)
    config = _live_config(dsn, clean_signals)
    run_service(config, once=True)  # kill switch released: the orders are placed and stay open
    left_open = _open_order_ids(server)
    assert left_open, "the first run left no open order at the server"
    assert log.of("cancel_all") == []

    _torghut_control(dsn, "kill-switch", "on", "--reason", "overnight incident", "--by", "tests")
    # The first DELETE /v2/orders answers a retryable 500 and cancels nothing; the next read retries it.
    failure = {"code": 50010000, "message": "internal error"}
    server.inject(Fault(status=500, body=failure, method="DELETE", path="/v2/orders"))
    errors = METRICS.broker_error("alpaca_order_rejected code=50010000")
    errors_before = errors._value.get()
    log.mark("restart")

    run_service(config, once=True)

    assert server.brokerage.faults == [], "the cancel-all was never attempted"
    assert errors._value.get() == errors_before + 1
    after = log.since("restart")
    assert log.of("cancel_all", after) == [""]  # the retry: the failed attempt reached no order
    assert Counter(log.of("cancel", after)) == Counter(dict.fromkeys(left_open, 1))
    assert _open_order_ids(server) == set()
    assert log.of("post", after) == []
    assert set(_firewall_rejections(dsn)) == {("kill_switch_enabled", "*@1")}


def _claims(dsn: str) -> dict[str, str]:
    """``intent_key -> client_order_id`` of every claimed intent."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT intent_key, client_order_id FROM order_intents").fetchall()
    return {str(k): str(c) for k, c in rows}


def test_decisions_remade_against_the_brokers_changed_account_send_no_intent_twice(
    dsn: str, clean_signals: Path, paper_server: AlpacaTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = paper_server
    log = ServerLog(server.brokerage, monkeypatch)
    # Symbol capacity: 0.5% of the broker's equity (500 of 100,000), which clips most intents.
    allocation = {"enabled": True, "max_symbol_pct_equity": "0.005"}
    config = service_config(
        {"kind": "file", "path": str(clean_signals)}, dsn, adapter={"kind": "alpaca"}, allocation=allocation
    )
    first = run_service(config, once=True)
    posted = log.of("post")
    claims = _claims(dsn)
    assert posted and len(claims) == len(posted) == len(set(posted))
    assert set(claims.values()) == set(posted)
    with psycopg.connect(dsn) as conn:
        snapshots = conn.execute("SELECT equity, positions FROM position_snapshots").fetchall()
    assert snapshots, "the broker's account was never read into the stage"
    assert first.counts["orders"] == len(posted)
    log.mark("restart")

    # The whole input again (a restart before any cursor): every decision is re-made against the broker's
    # account, which now holds the first run's fills and 40,000 less cash (a withdrawal), so the capacity
    # shrinks and clipped sizes, and with them client order ids, change.
    server.brokerage.cash -= Decimal(40_000)
    run_service(config, once=True)

    # No intent of the first run reached the broker again; what the second run sent are intents the
    # first run never sent (a sell of a position the broker now holds, say), each under a new claim.
    again = log.of("post", log.since("restart"))
    after = _claims(dsn)
    assert {k: after[k] for k in claims} == claims
    assert sorted(again) == sorted(after[k] for k in set(after) - set(claims))
    assert len(set(posted) | set(again)) == len(posted) + len(again)
    refused = _refused_intents(dsn)
    assert refused, "no decision came out differently against the broker's account"
    assert set(refused) <= set(posted)
    assert sum(server.brokerage.control_orders()["received"].values()) == len(posted) + len(again)


def test_legacy_decisions_resized_against_the_brokers_changed_equity_send_no_intent_twice(
    dsn: str, clean_signals: Path, paper_server: AlpacaTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = paper_server
    log = ServerLog(server.brokerage, monkeypatch)
    # torghut's legacy rule for every strategy. Sizing takes the least of each strategy's notional cap and
    # its share of equity (intraday_tsmom: 1,000 or 8%, bollinger-reversion: 500 or 5%, ...): against the
    # starting 100,000 the caps bind; against the broker's 10,000 the shares of equity do.
    server.brokerage.cash = Decimal(10_000)
    trading = {"trading_strategy_runtime_mode": "legacy"}
    config = service_config(
        {"kind": "file", "path": str(clean_signals)}, dsn, adapter={"kind": "alpaca"}, trading=trading
    )
    run_service(config, once=True)
    posted = log.of("post")
    claims = _claims(dsn)
    assert posted and set(claims.values()) == set(posted)
    assert _resized(dsn), "no legacy decision was sized against the broker's equity"
    log.mark("restart")

    # A deposit: the re-made decisions are sized by the caps again, so they get new hashes (client order
    # ids), but they carry out the same planned intents.
    server.brokerage.cash += Decimal(200_000)
    run_service(config, once=True)

    again = log.of("post", log.since("restart"))
    after = _claims(dsn)
    assert {k: after[k] for k in claims} == claims
    assert not set(again) & set(posted)
    refused = _refused_intents(dsn)
    assert refused, "no re-made decision came out differently"
    assert set(refused) <= set(posted)
    assert sum(server.brokerage.control_orders()["received"].values()) == len(posted) + len(again)


def _resized(dsn: str) -> list[tuple[str, str]]:
    """Every decision sized against the broker's equity: its hash and that equity."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT decision_hash, decision_json -> 'provenance' ->> 'sizing_equity' FROM trade_decisions "
            "WHERE decision_json -> 'provenance' ? 'sizing_equity'"
        ).fetchall()
    return [(str(h), str(e)) for h, e in rows]


def test_without_the_broker_account_the_stage_decides_against_its_own_ledger(
    dsn: str, clean_signals: Path, paper_server: AlpacaTestServer
) -> None:
    config = service_config(
        {"kind": "file", "path": str(clean_signals)},
        dsn,
        adapter={"kind": "alpaca", "account_refresh_s": None},
    )
    run_service(config, once=True)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM position_snapshots").fetchone() == (0,)
    assert _executions(dsn), "no order reached the broker"

"""The broker account feed: the account stage decides against the broker's account in live mode.

The broker is the local Alpaca-protocol server, read through alpaca-py by the real adapter; orders go to a
dry-run adapter, so the broker's account changes only when the test places orders there itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.connectors.alpaca.support import serve
from tests.operators.test_account_frontier import T0, symbol_intent
from tests.operators.test_legacy import fv
from torghut.connectors.alpaca import AlpacaAdapter, AlpacaConfig
from torghut.connectors.alpaca_server import AlpacaTestServer, Fault
from torghut.connectors.broker import DryRunAdapter
from torghut.contracts.account import AccountSnapshot
from torghut.contracts.decision import TradeDecision
from torghut.contracts.execution import ExecutionReport
from torghut.contracts.portfolio import OrderIntent, PortfolioIntent
from torghut.dataflow.account_feed import BrokerAccountFeed
from torghut.dataflow.config import EngineConfig
from torghut.metrics import METRICS
from torghut.operators.account import (
    ACCOUNT_SNAPSHOTS,
    DECISIONS,
    ORDERS,
    PORTFOLIO_INTENTS,
    AccountFeed,
    AccountPipeline,
)
from torghut.operators.legacy import legacy_decisions
from torghut.strategies.catalog import load_catalog
from torghut.strategies.registry import default_registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[AlpacaTestServer]:
    """Cash 20,000, then a filled buy of 100 AAPL at 100: equity 20,000, cash 10,000."""
    for alpaca in serve(monkeypatch, cash=Decimal(20_000)):
        _buy(alpaca, "AAPL", 100, "held-1")
        yield alpaca


def _buy(server: AlpacaTestServer, symbol: str, qty: int, cid: str) -> None:
    order = {"symbol": symbol, "qty": str(qty), "side": "buy", "type": "market", "time_in_force": "day"}
    server.brokerage.place({**order, "client_order_id": cid})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _pipeline(feed: AccountFeed | None) -> AccountPipeline:
    engine = EngineConfig()  # starting_equity 100,000: what the stage's own ledger would decide against
    catalog = load_catalog(ROOT / "benchmarks" / "catalog.yaml", default_registry())
    return AccountPipeline(
        definitions=catalog.definitions,
        trading=engine.trading,
        allocation=engine.allocation,
        account=engine.account.model_copy(update={"release_lateness_s": 0}),
        config_hash="h",
        adapter=DryRunAdapter("paper", T0),
        account_feed=feed,
    )


def _of(outputs: list[tuple[str, Any]], stream: str) -> list[Any]:
    return [record for name, record in outputs if name == stream]


def test_the_stage_decides_against_the_brokers_equity_cash_and_positions(server: AlpacaTestServer) -> None:
    clock = Clock()
    feed = BrokerAccountFeed(AlpacaAdapter(AlpacaConfig.from_env()), 15.0, clock=clock)
    pipeline = _pipeline(feed)
    state, outputs = pipeline.on_items(
        pipeline.initial_state(), [symbol_intent("AAPL", 1, 1, "buy", 1000, 100)]
    )

    (snapshot,) = _of(outputs, ACCOUNT_SNAPSHOTS)
    assert isinstance(snapshot, AccountSnapshot)
    assert (snapshot.equity, snapshot.cash, snapshot.buying_power) == (
        Decimal(20_000),
        Decimal(10_000),
        Decimal(10_000),
    )
    assert dict(snapshot.positions) == {"AAPL": Decimal(100)}
    assert dict(snapshot.avg_prices) == {"AAPL": Decimal(100)} and dict(snapshot.marks) == {
        "AAPL": Decimal(100)
    }
    assert snapshot.open_orders == 0
    (portfolio,) = _of(outputs, PORTFOLIO_INTENTS)
    assert isinstance(portfolio, PortfolioIntent)
    assert portfolio.current_qty == Decimal(100)  # the broker's position, which the ledger never opened
    assert state.view.equity == Decimal(20_000) and state.view.cash == Decimal(10_000)
    assert state.view.avg_prices["AAPL"] == Decimal(100)

    # The same intent against the stage's own ledger: flat, 100,000 of equity.
    alone, outputs = _pipeline(None).on_items(
        pipeline.initial_state(), [symbol_intent("AAPL", 1, 1, "buy", 1000, 100)]
    )
    assert _of(outputs, ACCOUNT_SNAPSHOTS) == []
    assert _of(outputs, PORTFOLIO_INTENTS)[0].current_qty == 0
    assert alone.view.equity == Decimal(100_000)


def test_the_broker_is_read_at_most_once_per_interval_and_its_changes_reach_the_next_decision(
    server: AlpacaTestServer,
) -> None:
    clock = Clock()
    listed: list[Sequence[ExecutionReport]] = []  # what the order status refresh would be given
    adapter = AlpacaAdapter(AlpacaConfig.from_env())
    feed = BrokerAccountFeed(adapter, 15.0, clock=clock, on_open_orders=listed.append)
    pipeline = _pipeline(feed)
    state, first = pipeline.on_items(
        pipeline.initial_state(), [symbol_intent("AAPL", 1, 1, "buy", 1000, 100)]
    )
    _buy(server, "AAPL", 50, "held-2")  # the position changes at the broker
    for n in range(3):  # three open orders at the broker
        server.brokerage.place(
            {"symbol": "MSFT", "qty": "1", "side": "buy", "type": "limit", "limit_price": "1",
             "time_in_force": "day", "client_order_id": f"open-{n}"}
        )  # fmt: skip

    clock.now = 14.9
    state, early = pipeline.on_items(state, [symbol_intent("AAPL", 2, 2, "buy", 1000, 100)])
    counted_before = state.risk.open_orders  # the dry-run orders the stage sent so far
    sent_before = len(_of(first + early, ORDERS))
    clock.now = 15.0
    state, due = pipeline.on_items(state, [symbol_intent("AAPL", 3, 3, "buy", 1000, 100)])

    assert len(_of(first, ACCOUNT_SNAPSHOTS)) == 1
    assert _of(early, ACCOUNT_SNAPSHOTS) == []
    assert _of(early, PORTFOLIO_INTENTS)[0].current_qty == Decimal(100)  # the last snapshot's
    (snapshot,) = _of(due, ACCOUNT_SNAPSHOTS)
    assert snapshot.positions["AAPL"] == Decimal(150) and snapshot.open_orders == 3
    assert _of(due, PORTFOLIO_INTENTS)[0].current_qty == Decimal(150)
    # The broker's open order count replaced the stage's, and the release's own orders count after it.
    assert counted_before == sent_before
    assert state.risk.open_orders == 3 + len(_of(due, ORDERS))
    assert [sorted(r.client_order_id for r in orders) for orders in listed] == [
        [],
        ["open-0", "open-1", "open-2"],
    ]


def test_a_failed_read_keeps_the_last_snapshot_is_counted_and_is_retried_after_a_second(
    server: AlpacaTestServer,
) -> None:
    clock = Clock()
    feed = BrokerAccountFeed(AlpacaAdapter(AlpacaConfig.from_env()), 15.0, clock=clock)
    pipeline = _pipeline(feed)
    state, _ = pipeline.on_items(pipeline.initial_state(), [symbol_intent("AAPL", 1, 1, "buy", 1000, 100)])
    before = _broker_errors()
    server.inject(*[Fault(status=503, body="unavailable", method="GET", path="/v2/account")] * 4)

    clock.now = 20.0
    state, failed = pipeline.on_items(state, [symbol_intent("AAPL", 2, 2, "buy", 1000, 100)])
    server.brokerage.faults.clear()
    clock.now = 20.5
    state, waiting = pipeline.on_items(state, [symbol_intent("AAPL", 3, 3, "buy", 1000, 100)])
    clock.now = 21.0
    state, retried = pipeline.on_items(state, [symbol_intent("AAPL", 4, 4, "buy", 1000, 100)])

    assert _of(failed, ACCOUNT_SNAPSHOTS) == [] and _of(waiting, ACCOUNT_SNAPSHOTS) == []
    assert _of(failed, PORTFOLIO_INTENTS)[0].current_qty == Decimal(100)  # decided on the last snapshot
    assert _broker_errors() > before
    assert len(_of(retried, ACCOUNT_SNAPSHOTS)) == 1


def _broker_errors() -> float:
    total = 0.0
    for metric in METRICS.registry.collect():
        if metric.name == "torghut_broker_errors":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


def test_snapshot_marks_count_broker_positions_until_the_stage_marks_them(server: AlpacaTestServer) -> None:
    clock = Clock()
    feed = BrokerAccountFeed(AlpacaAdapter(AlpacaConfig.from_env()), 15.0, clock=clock)
    pipeline = _pipeline(feed)
    # An MSFT intent: AAPL (held at the broker) is not marked by any signal, the broker's price marks it.
    state, _ = pipeline.on_items(pipeline.initial_state(), [symbol_intent("MSFT", 1, 1, "buy", 1000, 50)])
    assert state.view.marks["AAPL"] == Decimal(100)
    assert state.view.marks["MSFT"] == Decimal(50)
    server.brokerage.set_prices({"AAPL": "120"})
    clock.now = 15.0
    state, _ = pipeline.on_items(state, [symbol_intent("MSFT", 2, 2, "buy", 1000, 50)])
    # A mark the stage holds is not replaced by the broker's price: marks are in event time.
    assert state.view.marks["AAPL"] == Decimal(100)
    assert state.view.equity == Decimal(22_000)


def test_legacy_decisions_are_sized_against_the_brokers_equity_under_their_planned_intent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = EngineConfig()
    definitions = load_catalog(ROOT / "benchmarks" / "catalog.yaml", default_registry()).definitions
    # Every 1Sec strategy takes the legacy rule: legacy-macd-rsi (500 notional, 5% of equity) and
    # vwap-deviation (400 notional, no equity share), sized upstream against the starting 100,000.
    planned = legacy_decisions(fv(price="100"), definitions, engine.account.starting_equity, engine.trading)
    by_strategy = {d.strategy_id: d for d in planned}
    assert (by_strategy["legacy-macd-rsi"].qty, by_strategy["vwap-deviation"].qty) == (5, 4)

    for _ in serve(monkeypatch, cash=Decimal(4000)):  # the broker's equity: 4,000, so 5% is 200
        feed = BrokerAccountFeed(AlpacaAdapter(AlpacaConfig.from_env()), 15.0, clock=Clock())
        _, outputs = _pipeline(feed).on_items(_pipeline(None).initial_state(), list(planned))
    _, alone = _pipeline(None).on_items(_pipeline(None).initial_state(), list(planned))

    decided: dict[str, TradeDecision] = {d.strategy_id: d for d in _of(outputs, DECISIONS)}
    orders: dict[str, OrderIntent] = {o.client_order_id: o for o in _of(outputs, ORDERS)}
    resized = decided["legacy-macd-rsi"]
    assert resized.qty == 2 and Decimal(resized.params["sizing"]["notional_budget"]) == 200
    assert resized.provenance["sizing_equity"] == "4000"
    assert resized.decision_hash != by_strategy["legacy-macd-rsi"].decision_hash
    kept = decided["vwap-deviation"]
    assert kept.decision_hash == by_strategy["vwap-deviation"].decision_hash
    for strategy_id, decision in decided.items():
        order = orders[decision.decision_hash]  # the order's id is the decision's (re-sized) hash
        assert order.qty == decision.qty
        assert order.intent_key == by_strategy[strategy_id].decision_hash  # the intent as planned
    # Without the broker (replays), the decisions go out as planned.
    assert sorted(o.client_order_id for o in _of(alone, ORDERS)) == sorted(d.decision_hash for d in planned)

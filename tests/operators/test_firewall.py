"""The order firewall: kill switch, live switches, missing verdicts, duplicates, and the router."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from torghut.connectors.broker import DryRunAdapter, ExecutionAdapter, ExecutionRouter
from torghut.connectors.paper import PaperAdapter, PaperBook, PaperCosts
from torghut.contracts.decision import GateVerdict, passed, rejected
from torghut.contracts.portfolio import OrderIntent
from torghut.operators.firewall import OrderFirewall, firewall_verdict
from torghut.operators.trading_config import RISK_GATE_NAMES, TradingConfig

TS = datetime(2026, 2, 19, 14, 30, 5, tzinfo=UTC)
FULL_TRACE: tuple[GateVerdict, ...] = tuple(passed(name) for name in RISK_GATE_NAMES)


def order(coid: str = "a" * 64, offset_s: int = 0) -> OrderIntent:
    return OrderIntent(
        account="paper",
        symbol="NVDA",
        side="buy",
        qty=Decimal(2),
        order_type="limit",
        time_in_force="day",
        limit_price=Decimal("100.00"),
        client_order_id=coid,
        event_ts=TS + timedelta(seconds=offset_s),
    )


class CountingAdapter:
    """An adapter that counts submissions (what the firewall must never let through)."""

    def __init__(self) -> None:
        self.inner = DryRunAdapter("paper", TS)
        self.submits = 0

    @property
    def name(self) -> str:
        return "counting"

    def submit(self, order: OrderIntent):  # type: ignore[no-untyped-def]
        self.submits += 1
        return self.inner.submit(order)

    def get_by_client_order_id(self, client_order_id: str):  # type: ignore[no-untyped-def]
        return self.inner.get_by_client_order_id(client_order_id)

    def account_snapshot(self):  # type: ignore[no-untyped-def]
        return self.inner.account_snapshot()


def test_default_paper_config_sends_once() -> None:
    adapter = CountingAdapter()
    firewall = OrderFirewall(TradingConfig(), adapter)
    result = firewall.submit(order(), FULL_TRACE)
    assert result.verdict.outcome == "pass"
    assert result.report is not None
    assert result.rejection is None
    assert result.trace[-1] is result.verdict
    assert adapter.submits == 1
    assert firewall.snapshot() == ("a" * 64,)


def test_kill_switch_means_zero_submits_and_a_rejection_for_every_order() -> None:
    adapter = CountingAdapter()
    firewall = OrderFirewall(TradingConfig(trading_kill_switch_enabled=True), adapter)
    results = [firewall.submit(order(coid=f"{i:064d}", offset_s=i), FULL_TRACE) for i in range(20)]
    assert adapter.submits == 0
    assert firewall.snapshot() == ()
    for result in results:
        assert result.report is None
        assert result.rejection is not None
        assert result.rejection.stage == "firewall"
        assert result.rejection.reasons == ("kill_switch_enabled",)
        assert result.rejection.decision_hash == result.verdict.inputs["client_order_id"]


def test_kill_switch_default_is_engaged_in_live_mode_and_wins_over_live_switches() -> None:
    live = TradingConfig(trading_mode="live", trading_live_enabled=True)
    assert firewall_verdict(order(), FULL_TRACE, config=live, sent_ids=set()).reason == "kill_switch_enabled"
    released = TradingConfig(
        trading_mode="live", trading_live_enabled=True, trading_kill_switch_enabled=False
    )
    assert firewall_verdict(order(), FULL_TRACE, config=released, sent_ids=set()).outcome == "pass"


def test_live_mode_requires_live_enabled() -> None:
    cfg = TradingConfig(trading_mode="live", trading_kill_switch_enabled=False)
    adapter = CountingAdapter()
    result = OrderFirewall(cfg, adapter).submit(order(), FULL_TRACE)
    assert result.verdict.reason == "live_trading_disabled"
    assert adapter.submits == 0


def test_duplicate_client_order_ids_are_suppressed_including_after_restore() -> None:
    adapter = CountingAdapter()
    firewall = OrderFirewall(TradingConfig(), adapter)
    firewall.submit(order(), FULL_TRACE)
    again = firewall.submit(order(), FULL_TRACE)
    assert again.verdict.reason == "duplicate_client_order_id"
    assert again.rejection is not None
    assert adapter.submits == 1
    restored = OrderFirewall(TradingConfig(), adapter, sent_ids=firewall.snapshot())
    assert restored.submit(order(), FULL_TRACE).verdict.reason == "duplicate_client_order_id"
    assert adapter.submits == 1


def test_every_configured_gate_must_have_a_verdict() -> None:
    adapter = CountingAdapter()
    firewall = OrderFirewall(TradingConfig(), adapter)
    without_collar = FULL_TRACE[:-1]
    result = firewall.submit(order(), without_collar)
    assert result.verdict.reason == "missing_upstream_verdict:price_collar"
    assert firewall.submit(order(), ()).verdict.reason == f"missing_upstream_verdict:{RISK_GATE_NAMES[0]}"
    # a shorter configured chain needs only its own gates
    short = OrderFirewall(TradingConfig(trading_risk_gates=("shorts",)), adapter)
    assert short.submit(order(), (passed("shorts"),)).verdict.outcome == "pass"
    assert adapter.submits == 1


def test_an_upstream_rejection_is_never_sent() -> None:
    adapter = CountingAdapter()
    trace = (*FULL_TRACE[:-1], rejected("price_collar", "price_collar_breached"))
    result = OrderFirewall(TradingConfig(), adapter).submit(order(), trace)
    assert result.verdict.reason == "upstream_rejected:price_collar"
    assert result.rejection is not None
    assert result.rejection.reasons == ("price_collar_breached", "upstream_rejected:price_collar")
    assert adapter.submits == 0


def test_an_order_without_client_order_id_is_a_programmer_error() -> None:
    with pytest.raises(ValueError, match="no client_order_id"):
        OrderFirewall(TradingConfig(), CountingAdapter()).submit(order(coid=""), FULL_TRACE)


def test_router_selects_by_config_and_fails_fast() -> None:
    paper = PaperAdapter(PaperBook.open("paper", Decimal(1000), TS), PaperCosts())
    dry = DryRunAdapter("paper", TS)
    adapters: dict[str, ExecutionAdapter] = {"paper": paper, "dry_run": dry}
    assert ExecutionRouter(TradingConfig(), adapters).adapter is paper
    router = ExecutionRouter(TradingConfig(trading_execution_adapter="dry_run"), adapters)
    assert router.name == "dry_run"
    report = router.submit(order())
    assert report.status == "dry_run"
    assert report.filled_qty == 0
    assert router.get_by_client_order_id(order().client_order_id) is report
    assert router.account_snapshot().equity == 0
    with pytest.raises(ValueError, match="TRADING_EXECUTION_ADAPTER='alpaca'"):
        ExecutionRouter(TradingConfig(trading_execution_adapter="alpaca"), adapters)


def test_firewall_through_router_to_paper_fills_once() -> None:
    paper = PaperAdapter(PaperBook.open("paper", Decimal(1000), TS), PaperCosts())
    firewall = OrderFirewall(TradingConfig(), ExecutionRouter(TradingConfig(), {"paper": paper}))
    firewall.submit(order(), FULL_TRACE)
    firewall.submit(order(), FULL_TRACE)
    assert len(paper.fills) == 1

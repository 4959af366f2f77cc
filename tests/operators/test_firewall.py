"""The order firewall: kill switch, runtime control, live switches, missing verdicts, duplicates, router."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from torghut.connectors.broker import DryRunAdapter, ExecutionAdapter, ExecutionRouter, IntentAlreadySent
from torghut.connectors.paper import PaperAdapter, PaperBook, PaperCosts
from torghut.contracts.decision import GateVerdict, passed, rejected
from torghut.contracts.portfolio import OrderIntent
from torghut.operators.control import STATIC_CONTROL, ControlState, effective_kill_switch
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


class RefusingAdapter(CountingAdapter):
    """An adapter whose intent record already holds every intent under order ``sent``."""

    def submit(self, order: OrderIntent):  # type: ignore[no-untyped-def]
        self.submits += 1
        raise IntentAlreadySent(order.intent_key, "e" * 64)


def test_an_intent_already_sent_becomes_a_duplicate_intent_rejection_naming_the_earlier_order() -> None:
    adapter = RefusingAdapter()
    firewall = OrderFirewall(TradingConfig(), adapter)
    result = firewall.submit(dataclasses.replace(order("b" * 64), intent_key="k1"), FULL_TRACE)

    assert result.report is None
    assert result.verdict.outcome == "reject" and result.verdict.reason == "duplicate_intent"
    assert result.verdict.inputs["intent_key"] == "k1"
    assert result.verdict.inputs["sent_client_order_id"] == "e" * 64
    assert result.verdict.inputs["client_order_id"] == "b" * 64
    assert result.rejection is not None
    assert result.rejection.stage == "firewall" and result.rejection.reasons == ("duplicate_intent",)
    assert result.trace == (*FULL_TRACE, result.verdict)


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


# The runtime control (torghut.operators.control): passed in as data, it can only make trading stricter.

ENGAGED = ControlState(kill_switch=True, source="postgres", revision="*@2", reason="*: incident 7")
DISABLED = ControlState(trading_enabled=False, source="postgres", revision="live@1")
UNREADABLE = ControlState(available=False, source="postgres", reason="OperationalError: connection refused")


def test_static_control_gives_the_verdict_of_no_control_at_all() -> None:
    for config in (TradingConfig(), TradingConfig(trading_kill_switch_enabled=True)):
        without = firewall_verdict(order(), FULL_TRACE, config=config, sent_ids=set())
        with_static = firewall_verdict(
            order(), FULL_TRACE, config=config, sent_ids=set(), control=STATIC_CONTROL
        )
        assert with_static == without
        assert not any(key.startswith("control_") for key in with_static.inputs)


def test_a_control_kill_switch_blocks_every_order_and_records_the_control() -> None:
    adapter = CountingAdapter()
    firewall = OrderFirewall(TradingConfig(), adapter)
    results = [firewall.submit(order(coid=f"{i:064d}"), FULL_TRACE, ENGAGED) for i in range(5)]
    assert adapter.submits == 0
    assert firewall.snapshot() == ()
    for result in results:
        assert result.rejection is not None
        assert result.rejection.reasons == ("kill_switch_enabled",)
        inputs = result.verdict.inputs
        assert inputs["kill_switch"] is True
        assert (inputs["control_kill_switch"], inputs["control_revision"]) == (True, "*@2")
        assert inputs["control_reason"] == "*: incident 7"
    # released again: the next order goes through
    assert firewall.submit(order(coid="f" * 64), FULL_TRACE, STATIC_CONTROL).report is not None
    assert adapter.submits == 1


def test_a_released_control_cannot_release_the_static_kill_switch() -> None:
    released = ControlState(kill_switch=False, source="postgres", revision="*@3")
    verdict = firewall_verdict(
        order(),
        FULL_TRACE,
        config=TradingConfig(trading_kill_switch_enabled=True),
        sent_ids=set(),
        control=released,
    )
    assert verdict.reason == "kill_switch_enabled"


def test_trading_disabled_by_the_control_rejects_with_torghuts_reason() -> None:
    adapter = CountingAdapter()
    result = OrderFirewall(TradingConfig(), adapter).submit(order(), FULL_TRACE, DISABLED)
    assert result.verdict.reason == "trading_disabled"
    assert result.rejection is not None and result.rejection.reasons == ("trading_disabled",)
    assert adapter.submits == 0


def test_an_unreadable_control_fails_closed() -> None:
    adapter = CountingAdapter()
    result = OrderFirewall(TradingConfig(), adapter).submit(order(), FULL_TRACE, UNREADABLE)
    assert result.verdict.reason == "trading_control_unavailable"
    assert result.verdict.inputs["control_available"] is False
    assert result.verdict.inputs["control_reason"] == "OperationalError: connection refused"
    assert adapter.submits == 0
    # the kill switch still names itself when both apply
    engaged = TradingConfig(trading_kill_switch_enabled=True)
    assert firewall_verdict(
        order(), FULL_TRACE, config=engaged, sent_ids=set(), control=UNREADABLE
    ).reason == ("kill_switch_enabled")


def test_the_control_is_checked_before_live_switches_and_upstream_verdicts() -> None:
    live_blocked = TradingConfig(trading_mode="live", trading_kill_switch_enabled=False)
    assert firewall_verdict(order(), (), config=live_blocked, sent_ids=set(), control=DISABLED).reason == (
        "trading_disabled"
    )
    assert firewall_verdict(
        order(), (), config=TradingConfig(), sent_ids=set(), control=UNREADABLE
    ).reason == ("trading_control_unavailable")


@pytest.mark.parametrize(
    ("static", "control", "engaged"),
    [
        (False, STATIC_CONTROL, False),
        (True, STATIC_CONTROL, True),
        (False, ENGAGED, True),
        (False, DISABLED, False),
        (False, UNREADABLE, True),
    ],
)
def test_effective_kill_switch(static: bool, control: ControlState, engaged: bool) -> None:
    assert effective_kill_switch(static, control) is engaged

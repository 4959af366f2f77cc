"""Risk gates one by one (with boundaries), the chain, risk-state updates, and the verdict property."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torghut.contracts.account import AccountView
from torghut.contracts.decision import GateVerdict
from torghut.contracts.frozen import FrozenMap
from torghut.contracts.portfolio import OrderIntent
from torghut.operators import risk
from torghut.operators.risk import (
    GATES,
    RiskContext,
    RiskState,
    StrategyLimits,
    record_decision,
    record_order,
    record_order_closed,
    roll_session,
    run_risk_chain,
)
from torghut.operators.trading_config import RISK_GATE_NAMES, TradingConfig

TS = datetime(2026, 2, 19, 14, 30, 5, tzinfo=UTC)
D = Decimal


def order(qty: str = "2", side: str = "buy", limit: str | None = "100", symbol: str = "NVDA") -> OrderIntent:
    return OrderIntent(
        account="paper",
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        qty=D(qty),
        order_type="limit" if limit else "market",
        time_in_force="day",
        limit_price=None if limit is None else D(limit),
        client_order_id="c" * 64,
        event_ts=TS,
    )


def ctx(
    *,
    config: TradingConfig | None = None,
    equity: str = "100000",
    buying_power: str = "100000",
    position: str | None = None,
    mark: str | None = None,
    strategy: StrategyLimits | None = None,
    allowlist: frozenset[str] = frozenset({"NVDA"}),
    reference_price: str | None = "100",
    state: RiskState | None = None,
    session_start_equity: str | None = None,
) -> RiskContext:
    account = AccountView(
        account="paper",
        equity=D(equity),
        cash=D(equity),
        buying_power=D(buying_power),
        positions=FrozenMap({"NVDA": D(position)} if position is not None else {}),
        marks=FrozenMap({"NVDA": D(mark)} if mark is not None else {}),
        session_start_equity=None if session_start_equity is None else D(session_start_equity),
    )
    return RiskContext(
        account=account,
        config=config or TradingConfig(),
        strategy=strategy,
        allowlist=allowlist,
        reference_price=None if reference_price is None else D(reference_price),
        state=state or RiskState(),
    )


def assert_pass(verdict: GateVerdict) -> None:
    assert verdict.outcome == "pass", verdict


def assert_reject(verdict: GateVerdict, reason: str) -> None:
    assert verdict.outcome == "reject", verdict
    assert verdict.reason == reason


# --- trading state, switches, strategy, symbol, price -----------------------------------------


def test_trading_state_halted_blocks_everything() -> None:
    cfg = TradingConfig(trading_state="halted")
    assert_reject(
        risk.gate_trading_state(order(side="sell"), ctx(config=cfg, position="10")), "trading_halted"
    )
    assert_pass(risk.gate_trading_state(order(), ctx()))


@pytest.mark.parametrize(
    ("side", "qty", "position", "allowed"),
    [
        ("sell", "10", "10", True),  # closes the long exactly
        ("sell", "4", "10", True),
        ("sell", "11", "10", False),  # would flip short
        ("buy", "1", "10", False),  # adds to the long
        ("buy", "3", "-3", True),  # covers the short
        ("buy", "1", None, False),  # flat: anything opens risk
    ],
)
def test_reducing_only_allows_only_pure_reductions(
    side: str, qty: str, position: str | None, allowed: bool
) -> None:
    cfg = TradingConfig(trading_state="reducing_only")
    verdict = risk.gate_trading_state(order(qty=qty, side=side), ctx(config=cfg, position=position))
    if allowed:
        assert_pass(verdict)
    else:
        assert_reject(verdict, "reducing_only")


def test_trading_disabled() -> None:
    assert_reject(
        risk.gate_trading_enabled(order(), ctx(config=TradingConfig(trading_enabled=False))),
        "trading_disabled",
    )
    assert_pass(risk.gate_trading_enabled(order(), ctx()))


def test_live_trading_needs_live_enabled() -> None:
    live = TradingConfig(trading_mode="live")
    assert_reject(risk.gate_live_trading(order(), ctx(config=live)), "live_trading_disabled")
    both = TradingConfig(trading_mode="live", trading_live_enabled=True)
    assert_pass(risk.gate_live_trading(order(), ctx(config=both)))
    assert_pass(risk.gate_live_trading(order(), ctx()))


def test_strategy_disabled() -> None:
    off = StrategyLimits("s1", enabled=False)
    assert_reject(risk.gate_strategy_enabled(order(), ctx(strategy=off)), "strategy_disabled")
    assert_pass(risk.gate_strategy_enabled(order(), ctx(strategy=StrategyLimits("s1"))))
    assert_pass(risk.gate_strategy_enabled(order(), ctx(strategy=None)))


def test_symbol_allowlist_and_empty_allowlist_rejects_all() -> None:
    assert_pass(risk.gate_symbol_allowed(order(), ctx()))
    assert_reject(risk.gate_symbol_allowed(order(symbol="TSLA"), ctx()), "symbol_not_allowed")
    assert_reject(risk.gate_symbol_allowed(order(), ctx(allowlist=frozenset())), "symbol_not_allowed")


def test_missing_price_uses_reference_then_limit() -> None:
    assert_reject(risk.gate_price_present(order(limit=None), ctx(reference_price=None)), "missing_price")
    assert_pass(risk.gate_price_present(order(limit="99"), ctx(reference_price=None)))
    assert_pass(risk.gate_price_present(order(limit=None), ctx()))
    assert_reject(risk.gate_price_present(order(limit=None), ctx(reference_price="0")), "missing_price")


# --- notional, buying power, position pct, shorts -------------------------------------------------


def test_max_notional_strict_strategy_over_global() -> None:
    cfg = TradingConfig(trading_max_notional_per_trade=D("200"))
    assert_pass(risk.gate_max_notional(order(qty="2"), ctx(config=cfg)))  # 200 == 200
    assert_reject(risk.gate_max_notional(order(qty="3"), ctx(config=cfg)), "max_notional_exceeded")
    strat = StrategyLimits("s1", max_notional_per_trade=D("1000"))
    assert_pass(risk.gate_max_notional(order(qty="3"), ctx(config=cfg, strategy=strat)))


def test_max_notional_ignores_sells_that_do_not_increase_shorts() -> None:
    cfg = TradingConfig(trading_max_notional_per_trade=D("100"))
    assert_pass(risk.gate_max_notional(order(qty="5", side="sell"), ctx(config=cfg, position="10")))
    verdict = risk.gate_max_notional(order(qty="5", side="sell"), ctx(config=cfg, position="0"))
    assert_reject(verdict, "max_notional_exceeded")


def test_buying_power_strict() -> None:
    assert_pass(risk.gate_buying_power(order(qty="2"), ctx(buying_power="200")))
    assert_reject(
        risk.gate_buying_power(order(qty="2"), ctx(buying_power="199.99")), "insufficient_buying_power"
    )
    assert_pass(risk.gate_buying_power(order(qty="2", side="sell"), ctx(buying_power="0", position="5")))


def test_max_position_pct_boundary_and_reducing_trades() -> None:
    cfg = TradingConfig(trading_max_position_pct_equity=D("0.01"), trading_risk_clip_enabled=False)
    # equity 100000 x 0.01 = 1000; 10 x 100 == 1000 passes, 11 is rejected
    assert_pass(risk.gate_max_position_pct(order(qty="10"), ctx(config=cfg)))
    assert_reject(risk.gate_max_position_pct(order(qty="11"), ctx(config=cfg)), "max_position_pct_exceeded")
    # already over the limit: a reducing sell passes, an adding buy does not
    assert_pass(risk.gate_max_position_pct(order(qty="1", side="sell"), ctx(config=cfg, position="30")))
    assert_reject(
        risk.gate_max_position_pct(order(qty="1"), ctx(config=cfg, position="30")),
        "max_position_pct_exceeded",
    )


def test_max_position_pct_uses_mark_for_position_value() -> None:
    cfg = TradingConfig(trading_max_position_pct_equity=D("0.01"), trading_risk_clip_enabled=False)
    # 5 shares marked at 120 = 600, + 5 x 100 = 1100 > 1000
    verdict = risk.gate_max_position_pct(order(qty="5"), ctx(config=cfg, position="5", mark="120"))
    assert_reject(verdict, "max_position_pct_exceeded")
    assert verdict.inputs["position_value"] == D("600")


def test_max_position_pct_clips_to_the_largest_whole_quantity() -> None:
    cfg = TradingConfig(trading_max_position_pct_equity=D("0.01"))
    verdict = risk.gate_max_position_pct(order(qty="25"), ctx(config=cfg, position="3"))
    assert verdict.outcome == "clip"
    assert verdict.reason == "max_position_pct_exceeded"
    assert verdict.clipped_qty == D(7)  # floor((1000 - 300) / 100)
    # strategy pct wins over global; less than one share of room -> reject
    strat = StrategyLimits("s1", max_position_pct_equity=D("0.0005"))
    assert_reject(
        risk.gate_max_position_pct(order(qty="2"), ctx(config=cfg, strategy=strat)),
        "max_position_pct_exceeded",
    )


def test_max_position_pct_clip_for_a_sell_crossing_into_a_short() -> None:
    cfg = TradingConfig(trading_max_position_pct_equity=D("0.01"), trading_allow_shorts=True)
    verdict = risk.gate_max_position_pct(order(qty="30", side="sell"), ctx(config=cfg, position="5"))
    assert verdict.clipped_qty == D(15)  # from +500 down to -1000


def test_shorts_gate() -> None:
    assert_reject(risk.gate_shorts(order(side="sell"), ctx()), "shorts_not_allowed")
    assert_pass(risk.gate_shorts(order(side="sell", qty="2"), ctx(position="2")))
    assert_pass(risk.gate_shorts(order(side="sell"), ctx(config=TradingConfig(trading_allow_shorts=True))))


# --- cooldown, rate, daily loss, open orders, collar ---------------------------------------------


def test_cooldown_is_event_time_inclusive_and_per_symbol() -> None:
    cfg = TradingConfig(trading_cooldown_seconds=30)
    at = lambda s: RiskState(last_decision_ts=FrozenMap({"NVDA": TS - timedelta(seconds=s)}))  # noqa: E731
    assert_reject(
        risk.gate_cooldown(order(), ctx(config=cfg, state=at(30))), "cooldown_active"
    )  # exactly at edge
    assert_pass(risk.gate_cooldown(order(), ctx(config=cfg, state=at(31))))
    assert_pass(
        risk.gate_cooldown(order(symbol="AMD"), ctx(config=cfg, state=at(1), allowlist=frozenset({"AMD"})))
    )
    assert_pass(risk.gate_cooldown(order(), ctx(state=at(1))))  # cooldown 0 = off


def test_cooldown_state_ignores_rejected_decisions() -> None:
    state = record_decision(RiskState(), "NVDA", TS, was_rejected=True)
    assert state.last_decision_ts == {}
    state = record_decision(state, "NVDA", TS, was_rejected=False)
    assert state.last_decision_ts == {"NVDA": TS}


def test_order_rate_limit_counts_the_last_minute_of_event_time() -> None:
    cfg = TradingConfig(trading_order_rate_limit_per_minute=2)
    state = RiskState()
    for seconds in (61, 60, 59):  # 61s and 60s ago fall outside the window (start exclusive)
        state = record_order(state, TS - timedelta(seconds=seconds))
    assert_pass(risk.gate_order_rate(order(), ctx(config=cfg, state=state)))
    state = record_order(state, TS - timedelta(seconds=1))
    assert_reject(risk.gate_order_rate(order(), ctx(config=cfg, state=state)), "order_rate_limited")
    assert_pass(risk.gate_order_rate(order(), ctx(state=state)))  # no limit configured


def test_record_order_prunes_and_counts_open_orders() -> None:
    state = record_order(RiskState(), TS - timedelta(minutes=5))
    state = record_order(state, TS)
    assert state.order_ts == (TS,)
    assert state.open_orders == 2
    assert record_order_closed(record_order_closed(record_order_closed(state))).open_orders == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-150, 150), max_size=15), st.integers(-30, 30))
def test_order_rate_counts_exactly_the_orders_in_the_minute_whatever_their_order(
    offsets: list[int], at: int
) -> None:
    # Orders are recorded in processing order, whose event times need not ascend.
    state = RiskState()
    for seconds in offsets:
        state = record_order(state, TS + timedelta(seconds=seconds))
    assert list(state.order_ts) == sorted(state.order_ts)
    draft = dataclasses.replace(order(), event_ts=TS + timedelta(seconds=at))
    verdict = risk.gate_order_rate(draft, ctx(state=state))
    start = draft.event_ts - risk.ORDER_RATE_WINDOW
    kept = [
        s
        for i, s in enumerate(offsets)
        if all(
            TS + timedelta(seconds=s) > TS + timedelta(seconds=later) - risk.ORDER_RATE_WINDOW
            for later in offsets[i:]
        )
    ]
    expected = sum(1 for s in kept if start < TS + timedelta(seconds=s) <= draft.event_ts)
    assert verdict.inputs["orders_last_minute"] == expected


def test_daily_loss_stop_ratio_boundary_and_reason_format() -> None:
    cfg = TradingConfig(trading_daily_loss_stop_pct_equity=D("0.01"))
    verdict = risk.gate_daily_loss(order(), ctx(config=cfg, equity="99000", session_start_equity="100000"))
    assert_reject(verdict, "daily_loss_stop:0.0100")  # a loss of exactly the stop triggers it
    assert_pass(risk.gate_daily_loss(order(), ctx(config=cfg, equity="99001", session_start_equity="100000")))
    # reducing trades still pass; the state's session equity wins over the account view's
    assert_pass(
        risk.gate_daily_loss(
            order(side="sell"), ctx(config=cfg, equity="90000", position="2", session_start_equity="100000")
        )
    )
    state = RiskState(session_start_equity=D("95000"))
    assert_pass(
        risk.gate_daily_loss(
            order(), ctx(config=cfg, equity="94500", state=state, session_start_equity="100000")
        )
    )
    assert_pass(risk.gate_daily_loss(order(), ctx(config=cfg, equity="1")))  # no session start known


def test_roll_session_sets_start_equity_once_per_day() -> None:
    state = roll_session(RiskState(), TS, D("100"))
    assert (state.session_day, state.session_start_equity) == (TS.date(), D("100"))
    assert roll_session(state, TS + timedelta(hours=1), D("90")) is state
    assert roll_session(state, TS + timedelta(days=1), D("90")).session_start_equity == D("90")


def test_max_open_orders() -> None:
    cfg = TradingConfig(trading_max_open_orders=2)
    assert_pass(risk.gate_max_open_orders(order(), ctx(config=cfg, state=RiskState(open_orders=1))))
    assert_reject(
        risk.gate_max_open_orders(order(), ctx(config=cfg, state=RiskState(open_orders=2))),
        "max_open_orders_exceeded",
    )


def test_price_collar_is_strict_in_bps_of_the_reference() -> None:
    cfg = TradingConfig(trading_price_collar_bps=D("50"))
    assert_pass(risk.gate_price_collar(order(limit="100.50"), ctx(config=cfg)))  # exactly 50 bps
    assert_reject(risk.gate_price_collar(order(limit="100.51"), ctx(config=cfg)), "price_collar_breached")
    assert_reject(risk.gate_price_collar(order(limit="99.49"), ctx(config=cfg)), "price_collar_breached")
    assert_pass(risk.gate_price_collar(order(limit=None), ctx(config=cfg)))  # market order: nothing to collar


# --- the chain -----------------------------------------------------------------------------------


def test_chain_keeps_the_full_trace_on_pass() -> None:
    outcome = run_risk_chain(order(), ctx())
    assert outcome.approved == order()
    assert [v.gate for v in outcome.trace] == list(RISK_GATE_NAMES)
    assert all(v.outcome == "pass" for v in outcome.trace)
    assert outcome.rejection() is None


def test_chain_collects_every_reason_and_builds_a_rejection() -> None:
    cfg = TradingConfig(trading_enabled=False)
    outcome = run_risk_chain(order(symbol="TSLA", side="sell"), ctx(config=cfg))
    assert outcome.approved is None
    assert outcome.reasons == ("trading_disabled", "symbol_not_allowed", "shorts_not_allowed")
    rejection = outcome.rejection()
    assert rejection is not None
    assert rejection.stage == "risk"
    assert rejection.decision_hash == "c" * 64
    assert rejection.risk_reasons == ";".join(outcome.reasons)
    assert len(rejection.gate_trace) == len(RISK_GATE_NAMES)


def test_chain_applies_clips_to_later_gates_and_the_approved_draft() -> None:
    cfg = TradingConfig(trading_max_position_pct_equity=D("0.01"))
    outcome = run_risk_chain(order(qty="25"), ctx(config=cfg, buying_power="900"))
    clip = next(v for v in outcome.trace if v.gate == "max_position_pct")
    assert clip.outcome == "clip"
    assert outcome.draft.qty == D(10)
    # buying power (900) ran before the clip, on 25 x 100, so it rejected: order matters
    assert outcome.approved is None
    assert outcome.reasons == ("insufficient_buying_power",)
    cfg_bp_last = TradingConfig(
        trading_max_position_pct_equity=D("0.01"),
        trading_risk_gates=("max_position_pct", "buying_power"),
    )
    late = run_risk_chain(order(qty="25"), ctx(config=cfg_bp_last, buying_power="1000"))
    assert late.approved is not None
    assert late.approved.qty == D(10)
    assert [v.outcome for v in late.trace] == ["clip", "pass"]


def test_chain_order_is_configurable_and_unknown_gates_fail_fast() -> None:
    cfg = TradingConfig.from_env({"TRADING_RISK_GATES": "shorts, symbol_allowed"})
    outcome = run_risk_chain(order(), ctx(config=cfg))
    assert [v.gate for v in outcome.trace] == ["shorts", "symbol_allowed"]
    with pytest.raises(ValueError, match="unknown gate"):
        TradingConfig(trading_risk_gates=("shorts", "nope"))
    with pytest.raises(ValueError, match="unknown risk gate"):
        run_risk_chain(order(), ctx(), gates=["nope"])


def test_strategy_limits_from_definition() -> None:
    from torghut.contracts.frozen import EMPTY
    from torghut.contracts.strategy import StrategyDefinition, StrategyId

    definition = StrategyDefinition(
        StrategyId("s1"),
        "s1",
        "legacy_macd_rsi",
        "1.0.0",
        EMPTY,
        (),
        enabled=False,
        max_notional_per_trade=D(500),
        max_position_pct_equity=D("0.05"),
    )
    assert StrategyLimits.from_definition(definition) == StrategyLimits("s1", False, D(500), D("0.05"))


def test_gate_verdict_rejects_reasonless_blocking_verdicts() -> None:
    with pytest.raises(ValueError, match="non-empty reason"):
        GateVerdict("g", "reject", "")
    with pytest.raises(ValueError, match="clipped_qty"):
        GateVerdict("g", "clip", "why")


# --- property: every rejected or clipped verdict carries a non-empty reason ----------------------

decimals = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)


@settings(max_examples=150, deadline=None)
@given(
    qty=st.integers(min_value=0, max_value=500),
    side=st.sampled_from(["buy", "sell"]),
    price=st.one_of(st.none(), decimals),
    limit=st.one_of(st.none(), decimals),
    position=st.integers(min_value=-300, max_value=300),
    equity=decimals,
    buying_power=decimals,
    pct=st.one_of(st.none(), st.decimals(min_value=D("0.001"), max_value=D("1"), places=3)),
    max_notional=st.one_of(st.none(), decimals),
    state=st.sampled_from(["active", "halted", "reducing_only"]),
    cooldown=st.integers(min_value=0, max_value=120),
    last_s=st.one_of(st.none(), st.integers(min_value=0, max_value=200)),
    open_orders=st.integers(min_value=0, max_value=5),
    allow_shorts=st.booleans(),
)
def test_blocking_and_clipping_verdicts_always_have_a_reason(
    qty: int,
    side: str,
    price: Decimal | None,
    limit: Decimal | None,
    position: int,
    equity: Decimal,
    buying_power: Decimal,
    pct: Decimal | None,
    max_notional: Decimal | None,
    state: str,
    cooldown: int,
    last_s: int | None,
    open_orders: int,
    allow_shorts: bool,
) -> None:
    cfg = TradingConfig(
        trading_state=state,  # type: ignore[arg-type]
        trading_max_position_pct_equity=pct,
        trading_max_notional_per_trade=max_notional,
        trading_cooldown_seconds=cooldown,
        trading_max_open_orders=3,
        trading_order_rate_limit_per_minute=1,
        trading_allow_shorts=allow_shorts,
    )
    last = FrozenMap({} if last_s is None else {"NVDA": TS - timedelta(seconds=last_s)})
    risk_state = RiskState(last_decision_ts=last, open_orders=open_orders, session_start_equity=D("100000"))
    draft = dataclasses.replace(order(side=side, limit=None if limit is None else str(limit)), qty=D(qty))
    context = ctx(
        config=cfg,
        equity=str(equity),
        buying_power=str(buying_power),
        position=str(position),
        reference_price=None if price is None else str(price),
        state=risk_state,
    )
    outcome = run_risk_chain(draft, context)
    for verdict in outcome.trace:
        if verdict.outcome != "pass":
            assert verdict.reason
    assert (outcome.approved is None) == any(v.outcome == "reject" for v in outcome.trace)
    if outcome.approved is not None:
        assert outcome.approved.qty <= draft.qty
    for gate in GATES:
        assert any(v.gate == gate for v in outcome.trace)

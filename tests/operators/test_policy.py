"""Execution policy: order type, tick rounding, notional, shorts, participation, retries."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torghut.contracts.decision import TradeDecision
from torghut.contracts.portfolio import PortfolioIntent
from torghut.operators.policy import (
    PolicyResult,
    apply_execution_policy,
    is_retryable_error,
    is_short_increasing,
    near_touch_limit_price,
    policy_for_decision,
    policy_for_intent,
    retry_delays,
    round_to_tick,
)
from torghut.operators.trading_config import TradingConfig

TS = datetime(2026, 2, 19, 14, 30, 5, tzinfo=UTC)
D = Decimal


def run(
    qty: str = "2",
    side: str = "buy",
    price: str | None = "100",
    position: str = "0",
    config: TradingConfig | None = None,
    **kwargs: object,
) -> PolicyResult:
    return apply_execution_policy(
        account="paper",
        symbol="NVDA",
        side=side,  # type: ignore[arg-type]
        qty=D(qty),
        event_ts=TS,
        client_order_id="h" * 64,
        config=config or TradingConfig(),
        price=None if price is None else D(price),
        position_qty=D(position),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ("187.105", "187.11"),  # half-up at the cent
        ("187.1049", "187.10"),
        ("1.00", "1.00"),  # exactly $1 uses the cent tick
        ("0.99995", "1.0000"),  # below $1: 0.0001 tick, half-up
        ("0.12344", "0.1234"),
        ("0.12345", "0.1235"),
        ("-0.5", "-0.5000"),  # by absolute value
    ],
)
def test_round_to_tick(price: str, expected: str) -> None:
    assert round_to_tick(D(price)) == D(expected)
    assert str(round_to_tick(D(price))) == expected


def test_near_touch_limit_price_adds_half_spread_for_buys_and_subtracts_for_sells() -> None:
    assert near_touch_limit_price(D("100"), D("0.05"), "buy") == D("100.03")  # 100.025 half-up
    assert near_touch_limit_price(D("100"), D("0.05"), "sell") == D("99.98")  # 99.975 half-up
    assert near_touch_limit_price(D("100.004"), None, "buy") == D("100.00")
    assert near_touch_limit_price(D("100.004"), D(0), "sell") == D("100.00")


def test_market_becomes_limit_when_prefer_limit_and_price_known() -> None:
    result = run(spread=D("0.10"))
    assert result.approved
    assert result.selected_order_type == "limit"
    assert result.draft.order_type == "limit"
    assert result.draft.limit_price == D("100.05")
    assert result.draft.client_order_id == "h" * 64
    assert result.draft.audit["reference_price"] == D("100")
    assert result.draft.audit["execution_policy"]["selected_order_type"] == "limit"


def test_market_stays_market_without_price_or_preference() -> None:
    assert run(price=None).draft.order_type == "market"
    no_pref = run(config=TradingConfig(trading_execution_prefer_limit=False))
    assert no_pref.draft.order_type == "market"
    assert no_pref.draft.limit_price is None


def test_limit_order_without_any_price_is_rejected() -> None:
    result = run(price=None, order_type="limit")
    assert result.reasons == ("missing_limit_price",)
    assert result.order is None


def test_explicit_limit_price_is_tick_rounded() -> None:
    result = run(order_type="limit", limit_price=D("100.005"))
    assert result.draft.limit_price == D("100.01")


def test_stop_orders_are_a_programmer_error() -> None:
    with pytest.raises(ValueError, match="order_type='stop'"):
        run(order_type="stop")


def test_non_positive_qty_is_rejected() -> None:
    assert run(qty="0").reasons == ("qty_non_positive",)


def test_min_notional_is_strict() -> None:
    cfg = TradingConfig(trading_min_notional_per_trade=D("200"))
    assert run(qty="2", config=cfg).approved  # 200 == min passes
    result = run(qty="1", config=cfg)
    assert result.reasons == ("min_notional_not_met",)
    rejection = result.rejection()
    assert rejection is not None
    assert rejection.stage == "policy"
    assert rejection.reasons == ("min_notional_not_met",)
    assert len(rejection.gate_trace) == len(result.verdicts)


def test_max_notional_is_strict_uses_strategy_first_and_applies_to_both_sides() -> None:
    cfg = TradingConfig(trading_max_notional_per_trade=D("1000"))
    assert run(qty="10", config=cfg).approved  # 1000 == max passes
    assert run(qty="11", config=cfg).reasons == ("max_notional_exceeded",)
    assert run(qty="3", config=cfg, strategy_max_notional=D("250")).reasons == ("max_notional_exceeded",)
    assert run(qty="11", side="sell", position="20", config=cfg).reasons == ("max_notional_exceeded",)


def test_shorts_not_allowed_unless_configured() -> None:
    assert run(side="sell", position="0").reasons == ("shorts_not_allowed",)
    assert run(side="sell", qty="3", position="2").reasons == ("shorts_not_allowed",)
    assert run(side="sell", qty="2", position="2").approved  # closing exactly is not short-increasing
    assert run(side="sell", config=TradingConfig(trading_allow_shorts=True)).approved


@pytest.mark.parametrize(
    ("side", "qty", "position", "expected"),
    [
        ("buy", "5", "-10", False),
        ("sell", "1", "0", True),
        ("sell", "1", "-1", True),
        ("sell", "5", "5", False),
    ],
)
def test_is_short_increasing(side: str, qty: str, position: str, expected: bool) -> None:
    assert is_short_increasing(side, D(qty), D(position)) is expected  # type: ignore[arg-type]


def test_participation_is_notional_over_adv_and_strict() -> None:
    # notional 200; ADV 2000 -> 0.1 == max passes; ADV 1999 -> above max
    assert run(adv=D("2000")).approved
    result = run(adv=D("1999"))
    assert result.reasons == ("participation_exceeds_max",)
    assert result.participation_rate == D(200) / D(1999)
    assert run(adv=None).participation_rate is None


def test_participation_max_is_sanitised() -> None:
    zero = TradingConfig(trading_max_participation_rate=D(0))  # <= 0 falls back to 0.1
    assert run(adv=D("1999"), config=zero).reasons == ("participation_exceeds_max",)
    above_one = TradingConfig(trading_max_participation_rate=D(5))  # capped at 1
    assert run(adv=D("199"), config=above_one).reasons == ("participation_exceeds_max",)
    assert run(adv=D("200"), config=above_one).approved


def test_every_failing_rule_is_reported_in_rule_order() -> None:
    cfg = TradingConfig(trading_max_notional_per_trade=D("100"))
    result = run(qty="5", side="sell", adv=D("10"), config=cfg)
    assert result.reasons == ("max_notional_exceeded", "shorts_not_allowed", "participation_exceeds_max")
    assert [v.gate for v in result.verdicts] == [
        "policy.order_type",
        "policy.qty",
        "policy.min_notional",
        "policy.max_notional",
        "policy.shorts",
        "policy.participation",
    ]
    assert result.draft.audit["execution_policy"]["approved"] is False


def test_retry_delays_follow_min_base_times_mult_pow_i_max() -> None:
    assert retry_delays(TradingConfig()) == ()  # torghut's default is no retries
    cfg = TradingConfig(trading_execution_max_retries=4)
    assert retry_delays(cfg) == (0.25, 0.5, 1.0, 2.0)
    sanitised = TradingConfig(
        trading_execution_max_retries=3,
        trading_execution_backoff_base_seconds=0,
        trading_execution_backoff_multiplier=0.5,
        trading_execution_backoff_max_seconds=0.05,
    )
    assert retry_delays(sanitised) == (0.1, 0.1, 0.1)


class BrokerTimeoutError(Exception):
    pass


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("Request timeout", True),
        ("service temporarily unavailable", True),
        ("please try again", True),
        ("connection reset", True),
        ("HTTP 503", True),
        ("rate limit exceeded", True),
        ("order rejected", False),
        ("insufficient buying power", False),
        ("invalid qty", False),
        ("unknown symbol XYZ", False),
        ("short selling not allowed", False),
        ("rejected after timeout", False),  # non-retryable tokens win
        ("something else", False),
        (BrokerTimeoutError("anything, even rejected"), True),  # class name decides first
        (ConnectionError(), True),
        (ValueError("boom"), False),
    ],
)
def test_retry_classification(error: BaseException | str, expected: bool) -> None:
    assert is_retryable_error(error) is expected


def test_policy_for_intent_trades_the_approved_qty() -> None:
    intent = PortfolioIntent(
        account="paper",
        symbol="NVDA",
        net_target_qty=D(3),
        allocator_trace=(),
        regime_label="neutral",
        capacity_bucket="default",
        event_ts=TS,
        source_strategy_ids=(),
        direction="buy",
        requested_qty=D(5),
        approved_qty=D(3),
        price=D("187.1"),
        status="approved",
    )
    result = policy_for_intent(intent, client_order_id="abc", config=TradingConfig(), position_qty=D(0))
    assert result.approved
    assert result.draft.qty == D(3)
    assert result.draft.limit_price == D("187.10")
    assert result.notional == D("561.3")


def test_policy_for_decision_reads_price_spread_and_adv_from_params() -> None:
    decision = TradeDecision.create(
        strategy_id="s1",
        symbol="NVDA",
        event_ts=TS,
        timeframe="1Sec",
        action="buy",
        qty=D(2),
        params={"price": D("50"), "spread": D("0.02"), "avg_dollar_volume": D("500")},
    )
    result = policy_for_decision(decision, config=TradingConfig(), position_qty=D(0))
    assert result.draft.client_order_id == decision.decision_hash
    assert result.draft.limit_price == D("50.01")
    assert result.participation_rate == D("0.2")
    assert result.reasons == ("participation_exceeds_max",)
    assert result.draft.account == "paper"


# --- configuration ----------------------------------------------------------------------------


def test_trading_config_from_env_reads_trading_names_only() -> None:
    cfg = TradingConfig.from_env(
        {
            "TRADING_ENABLED": "false",
            "TRADING_MODE": "live",
            "TRADING_LIVE_ENABLED": "true",
            "TRADING_KILL_SWITCH_ENABLED": "false",
            "TRADING_MAX_NOTIONAL_PER_TRADE": "1000",
            "TRADING_MIN_NOTIONAL_PER_TRADE": "",  # empty means unset
            "TRADING_STRATEGY_RUNTIME_MODE": "scheduler_v3",
            "TRADING_PRICE_COLLAR_BPS": "25",
            "TRADING_STATE": "reducing_only",
            "TRADING_SIGNAL_TABLE": "torghut.ta_signals",  # a torghut key the engine does not use
        }
    )
    assert cfg.trading_enabled is False
    assert (cfg.trading_mode, cfg.trading_live_enabled, cfg.kill_switch_engaged) == ("live", True, False)
    assert cfg.trading_max_notional_per_trade == D("1000")
    assert cfg.trading_min_notional_per_trade is None
    assert cfg.trading_strategy_runtime_mode == "scheduler_v3"
    assert cfg.trading_price_collar_bps == D(25)
    assert cfg.trading_state == "reducing_only"
    assert cfg.account_label == "live"


def test_trading_config_defaults_match_torghut_where_it_matters() -> None:
    cfg = TradingConfig()
    assert cfg.trading_allow_shorts is False
    assert cfg.trading_default_qty == 1
    assert cfg.trading_execution_prefer_limit is True
    assert cfg.trading_max_participation_rate == D("0.1")
    assert cfg.trading_strategy_runtime_mode == "legacy"
    assert cfg.trading_strategy_runtime_fallback_legacy is True
    assert cfg.kill_switch_engaged is False  # paper: released unless set
    assert TradingConfig(trading_mode="live").kill_switch_engaged is True
    assert TradingConfig(trading_kill_switch_enabled=True).kill_switch_engaged is True


def test_trading_config_is_frozen_strict_and_hashable() -> None:
    cfg = TradingConfig()
    with pytest.raises(ValueError, match="frozen"):
        cfg.trading_mode = "live"  # type: ignore[misc]
    with pytest.raises(ValueError, match="extra"):
        TradingConfig(trading_typo=1)  # type: ignore[call-arg]
    assert cfg.config_hash() == TradingConfig().config_hash()
    assert cfg.config_hash() != TradingConfig(trading_cooldown_seconds=1).config_hash()


@settings(max_examples=150, deadline=None)
@given(
    qty=st.integers(min_value=-2, max_value=1000),
    side=st.sampled_from(["buy", "sell"]),
    price=st.one_of(st.none(), st.decimals(min_value=D("0.0001"), max_value=D("5000"), places=4)),
    position=st.integers(min_value=-50, max_value=50),
    adv=st.one_of(st.none(), st.decimals(min_value=D(0), max_value=D("1000000"), places=0)),
    min_notional=st.one_of(st.none(), st.decimals(min_value=D(0), max_value=D("1000"), places=0)),
    max_notional=st.one_of(st.none(), st.decimals(min_value=D(0), max_value=D("10000"), places=0)),
    order_type=st.sampled_from(["market", "limit"]),
)
def test_policy_rejections_always_carry_reasons(
    qty: int,
    side: str,
    price: Decimal | None,
    position: int,
    adv: Decimal | None,
    min_notional: Decimal | None,
    max_notional: Decimal | None,
    order_type: str,
) -> None:
    cfg = TradingConfig(
        trading_min_notional_per_trade=min_notional, trading_max_notional_per_trade=max_notional
    )
    result = run(
        qty=str(qty),
        side=side,
        price=None if price is None else str(price),
        position=str(position),
        config=cfg,
        adv=adv,
        order_type=order_type,
    )
    for verdict in result.verdicts:
        if verdict.outcome != "pass":
            assert verdict.reason
    assert result.approved == (not result.reasons)
    assert (result.order is None) == bool(result.reasons)
    if result.draft.limit_price is not None:
        assert result.draft.limit_price == round_to_tick(result.draft.limit_price)

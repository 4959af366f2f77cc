"""Allocator rules (torghut §4.7 reason codes, caps, multipliers), the account ledger and the configs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from torghut.contracts.account import AccountSnapshot, AccountView, Fill
from torghut.contracts.frozen import FrozenMap
from torghut.contracts.portfolio import SymbolIntent
from torghut.contracts.strategy import Direction, StrategyId
from torghut.operators.allocate import (
    CAP_ORDER,
    AccountLedger,
    Allocator,
    AllocatorUsage,
    canonical_order,
    capacity_bucket,
    gross_exposure,
)
from torghut.operators.portfolio_config import AggregationConfig, AllocationConfig

T0 = datetime(2026, 2, 19, 14, 30, tzinfo=UTC)
D = Decimal


def sym_intent(
    direction: Direction = "buy",
    notional: str = "900",
    price: str | None = "150",
    *,
    symbol: str = "AAPL",
    sources: tuple[str, ...] = ("s1",),
    regime: str | None = None,
    seq: int = 1,
    window_end: datetime = T0,
) -> SymbolIntent:
    return SymbolIntent(
        symbol=symbol,
        direction=direction,
        confidence=D("0.65"),
        target_notional=D(notional),
        horizon="1Sec",
        explain=("x",),
        source_strategy_ids=tuple(StrategyId(s) for s in sources),
        feature_snapshot_hashes=("h",),
        event_ts=window_end - timedelta(milliseconds=1),
        window_end=window_end,
        seq=seq,
        policy="torghut",
        price=None if price is None else D(price),
        regime_label=regime,
    )


def view(
    equity: str = "100000", positions: dict[str, str] | None = None, marks: dict[str, str] | None = None
) -> AccountView:
    return AccountView(
        account="paper",
        equity=D(equity),
        cash=D(equity),
        buying_power=D(equity),
        positions=FrozenMap({k: D(v) for k, v in (positions or {}).items()}),
        marks=FrozenMap({k: D(v) for k, v in (marks or {}).items()}),
    )


def enabled(**fields: object) -> Allocator:
    return Allocator(AllocationConfig.model_validate({"enabled": True, **fields}))


def trace_results(trace: tuple[FrozenMap[str, object], ...]) -> dict[object, object]:
    return {step["check"]: step.get("result") for step in trace}


# ---------------------------------------------------------------- validity checks and passthrough


def test_disabled_passes_through_approved_with_metadata() -> None:
    caps_ignored = AllocationConfig(max_symbol_notional=D(1), max_gross_exposure=D(0))
    result, usage = Allocator(caps_ignored).allocate(
        view(positions={"AAPL": "2"}), sym_intent(), AllocatorUsage()
    )
    assert result.status == "approved"
    assert result.enabled is False
    assert result.requested_qty == result.approved_qty == D(6)  # floor(900 / 150)
    assert result.net_target_qty == D(8)
    assert result.reason_codes == ()
    assert result.capacity_bucket == "uncapped"
    assert result.regime_label == "neutral"
    assert [step["check"] for step in result.allocator_trace] == ["inputs", "allocator"]
    assert result.allocator_trace[1]["result"] == "disabled"
    assert usage == AllocatorUsage()


@pytest.mark.parametrize("price", [None, "0", "-1"])
@pytest.mark.parametrize("allocator_enabled", [True, False])
def test_missing_or_non_positive_price_rejects(price: str | None, allocator_enabled: bool) -> None:
    allocator = Allocator(AllocationConfig(enabled=allocator_enabled))
    result, usage = allocator.allocate(view(), sym_intent(price=price), AllocatorUsage())
    assert (result.status, result.reason_codes) == ("rejected", ("allocator_reject_no_price",))
    assert result.approved_qty == 0
    assert result.capacity_bucket == "rejected"
    assert usage == AllocatorUsage()


def test_requested_qty_is_floored_and_zero_qty_rejects() -> None:
    result, _ = enabled().allocate(view(), sym_intent(notional="299.99"), AllocatorUsage())
    assert result.requested_qty == D(1)
    result, _ = enabled().allocate(view(), sym_intent(notional="149.99"), AllocatorUsage())
    assert (result.status, result.reason_codes) == ("rejected", ("allocator_reject_zero_qty",))
    assert result.net_target_qty == 0


def test_uncapped_enabled_approves_everything() -> None:
    result, usage = enabled().allocate(view(), sym_intent(), AllocatorUsage())
    assert (result.status, result.approved_qty, result.clipped, result.reason_codes) == (
        "approved",
        D(6),
        False,
        (),
    )
    assert [step["check"] for step in result.allocator_trace] == ["inputs", *CAP_ORDER, "qty_min"]
    assert all(step["result"] == "not_configured" for step in result.allocator_trace[1:6])
    assert result.capacity_bucket == "uncapped"
    assert usage.approved_gross == D(900)
    assert dict(usage.symbol_used) == {"AAPL": D(900)}
    assert dict(usage.strategy_used) == {"s1": D(900)}


# ---------------------------------------------------------------- each cap: clip and reject


def test_symbol_capacity_clip_uses_min_of_notional_and_pct_equity() -> None:
    allocator = enabled(max_symbol_notional="500", max_symbol_pct_equity="0.004")  # 0.004 * 100000 = 400
    result, _ = allocator.allocate(view(), sym_intent(), AllocatorUsage())
    assert result.reason_codes == ("allocator_clip_symbol_capacity",)
    assert result.approved_qty == D(2)  # floor(400 / 150)
    assert result.approved_notional == D(300)
    assert result.clipped is True
    step = result.allocator_trace[1]
    assert (step["check"], step["limit"], step["requested"], step["approved"], step["result"]) == (
        "symbol_capacity",
        D("400.000"),
        D(900),
        D("400.000"),
        "clip",
    )


def test_symbol_capacity_reject_when_multiplier_is_zero() -> None:
    allocator = enabled(max_symbol_notional="500", regime_capacity_multipliers={"crash": "0"})
    result, usage = allocator.allocate(view(), sym_intent(regime="crash"), AllocatorUsage())
    assert result.status == "rejected"
    assert result.reason_codes == ("allocator_reject_symbol_capacity",)
    assert usage == AllocatorUsage()


def test_gross_exposure_clip_counts_positions_and_window_usage() -> None:
    allocator = enabled(max_gross_exposure="1000")
    account = view(positions={"MSFT": "-30"}, marks={"MSFT": "10"})  # |-300|
    result, _ = allocator.allocate(account, sym_intent(), AllocatorUsage(approved_gross=D(200)))
    assert result.reason_codes == ("allocator_clip_gross_exposure",)
    assert result.approved_qty == D(3)  # available 1000 - 500 = 500 -> floor(500 / 150)


def test_gross_exposure_excludes_the_symbols_own_value() -> None:
    # torghut: max_gross*budget - (current_gross + approved_so_far - |symbol_value|).
    allocator = enabled(max_gross_exposure="300")
    result, _ = allocator.allocate(view(positions={"AAPL": "2"}), sym_intent(), AllocatorUsage())
    assert result.approved_qty == D(2)
    assert result.net_target_qty == D(4)


def test_gross_exposure_reject_when_exhausted() -> None:
    allocator = enabled(max_gross_exposure="1000")
    result, _ = allocator.allocate(view(), sym_intent(), AllocatorUsage(approved_gross=D(1000)))
    assert (result.status, result.reason_codes) == ("rejected", ("allocator_reject_gross_exposure",))


def test_strategy_budget_divides_by_equal_weight_and_charges_shares() -> None:
    allocator = enabled(strategy_notional_caps={"S1": "600"})  # keys are case-insensitive
    usage = AllocatorUsage(strategy_used=FrozenMap({"s1": D(400)}))
    result, after = allocator.allocate(view(), sym_intent(sources=("s1", "s2")), usage)
    # (600 - 400) / 0.5 = 400 -> clip -> 2 shares = 300, charged 150 to each strategy.
    assert result.reason_codes == ("allocator_clip_strategy_budget",)
    assert result.approved_qty == D(2)
    assert dict(after.strategy_used) == {"s1": D(550), "s2": D(150)}


def test_strategy_budget_reject_adds_torghuts_symbol_capacity_code() -> None:
    allocator = enabled(strategy_notional_caps={"s1": "600"})
    usage = AllocatorUsage(strategy_used=FrozenMap({"s1": D(600)}))
    result, _ = allocator.allocate(view(), sym_intent(), usage)
    assert result.status == "rejected"
    assert result.reason_codes == ("allocator_reject_strategy_budget", "allocator_reject_symbol_capacity")


def test_symbol_budget_clip_and_reject_accumulate_over_the_window() -> None:
    allocator = enabled(symbol_notional_caps={"aapl": "1000"})
    first, usage = allocator.allocate(view(), sym_intent(), AllocatorUsage())
    assert (first.approved_qty, first.reason_codes) == (D(6), ())
    second, usage = allocator.allocate(view(), sym_intent(seq=2), usage)
    assert (second.approved_qty, second.reason_codes) == (
        D(0),
        ("allocator_clip_symbol_budget", "allocator_reject_qty_below_min"),
    )
    assert second.status == "rejected"
    usage = AllocatorUsage(symbol_used=FrozenMap({"AAPL": D(1000)}))
    third, _ = allocator.allocate(view(), sym_intent(), usage)
    assert third.reason_codes == ("allocator_reject_symbol_budget", "allocator_reject_symbol_capacity")


def test_correlation_capacity_clip_and_reject() -> None:
    allocator = enabled(symbol_correlation_groups={"aapl": "Tech"}, correlation_group_caps={"TECH": "300"})
    result, usage = allocator.allocate(view(), sym_intent(), AllocatorUsage())
    assert (result.correlation_group, result.reason_codes) == (
        "tech",
        ("allocator_clip_correlation_capacity",),
    )
    assert result.approved_qty == D(2)
    assert dict(usage.correlation_used) == {"tech": D(300)}
    result, _ = allocator.allocate(view(), sym_intent(), usage)
    assert result.reason_codes == (
        "allocator_reject_correlation_capacity",
        "allocator_reject_symbol_capacity",
    )


def test_qty_below_min_after_clip() -> None:
    result, usage = enabled(max_symbol_notional="100").allocate(view(), sym_intent(), AllocatorUsage())
    assert result.status == "rejected"
    assert result.reason_codes == ("allocator_clip_symbol_capacity", "allocator_reject_qty_below_min")
    assert result.allocator_trace[-1]["result"] == "reject"
    assert usage == AllocatorUsage()


def test_every_cap_is_evaluated_in_order_and_codes_sorted() -> None:
    allocator = enabled(
        max_symbol_notional="800",
        max_gross_exposure="700",
        strategy_notional_caps={"s1": "600"},
        symbol_notional_caps={"AAPL": "500"},
        symbol_correlation_groups={"AAPL": "tech"},
        correlation_group_caps={"tech": "400"},
    )
    result, _ = allocator.allocate(view(), sym_intent(), AllocatorUsage())
    assert [s["result"] for s in result.allocator_trace[1:6]] == ["clip"] * 5
    assert [s["approved"] for s in result.allocator_trace[1:6]] == [D(800), D(700), D(600), D(500), D(400)]
    assert result.reason_codes == tuple(sorted(result.reason_codes))
    assert len(result.reason_codes) == 5
    assert result.approved_qty == D(2)


# ---------------------------------------------------------------- multipliers and regime


def test_regime_multipliers_resolve_and_clamp() -> None:
    allocator = enabled(
        regime_budget_multipliers={"Volatile": "5", "default": "0.5"},
        regime_capacity_multipliers={"calm": "-1"},
        default_capacity_multiplier="1.5",
        max_multiplier="2",
    )
    assert allocator.multipliers(allocator.regime_label(sym_intent(regime="  VOLATILE "))) == (D(2), D("1.5"))
    assert allocator.multipliers("calm") == (D("0.5"), D(0))
    assert allocator.regime_label(sym_intent(regime="  ")) == "neutral"


def test_budget_and_capacity_multipliers_scale_the_symbol_cap() -> None:
    allocator = enabled(
        max_symbol_notional="1000",
        regime_budget_multipliers={"neutral": "0.5"},
        default_capacity_multiplier="0.6",
    )
    result, _ = allocator.allocate(view(), sym_intent(), AllocatorUsage())
    assert (result.budget_multiplier, result.capacity_multiplier) == (D("0.5"), D("0.6"))
    assert result.allocator_trace[1]["limit"] == D("300.00")
    assert result.approved_qty == D(2)
    assert result.capacity_bucket == "at_capacity"


# ---------------------------------------------------------------- risk-reducing intents


def test_risk_reducing_intent_is_never_blocked_by_caps() -> None:
    allocator = enabled(max_gross_exposure="0", max_symbol_notional="1", symbol_notional_caps={"AAPL": "0"})
    result, usage = allocator.allocate(view(positions={"AAPL": "10"}), sym_intent("sell"), AllocatorUsage())
    assert (result.status, result.approved_qty, result.reason_codes) == ("approved", D(6), ())
    assert result.net_target_qty == D(4)
    assert trace_results(result.allocator_trace)["risk_reducing"] == "exempt"
    assert usage == AllocatorUsage()


def test_flip_caps_only_the_part_that_opens_the_other_side() -> None:
    allocator = enabled(max_gross_exposure="0")
    result, usage = allocator.allocate(view(positions={"AAPL": "-2"}), sym_intent("buy"), AllocatorUsage())
    assert (result.status, result.approved_qty, result.net_target_qty) == ("approved", D(2), D(0))
    assert result.clipped is True
    assert result.reason_codes == ("allocator_reject_gross_exposure",)
    assert usage == AllocatorUsage()


def test_adding_to_a_position_is_capped() -> None:
    allocator = enabled(max_gross_exposure="0")
    result, _ = allocator.allocate(view(positions={"AAPL": "-2"}), sym_intent("sell"), AllocatorUsage())
    assert result.status == "rejected"
    assert result.net_target_qty == D(-2)


# ---------------------------------------------------------------- helpers


def test_capacity_bucket_tiers() -> None:
    assert capacity_bucket(D(10), None) == "uncapped"
    assert capacity_bucket(D(25), D(100)) == "light"
    assert capacity_bucket(D(75), D(100)) == "moderate"
    assert capacity_bucket(D("99.9"), D(100)) == "heavy"
    assert capacity_bucket(D(100), D(100)) == "at_capacity"


def test_gross_exposure_marks_and_fallbacks() -> None:
    account = AccountView(
        account="a",
        equity=D(0),
        cash=D(0),
        buying_power=D(0),
        positions=FrozenMap({"A": D(2), "B": D(-3), "C": D(1), "X": D(5)}),
        marks=FrozenMap({"A": D(10)}),
        avg_prices=FrozenMap({"B": D(4)}),
    )
    assert gross_exposure(account, "C", D(7)) == D(20 + 12 + 7)  # X has no mark: counted as 0


def test_canonical_order_ignores_arrival_order() -> None:
    a = sym_intent(symbol="MSFT", seq=1)
    b = sym_intent(symbol="AAPL", seq=2)
    c = sym_intent(symbol="AAPL", seq=1, window_end=T0 + timedelta(seconds=1))
    d = sym_intent(symbol="AAPL", seq=1)
    assert canonical_order([c, a, b, d]) == [d, b, a, c]
    assert canonical_order([a, b, c, d]) == canonical_order([d, c, b, a])


# ---------------------------------------------------------------- ledger


def fill(side: Direction, qty: str, price: str, fee: str = "0", symbol: str = "AAPL") -> Fill:
    return Fill("paper", symbol, side, D(qty), D(price), D(fee), "cid", T0)


def test_ledger_long_round_trip_with_fees() -> None:
    v = view("1000")
    v = AccountLedger.apply(v, fill("buy", "2", "100", fee="1"))
    assert (v.position("AAPL"), v.avg_prices["AAPL"], v.cash, v.equity) == (D(2), D(100), D(799), D(999))
    v = AccountLedger.apply(v, fill("buy", "2", "110"))
    assert v.avg_prices["AAPL"] == D(105)
    assert v.equity == D(1019)  # the 2 held marked up by 10 each
    v = AccountLedger.apply(v, fill("sell", "4", "120", fee="1"))
    assert v.position("AAPL") == 0
    assert "AAPL" not in v.positions and "AAPL" not in v.avg_prices
    assert v.realized_pnl == D(-1) + D(60) - D(1)
    assert v.cash == v.equity == D(1058)
    assert v.marks["AAPL"] == D(120)


def test_ledger_short_and_flip() -> None:
    v = AccountLedger.apply(view("1000"), fill("sell", "3", "50"))
    assert (v.position("AAPL"), v.avg_prices["AAPL"], v.cash) == (D(-3), D(50), D(1150))
    v = AccountLedger.apply(v, fill("buy", "5", "40"))  # cover 3 at +10 each, open 2 long at 40
    assert v.realized_pnl == D(30)
    assert (v.position("AAPL"), v.avg_prices["AAPL"]) == (D(2), D(40))
    assert v.equity == v.cash + D(2) * D(40) == D(1030)


def test_ledger_snapshot_is_authoritative_and_mark_moves_equity() -> None:
    v = AccountLedger.apply(view("1000"), fill("buy", "2", "100"))
    snap = AccountSnapshot("paper", D(5000), D(4000), D(8000), FrozenMap({"MSFT": D(10), "ZERO": D(0)}), T0)
    v = AccountLedger.apply(v, snap)
    assert (v.equity, v.cash, v.buying_power) == (D(5000), D(4000), D(8000))
    assert dict(v.positions) == {"MSFT": D(10)}
    assert "AAPL" not in v.avg_prices
    assert v.session_start_equity == D(5000)
    v = AccountLedger.mark(v, "MSFT", D(100))  # no previous mark: sets the mark only
    v = AccountLedger.mark(v, "MSFT", D(101))
    assert v.equity == D(5010)


def test_ledger_rejects_wiring_errors() -> None:
    with pytest.raises(ValueError, match="account event for 'other'"):
        AccountLedger.apply(view(), Fill("other", "AAPL", "buy", D(1), D(1), D(0), "c", T0))
    with pytest.raises(ValueError, match="positive qty"):
        AccountLedger.apply(view(), fill("buy", "0", "10"))


def test_ledger_is_deterministic() -> None:
    events = [
        fill("buy", "3", "10"),
        fill("sell", "1", "12", fee="0.5"),
        fill("buy", "2", "11", symbol="MSFT"),
    ]
    first = second = view("1000")
    for event in events:
        first = AccountLedger.apply(first, event)
        second = AccountLedger.apply(second, event)
    assert first == second
    assert first.positions == FrozenMap({"AAPL": D(2), "MSFT": D(2)})


# ---------------------------------------------------------------- configuration


def test_allocation_config_defaults_match_torghut() -> None:
    cfg = AllocationConfig()
    assert (cfg.enabled, cfg.default_regime, cfg.min_multiplier, cfg.max_multiplier) == (
        False,
        "neutral",
        D(0),
        D(2),
    )
    assert (cfg.default_budget_multiplier, cfg.default_capacity_multiplier) == (D(1), D(1))
    assert cfg.max_symbol_notional is None and cfg.max_gross_exposure is None
    assert cfg.config_hash() == AllocationConfig().config_hash()
    assert cfg.config_hash() != AllocationConfig(enabled=True).config_hash()


def test_allocation_config_from_env_reads_maps_and_aliases() -> None:
    env = {
        "TRADING_ALLOCATOR_ENABLED": "TRUE",
        "TRADING_ALLOCATOR_DEFAULT_REGIME": " Risk_Off ",
        "TRADING_ALLOCATOR_MAX_MULTIPLIER": "1.5",
        "TRADING_ALLOCATOR_MAX_SYMBOL_PCT_EQUITY": "0.08",
        "TRADING_ALLOCATOR_MAX_GROSS_EXPOSURE": "50000",
        "TRADING_ALLOCATOR_STRATEGY_NOTIONAL_CAPS": '{"Tsmom": 1000.10}',
        "TRADING_ALLOCATOR_CORRELATION_GROUP_NOTIONAL_CAPS": '{"SEMIS": 5000}',
        "TRADING_ALLOCATOR_CORRELATION_SYMBOL_GROUPS": '{"nvda": "Semis", "amd": "semis"}',
        "TRADING_ALLOCATOR_REGIME_BUDGET_MULTIPLIERS": '{"risk_off": 0.5, "default": 1}',
        "TRADING_ALLOCATOR_REGIME_CAPACITY_MULTIPLIERS": "",
    }
    cfg = AllocationConfig.from_env(env)
    assert cfg.enabled is True
    assert cfg.default_regime == "risk_off"
    assert cfg.max_multiplier == D("1.5")
    assert cfg.max_symbol_pct_equity == D("0.08")
    assert cfg.strategy_notional_caps == {"tsmom": D("1000.10")}
    assert cfg.correlation_group_caps == {"semis": D(5000)}
    assert cfg.symbol_correlation_groups == {"NVDA": "semis", "AMD": "semis"}
    assert cfg.regime_budget_multipliers == {"risk_off": D("0.5"), "default": D(1)}
    assert cfg.regime_capacity_multipliers == {}
    primary = AllocationConfig.from_env(
        {
            "TRADING_ALLOCATOR_CORRELATION_GROUP_CAPS": '{"a": 1}',
            "TRADING_ALLOCATOR_CORRELATION_GROUP_NOTIONAL_CAPS": '{"b": 2}',
        }
    )
    assert primary.correlation_group_caps == {"a": D(1)}
    assert AllocationConfig.from_env({}) == AllocationConfig()


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"TRADING_ALLOCATOR_ENABLED": "maybe"}, "TRADING_ALLOCATOR_ENABLED must be true or false"),
        (
            {"TRADING_ALLOCATOR_SYMBOL_NOTIONAL_CAPS": "{not json"},
            "TRADING_ALLOCATOR_SYMBOL_NOTIONAL_CAPS must be",
        ),
        (
            {"TRADING_ALLOCATOR_SYMBOL_NOTIONAL_CAPS": "[1, 2]"},
            "TRADING_ALLOCATOR_SYMBOL_NOTIONAL_CAPS: expected",
        ),
        ({"TRADING_ALLOCATOR_SYMBOL_CORRELATION_GROUPS": "3"}, "symbol -> group"),
    ],
)
def test_allocation_config_from_env_errors_name_the_variable(env: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AllocationConfig.from_env(env)


def test_configs_validate_at_the_edge() -> None:
    with pytest.raises(ValidationError, match="min_multiplier"):
        AllocationConfig(min_multiplier=D(3), max_multiplier=D(2))
    with pytest.raises(ValidationError):
        AllocationConfig.model_validate({"unknown_field": 1})
    with pytest.raises(ValidationError):
        AggregationConfig(window_s=0)
    with pytest.raises(ValidationError):
        AggregationConfig.model_validate({"policy": "majority"})
    with pytest.raises(ValidationError):
        AggregationConfig().window_s = 5

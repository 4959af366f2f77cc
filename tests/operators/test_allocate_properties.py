"""Property tests: the allocator never exceeds a cap, verdicts carry reasons, aggregation is order-free."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from torghut.contracts.account import AccountView
from torghut.contracts.frozen import FrozenMap
from torghut.contracts.portfolio import SymbolIntent
from torghut.contracts.strategy import StrategyId, StrategyIntent
from torghut.operators.aggregate import (
    SymbolWindowAggregator,
    WindowState,
    priority_policy,
    torghut_policy,
    veto_policy,
)
from torghut.operators.allocate import CAP_ORDER, Allocator, AllocatorUsage, gross_exposure
from torghut.operators.portfolio_config import AggregationConfig, AllocationConfig

T0 = datetime(2026, 2, 19, 14, 30, tzinfo=UTC)
END = T0 + timedelta(seconds=1)
SYMBOLS = ("AAA", "BBB", "CCC")
STRATEGIES = ("s1", "s2", "s3", "s4")
TOLERANCE = Decimal("1e-18")  # equal strategy weights of 1/3 are not exact in Decimal

money = st.decimals(min_value=0, max_value=20000, places=2, allow_nan=False, allow_infinity=False)
optional_cap = st.none() | st.decimals(min_value=-100, max_value=20000, places=2)
multiplier = st.decimals(min_value=-1, max_value=3, places=2)
prices = st.decimals(min_value=Decimal("0.01"), max_value=1000, places=2)


@st.composite
def allocation_configs(draw: st.DrawFn, *, enabled: bool | None = None) -> AllocationConfig:
    groups = draw(st.dictionaries(st.sampled_from(SYMBOLS), st.sampled_from(("g1", "g2")), max_size=3))
    return AllocationConfig(
        enabled=draw(st.booleans()) if enabled is None else enabled,
        default_budget_multiplier=draw(multiplier),
        default_capacity_multiplier=draw(multiplier),
        min_multiplier=Decimal(0),
        max_multiplier=Decimal(2),
        max_symbol_pct_equity=draw(st.none() | st.decimals(min_value=0, max_value=1, places=3)),
        max_symbol_notional=draw(optional_cap),
        max_gross_exposure=draw(optional_cap),
        strategy_notional_caps=draw(st.dictionaries(st.sampled_from(STRATEGIES), money, max_size=4)),
        symbol_notional_caps=draw(st.dictionaries(st.sampled_from(SYMBOLS), money, max_size=3)),
        correlation_group_caps=draw(st.dictionaries(st.sampled_from(("g1", "g2")), money, max_size=2)),
        symbol_correlation_groups=groups,
        regime_budget_multipliers=draw(
            st.dictionaries(st.sampled_from(("neutral", "default", "hot")), multiplier)
        ),
        regime_capacity_multipliers=draw(
            st.dictionaries(st.sampled_from(("neutral", "default", "hot")), multiplier)
        ),
    )


@st.composite
def symbol_intents(draw: st.DrawFn) -> SymbolIntent:
    return SymbolIntent(
        symbol=draw(st.sampled_from(SYMBOLS)),
        direction=draw(st.sampled_from(("buy", "sell"))),
        confidence=Decimal("0.5"),
        target_notional=draw(money),
        horizon="1Sec",
        explain=("x",),
        source_strategy_ids=tuple(
            StrategyId(s)
            for s in draw(st.lists(st.sampled_from(STRATEGIES), min_size=1, max_size=4, unique=True))
        ),
        feature_snapshot_hashes=("h",),
        event_ts=T0,
        window_end=END,
        seq=draw(st.integers(0, 100)),
        policy="torghut",
        price=draw(st.none() | st.decimals(min_value=-1, max_value=1000, places=2)),
        regime_label=draw(st.none() | st.sampled_from(("hot", "cold", " HOT "))),
    )


def account(positions: dict[str, Decimal], marks: dict[str, Decimal], equity: Decimal) -> AccountView:
    return AccountView(
        account="paper",
        equity=equity,
        cash=equity,
        buying_power=equity,
        positions=FrozenMap(positions),
        marks=FrozenMap(marks),
    )


def _allocate_within_caps(
    config: AllocationConfig, intents: list[SymbolIntent], view: AccountView, equity: Decimal
) -> int:
    """Allocate ``intents`` in turn, checking every approval against every cap; return the approvals.

    The traded symbols are flat, so every approval is risk-increasing and must respect every cap, both as
    traced and as the window's usage after it, against the caps as configured.
    """
    allocator = Allocator(config)
    usage = AllocatorUsage()
    approved = 0
    for intent in intents:
        result, usage = allocator.allocate(view, intent, usage)
        if result.status != "approved":
            assert result.approved_qty == 0
            continue
        approved += 1
        price = result.price
        assert price is not None
        assert result.approved_notional == price * result.approved_qty
        assert result.approved_qty <= result.requested_qty
        for step in result.allocator_trace:
            if step["check"] in CAP_ORDER and step["limit"] is not None:
                limit = step["limit"]
                assert isinstance(limit, Decimal)
                assert result.approved_notional <= max(limit, Decimal(0)) + TOLERANCE, step
        budget, capacity = allocator.multipliers(allocator.regime_label(intent))
        symbol_cap = allocator.symbol_cap(equity, budget, capacity)
        if symbol_cap is not None:
            assert result.approved_notional <= symbol_cap
        if config.max_gross_exposure is not None:
            held = gross_exposure(view, intent.symbol, price)
            assert usage.approved_gross + held <= config.max_gross_exposure * budget
        cap = config.symbol_notional_caps.get(intent.symbol)
        if cap is not None:
            assert usage.symbol_used[intent.symbol] <= cap * budget
        for strategy_id in intent.source_strategy_ids:
            strategy_cap = config.strategy_notional_caps.get(strategy_id)
            if strategy_cap is not None:
                assert usage.strategy_used[strategy_id] <= strategy_cap * budget + TOLERANCE
        group = config.symbol_correlation_groups.get(intent.symbol)
        group_cap = config.correlation_group_caps.get(group) if group else None
        if group is not None and group_cap is not None:
            assert usage.correlation_used[group] <= group_cap * budget
    return approved


@settings(max_examples=60, deadline=None)
@given(
    config=allocation_configs(enabled=True),
    intents=st.lists(symbol_intents(), min_size=1, max_size=6),
    other_qty=st.decimals(min_value=-50, max_value=50, places=0),
    other_mark=prices,
    equity=money,
)
def test_allocator_never_exceeds_any_cap(
    config: AllocationConfig,
    intents: list[SymbolIntent],
    other_qty: Decimal,
    other_mark: Decimal,
    equity: Decimal,
) -> None:
    view = account({"ZZZ": other_qty} if other_qty else {}, {"ZZZ": other_mark}, equity)
    _allocate_within_caps(config, intents, view, equity)


# Inputs where the first intent always fits (so the cap checks above run on every example, where arbitrary
# inputs approve few intents): positive multipliers, caps of at least 1,000 that the budget multiplier
# keeps at 500 or more, prices up to 200 and targets of whole shares.
positive_cap = st.decimals(min_value=1000, max_value=20000, places=2)
usable_cap = st.none() | positive_cap
usable_multiplier = st.decimals(min_value=Decimal("0.5"), max_value=2, places=2)


@st.composite
def approvable_configs(draw: st.DrawFn) -> AllocationConfig:
    config = draw(allocation_configs(enabled=True))
    caps = st.dictionaries(st.sampled_from(STRATEGIES), positive_cap, max_size=4)
    return config.model_copy(
        update={
            "default_budget_multiplier": draw(usable_multiplier),
            "default_capacity_multiplier": draw(usable_multiplier),
            "regime_budget_multipliers": {},
            "regime_capacity_multipliers": {},
            "max_symbol_pct_equity": draw(
                st.none() | st.decimals(min_value=Decimal("0.1"), max_value=1, places=3)
            ),
            "max_symbol_notional": draw(usable_cap),
            "max_gross_exposure": draw(usable_cap),
            "strategy_notional_caps": draw(caps),
            "symbol_notional_caps": draw(st.dictionaries(st.sampled_from(SYMBOLS), positive_cap, max_size=3)),
            "correlation_group_caps": draw(
                st.dictionaries(st.sampled_from(("g1", "g2")), positive_cap, max_size=2)
            ),
        }
    )


@st.composite
def approvable_intents(draw: st.DrawFn) -> SymbolIntent:
    intent = draw(symbol_intents())
    price = draw(st.decimals(min_value=1, max_value=200, places=2))
    return dataclasses.replace(intent, price=price, target_notional=price * draw(st.integers(1, 40)))


@settings(max_examples=60, deadline=None)
@given(
    config=approvable_configs(),
    intents=st.lists(approvable_intents(), min_size=1, max_size=6),
    equity=st.decimals(min_value=10000, max_value=20000, places=2),
)
def test_allocator_approves_within_every_cap_when_the_intent_fits(
    config: AllocationConfig, intents: list[SymbolIntent], equity: Decimal
) -> None:
    view = account({}, {}, equity)
    assert _allocate_within_caps(config, intents, view, equity) >= 1


@settings(max_examples=60, deadline=None)
@given(
    config=allocation_configs(),
    intents=st.lists(symbol_intents(), min_size=1, max_size=5),
    positions=st.dictionaries(st.sampled_from(SYMBOLS), st.decimals(min_value=-20, max_value=20, places=0)),
    equity=money,
)
def test_rejected_or_clipped_verdicts_always_carry_a_reason(
    config: AllocationConfig, intents: list[SymbolIntent], positions: dict[str, Decimal], equity: Decimal
) -> None:
    allocator = Allocator(config)
    view = account({s: q for s, q in positions.items() if q}, {}, equity)
    usage = AllocatorUsage()
    for intent in intents:
        result, usage = allocator.allocate(view, intent, usage)
        assert result.status in {"approved", "rejected"}
        if result.status == "rejected" or result.clipped:
            assert result.reason_codes, result
        assert list(result.reason_codes) == sorted(set(result.reason_codes))
        sign = 1 if result.direction == "buy" else -1
        assert result.net_target_qty == result.current_qty + sign * result.approved_qty
        assert result.allocator_trace[0]["check"] == "inputs"


confidences = st.sampled_from(["0.5", "0.50", "0.65", "0.7", "0.64", "0.1", "0"]).map(Decimal)
notionals = st.sampled_from(["0", "100", "100.0", "250", "1000", "33.33"]).map(Decimal)


@st.composite
def strategy_intents(draw: st.DrawFn) -> StrategyIntent:
    strategy_id = draw(st.sampled_from(STRATEGIES))
    return StrategyIntent(
        strategy_id=StrategyId(strategy_id),
        symbol="AAA",
        direction=draw(st.sampled_from(("buy", "sell"))),
        confidence=draw(confidences),
        target_notional=draw(notionals),
        horizon="1Sec",
        explain=(draw(st.sampled_from(("a", "b"))),),
        feature_snapshot_hash=draw(st.sampled_from(("h1", "h2", "h3"))),
        strategy_type="t",
        strategy_version=draw(st.sampled_from(("1.0.0", "1.1.0"))),
        parameter_hash=f"p_{strategy_id}",
        event_ts=T0 + timedelta(milliseconds=draw(st.integers(0, 999))),
        seq=draw(st.integers(0, 3)),
        price=draw(st.none() | st.sampled_from(("10", "10.5")).map(Decimal)),
    )


@settings(max_examples=100, deadline=None)
@given(data=st.data(), intents=st.lists(strategy_intents(), min_size=1, max_size=7))
def test_aggregation_does_not_depend_on_input_order(
    data: st.DataObject, intents: list[StrategyIntent]
) -> None:
    shuffled = data.draw(st.permutations(intents))
    priorities = {"s1": 3, "s2": 1, "s3": 3}
    assert torghut_policy(shuffled, END) == torghut_policy(intents, END)
    assert priority_policy(shuffled, END, priorities) == priority_policy(intents, END, priorities)
    assert veto_policy(shuffled, END) == veto_policy(intents, END)
    aggregator = SymbolWindowAggregator(AggregationConfig())
    state, _ = aggregator.on_intents(WindowState(), intents)
    other, _ = aggregator.on_intents(WindowState(), shuffled)
    assert aggregator.flush(state)[1] == aggregator.flush(other)[1]

"""Aggregation policies (torghut §4.5, priority, veto) and the event-time window state machine."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torghut.contracts.portfolio import DroppedIntents, SymbolIntent
from torghut.contracts.signal import SymbolProgress, SymbolWatermark
from torghut.contracts.strategy import Direction, StrategyId, StrategyIntent
from torghut.operators.aggregate import (
    CONFLICT_EXPLAIN,
    REASON_CONFLICT_VETO,
    REASON_EQUAL_PRIORITY,
    REASON_LATE,
    REASON_LOWER_PRIORITY,
    REASON_NET_TIE,
    REASON_OUTVOTED,
    AggregateLogic,
    SymbolWindowAggregator,
    WindowState,
    make_policy,
    priority_policy,
    torghut_policy,
    veto_policy,
    window_end_for,
)
from torghut.operators.portfolio_config import AggregationConfig

T0 = datetime(2026, 2, 19, 14, 30, 0, tzinfo=UTC)
END = T0 + timedelta(seconds=1)


def intent(
    strategy_id: str,
    direction: Direction = "buy",
    confidence: str = "0.65",
    notional: str = "100",
    *,
    symbol: str = "AAPL",
    horizon: str = "1Sec",
    ts: datetime = T0,
    seq: int = 1,
    fhash: str = "h1",
    explain: tuple[str, ...] | None = None,
    price: str | None = "10",
    version: str = "1.0.0",
) -> StrategyIntent:
    return StrategyIntent(
        strategy_id=StrategyId(strategy_id),
        symbol=symbol,
        direction=direction,
        confidence=Decimal(confidence),
        target_notional=Decimal(notional),
        horizon=horizon,
        explain=explain if explain is not None else (f"{strategy_id}_{direction}",),
        feature_snapshot_hash=fhash,
        strategy_type="t",
        strategy_version=version,
        parameter_hash=f"p_{strategy_id}",
        event_ts=ts,
        seq=seq,
        price=None if price is None else Decimal(price),
    )


def as_symbol_intent(output: object) -> SymbolIntent:
    assert isinstance(output, SymbolIntent)
    return output


# ---------------------------------------------------------------- torghut policy (§4.5)


def test_single_intent_passes_through_with_provenance() -> None:
    out = torghut_policy([intent("s1", confidence="0.64", notional="1000")], END)
    assert out.direction == "buy"
    assert out.confidence == Decimal("0.6400")
    assert str(out.target_notional) == "1000.0000"
    assert out.explain == ("s1_buy",)
    assert out.source_strategy_ids == ("s1",)
    assert out.conflict is False
    assert out.losers == ()
    assert out.policy == "torghut"
    assert out.window_end == END
    assert out.price == Decimal("10")
    assert dict(out.strategy_versions) == {"s1": "1.0.0"}
    assert dict(out.parameter_hashes) == {"s1": "p_s1"}


def test_net_direction_wins_over_top_ranked_and_losers_keep_reason() -> None:
    # s1 sell is ranked first (higher confidence) but the buys outweigh it: 0.6*100+0.6*100 > 0.7*100.
    intents = [intent("s1", "sell", "0.7"), intent("s2", "buy", "0.6"), intent("s3", "buy", "0.6")]
    out = torghut_policy(intents, END)
    assert out.direction == "buy"
    assert out.conflict is True
    assert out.source_strategy_ids == ("s2", "s3")
    assert out.confidence == Decimal("0.6000")
    assert out.target_notional == Decimal("200.0000")
    assert out.explain == ("s2_buy", CONFLICT_EXPLAIN)
    assert [(loser.strategy_id, loser.reason) for loser in out.losers] == [("s1", REASON_OUTVOTED)]


def test_net_zero_takes_top_ranked_direction() -> None:
    # 0.5 * 100 buy vs 0.5 * 100 sell: net 0, both equal on confidence and notional -> strategy_id "a" first.
    out = torghut_policy([intent("b", "buy", "0.5"), intent("a", "sell", "0.5")], END)
    assert out.direction == "sell"
    assert out.explain == ("a_sell", CONFLICT_EXPLAIN)
    assert [(loser.strategy_id, loser.reason) for loser in out.losers] == [("b", REASON_NET_TIE)]


def test_net_zero_rank_uses_notional_before_strategy_id() -> None:
    # 0.5 * 200 sell = 1.0 * 100 buy, so net == 0; top rank is by confidence: the buy.
    out = torghut_policy([intent("a", "sell", "0.5", "200"), intent("z", "buy", "1.0", "100")], END)
    assert out.direction == "buy"
    # Equal confidence: larger notional ranks first even though its id sorts later.
    out = torghut_policy([intent("a", "sell", "0.5", "100"), intent("z", "buy", "0.5", "100")], END)
    assert out.direction == "sell"


def test_confidence_mean_and_notional_are_quantized_half_even() -> None:
    intents = [intent("a", confidence="0.65"), intent("b", confidence="0.64"), intent("c", confidence="0.64")]
    out = torghut_policy(intents, END)
    assert str(out.confidence) == "0.6433"  # 1.93 / 3 = 0.64333...
    out = torghut_policy([intent("a", notional="0.00005"), intent("b", notional="0.0001")], END)
    assert str(out.target_notional) == "0.0002"  # 0.00015 -> half-even -> 0.0002
    out = torghut_policy([intent("a", confidence="0.12345")], END)
    assert str(out.confidence) == "0.1234"  # half-even keeps the even digit


def test_zero_selected_notional_falls_back_to_total_absolute_notional() -> None:
    intents = [intent("a", "buy", "0.9", "0"), intent("b", "sell", "0.1", "50")]
    # net = 0.9*0 - 0.1*50 < 0 -> sell; the selected side sums to 50.
    assert torghut_policy(intents, END).target_notional == Decimal("50.0000")
    only_zero = [intent("a", "buy", "0.9", "0"), intent("b", "buy", "0.8", "0")]
    assert torghut_policy(only_zero, END).target_notional == Decimal("0.0000")
    # net 0 with the winning side at 0 notional: the total absolute notional (50) is used.
    fallback = [intent("a", "buy", "0.9", "0"), intent("b", "sell", "0", "50")]
    out = torghut_policy(fallback, END)
    assert (out.direction, out.target_notional) == ("buy", Decimal("50.0000"))
    # net 0 (all notionals 0) in a conflict: top-ranked buy wins with 0 notional -> total |notional| 0.
    mixed = [intent("a", "buy", "0.9", "0"), intent("b", "sell", "0.1", "0")]
    out = torghut_policy(mixed, END)
    assert out.direction == "buy"
    assert out.target_notional == Decimal("0.0000")


def test_source_ids_deduplicated_in_ranked_order_winning_side_only() -> None:
    intents = [
        intent("s2", "buy", "0.6", seq=1),
        intent("s1", "buy", "0.7", seq=1),
        intent("s2", "buy", "0.8", seq=2, ts=T0 + timedelta(milliseconds=500)),
        intent("s9", "sell", "0.1"),
    ]
    out = torghut_policy(intents, END)
    assert out.source_strategy_ids == ("s2", "s1")
    assert out.seq == 2
    assert out.event_ts == T0 + timedelta(milliseconds=500)


def test_feature_hashes_sorted_unique_over_all_intents() -> None:
    intents = [
        intent("a", "buy", "0.9", fhash="zz"),
        intent("b", "sell", "0.1", fhash="aa"),
        intent("c", fhash="zz"),
    ]
    assert torghut_policy(intents, END).feature_snapshot_hashes == ("aa", "zz")


def test_price_and_provenance_come_from_latest_intent() -> None:
    later = T0 + timedelta(milliseconds=200)
    intents = [
        intent("a", price="10", version="1.0.0"),
        intent("a", price="11", ts=later, seq=2, version="1.1.0"),
        intent("b", price=None, ts=later, seq=3),
    ]
    out = torghut_policy(intents, END)
    assert out.seq == 3
    assert out.price == Decimal("11")  # the latest intent has no price: the latest priced one is used
    assert dict(out.strategy_versions) == {"a": "1.1.0", "b": "1.0.0"}


def test_group_must_be_one_symbol_and_horizon() -> None:
    with pytest.raises(ValueError, match="at least one"):
        torghut_policy([], END)
    with pytest.raises(ValueError, match="one \\(symbol, horizon\\)"):
        torghut_policy([intent("a"), intent("b", symbol="MSFT")], END)


# ---------------------------------------------------------------- priority and veto policies


def test_priority_policy_lowest_number_sets_direction() -> None:
    intents = [
        intent("hi_conf", "buy", "0.9", "1000"),
        intent("core", "sell", "0.1", "10"),
        intent("c2", "sell"),
    ]
    out = priority_policy(intents, END, {"core": 1, "c2": 5, "hi_conf": 50})
    assert out.direction == "sell"
    assert out.policy == "priority"
    assert out.source_strategy_ids == ("c2", "core")  # winning side, ranked by torghut's key
    assert [(loser.strategy_id, loser.reason) for loser in out.losers] == [("hi_conf", REASON_LOWER_PRIORITY)]


def test_priority_policy_equal_priority_falls_back_to_rank() -> None:
    out = priority_policy([intent("a", "buy", "0.6"), intent("b", "sell", "0.7")], END, {})
    assert out.direction == "sell"  # both default 100; b has the higher confidence
    assert [loser.reason for loser in out.losers] == [REASON_EQUAL_PRIORITY]


def test_veto_policy_drops_conflicting_group() -> None:
    out = veto_policy([intent("a", "buy"), intent("b", "sell")], END)
    assert isinstance(out, DroppedIntents)
    assert out.reason == REASON_CONFLICT_VETO
    assert out.conflict is True
    assert {(loser.strategy_id, loser.reason) for loser in out.losers} == {
        ("a", REASON_CONFLICT_VETO),
        ("b", REASON_CONFLICT_VETO),
    }


def test_veto_policy_aggregates_one_sided_group() -> None:
    out = as_symbol_intent(veto_policy([intent("a"), intent("b")], END))
    assert out.policy == "veto"
    assert out.source_strategy_ids == ("a", "b")


def test_make_policy_selects_by_name() -> None:
    group = [intent("a", "buy", "0.9"), intent("b", "sell", "0.1")]
    assert as_symbol_intent(make_policy(AggregationConfig())(group, END)).direction == "buy"
    prio = make_policy(AggregationConfig(policy="priority", strategy_priorities={"b": 1}))
    assert as_symbol_intent(prio(group, END)).direction == "sell"
    assert isinstance(make_policy(AggregationConfig(policy="veto"))(group, END), DroppedIntents)


# ---------------------------------------------------------------- windows


def test_window_end_is_epoch_aligned_and_exclusive() -> None:
    assert window_end_for(T0, 1) == END
    assert window_end_for(T0 + timedelta(microseconds=999_999), 1) == END
    assert window_end_for(T0 + timedelta(seconds=61), 60) == T0 + timedelta(seconds=120)
    with pytest.raises(ValueError, match="tz-aware"):
        window_end_for(datetime(2026, 2, 19), 1)  # noqa: DTZ001 - the naive time is the point


def test_window_closes_when_a_later_event_arrives() -> None:
    agg = SymbolWindowAggregator(AggregationConfig())
    state, out = agg.on_intents(WindowState(), [intent("a"), intent("b", "sell", "0.1")])
    assert out == []
    assert len(state.windows) == 1
    state, out = agg.on_intents(state, [intent("a", ts=END, seq=2)])
    assert len(out) == 1
    first = as_symbol_intent(out[0])
    assert (first.window_end, first.seq, first.conflict) == (END, 1, True)
    assert state.conflicts_total == 1
    state, out = agg.flush(state)
    assert [as_symbol_intent(o).seq for o in out] == [2]
    assert state.windows == ()


def test_feature_event_watermark_closes_window() -> None:
    agg = SymbolWindowAggregator(AggregationConfig())
    state, _ = agg.on_intents(WindowState(), [intent("a")])
    state, out = agg.on_watermark(state, END - timedelta(microseconds=1))
    assert out == []
    state, out = agg.advance(state, END)
    assert len(out) == 1
    assert state.closed_through == END


def test_late_intent_is_dropped_and_counted() -> None:
    agg = SymbolWindowAggregator(AggregationConfig())
    state, _ = agg.on_intents(WindowState(), [intent("a")])
    state, _ = agg.on_watermark(state, END + timedelta(seconds=3))
    state, out = agg.on_intents(
        state, [intent("late", "sell", seq=0), intent("new", ts=END + timedelta(seconds=3))]
    )
    assert len(out) == 1
    dropped = out[0]
    assert isinstance(dropped, DroppedIntents)
    assert (dropped.reason, dropped.window_end, dropped.policy) == (REASON_LATE, END, "torghut")
    assert [(loser.strategy_id, loser.reason) for loser in dropped.losers] == [("late", REASON_LATE)]
    assert state.late_total == 1
    _, out = agg.flush(state)
    assert [as_symbol_intent(o).source_strategy_ids for o in out] == [("new",)]


def test_intent_for_a_passed_empty_window_is_late() -> None:
    agg = SymbolWindowAggregator(AggregationConfig())
    state, _ = agg.on_watermark(WindowState(), END + timedelta(seconds=5))  # feature events only
    state, out = agg.on_intents(state, [intent("a", ts=END + timedelta(seconds=2))])
    assert [(type(o).__name__, o.window_end) for o in out] == [("DroppedIntents", END + timedelta(seconds=3))]
    assert (state.late_total, state.windows) == (1, ())


def test_allowed_lateness_keeps_window_open() -> None:
    agg = SymbolWindowAggregator(AggregationConfig(allowed_lateness_s=2))
    state, _ = agg.on_intents(WindowState(), [intent("a")])
    state, out = agg.on_intents(state, [intent("b", ts=END + timedelta(seconds=1))])
    assert out == []
    state, out = agg.on_intents(state, [intent("c", ts=T0 + timedelta(milliseconds=10), seq=0)])
    assert out == []  # out of order, but within the lateness bound
    state, out = agg.on_watermark(state, END + timedelta(seconds=2))
    assert [as_symbol_intent(o).source_strategy_ids for o in out] == [("a", "c")]
    assert state.late_total == 0


def test_multi_second_window_and_groups_by_horizon_in_sorted_order() -> None:
    agg = SymbolWindowAggregator(AggregationConfig(window_s=5))
    batch = [
        intent("a", horizon="1Sec", ts=T0 + timedelta(seconds=1)),
        intent("b", horizon="1Min", ts=T0 + timedelta(seconds=2)),
        intent("c", symbol="MSFT", ts=T0 + timedelta(seconds=3)),
    ]
    state, out = agg.on_intents(WindowState(), batch)
    assert out == []
    state, out = agg.on_watermark(state, T0 + timedelta(seconds=5))
    assert [(o.symbol, o.horizon) for o in out] == [("AAPL", "1Min"), ("AAPL", "1Sec"), ("MSFT", "1Sec")]
    assert {o.window_end for o in out} == {T0 + timedelta(seconds=5)}


def test_veto_policy_in_window_emits_dropped_and_counts_conflict() -> None:
    agg = SymbolWindowAggregator(AggregationConfig(policy="veto"))
    state, _ = agg.on_intents(WindowState(), [intent("a"), intent("b", "sell")])
    state, out = agg.flush(state)
    assert isinstance(out[0], DroppedIntents)
    assert state.conflicts_total == 1


def test_window_output_independent_of_batching_and_arrival_order_within_a_window() -> None:
    agg = SymbolWindowAggregator(AggregationConfig(window_s=2))
    intents = [
        intent(
            f"s{i}",
            "buy" if i % 3 else "sell",
            f"0.{i + 1}",
            str(10 * (i + 1)),
            ts=T0 + timedelta(seconds=i // 2),
        )
        for i in range(8)
    ]  # two windows: seconds 0-1 (s0..s3) and 2-3 (s4..s7)
    state, first = agg.on_intents(WindowState(), intents)
    _, rest = agg.flush(state)
    reference = first + rest
    assert len(reference) == 2
    state, pieces = WindowState(), []
    for item in [*reversed(intents[:4]), *reversed(intents[4:])]:  # one at a time, reversed in each window
        state, out = agg.on_intents(state, [item])
        pieces += out
    _, out = agg.flush(state)
    assert pieces + out == reference


def test_state_is_picklable_plain_data() -> None:
    agg = SymbolWindowAggregator(AggregationConfig())
    state, _ = agg.on_intents(WindowState(), [intent("a"), intent("b", "sell")])
    restored = pickle.loads(pickle.dumps(state))
    assert restored == state
    assert agg.flush(restored)[1] == agg.flush(state)[1]


def test_a_snapshot_of_another_version_is_refused() -> None:
    import dataclasses

    from torghut.operators.aggregate import AggregateLogic

    aggregator = SymbolWindowAggregator(AggregationConfig())
    with pytest.raises(ValueError, match="aggregation snapshot version 99 is not supported"):
        AggregateLogic(aggregator, dataclasses.replace(WindowState(), version=99))
    assert AggregateLogic(aggregator, WindowState()).snapshot() == WindowState()


# ---------------------------------------------------------------- progress bounds (release by frontier)


@settings(max_examples=80, deadline=None)
@given(
    batches=st.lists(
        st.lists(
            st.tuples(st.booleans(), st.integers(-4_000, 20_000), st.sampled_from(("buy", "sell"))),
            min_size=1,
            max_size=6,
        ),
        max_size=8,
    ),
    lateness=st.integers(0, 3),
)
def test_no_symbol_intent_ends_before_a_progress_bound_reported_earlier(
    batches: list[list[tuple[bool, int, str]]], lateness: int
) -> None:
    # Event times wander forwards and backwards (late intents included): whatever comes out after a
    # progress bound, up to the flush at the end of input, ends at or after that bound.
    logic = AggregateLogic(
        SymbolWindowAggregator(AggregationConfig(allowed_lateness_s=lateness)), None, progress=True
    )
    outputs: list[object] = []
    clock = 0
    for batch in batches:
        values: list[StrategyIntent | SymbolWatermark] = []
        for is_intent, step_ms, direction in batch:
            clock = max(0, clock + step_ms)
            ts = T0 + timedelta(milliseconds=clock)
            if is_intent:
                values.append(intent("s1", direction, ts=ts, seq=len(outputs)))  # type: ignore[arg-type]
            else:
                values.append(SymbolWatermark("AAPL", ts))
        out, _ = logic.on_batch(values)
        outputs += out
    outputs += logic.on_eof()[0]
    bound = None
    for output in outputs:
        if isinstance(output, SymbolProgress):
            assert bound is None or output.through > bound  # reported only when it moves
            bound = output.through
        elif isinstance(output, SymbolIntent) and bound is not None:
            assert output.window_end >= bound
    assert any(isinstance(o, SymbolProgress) for o in outputs) == bool(batches)

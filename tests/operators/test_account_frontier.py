"""Release by frontier: the account stage's outputs equal holding everything to the end of input.

An account stage that knows every symbol of its input processes, in canonical order, whatever sorts before
the least :class:`SymbolProgress` bound while inputs still arrive. Whatever the arrival interleaving of the
symbols and however the arrivals are batched, the records it emits must be exactly those of one release of
everything at the end of input.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torghut.contracts.portfolio import SymbolIntent
from torghut.contracts.signal import SymbolProgress
from torghut.contracts.strategy import StrategyId
from torghut.dataflow.config import EngineConfig
from torghut.operators.account import AccountInput, AccountOutput, AccountPipeline
from torghut.strategies.catalog import load_catalog
from torghut.strategies.registry import default_registry

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ("AAPL", "MSFT", "NVDA")
STRATEGIES = ("intraday-tsmom", "bollinger-reversion", "vwap-deviation")
T0 = datetime(2026, 2, 19, 14, 30, tzinfo=UTC)


def pipeline(*, symbols: tuple[str, ...] | None) -> AccountPipeline:
    engine = EngineConfig()
    catalog = load_catalog(ROOT / "benchmarks" / "catalog.yaml", default_registry())
    return AccountPipeline(
        definitions=catalog.definitions,
        trading=engine.trading,
        allocation=engine.allocation,
        account=engine.account,
        config_hash="h",
        symbols=symbols,
    )


def symbol_intent(
    symbol: str, second: int, seq: int, direction: str, notional: int, price: int
) -> SymbolIntent:
    window_end = T0 + timedelta(seconds=second)
    return SymbolIntent(
        symbol=symbol,
        direction=direction,  # type: ignore[arg-type]
        confidence=Decimal("0.6"),
        target_notional=Decimal(notional),
        horizon="1Sec",
        explain=("x",),
        source_strategy_ids=(StrategyId(STRATEGIES[seq % len(STRATEGIES)]),),
        feature_snapshot_hashes=(f"h{seq}",),
        event_ts=window_end - timedelta(microseconds=1),
        window_end=window_end,
        seq=seq,
        policy="torghut",
        price=Decimal(price),
    )


@st.composite
def symbol_streams(draw: st.DrawFn) -> list[list[AccountInput]]:
    """Per symbol: its intents in window order, with progress bounds no later than its next intent."""
    streams: list[list[AccountInput]] = []
    for symbol in SYMBOLS:
        second, stream = 0, []
        steps = draw(st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.integers(50, 900)), max_size=12))
        ends = []
        for gap, buy, notional in steps:
            second += gap
            ends.append(second)
            intent = symbol_intent(symbol, second, len(ends), "buy" if buy else "sell", notional, 10 + second)
            stream.append(intent)
        for index in sorted(draw(st.sets(st.integers(0, len(ends)))))[::-1]:
            # A bound at most the next intent's window end: every later input sorts at or after it.
            bound = T0 + timedelta(seconds=ends[index] if index < len(ends) else second + 5)
            stream.insert(index, SymbolProgress(symbol, bound))
        streams.append(stream)
    return streams


def interleave(draw: st.DrawFn, streams: list[list[AccountInput]]) -> list[AccountInput]:
    cursors = [0] * len(streams)
    arrived: list[AccountInput] = []
    while any(c < len(s) for c, s in zip(cursors, streams, strict=True)):
        live = [i for i, s in enumerate(streams) if cursors[i] < len(s)]
        pick = draw(st.sampled_from(live))
        arrived.append(streams[pick][cursors[pick]])
        cursors[pick] += 1
    return arrived


def held_to_the_end(items: list[AccountInput]) -> list[AccountOutput]:
    held = pipeline(symbols=None)
    state, out = held.on_items(held.initial_state(), [i for i in items if type(i) is not SymbolProgress])
    assert out == []
    return held.flush(state)[1]


def as_sent(batch: list[AccountInput], *, batched: bool) -> list[AccountInput]:
    """A batch as the account stage reads it: as it is, or sent as one AccountBatch (the flow's way)."""
    from torghut.operators.account import AccountBatch, unbatch

    if not batched:
        return batch
    one = AccountBatch.of(batch)
    assert (one is None) == (not batch)
    if one is None:
        return []
    # Its intents in order, then its progress.
    assert list(one.inputs) == [i for i in batch if type(i) is SymbolIntent]
    return unbatch([one])


@settings(max_examples=80, deadline=None)
@given(data=st.data(), streams=symbol_streams(), batched=st.booleans())
def test_release_by_frontier_emits_exactly_what_holding_to_the_end_emits(
    data: st.DataObject, streams: list[list[AccountInput]], batched: bool
) -> None:
    arrived = interleave(data.draw, streams)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(arrived)))))
    frontier = pipeline(symbols=SYMBOLS)
    state, emitted = frontier.initial_state(), []
    for start, end in zip([0, *cuts], [*cuts, len(arrived)], strict=True):
        state, out = frontier.on_items(state, as_sent(arrived[start:end], batched=batched))
        emitted += out
    early = len(emitted)
    state, out = frontier.flush(state)
    assert emitted + out == held_to_the_end(arrived)
    assert state.pending == ()
    # Whatever sorts before every symbol's last bound is released before the end of input.
    bounds = [[i.through for i in stream if type(i) is SymbolProgress] for stream in streams]
    least = min(b[-1] for b in bounds) if all(bounds) else None
    intents = [i for stream in streams for i in stream if type(i) is SymbolIntent]
    assert (early > 0) == any(least is not None and i.window_end < least for i in intents)


def test_nothing_is_released_until_every_symbol_has_a_bound() -> None:
    frontier = pipeline(symbols=("AAPL", "MSFT"))
    state = frontier.initial_state()
    intent = symbol_intent("AAPL", 1, 1, "buy", 500, 10)
    state, out = frontier.on_items(state, [intent, SymbolProgress("AAPL", T0 + timedelta(seconds=9))])
    assert out == [] and state.pending == (intent,)
    state, out = frontier.on_items(state, [SymbolProgress("MSFT", T0 + timedelta(seconds=2))])
    assert [stream for stream, _ in out][:2] == ["portfolio_intents", "decisions"] and state.pending == ()


def test_an_input_behind_a_released_bound_fails_loudly() -> None:
    frontier = pipeline(symbols=("AAPL",))
    state = frontier.initial_state()
    state, out = frontier.on_items(
        state,
        [symbol_intent("AAPL", 5, 1, "buy", 500, 10), SymbolProgress("AAPL", T0 + timedelta(seconds=9))],
    )
    assert out
    with pytest.raises(RuntimeError, match=r"arrived after inputs up to .* were released"):
        frontier.on_items(state, [symbol_intent("AAPL", 3, 2, "buy", 500, 10)])


def test_progress_of_a_symbol_outside_the_list_fails_loudly() -> None:
    frontier = pipeline(symbols=("AAPL",))
    with pytest.raises(RuntimeError, match="'TSLA', which the input's symbol list does not hold"):
        frontier.on_items(frontier.initial_state(), [SymbolProgress("TSLA", T0)])

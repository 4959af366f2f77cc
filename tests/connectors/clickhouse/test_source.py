"""``ClickHouseSource`` in real bytewax flows over chdb."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main
from clickhouse_connect.driver.exceptions import ClickHouseError
from prometheus_client import CollectorRegistry

from tests.connectors.clickhouse.support import (
    BASE_TS,
    FixedClock,
    insert_rows,
    make_client,
    signal_row,
    tie_heavy_rows,
)
from torghut.connectors.clickhouse import (
    ClickHouseSource,
    PollSettings,
    ReaderSettings,
    SignalCursor,
    SignalItem,
    TableRef,
    decode_snapshot,
)
from torghut.contracts import InputPosition
from torghut.metrics import EngineMetrics

BEFORE_ALL = SignalCursor(BASE_TS - timedelta(milliseconds=1))


def _run(source: ClickHouseSource) -> list[SignalItem]:
    out: list[SignalItem] = []
    flow = Dataflow("clickhouse_source_test")
    rows = op.input("clickhouse_in", flow, source)
    op.output("out", rows, TestingSink(out))
    run_main(flow)
    return out


def _source(table: TableRef, **options: Any) -> ClickHouseSource:
    settings = options.pop("settings", ReaderSettings(table=str(table), batch_size=1000, fast_forward=False))
    return ClickHouseSource(
        make_client,
        settings=settings,
        poll=options.pop("poll", PollSettings(once=True)),
        start_cursor=options.pop("start_cursor", BEFORE_ALL),
        clock=options.pop("clock", FixedClock(BASE_TS)),
        **options,
    )


def test_sharded_source_yields_every_row_exactly_once(client: Any, table: TableRef) -> None:
    inserted = tie_heavy_rows(symbols=23, timestamps=200, seqs_per_ts=3)
    insert_rows(client, table, inserted)
    source = _source(table, shards=4)
    out = _run(source)

    keys = [(row["symbol"], row["event_ts"], int(row["seq"])) for row, _ in out]
    assert len(keys) == len(inserted) == 13_800
    assert len(set(keys)) == len(keys)

    by_part: dict[str, list[tuple[dict[str, Any], InputPosition]]] = defaultdict(list)
    for row, position in out:
        assert position.source == "clickhouse"
        by_part[position.partition].append((row, position))
    assert sorted(by_part) == [f"shard-{i}-of-4" for i in range(4)]

    shard_of = dict(
        client.query(
            f"SELECT DISTINCT symbol, toString(cityHash64(symbol) % 4) FROM {table.database}.{table.table}"
        ).result_rows
    )
    for part, items in by_part.items():
        # Offsets count each shard's rows from 0; each shard is read in torghut's order.
        assert [position.offset for _, position in items] == list(range(len(items)))
        order = [(row["event_ts"], row["symbol"], int(row["seq"])) for row, _ in items]
        assert order == sorted(order)
        assert {shard_of[row["symbol"]] for row, _ in items} == {part.split("-")[1]}
    assert source.stats.rows == 13_800
    assert source.stats.empty_batches == {"cursor_tail_stable": 4}


def test_until_replays_a_fixed_range_and_ends(client: Any, table: TableRef) -> None:
    insert_rows(client, table, [signal_row("A", BASE_TS + timedelta(seconds=n), n) for n in range(10)])
    until = BASE_TS + timedelta(seconds=4)
    # Shard 1 of 2 holds no row: it ends because the clock is past the range.
    clock = FixedClock(BASE_TS + timedelta(minutes=10))
    out = _run(_source(table, shards=2, until=until, clock=clock, poll=PollSettings(poll_interval_s=0.01)))
    assert sorted(int(row["seq"]) for row, _ in out) == [0, 1, 2, 3, 4]


def test_partition_resumes_from_its_snapshot(client: Any, table: TableRef) -> None:
    insert_rows(client, table, [signal_row("A", BASE_TS + timedelta(seconds=n), n) for n in range(10)])
    settings = ReaderSettings(table=str(table), batch_size=4, fast_forward=False)
    source = _source(table, settings=settings)
    first = source.build_part("clickhouse_in", "shard-0-of-1", None)
    batch = first.next_batch()
    snapshot = first.snapshot()
    first.close()
    assert [int(row["seq"]) for row, _ in batch] == [0, 1, 2, 3]
    assert first.next_awake() is None  # a full batch polls again at once
    assert decode_snapshot(snapshot) == (SignalCursor(BASE_TS + timedelta(seconds=3), 3, "A"), 4)

    resumed = source.build_part("clickhouse_in", "shard-0-of-1", snapshot)
    rest = resumed.next_batch() + resumed.next_batch()
    resumed.close()
    assert [(int(row["seq"]), position.offset) for row, position in rest] == [(n, n) for n in range(4, 10)]


def test_without_state_or_start_cursor_the_partition_starts_at_now_minus_lookback(
    client: Any, table: TableRef
) -> None:
    now = BASE_TS + timedelta(hours=1)
    insert_rows(client, table, [signal_row("OLD", now - timedelta(minutes=20), 1), signal_row("NEW", now, 1)])
    settings = ReaderSettings(table=str(table))
    out = _run(_source(table, settings=settings, start_cursor=None, clock=FixedClock(now)))
    assert [row["symbol"] for row, _ in out] == ["NEW"]


def test_poll_errors_back_off_without_busy_looping(client: Any, table: TableRef) -> None:
    insert_rows(client, table, [signal_row("A", BASE_TS, 1)])
    clock = FixedClock(datetime(2026, 2, 19, 15, 0, tzinfo=UTC))
    metrics = EngineMetrics(CollectorRegistry())
    poll = PollSettings(backoff_initial_s=0.5, backoff_max_s=1.5)
    source = _source(table, clock=clock, poll=poll, metrics=metrics)
    part = source.build_part("clickhouse_in", "shard-0-of-1", None)
    client.command(f"DROP TABLE {table.database}.{table.table}")
    waits = []
    for _ in range(4):
        assert part.next_batch() == []
        awake = part.next_awake()
        assert awake is not None
        waits.append((awake - clock.now).total_seconds())
    part.close()
    assert waits == [0.5, 1.0, 1.5, 1.5]
    assert source.stats.errors == 4
    assert source.stats.last_error is not None and "ta_signals" in source.stats.last_error
    # An error the server answered (UNKNOWN_TABLE), counted by the error's class.
    labels = {"source": "clickhouse", "reason": "DatabaseError"}
    assert metrics.registry.get_sample_value("torghut_source_errors_total", labels) == 4
    assert issubclass(ClickHouseError, Exception)


def test_empty_polls_wait_for_the_poll_interval_and_are_counted(client: Any, table: TableRef) -> None:
    clock = FixedClock(BASE_TS)
    source = _source(table, clock=clock, poll=PollSettings(poll_interval_s=2.0))
    part = source.build_part("clickhouse_in", "shard-0-of-1", None)
    assert part.next_batch() == []
    assert part.next_awake() == BASE_TS + timedelta(seconds=2)
    insert_rows(client, table, [signal_row("A", BASE_TS, 1)])
    assert len(part.next_batch()) == 1
    assert part.next_awake() == BASE_TS + timedelta(seconds=2)  # a partial batch: caught up, so wait
    assert part.next_batch() == []
    part.close()
    assert source.stats.empty_batches == {"no_signals_in_window": 1, "cursor_tail_stable": 1}


def _lag(metrics: EngineMetrics) -> float | None:
    return metrics.registry.get_sample_value("torghut_signal_lag_seconds")


def _no_signals(metrics: EngineMetrics) -> dict[str, float]:
    return {
        sample.labels["reason"]: sample.value
        for family in metrics.registry.collect()
        if family.name == "torghut_no_signal_reason"
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def test_each_poll_publishes_the_signal_lag_and_counts_empty_polls_by_reason(
    client: Any, table: TableRef
) -> None:
    clock = FixedClock(BASE_TS + timedelta(seconds=10))
    metrics = EngineMetrics(CollectorRegistry())
    source = _source(table, clock=clock, poll=PollSettings(poll_interval_s=1.0), metrics=metrics)
    part = source.build_part("clickhouse_in", "shard-0-of-1", None)

    assert part.next_batch() == []  # an empty table: nothing read yet, so no lag
    assert _lag(metrics) == 0.0 and source.stats.newest_event_ts is None
    assert _no_signals(metrics) == {"no_signals_in_window": 1}

    insert_rows(
        client, table, [signal_row("A", BASE_TS, 1), signal_row("B", BASE_TS + timedelta(seconds=2), 2)]
    )
    assert len(part.next_batch()) == 2
    assert _lag(metrics) == 8.0  # the clock minus the newest row read

    clock.now += timedelta(seconds=60)
    assert part.next_batch() == []  # no new row: the lag keeps growing from the last row read
    assert _lag(metrics) == 68.0
    client.command(f"DROP TABLE {table.database}.{table.table}")
    clock.now += timedelta(seconds=30)
    assert part.next_batch() == []  # a failed poll: no row arrives either
    part.close()
    assert _lag(metrics) == 98.0
    assert _no_signals(metrics) == {"no_signals_in_window": 1, "cursor_tail_stable": 1}
    assert source.stats.errors == 1


def test_a_restarted_partition_at_the_shards_tail_publishes_the_lag_of_the_shards_newest_row(
    client: Any, table: TableRef
) -> None:
    newest = BASE_TS + timedelta(seconds=5)
    insert_rows(client, table, [signal_row("A", BASE_TS, 1), signal_row("A", newest, 2)])
    clock = FixedClock(BASE_TS + timedelta(hours=2))
    for start, reason in (
        (SignalCursor(newest, 2, "A"), "cursor_tail_stable"),  # the committed cursor: every row was read
        (SignalCursor(clock.now), "cursor_ahead_of_stream"),  # now - lookback, past the stale feed's end
    ):
        metrics = EngineMetrics(CollectorRegistry())
        source = _source(table, clock=clock, poll=PollSettings(), start_cursor=start, metrics=metrics)
        part = source.build_part("clickhouse_in", "shard-0-of-1", None)
        assert part.next_batch() == []
        part.close()
        assert _no_signals(metrics) == {reason: 1}
        assert _lag(metrics) == 2 * 3600 - 5


def test_the_lag_follows_the_freshest_shard_of_the_process(client: Any, table: TableRef) -> None:
    shard_of = dict(
        client.query(
            "SELECT symbol, cityHash64(symbol) % 2 FROM "
            "(SELECT arrayJoin(['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H']) AS symbol)"
        ).result_rows
    )
    stale = next(s for s, shard in shard_of.items() if shard == 0)
    fresh = next(s for s, shard in shard_of.items() if shard == 1)
    insert_rows(
        client, table, [signal_row(stale, BASE_TS, 1), signal_row(fresh, BASE_TS + timedelta(seconds=50), 1)]
    )
    clock = FixedClock(BASE_TS + timedelta(seconds=60))
    metrics = EngineMetrics(CollectorRegistry())
    source = _source(table, shards=2, clock=clock, metrics=metrics)
    parts = [source.build_part("clickhouse_in", f"shard-{i}-of-2", None) for i in (1, 0)]
    assert [len(part.next_batch()) for part in parts] == [1, 1]
    for part in parts:
        part.close()
    # The stale shard polled last, yet the gauge is the newest signal any partition read.
    assert _lag(metrics) == 10.0

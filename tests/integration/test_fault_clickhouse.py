"""ClickHouse outages against a real engine: the chdb HTTP front is killed and restarted by the test.

The source reads through clickhouse-connect's HTTP client, as in production. While ClickHouse is down, or
answers slower than the client's ``send_receive_timeout``, polls fail with exponential backoff (no busy
loop), each failure is logged and counted in ``torghut_source_errors_total``, the cursor stays put, and
once ClickHouse is back every row is read exactly once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg
import pytest
from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main
from prometheus_client import CollectorRegistry

from tests.connectors.clickhouse.support import FixedClock, http_client, insert_rows, signal_row, start_front
from tests.integration.support import service_config
from torghut.connectors.clickhouse import (
    ClickHouseSource,
    PollSettings,
    ReaderSettings,
    SignalCursor,
    SignalItem,
    TableRef,
    create_ta_signals,
    utc_now,
)
from torghut.connectors.clickhouse.front_process import HttpFrontProcess
from torghut.connectors.postgres import TradeCursor, load_cursor
from torghut.connectors.synthetic.generator import TA_SIGNAL_COLUMNS, generate_rows
from torghut.dataflow.local import _typed
from torghut.dataflow.service import run_service
from torghut.metrics import METRICS, EngineMetrics

pytestmark = pytest.mark.integration

PART = "shard-0-of-1"
SYMBOLS = ("AAPL", "MSFT", "NVDA")


@pytest.fixture
def front(tmp_path: Path) -> Iterator[HttpFrontProcess]:
    process = start_front(tmp_path)
    yield process
    process.stop()


def _rows(start: datetime, first_seq: int, count: int) -> list[tuple[Any, ...]]:
    """``count`` rows 10 ms apart, cycling through the symbols, with increasing seqs."""
    return [
        signal_row(SYMBOLS[n % 3], start + timedelta(milliseconds=10 * n), first_seq + n)
        for n in range(count)
    ]


def _key(row: dict[str, Any]) -> tuple[str, str, int]:
    return row["symbol"], row["event_ts"], int(row["seq"])


def _inserted_key(row: tuple[Any, ...]) -> tuple[str, str, int]:
    return row[0], row[1].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], row[2]


def _run_in_thread(target: Any, name: str) -> tuple[threading.Thread, list[BaseException]]:
    failed: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as error:
            failed.append(error)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread, failed


def _wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)


def _failures(metrics: EngineMetrics = METRICS) -> float:
    value = metrics.registry.get_sample_value(
        "torghut_source_errors_total", {"source": "clickhouse", "reason": "OperationalError"}
    )
    return value or 0.0


_FAILED_POLL = re.compile(r"ClickHouse poll failed on (\S+) \((\d+) in a row, retry in ([\d.]+)s\)")


def _backoffs(records: list[logging.LogRecord]) -> dict[str, list[tuple[int, float]]]:
    """Per partition, each failed poll's ``(failures in a row, retry delay)``, from the source's warnings."""
    found: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        match = _FAILED_POLL.match(record.getMessage())
        if record.levelno == logging.WARNING and match:
            found.setdefault(match[1], []).append((int(match[2]), float(match[3])))
    return found


def _schedule(failures: int, initial_s: float, max_s: float) -> list[tuple[int, float]]:
    """The backoff a run of ``failures`` failed polls must follow: doubling from ``initial_s`` to ``max_s``."""
    return [(n, round(min(max_s, initial_s * 2 ** (n - 1)), 1)) for n in range(1, failures + 1)]


@dataclass(frozen=True)
class _Poll:
    at: datetime  # when bytewax called ``next_batch``
    awake: datetime | None  # the awake time the partition's previous poll had asked for
    failed: bool


def _record_polls(source: ClickHouseSource, polls: list[_Poll]) -> None:
    """Record every poll of the source's (single) partition."""
    build_part = source.build_part

    def recording_build_part(step_id: str, for_part: str, resume_state: Any) -> Any:
        part = build_part(step_id, for_part, resume_state)
        next_batch = part.next_batch

        def recording_next_batch() -> list[SignalItem]:
            at, awake, errors = utc_now(), part.next_awake(), source.stats.errors
            try:
                return next_batch()
            finally:
                polls.append(_Poll(at, awake, source.stats.errors > errors))

        part.next_batch = recording_next_batch  # type: ignore[method-assign]
        return part

    source.build_part = recording_build_part  # type: ignore[method-assign]


class _FailuresTakeTime:
    """A clickhouse-connect client whose failed query moves the test's clock on by ``cost`` (a timeout)."""

    def __init__(self, client: Any, clock: FixedClock, cost: timedelta) -> None:
        self._client, self._clock, self._cost = client, clock, cost

    def query(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._client.query(*args, **kwargs)
        except Exception:
            self._clock.now += self._cost
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_clickhouse_killed_mid_run_backs_off_then_every_row_is_read_exactly_once(
    front: HttpFrontProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="torghut.connectors.clickhouse.source")
    admin = http_client(front)
    table = create_ta_signals(admin, TableRef("torghut", "ta_signals"), ttl_days=None)
    # Wall-clock timestamps: the source's pacing (next_awake) runs on the real clock.
    start = utc_now().replace(microsecond=0) - timedelta(minutes=5)
    until = start + timedelta(minutes=30)
    before = _rows(start, 0, 600)
    insert_rows(admin, table, before)

    metrics = EngineMetrics(CollectorRegistry())
    source = ClickHouseSource(
        lambda: http_client(front, connect_timeout=1, send_receive_timeout=2),
        settings=ReaderSettings(table=str(table), batch_size=200, fast_forward=False),
        poll=PollSettings(poll_interval_s=0.05, backoff_initial_s=0.1, backoff_max_s=0.8),
        start_cursor=SignalCursor(start - timedelta(seconds=1)),
        until=until,
        metrics=metrics,
    )
    polls: list[_Poll] = []
    _record_polls(source, polls)
    out: list[SignalItem] = []
    flow = Dataflow("clickhouse_outage")
    op.output("out", op.input("clickhouse_in", flow, source), TestingSink(out))
    runner, failed = _run_in_thread(lambda: run_main(flow), "clickhouse-outage-flow")
    try:
        _wait_for(lambda: len(out) == len(before) or failed, 10, "the rows inserted before the outage")
        cursor_before = source.stats.cursors[PART]

        # The outage: SIGKILL the engine's process; nothing is inserted while it is down. Five failed
        # polls: the backoff doubles from 0.1 s and reaches its 0.8 s cap.
        front.kill()
        # (A failed poll is counted, then logged: wait for its warning, the last of the two.)
        _wait_for(lambda: len(_backoffs(caplog.records).get(PART, [])) >= 5, 30, "five failed polls")
        failures = source.stats.errors
        assert _backoffs(caplog.records)[PART][:5] == _schedule(5, 0.1, 0.8)
        assert len(out) == len(before)
        assert source.stats.cursors[PART] == cursor_before, "a failed poll moved the cursor"
        assert _failures(metrics) == failures
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any(
            f"ClickHouse poll failed on {PART}" in w and "retry in" in w and "OperationalError" in w
            for w in warnings
        ), warnings

        # ClickHouse is back on the same data directory and port; the source reconnects by itself.
        front.start()
        after = [*_rows(start + timedelta(minutes=1), 600, 400), signal_row("AAPL", until, 10_000)]
        insert_rows(http_client(front), table, after)
        runner.join(timeout=15)
    finally:
        if runner.is_alive():
            front.stop()  # fails the flow's polls for good; the daemon thread dies with the session
    assert not runner.is_alive(), "the flow did not end after the outage"
    assert not failed, failed

    keys = [_key(row) for row, _ in out]
    assert len(keys) == len(set(keys)), "a row was read twice"
    assert set(keys) == {_inserted_key(row) for row in before + after}, "a row was lost"
    assert [position.offset for _, position in out] == list(range(len(out)))
    assert source.stats.cursors[PART] == SignalCursor(until, cursor_seq=10_000, cursor_symbol="AAPL")
    # One run of failed polls, each waiting out its backoff before the next (no busy loop): every poll
    # after a failed one came no earlier than the awake time the failure set, the backoff after the
    # failed poll's start.
    errors = source.stats.errors
    assert errors >= failures
    assert _failures(metrics) == errors
    assert _backoffs(caplog.records) == {PART: _schedule(errors, 0.1, 0.8)}
    assert any(f"succeeded after {errors} failed polls" in r.getMessage() for r in caplog.records)
    assert sum(poll.failed for poll in polls) == errors
    delays = iter(delay for _, delay in _schedule(errors, 0.1, 0.8))
    for previous, poll in pairwise(polls):
        if previous.failed:
            assert poll.awake is not None, "a poll after a failed one was not held back"
            assert poll.awake >= previous.at + timedelta(seconds=next(delays))
        assert poll.awake is None or poll.at >= poll.awake, "bytewax polled before the awake time"


def test_a_poll_slower_than_the_client_timeout_fails_and_the_retry_reads_the_rows(
    front: HttpFrontProcess,
) -> None:
    admin = http_client(front)
    table = create_ta_signals(admin, TableRef("torghut", "ta_signals"), ttl_days=None)
    start = utc_now().replace(microsecond=0) - timedelta(minutes=5)
    first, second = _rows(start, 0, 50), _rows(start + timedelta(minutes=1), 50, 50)
    insert_rows(admin, table, first)
    metrics = EngineMetrics(CollectorRegistry())
    # The source's clock is the test's: a failed query moves it on by the client's 1 s timeout.
    clock = FixedClock(utc_now())
    timeout = timedelta(seconds=1)
    source = ClickHouseSource(
        lambda: _FailuresTakeTime(http_client(front, send_receive_timeout=1), clock, timeout),
        settings=ReaderSettings(table=str(table), batch_size=500, fast_forward=False),
        poll=PollSettings(poll_interval_s=0.05, backoff_initial_s=0.3),
        start_cursor=SignalCursor(start - timedelta(seconds=1)),
        clock=clock,
        metrics=metrics,
    )
    part = source.build_part("clickhouse_in", PART, None)
    try:
        read = part.next_batch()
        assert [_key(row) for row, _ in read] == [_inserted_key(row) for row in first]
        insert_rows(admin, table, second)

        front.delay_next(2.5)  # the next statement answers after the client has given up
        poll_start = clock.now
        assert part.next_batch() == []
        # The client gave up at its 1 s read timeout, not when the answer came 2.5 s later.
        assert source.stats.errors == 1
        failure = source.stats.last_error or ""
        assert failure.startswith("OperationalError: ") and "Read timed out. (read timeout=1)" in failure
        assert _failures(metrics) == 1
        # The retry waits backoff_initial_s from the failure (the poll start + the timeout), not at once.
        awake = part.next_awake()
        assert awake == poll_start + timeout + timedelta(seconds=0.3)

        clock.now = awake
        retried = part.next_batch()
        read += retried
    finally:
        part.close()
    assert [_key(row) for row, _ in retried] == [_inserted_key(row) for row in second]
    assert [position.offset for _, position in read] == list(range(100))
    assert source.stats.cursors[PART] == SignalCursor(
        second[-1][1], cursor_seq=second[-1][2], cursor_symbol=second[-1][0]
    )
    assert front.stats()["delayed"] == 1


def _cursor(dsn: str) -> TradeCursor | None:
    with psycopg.connect(dsn) as conn:
        return load_cursor(conn, "clickhouse")


def test_the_service_rides_out_a_clickhouse_outage_over_http_and_commits_the_last_row(
    front: HttpFrontProcess, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole service, configured like production (host and port, HTTP client defaults)."""
    caplog.set_level(logging.INFO, logger="torghut.connectors.clickhouse.source")
    admin = http_client(front)
    table = create_ta_signals(admin, TableRef("torghut", "ta_signals"), ttl_days=None)
    start = utc_now().replace(microsecond=0) - timedelta(seconds=30)
    rows = [_typed(row) for row in generate_rows(4, 2, seed=5, start=start)]  # up to start + 119 s
    split = start + timedelta(minutes=1)
    ts = TA_SIGNAL_COLUMNS.index("event_ts")
    columns = list(TA_SIGNAL_COLUMNS)
    admin.insert(str(table), [r for r in rows if r[ts] < split], column_names=columns)
    last = max(rows, key=lambda r: (r[ts], r[TA_SIGNAL_COLUMNS.index("symbol")]))
    source = {"kind": "clickhouse", "host": "127.0.0.1", "port": front.port, "table": str(table)}
    # Small batches: a cursor commits once a later batch's rows pass the account stage's release lateness.
    options = {"start": "earliest", "fast_forward": False, "poll_interval_s": 0.1, "batch_size": 40}
    config = service_config({**source, **options}, dsn)
    errors_before = _failures()

    # ``until`` is the last row, still in the future: the service waits for it, then ends.
    runner, failed = _run_in_thread(lambda: run_service(config, until=last[ts]), "clickhouse-outage-service")
    try:
        _wait_for(lambda: _cursor(dsn) is not None or failed, 20, "a committed cursor before the outage")
        committed = _cursor(dsn)
        front.kill()
        _wait_for(lambda: _failures() - errors_before >= 2, 30, "two failed polls")
        front.start()
        admin = http_client(front)
        admin.insert(str(table), [r for r in rows if r[ts] >= split], column_names=columns)
        runner.join(timeout=30)
    finally:
        if runner.is_alive():
            front.stop()
    assert not runner.is_alive(), "the service did not end after the outage"
    assert not failed, failed
    failures = _failures() - errors_before
    assert failures >= 2
    # Each partition's failed polls waited out the default backoff (0.5 s doubling), one warning each,
    # and each partition that failed read again.
    backoffs = _backoffs(caplog.records)
    assert sum(len(run) for run in backoffs.values()) == failures
    for label, run in backoffs.items():
        assert run == _schedule(len(run), 0.5, 30.0), (label, run)
        assert any(
            r.getMessage() == f"ClickHouse poll on {label} succeeded after {len(run)} failed polls"
            for r in caplog.records
        )
    # The cursor moved on from where it stood at the outage to the last row: every row went through.
    assert committed is not None and committed.cursor_at is not None and committed.cursor_at < split
    symbol, seq = last[TA_SIGNAL_COLUMNS.index("symbol")], last[TA_SIGNAL_COLUMNS.index("seq")]
    assert _cursor(dsn) == TradeCursor("clickhouse", last[ts], int(seq), symbol)

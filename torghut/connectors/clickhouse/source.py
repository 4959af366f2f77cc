"""``ClickHouseSource``: ``ta_signals`` as a bytewax source partitioned by symbol shard.

Each partition polls its own shard (``cityHash64(symbol) % shards``, bound server-side) with a
:class:`~torghut.connectors.clickhouse.reader.ClickHouseSignalReader` and snapshots its cursor, so bytewax
recovery resumes every shard exactly where it stopped. Items are ``(row, InputPosition("clickhouse",
"shard-i-of-n", offset))`` where ``row`` is the raw JSONEachRow-shaped dict (parsing happens downstream)
and ``offset`` counts the rows the partition has emitted since its start cursor.

Metrics, set once per poll (never per row): an empty poll counts in
``torghut_no_signal_reason_total{reason}`` (the reader's ``no_signal_reason``), a failed one in
``torghut_source_errors_total{source="clickhouse",reason}``, and every poll, failed ones included, sets
``torghut_signal_lag_seconds`` to the source's clock minus the newest event time the process's partitions
have read (see :func:`read_up_to`), so the lag keeps growing while no row arrives. Until one of them has
read a row or caught up with its shard, the gauge is left alone. The clock is used here for metrics and
pacing only, never for a decision.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from clickhouse_connect.driver.exceptions import ClickHouseError

from torghut.connectors.clickhouse.query import Shard, SignalCursor
from torghut.connectors.clickhouse.reader import (
    ClickHouseSignalReader,
    Clock,
    FetchResult,
    ReaderSettings,
    utc_now,
    validate_start_cursor,
)
from torghut.contracts.signal import InputPosition
from torghut.metrics import METRICS, EngineMetrics

_log = logging.getLogger(__name__)

SOURCE_NAME = "clickhouse"
SNAPSHOT_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SignalItem = tuple[dict[str, Any], InputPosition]
"""What the source emits: the raw row and where it came from."""

# Persisted by bytewax recovery: (version, cursor_at epoch ms, seq, symbol, next offset). Plain data on
# purpose, so renaming a class never breaks a stored snapshot.
CursorSnapshot = tuple[int, int, int | None, str | None, int]


def encode_snapshot(cursor: SignalCursor, next_offset: int) -> CursorSnapshot:
    """Encode a partition's cursor and row count as the plain tuple bytewax stores."""
    at_ms = (cursor.cursor_at - _EPOCH) // timedelta(milliseconds=1)
    return (SNAPSHOT_VERSION, at_ms, cursor.cursor_seq, cursor.cursor_symbol, next_offset)


def decode_snapshot(snapshot: CursorSnapshot) -> tuple[SignalCursor, int]:
    """Decode :func:`encode_snapshot`'s tuple.

    Raises:
        ValueError: for a snapshot version this code does not know.
    """
    version, at_ms, seq, symbol, next_offset = snapshot
    if version != SNAPSHOT_VERSION:
        msg = f"unknown ClickHouse source snapshot version {version} (this code reads {SNAPSHOT_VERSION})"
        raise ValueError(msg)
    at = _EPOCH + timedelta(milliseconds=at_ms)
    return SignalCursor(at, cursor_seq=seq, cursor_symbol=symbol), next_offset


@dataclass
class SourceStats:
    """Counters the source's partitions update, for metrics and tests (thread-safe).

    Attributes:
        rows: Rows emitted.
        batches: Non-empty batches.
        empty_batches: Empty polls by ``no_signal_reason``.
        errors: Failed polls (each followed by a backoff).
        fast_forwards: Stale cursors moved to ``now - lookback``.
        lag_seconds: The last ``signal_lag_seconds`` per partition (the shard's newest row against the
            clock, whether read or not).
        cursors: The cursor after the last successful poll, per partition.
        last_error: The last poll error's text.
        newest_event_ts: The newest event time any partition has read (:func:`read_up_to`); the
            ``torghut_signal_lag_seconds`` gauge is the clock minus this.
    """

    rows: int = 0
    batches: int = 0
    empty_batches: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    fast_forwards: int = 0
    lag_seconds: dict[str, float] = field(default_factory=dict)
    cursors: dict[str, SignalCursor] = field(default_factory=dict)
    last_error: str | None = None
    newest_event_ts: datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, partition: str, result: FetchResult) -> None:
        """Count one successful poll."""
        with self._lock:
            if result.rows:
                self.rows += len(result.rows)
                self.batches += 1
            elif result.no_signal_reason is not None:
                self.empty_batches[result.no_signal_reason] += 1
            self.fast_forwards += int(result.fast_forwarded)
            if result.signal_lag_seconds is not None:
                self.lag_seconds[partition] = result.signal_lag_seconds
            self.cursors[partition] = result.new_cursor

    def record_error(self, error: BaseException) -> None:
        """Count one failed poll."""
        with self._lock:
            self.errors += 1
            self.last_error = f"{type(error).__name__}: {error}"

    def note_read_up_to(self, event_ts: datetime | None) -> datetime | None:
        """Fold one partition's :func:`read_up_to` into :attr:`newest_event_ts` and return the result."""
        with self._lock:
            if event_ts is not None and (self.newest_event_ts is None or event_ts > self.newest_event_ts):
                self.newest_event_ts = event_ts
            return self.newest_event_ts


def read_up_to(result: FetchResult) -> datetime | None:
    """Return the newest event time a successful poll shows its partition has read, if it shows one.

    That is the batch's last row (rows come in time order), or, for an empty poll at the shard's tail
    (``cursor_tail_stable``, ``cursor_ahead_of_stream``), the shard's newest row: the cursor is at or past
    it, read in this run or before a restart (or skipped as older than the lookback). Other empty polls show
    nothing: an empty shard, or a cursor still behind the shard's newest row.
    """
    if result.rows:
        return result.new_cursor.cursor_at
    if result.no_signal_reason in ("cursor_tail_stable", "cursor_ahead_of_stream"):
        return result.latest_event_ts
    return None


@dataclass(frozen=True, slots=True)
class PollSettings:
    """How a partition paces its polls.

    Attributes:
        poll_interval_s: Wait after an empty or partial batch (a full batch polls again at once).
        backoff_initial_s: First wait after a failed poll; doubles per consecutive failure.
        backoff_max_s: Longest wait after failures.
        once: End the partition at its first empty batch (replaying what is there, then stopping).
    """

    poll_interval_s: float = 1.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    once: bool = False


class _ShardPartition(StatefulSourcePartition[SignalItem, CursorSnapshot]):
    def __init__(
        self,
        label: str,
        reader: ClickHouseSignalReader,
        client: Any,
        cursor: SignalCursor | None,
        next_offset: int,
        poll: PollSettings,
        until: datetime | None,
        stats: SourceStats,
        clock: Clock,
        metrics: EngineMetrics,
    ) -> None:
        self._label = label
        self._reader = reader
        self._client = client
        self._poll = poll
        self._until = until
        self._stats = stats
        self._clock = clock
        self._metrics = metrics
        now = clock()
        self._cursor = reader.initial_cursor(now) if cursor is None else cursor
        self._next_offset = next_offset
        self._failures = 0
        self._awake: datetime | None = None

    def next_batch(self) -> list[SignalItem]:
        now = self._clock()
        try:
            result = self._reader.fetch(self._cursor, now)
        except ClickHouseError as error:
            # Unreachable, timed out or refused by the server: the cursor stays, the poll is retried.
            self._failures += 1
            self._stats.record_error(error)
            reason = f"{type(error).__name__}: {error}"
            self._metrics.source_error(SOURCE_NAME, reason).inc()
            delay = min(self._poll.backoff_max_s, self._poll.backoff_initial_s * 2 ** (self._failures - 1))
            _log.warning(
                "ClickHouse poll failed on %s (%d in a row, retry in %.1fs): %s",
                self._label,
                self._failures,
                delay,
                reason,
            )
            # From the failure, not the poll start: a poll that timed out is not retried at once.
            self._awake = self._clock() + timedelta(seconds=delay)
            self._publish_lag(None)
            return []
        if self._failures:
            _log.info("ClickHouse poll on %s succeeded after %d failed polls", self._label, self._failures)
        self._failures = 0
        self._cursor = result.new_cursor
        self._stats.record(self._label, result)
        self._publish_lag(read_up_to(result))
        if not result.rows:
            if result.no_signal_reason is not None:
                self._metrics.no_signal(result.no_signal_reason).inc()
            if self._finished(result, now):
                raise StopIteration
            self._awake = now + timedelta(seconds=self._poll.poll_interval_s)
            return []
        first = self._next_offset
        self._next_offset += len(result.rows)
        full = len(result.rows) >= self._reader.settings.batch_size
        self._awake = None if full else now + timedelta(seconds=self._poll.poll_interval_s)
        return [
            (row, InputPosition(SOURCE_NAME, self._label, offset))
            for offset, row in enumerate(result.rows, start=first)
        ]

    def _publish_lag(self, event_ts: datetime | None) -> None:
        # Wall clock minus the process's newest event time: one clock read per poll, for the metric only.
        newest = self._stats.note_read_up_to(event_ts)
        if newest is not None:
            self._metrics.signal_lag_seconds.set((self._clock() - newest).total_seconds())

    def _finished(self, result: FetchResult, now: datetime) -> bool:
        if self._poll.once:
            return True
        if self._until is None:
            return False
        # The range is complete once the shard's stream (or the clock) has passed its end.
        latest = result.latest_event_ts
        return now >= self._until or (latest is not None and latest >= self._until)

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> CursorSnapshot:
        return encode_snapshot(self._cursor, self._next_offset)

    def close(self) -> None:
        self._client.close()


class ClickHouseSource(FixedPartitionedSource[SignalItem, CursorSnapshot]):
    """``ta_signals`` read incrementally, one bytewax partition per symbol shard.

    A partition starts at its recovery snapshot when there is one, else at ``start_cursor`` (for example
    torghut's stored ``trade_cursor``), else at ``now - lookback``. With ``until`` it reads no row after
    that time and ends once the range is complete (an empty batch once the shard's latest signal or the
    clock is at or past ``until``); with ``PollSettings(once=True)`` it ends at its first empty batch.

    Example:
        >>> import clickhouse_connect
        >>> from bytewax import operators as op
        >>> from bytewax.dataflow import Dataflow
        >>> source = ClickHouseSource(
        ...     lambda: clickhouse_connect.get_client(dsn="chdb://memory"), shards=4,
        ...     settings=ReaderSettings(batch_size=5000), poll=PollSettings(once=True),
        ... )
        >>> flow = Dataflow("signals")
        >>> rows = op.input("clickhouse_in", flow, source)
    """

    def __init__(
        self,
        client_factory: Callable[[], Any],
        *,
        shards: int = 1,
        settings: ReaderSettings | None = None,
        poll: PollSettings | None = None,
        start_cursor: SignalCursor | None = None,
        until: datetime | None = None,
        clock: Clock = utc_now,
        metrics: EngineMetrics = METRICS,
    ) -> None:
        """Configure the source.

        Args:
            client_factory: Makes a clickhouse-connect ``Client``; called once per partition, in the worker.
            shards: Number of symbol shards (bytewax partitions).
            settings: Reader settings (table, batch size, lookback, cursor rule).
            poll: Poll pacing, backoff and ``once``.
            start_cursor: Where partitions without recovery state start.
            until: Inclusive end of the range to read; the partitions end when it is complete.
            clock: "Now" for polling, lookback and lag; injected so tests control it.
            metrics: Where polls are accounted: ``torghut_source_errors_total{source="clickhouse"}``,
                ``torghut_no_signal_reason_total`` and ``torghut_signal_lag_seconds`` (module docstring).
        """
        if shards < 1:
            msg = f"shards must be >= 1, got {shards}"
            raise ValueError(msg)
        validate_start_cursor(start_cursor)
        self._client_factory = client_factory
        self._shards = shards
        self._settings = settings or ReaderSettings()
        self._poll = poll or PollSettings()
        self._start_cursor = start_cursor
        self._until = until
        self._clock = clock
        self._metrics = metrics
        self.stats = SourceStats()

    def list_parts(self) -> list[str]:
        """One partition per symbol shard: ``shard-0-of-n`` .. ``shard-(n-1)-of-n``."""
        return [Shard(index, self._shards).label for index in range(self._shards)]

    def build_part(self, step_id: str, for_part: str, resume_state: CursorSnapshot | None) -> _ShardPartition:
        """Build one shard's partition from its snapshot, else from the start cursor."""
        index = self.list_parts().index(for_part)
        cursor, next_offset = (
            (self._start_cursor, 0) if resume_state is None else decode_snapshot(resume_state)
        )
        client = self._client_factory()
        reader = ClickHouseSignalReader(
            client, self._settings, shard=Shard(index, self._shards), until=self._until, clock=self._clock
        )
        return _ShardPartition(
            for_part,
            reader,
            client,
            cursor,
            next_offset,
            self._poll,
            self._until,
            self.stats,
            self._clock,
            self._metrics,
        )

"""``ClickHouseSource``: ``ta_signals`` as a bytewax source partitioned by symbol shard.

Each partition polls its own shard (``cityHash64(symbol) % shards``, bound server-side) with a
:class:`~torghut.connectors.clickhouse.reader.ClickHouseSignalReader` and snapshots its cursor, so bytewax
recovery resumes every shard exactly where it stopped. Items are ``(row, InputPosition("clickhouse",
"shard-i-of-n", offset))`` where ``row`` is the raw JSONEachRow-shaped dict (parsing happens downstream)
and ``offset`` counts the rows the partition has emitted since its start cursor.
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
        lag_seconds: The last ``signal_lag_seconds`` per partition.
        last_error: The last poll error's text.
    """

    rows: int = 0
    batches: int = 0
    empty_batches: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    fast_forwards: int = 0
    lag_seconds: dict[str, float] = field(default_factory=dict)
    last_error: str | None = None
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

    def record_error(self, error: BaseException) -> None:
        """Count one failed poll."""
        with self._lock:
            self.errors += 1
            self.last_error = f"{type(error).__name__}: {error}"


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
    ) -> None:
        self._label = label
        self._reader = reader
        self._client = client
        self._poll = poll
        self._until = until
        self._stats = stats
        self._clock = clock
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
            self._failures += 1
            self._stats.record_error(error)
            delay = min(self._poll.backoff_max_s, self._poll.backoff_initial_s * 2 ** (self._failures - 1))
            _log.warning("ClickHouse poll failed on %s (retry in %.1fs): %s", self._label, delay, error)
            self._awake = now + timedelta(seconds=delay)
            return []
        self._failures = 0
        self._cursor = result.new_cursor
        self._stats.record(self._label, result)
        if not result.rows:
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
            for_part, reader, client, cursor, next_offset, self._poll, self._until, self.stats, self._clock
        )

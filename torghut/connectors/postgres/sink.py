"""A buffering PostgreSQL sink that writes each batch in one transaction, and its bytewax wrapper.

Records of every persisted contract can be mixed in one batch; :meth:`PostgresSink.flush` writes them
table by table (catalog, intents, decisions, rejections, executions, dead letters) and commits the ingest
cursor last, in the same transaction, so a committed cursor never runs ahead of the data it covers. Once the
transaction has committed, ``torghut_cursor_event_ts_seconds{source}`` is set to each committed cursor's
event time (Unix seconds).

A lost connection, a server restart or a serialization failure (``psycopg.OperationalError``) is retried
with bounded exponential backoff on a fresh connection; the batch stays buffered until it is written. After
``max_attempts`` the flush raises :class:`PersistenceError`, still holding the batch. Any other database
error (bad data, a violated constraint) raises at once: retrying cannot fix it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from torghut.connectors.postgres import upserts
from torghut.connectors.postgres.cursor import TradeCursor, commit_cursor
from torghut.connectors.postgres.rows import StrategyVersion
from torghut.contracts.account import AccountSnapshot
from torghut.contracts.decision import Rejection, TradeDecision
from torghut.contracts.execution import ExecutionReport
from torghut.contracts.portfolio import PortfolioIntent, SymbolIntent
from torghut.contracts.signal import DeadLetter
from torghut.contracts.strategy import StrategyDefinition, StrategyIntent
from torghut.metrics import METRICS, EngineMetrics

logger = logging.getLogger(__name__)

Connection = psycopg.Connection[tuple[object, ...]]
_Writer = Callable[[Connection, list[Any]], int]

# Write order inside one transaction: FK targets before their referrers.
_WRITERS: tuple[tuple[type, _Writer], ...] = (
    (StrategyDefinition, upserts.upsert_strategies),
    (StrategyVersion, upserts.upsert_strategy_versions),
    (StrategyIntent, upserts.upsert_strategy_intents),
    (SymbolIntent, upserts.upsert_symbol_intents),
    (PortfolioIntent, upserts.upsert_portfolio_intents),
    (TradeDecision, upserts.upsert_decisions),
    (Rejection, upserts.upsert_rejections),
    (ExecutionReport, upserts.upsert_executions),
    (AccountSnapshot, upserts.upsert_position_snapshots),
    (DeadLetter, upserts.insert_dead_letters),
)
_KINDS = frozenset(kind for kind, _ in _WRITERS)


class PersistenceError(RuntimeError):
    """A batch could not be written after every retry; it is still buffered in the sink."""


class PostgresSink:
    """Buffers engine records and writes them to PostgreSQL, one transaction per flush.

    Accepted records: :class:`StrategyDefinition`, :class:`StrategyVersion`, :class:`StrategyIntent` (which
    also records its strategy version), :class:`SymbolIntent`, :class:`PortfolioIntent`,
    :class:`TradeDecision`, :class:`Rejection`, :class:`ExecutionReport`, :class:`AccountSnapshot`,
    :class:`DeadLetter` and :class:`TradeCursor` (the last one per source wins).

    Args:
        dsn: The PostgreSQL DSN.
        max_attempts: Tries per flush before :class:`PersistenceError`.
        backoff_initial_s: The first retry delay; it doubles on every further retry.
        backoff_max_s: The cap on one retry delay.
        connect_timeout_s: The TCP connect timeout of each (re)connection.
        sleep: The delay function (tests pass a fake one).
        metrics: Where the committed cursors' event times and the retries are reported
            (:data:`~torghut.metrics.METRICS`).
    """

    def __init__(
        self,
        dsn: str,
        *,
        max_attempts: int = 8,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        connect_timeout_s: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        metrics: EngineMetrics = METRICS,
    ) -> None:
        if max_attempts < 1:
            msg = f"PostgresSink: max_attempts must be at least 1, got {max_attempts}"
            raise ValueError(msg)
        self._dsn = dsn
        self._max_attempts = max_attempts
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._connect_timeout_s = connect_timeout_s
        self._sleep = sleep
        self._metrics = metrics
        self._conn: Connection | None = None
        self._buffer: dict[type, list[Any]] = {kind: [] for kind in _KINDS}
        self._cursors: dict[str, TradeCursor] = {}
        self.retries = 0

    @property
    def pending(self) -> int:
        """The number of buffered records (cursors included)."""
        return sum(map(len, self._buffer.values())) + len(self._cursors)

    def add(self, record: object) -> None:
        """Buffer one record.

        Raises:
            TypeError: The record is of a type this sink does not persist.
        """
        if isinstance(record, TradeCursor):
            self._cursors[record.source] = record
            return
        kind = type(record)
        bucket = self._buffer.get(kind)
        if bucket is None:
            names = ", ".join(sorted(k.__name__ for k in (*_KINDS, TradeCursor)))
            msg = f"PostgresSink cannot persist a {kind.__qualname__}; it persists: {names}"
            raise TypeError(msg)
        bucket.append(record)
        if isinstance(record, StrategyIntent):
            self._buffer[StrategyVersion].append(StrategyVersion.from_intent(record))

    def add_many(self, records: Iterable[object]) -> None:
        """Buffer several records."""
        for record in records:
            self.add(record)

    def write_batch(self, records: Iterable[object]) -> None:
        """Buffer ``records`` and flush them (and anything still pending) in one transaction."""
        self.add_many(records)
        self.flush()

    def flush(self) -> None:
        """Write every buffered record in one transaction, retrying connection failures.

        Raises:
            PersistenceError: Every attempt failed with a connection-level error; the batch is kept.
            psycopg.Error: A non-retryable database error; the batch is kept.
        """
        if not self.pending:
            return
        delay = self._backoff_initial_s
        for attempt in range(1, self._max_attempts + 1):
            try:
                self._write_once()
            except psycopg.OperationalError as error:
                self._discard_connection()
                if attempt == self._max_attempts:
                    msg = (
                        f"PostgresSink: could not write a batch of {self.pending} records after "
                        f"{attempt} attempts; the batch is kept for the next flush: {error}"
                    )
                    logger.error("%s", msg)  # bytewax ends the flow without showing the exception
                    raise PersistenceError(msg) from error
                logger.warning(
                    "PostgresSink: write of %d records failed (attempt %d/%d), retrying in %.2f s: %s",
                    self.pending,
                    attempt,
                    self._max_attempts,
                    delay,
                    str(error).strip(),
                )
                self.retries += 1
                self._metrics.sink_retry("postgres").inc()
                self._sleep(delay)
                delay = min(delay * 2, self._backoff_max_s)
            except psycopg.Error as error:
                # Not a connection failure: retrying cannot help. bytewax ends the flow on the exception
                # without showing it, so it is logged here.
                logger.error(
                    "PostgresSink: write of %d records refused by PostgreSQL, not retried (%s): %s",
                    self.pending,
                    type(error).__name__,
                    str(error).strip(),
                )
                raise
            else:
                self._report_cursors()
                self._clear()
                return

    def _write_once(self) -> None:
        conn = self._connection()
        with conn.transaction():
            for kind, writer in _WRITERS:
                batch = self._buffer[kind]
                if batch:
                    writer(conn, batch)
            for cursor in self._cursors.values():
                commit_cursor(conn, cursor.source, cursor.cursor_at, cursor.cursor_seq, cursor.cursor_symbol)

    def _report_cursors(self) -> None:
        # Only after the commit: the gauge never shows a cursor a failed transaction rolled back.
        for cursor in self._cursors.values():
            if cursor.cursor_at is not None:
                self._metrics.cursor(cursor.source).set(cursor.cursor_at.timestamp())

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._connect_timeout_s)
        return self._conn

    def _discard_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _clear(self) -> None:
        for batch in self._buffer.values():
            batch.clear()
        self._cursors.clear()

    def close(self) -> None:
        """Flush what is pending and close the connection."""
        try:
            self.flush()
        finally:
            self._discard_connection()


class _PostgresPartition(StatelessSinkPartition[object]):
    def __init__(self, sink: PostgresSink) -> None:
        self._sink = sink

    def write_batch(self, items: list[object]) -> None:
        self._sink.write_batch(items)

    def close(self) -> None:
        self._sink.close()


class PostgresDynamicSink(DynamicSink[object]):
    """A bytewax sink: every worker writes each of its batches in one PostgreSQL transaction.

    Writes are idempotent, so bytewax's at-least-once replay after a crash adds no rows.

    Args:
        dsn: The PostgreSQL DSN.
        **options: Passed to :class:`PostgresSink` (``max_attempts``, ``backoff_initial_s``, ...).
    """

    def __init__(self, dsn: str, **options: Any) -> None:
        self._dsn = dsn
        self._options = options

    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSinkPartition[object]:
        """Return worker ``worker_index``'s partition, with its own connection."""
        return _PostgresPartition(PostgresSink(self._dsn, **self._options))

"""``ClickHouseSignalReader``: one poll of ``ta_signals`` with torghut's cursor moves.

A poll (contracts section 1.2) first reads the latest signal time, starts a missing cursor at
``now - lookback``, fast-forwards a stale one, reads one batch after the cursor and, when the batch is
empty, names the reason and moves the cursor as torghut does. Rows come back in the shape ClickHouse's
``JSONEachRow`` gives torghut (timestamps ``"YYYY-MM-DD HH:MM:SS.mmm"`` UTC strings, 64-bit integers as
strings, NaN and infinities as ``None``), so the parse stage treats ClickHouse rows and replay-file lines
alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from torghut.connectors.clickhouse.query import (
    CursorRule,
    Shard,
    SignalCursor,
    build_latest_query,
    build_signal_query,
    format_ch_ts,
    is_valid_symbol,
)
from torghut.connectors.clickhouse.schema import (
    DEFAULT_SIGNAL_TABLE,
    TableRef,
    select_columns,
    table_columns,
    time_column_of,
)

NoSignalReason = Literal[
    "no_signals_in_window", "cursor_ahead_of_stream", "cursor_tail_stable", "empty_batch_advanced"
]
"""Why a poll returned no rows (torghut's ``no_signal_reason`` values for the ClickHouse path)."""

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Return the wall-clock time, tz-aware UTC (the default clock, used only for polling and lookback)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ReaderSettings:
    """How the reader polls; defaults are torghut's.

    Attributes:
        table: ``TRADING_SIGNAL_TABLE``.
        batch_size: ``TRADING_SIGNAL_BATCH_SIZE``.
        lookback_minutes: ``TRADING_SIGNAL_LOOKBACK_MINUTES``: the initial cursor and the stale limit.
        empty_batch_advance_s: ``TRADING_SIGNAL_EMPTY_BATCH_ADVANCE_SECONDS``.
        fast_forward: Move a cursor older than the lookback forward (off to replay history).
        cursor_rule: ``"exact"`` resumes after the batch's last row in scan order (no re-reads);
            ``"torghut"`` reproduces torghut's tie-break cursor, which re-reads rows when a batch ends
            inside a timestamp shared by several symbols.
        final: Read with ``FINAL``.
    """

    table: str = DEFAULT_SIGNAL_TABLE
    batch_size: int = 500
    lookback_minutes: float = 15.0
    empty_batch_advance_s: float = 60.0
    fast_forward: bool = True
    cursor_rule: CursorRule = "exact"
    final: bool = False

    def __post_init__(self) -> None:
        TableRef.parse(self.table)
        if self.batch_size < 1:
            msg = f"batch_size must be >= 1, got {self.batch_size}"
            raise ValueError(msg)
        if self.lookback_minutes <= 0 or self.empty_batch_advance_s < 0:
            msg = (
                "lookback_minutes must be > 0 and empty_batch_advance_s >= 0, got "
                f"{self.lookback_minutes} and {self.empty_batch_advance_s}"
            )
            raise ValueError(msg)
        if self.cursor_rule not in ("exact", "torghut"):
            msg = f"cursor_rule must be 'exact' or 'torghut', got {self.cursor_rule!r}"
            raise ValueError(msg)

    @property
    def lookback(self) -> timedelta:
        """The lookback as a duration."""
        return timedelta(minutes=self.lookback_minutes)


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of one poll.

    Attributes:
        rows: The batch, JSONEachRow-shaped dicts in ``time, symbol, seq`` order.
        new_cursor: The cursor to use (and persist) next.
        no_signal_reason: Why the batch is empty; ``None`` when it is not.
        signal_lag_seconds: Query end minus the latest signal time; ``None`` when there are no signals.
        latest_event_ts: ``max(time)`` read at the start of the poll.
        fast_forwarded: The stale cursor was moved to ``now - lookback`` before the query.
    """

    rows: tuple[dict[str, Any], ...]
    new_cursor: SignalCursor
    no_signal_reason: NoSignalReason | None
    signal_lag_seconds: float | None
    latest_event_ts: datetime | None
    fast_forwarded: bool = False


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts_to_text(value: Any) -> Any:
    return None if value is None else format_ch_ts(value)


def _int_to_text(value: Any) -> Any:
    return None if value is None else str(value)


def _float_to_json(value: Any) -> Any:
    return None if value is None or not math.isfinite(value) else value


def _converter(base_type: str | None) -> Callable[[Any], Any] | None:
    if base_type in ("DateTime64", "DateTime"):
        return _ts_to_text
    if base_type in ("UInt64", "Int64", "UInt128", "Int128", "UInt256", "Int256"):
        return _int_to_text
    if base_type in ("Float64", "Float32"):
        return _float_to_json
    return None


def _json_rows(
    names: Sequence[str], columns: Sequence[Sequence[Any]], types: Sequence[Any]
) -> list[dict[str, Any]]:
    converted: list[Sequence[Any]] = []
    for column, ch_type in zip(columns, types, strict=True):
        convert = _converter(getattr(ch_type, "base_type", None))
        converted.append(column if convert is None else [convert(value) for value in column])
    return [dict(zip(names, values, strict=True)) for values in zip(*converted, strict=True)]


class ClickHouseSignalReader:
    """Polls ``ta_signals`` through a clickhouse-connect ``Client``, one batch per :meth:`fetch`.

    The reader holds no cursor: the caller passes the cursor in and keeps ``new_cursor``. The selected
    columns are resolved from ``system.columns`` when the reader is built, so a missing table or a
    table without ``seq`` fails at start-up.
    """

    __slots__ = ("_client", "_clock", "_columns", "_settings", "_shard", "_table", "_time_column", "_until")

    def __init__(
        self,
        client: Any,
        settings: ReaderSettings | None = None,
        *,
        shard: Shard | None = None,
        until: datetime | None = None,
        clock: Clock = utc_now,
    ) -> None:
        """Build a reader.

        Args:
            client: A clickhouse-connect ``Client`` (HTTP in production, ``chdb://`` locally).
            settings: Polling settings; torghut's defaults when ``None``.
            shard: Read one symbol shard only.
            until: Inclusive upper bound on the time column (replaying a fixed range).
            clock: Supplies "now" for the initial cursor, fast-forward, advance and lag.

        Raises:
            ValueError: when the table does not exist or lacks a time column, ``symbol`` or ``seq``.
        """
        self._client = client
        self._settings = settings or ReaderSettings()
        self._table = TableRef.parse(self._settings.table)
        self._shard = shard
        self._until = None if until is None else _as_utc(until)
        self._clock = clock
        available = table_columns(client, self._table)
        missing = [name for name in ("symbol", "seq") if name not in available]
        if missing:
            msg = (
                f"signal table {self._table} lacks {missing}: only seq-keyed tables are supported "
                "(torghut's ts-overlap mode for flat tables without seq is not implemented)"
            )
            raise ValueError(msg)
        self._time_column = time_column_of(available)
        self._columns = select_columns(available)

    @property
    def columns(self) -> tuple[str, ...]:
        """The selected columns, torghut's wish-list order."""
        return self._columns

    @property
    def settings(self) -> ReaderSettings:
        """The reader's settings."""
        return self._settings

    def initial_cursor(self, now: datetime) -> SignalCursor:
        """Return the cursor used when none is stored: ``now - lookback``."""
        return SignalCursor(_as_utc(now) - self._settings.lookback)

    def latest_event_ts(self) -> datetime | None:
        """Return ``max(time)`` of the table (or of the shard), ``None`` when it holds no rows."""
        query = build_latest_query(self._table, time_column=self._time_column, shard=self._shard)
        value = self._client.query(query.sql, parameters=dict(query.parameters)).result_rows[0][0]
        return None if value is None else _as_utc(value)

    def fetch(self, cursor: SignalCursor | None, now: datetime | None = None) -> FetchResult:
        """Poll once: read the batch after ``cursor`` and say where the cursor goes next.

        Args:
            cursor: The stored cursor, or ``None`` to start at ``now - lookback``.
            now: The poll start; the clock's time when ``None``.

        Raises:
            clickhouse_connect.driver.exceptions.ClickHouseError: when a query fails.
        """
        settings = self._settings
        poll_start = _as_utc(self._clock() if now is None else now)
        latest = self.latest_event_ts()
        current = self.initial_cursor(poll_start) if cursor is None else cursor
        floor = poll_start - settings.lookback
        fast_forwarded = (
            settings.fast_forward
            and current.cursor_at < floor
            and latest is not None
            and current.cursor_at < latest
        )
        if fast_forwarded:
            current = SignalCursor(floor)
        query = build_signal_query(
            self._table,
            self._columns,
            current,
            settings.batch_size,
            time_column=self._time_column,
            shard=self._shard,
            until=self._until,
            final=settings.final,
        )
        result = self._client.query(query.sql, parameters=dict(query.parameters), column_oriented=True)
        query_end = _as_utc(self._clock())
        lag = None if latest is None else (query_end - latest).total_seconds()
        columns: Sequence[Sequence[Any]] = result.result_columns
        if not columns or not columns[0]:
            reason, moved = self._empty_move(current, latest, poll_start)
            return FetchResult((), moved, reason, lag, latest, fast_forwarded)
        names = list(result.column_names)
        rows = _json_rows(names, columns, result.column_types)
        times = columns[names.index(self._time_column)]
        seqs = columns[names.index("seq")]
        symbols = columns[names.index("symbol")]
        if settings.cursor_rule == "exact":
            at, seq, symbol = times[-1], seqs[-1], symbols[-1]
        else:
            at, seq, symbol = max(zip(times, seqs, symbols, strict=True))
        new_cursor = SignalCursor(_as_utc(at), cursor_seq=int(seq), cursor_symbol=str(symbol))
        return FetchResult(tuple(rows), new_cursor, None, lag, latest, fast_forwarded)

    def _empty_move(
        self, cursor: SignalCursor, latest: datetime | None, poll_start: datetime
    ) -> tuple[NoSignalReason, SignalCursor]:
        if latest is None:
            return "no_signals_in_window", cursor
        if cursor.cursor_at > latest + self._settings.lookback:
            return "cursor_ahead_of_stream", SignalCursor(latest)
        if cursor.cursor_at >= latest:
            return "cursor_tail_stable", cursor
        target = poll_start - timedelta(seconds=self._settings.empty_batch_advance_s)
        if cursor.cursor_at < target:
            return "empty_batch_advanced", SignalCursor(target)
        return "empty_batch_advanced", cursor


def validate_start_cursor(cursor: SignalCursor | None) -> None:
    """Fail fast on a stored cursor whose symbol torghut would reject.

    Raises:
        ValueError: naming the cursor and the rule it breaks.
    """
    if cursor is not None and cursor.cursor_symbol is not None and not is_valid_symbol(cursor.cursor_symbol):
        msg = f"start cursor symbol {cursor.cursor_symbol!r} does not match torghut's symbol pattern"
        raise ValueError(msg)

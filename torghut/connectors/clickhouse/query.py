"""torghut's incremental signal query as pure data: the cursor, the SQL, its bound parameters.

The SQL reproduces ``ClickHouseSignalIngestor``'s WHERE / ORDER BY / LIMIT (contracts section 1.2), with
every value bound server-side as a ``{name:Type}`` parameter instead of being formatted into the text.

>>> from datetime import UTC, datetime
>>> cursor = SignalCursor(datetime(2026, 2, 19, 14, 30, 5, tzinfo=UTC), cursor_seq=7)
>>> q = build_signal_query(TableRef("torghut", "ta_signals"), ("event_ts", "symbol", "seq"), cursor, 500)
>>> q.sql.split(" WHERE ")[1]
"event_ts > {cursor_at:DateTime64(3, 'UTC')} OR (event_ts = {cursor_at:DateTime64(3, 'UTC')} AND \
seq > {cursor_seq:UInt64}) ORDER BY event_ts ASC, symbol ASC, seq ASC LIMIT {limit:UInt32}"
>>> q.parameters["cursor_at"], q.parameters["cursor_seq"], q.parameters["limit"]
('2026-02-19 14:30:05.000', 7, 500)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from torghut.connectors.clickhouse.schema import TableRef

SYMBOL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,31}$")
"""torghut's symbol validation regex."""

_TS_TYPE = "DateTime64(3, 'UTC')"

CursorRule = Literal["exact", "torghut"]
"""How a non-empty batch moves the cursor: see :func:`next_cursor` and :func:`scan_cursor`."""


def is_valid_symbol(symbol: str) -> bool:
    """Return whether ``symbol`` matches torghut's symbol regex.

    >>> is_valid_symbol("BRK.B"), is_valid_symbol("bad symbol")
    (True, False)
    """
    return SYMBOL_PATTERN.match(symbol) is not None


def format_ch_ts(value: datetime) -> str:
    """Format a timestamp as ClickHouse sends ``DateTime64(3, 'UTC')``: ``YYYY-MM-DD HH:MM:SS.mmm`` in UTC.

    Naive values are taken as UTC; sub-millisecond digits are truncated, as torghut does.

    >>> format_ch_ts(datetime(2026, 2, 19, 14, 30, 5, 250999, tzinfo=UTC))
    '2026-02-19 14:30:05.250'
    """
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ", "milliseconds")


def parse_ch_ts(value: str | datetime) -> datetime:
    """Parse a ClickHouse timestamp string (or a datetime) into a tz-aware UTC datetime.

    >>> parse_ch_ts("2026-02-19 14:30:05.250")
    datetime.datetime(2026, 2, 19, 14, 30, 5, 250000, tzinfo=datetime.timezone.utc)
    """
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class SignalCursor:
    """torghut's ingest cursor ``(cursor_at, cursor_seq, cursor_symbol)``; ``cursor_at`` is tz-aware UTC.

    Only millisecond precision is meaningful: the column is ``DateTime64(3)``.
    """

    cursor_at: datetime
    cursor_seq: int | None = None
    cursor_symbol: str | None = None

    def __post_init__(self) -> None:
        if self.cursor_at.tzinfo is None:
            msg = f"cursor_at must be tz-aware UTC, got naive {self.cursor_at!r}"
            raise ValueError(msg)

    def describe(self) -> str:
        """The cursor as an operator reads it.

        >>> from datetime import UTC
        >>> SignalCursor(datetime(2026, 2, 19, 14, 39, 59, tzinfo=UTC), 600, "XOM").describe()
        '2026-02-19T14:39:59.000Z seq 600 XOM'
        """
        at = self.cursor_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        seq = "" if self.cursor_seq is None else f" seq {self.cursor_seq}"
        return f"{at}{seq}{'' if self.cursor_symbol is None else ' ' + self.cursor_symbol}"


@dataclass(frozen=True, slots=True)
class Shard:
    """One symbol shard: the rows with ``cityHash64(symbol) % count = index``.

    ``cityHash64`` is stable across ClickHouse versions and servers, so a shard is the same set of
    symbols wherever the query runs.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            msg = f"shard index must be in [0, count) with count >= 1, got {self.index} of {self.count}"
            raise ValueError(msg)

    @property
    def label(self) -> str:
        """The partition name, e.g. ``shard-2-of-4``."""
        return f"shard-{self.index}-of-{self.count}"


@dataclass(frozen=True, slots=True)
class SignalQuery:
    """A SQL text with ``{name:Type}`` placeholders and the values bound to them server-side."""

    sql: str
    parameters: Mapping[str, Any]


def _cursor_predicate(time_column: str, cursor: SignalCursor) -> tuple[str, dict[str, Any]]:
    at = f"{{cursor_at:{_TS_TYPE}}}"
    params: dict[str, Any] = {"cursor_at": format_ch_ts(cursor.cursor_at)}
    after = f"{time_column} > {at}"
    symbol, seq = cursor.cursor_symbol, cursor.cursor_seq
    if symbol is not None:
        params["cursor_symbol"] = symbol
    if seq is not None:
        params["cursor_seq"] = seq
    if symbol is not None and seq is not None:
        tie = (
            "symbol > {cursor_symbol:String} OR "
            "(symbol = {cursor_symbol:String} AND seq > {cursor_seq:UInt64})"
        )
        return f"{after} OR ({time_column} = {at} AND ({tie}))", params
    if symbol is not None:
        return f"{after} OR ({time_column} = {at} AND symbol > {{cursor_symbol:String}})", params
    if seq is not None:
        return f"{after} OR ({time_column} = {at} AND seq > {{cursor_seq:UInt64}})", params
    return after, params


def _filters(
    time_column: str, shard: Shard | None, until: datetime | None
) -> tuple[list[str], dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if shard is not None and shard.count > 1:
        clauses.append("cityHash64(symbol) % {shard_count:UInt32} = {shard_index:UInt32}")
        params.update(shard_count=shard.count, shard_index=shard.index)
    if until is not None:
        clauses.append(f"{time_column} <= {{until:{_TS_TYPE}}}")
        params["until"] = format_ch_ts(until)
    return clauses, params


def _from(table: TableRef, final: bool) -> tuple[str, dict[str, Any]]:
    text = "FROM {database:Identifier}.{table:Identifier}" + (" FINAL" if final else "")
    return text, {"database": table.database, "table": table.table}


def build_signal_query(
    table: TableRef,
    columns: Sequence[str],
    cursor: SignalCursor,
    batch_size: int,
    *,
    time_column: str = "event_ts",
    shard: Shard | None = None,
    until: datetime | None = None,
    final: bool = False,
) -> SignalQuery:
    """Build torghut's incremental query for the rows after ``cursor``.

    The cursor predicate has torghut's four cases: ``(time, symbol, seq)`` tuple order when both symbol
    and seq are known, ``symbol > S`` or ``seq > Q`` within the cursor's timestamp when only one is, and
    a plain ``time > C`` when neither is. With no shard (or one shard), no ``until`` and no ``final`` the
    text is exactly torghut's; otherwise the cursor predicate is parenthesised and the extra filters are
    ANDed on.

    Args:
        table: The signal table.
        columns: The selected columns (see :func:`~torghut.connectors.clickhouse.schema.select_columns`).
        cursor: Rows strictly after this cursor are read.
        batch_size: ``LIMIT`` (torghut's ``TRADING_SIGNAL_BATCH_SIZE``, default 500).
        time_column: ``event_ts`` (or ``ts`` for old flat tables).
        shard: Restrict to one symbol shard.
        until: Inclusive upper bound on the time column, for replaying a fixed range.
        final: Read with ``FINAL`` (ReplacingMergeTree de-duplication at read time; torghut does not).
    """
    if batch_size < 1:
        msg = f"batch_size must be >= 1, got {batch_size}"
        raise ValueError(msg)
    source, params = _from(table, final)
    predicate, cursor_params = _cursor_predicate(time_column, cursor)
    params.update(cursor_params)
    clauses, filter_params = _filters(time_column, shard, until)
    params.update(filter_params)
    where = " AND ".join([f"({predicate})", *clauses]) if clauses else predicate
    params["limit"] = batch_size
    sql = (
        f"SELECT {', '.join(columns)} {source} WHERE {where} "
        f"ORDER BY {time_column} ASC, symbol ASC, seq ASC LIMIT {{limit:UInt32}}"
    )
    return SignalQuery(sql, params)


def build_latest_query(
    table: TableRef, *, time_column: str = "event_ts", shard: Shard | None = None
) -> SignalQuery:
    """Build the ``max(time)`` query every poll starts with (``NULL`` rather than 1970 when empty).

    >>> build_latest_query(TableRef("torghut", "ta_signals")).sql
    'SELECT maxOrNull(event_ts) FROM {database:Identifier}.{table:Identifier}'
    """
    source, params = _from(table, final=False)
    clauses, filter_params = _filters(time_column, shard, None)
    params.update(filter_params)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return SignalQuery(f"SELECT maxOrNull({time_column}) {source}{where}", params)


def next_cursor(rows: Iterable[Mapping[str, Any]], *, time_column: str = "event_ts") -> SignalCursor | None:
    """Return torghut's cursor after a non-empty batch, or ``None`` for an empty one.

    torghut's tie-break: the largest time, then within it the largest ``seq``, ties on ``seq`` broken by
    the lexically larger symbol. Rows are in JSONEachRow shape (timestamp strings, ``seq`` as a string)
    or typed. Note this cursor can sit before the batch's last row in scan order when a batch ends
    inside a timestamp shared by several symbols; the next query then re-reads rows (never loses one).
    :func:`scan_cursor` is the exact alternative.

    >>> rows = [
    ...     {"event_ts": "2026-02-19 14:30:05.000", "symbol": "AAPL", "seq": "9"},
    ...     {"event_ts": "2026-02-19 14:30:05.000", "symbol": "MSFT", "seq": "3"},
    ... ]
    >>> next_cursor(rows).cursor_symbol
    'AAPL'
    """
    best: tuple[datetime, int, str] | None = None
    for row in rows:
        key = (parse_ch_ts(row[time_column]), int(row["seq"]), str(row["symbol"]))
        if best is None or key > best:
            best = key
    return None if best is None else SignalCursor(best[0], cursor_seq=best[1], cursor_symbol=best[2])


def scan_cursor(rows: Sequence[Mapping[str, Any]], *, time_column: str = "event_ts") -> SignalCursor | None:
    """Return the position of the batch's last row in ``ORDER BY time, symbol, seq`` order.

    Fed back into :func:`build_signal_query`, this reads exactly the rows after the batch: no re-reads at
    shared timestamps.

    >>> scan_cursor([{"event_ts": "2026-02-19 14:30:05.000", "symbol": "MSFT", "seq": "3"}]).cursor_seq
    3
    """
    if not rows:
        return None
    last = rows[-1]
    return SignalCursor(
        parse_ch_ts(last[time_column]), cursor_seq=int(last["seq"]), cursor_symbol=str(last["symbol"])
    )

"""torghut's ingest cursor (``trade_cursor``): one row per source, ``(cursor_at, cursor_seq, cursor_symbol)``.

Same semantics as torghut's ``commit_cursor``: an upsert of the source's row, which may move the cursor
forward or back (a rewind is legitimate), and nothing at all when ``cursor_at`` is None.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

Connection = psycopg.Connection[tuple[object, ...]]

_UPSERT = """
INSERT INTO trade_cursor (source, cursor_at, cursor_seq, cursor_symbol)
VALUES (%s, %s, %s, %s)
ON CONFLICT (source) DO UPDATE SET
    cursor_at = EXCLUDED.cursor_at,
    cursor_seq = EXCLUDED.cursor_seq,
    cursor_symbol = EXCLUDED.cursor_symbol,
    updated_at = now()
WHERE (trade_cursor.cursor_at, trade_cursor.cursor_seq, trade_cursor.cursor_symbol)
    IS DISTINCT FROM (EXCLUDED.cursor_at, EXCLUDED.cursor_seq, EXCLUDED.cursor_symbol)
"""


@dataclass(frozen=True, slots=True)
class TradeCursor:
    """A source's ingest position: the last processed ``(event_ts, seq, symbol)``."""

    source: str
    cursor_at: datetime | None
    cursor_seq: int | None = None
    cursor_symbol: str | None = None


def commit_cursor(
    conn: Connection,
    source: str,
    cursor_at: datetime | None,
    cursor_seq: int | None = None,
    cursor_symbol: str | None = None,
) -> bool:
    """Upsert ``source``'s cursor in the current transaction (the caller commits with its data).

    Args:
        conn: An open connection.
        source: The cursor's source name (torghut uses ``"clickhouse"``).
        cursor_at: The last processed event time; None commits nothing.
        cursor_seq: The last processed sequence number at ``cursor_at``.
        cursor_symbol: The last processed symbol at ``(cursor_at, cursor_seq)``.

    Returns:
        Whether the stored row changed.
    """
    if cursor_at is None:
        return False
    with conn.transaction():
        result = conn.execute(_UPSERT, (source, cursor_at, cursor_seq, cursor_symbol))
        return result.rowcount > 0


def load_cursor(conn: Connection, source: str) -> TradeCursor | None:
    """Return ``source``'s committed cursor, or None when it has none."""
    row = conn.execute(
        "SELECT cursor_at, cursor_seq, cursor_symbol FROM trade_cursor WHERE source = %s", (source,)
    ).fetchone()
    if row is None:
        return None
    cursor_at, cursor_seq, cursor_symbol = row
    if not isinstance(cursor_at, datetime):
        msg = f"trade_cursor.cursor_at of {source!r} is {cursor_at!r}, expected a timestamp"
        raise TypeError(msg)
    return TradeCursor(
        source,
        cursor_at,
        None if cursor_seq is None else int(str(cursor_seq)),
        None if cursor_symbol is None else str(cursor_symbol),
    )

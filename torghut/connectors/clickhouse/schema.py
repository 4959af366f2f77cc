"""The ``ta_signals`` table: its DDL for a single node, and the columns torghut's ingestor selects from it.

The DDL follows torghut's ``ta-schema.sql`` (contracts section 1.1) with the replicated engine replaced by
``ReplacingMergeTree(ingest_ts)``: the row with the newest ``ingest_ts`` still wins on merge, and the
partition and sort keys are the same.

>>> select_columns(["symbol", "event_ts", "seq", "is_final", "macd", "boll_upper", "boll_mid"])
('event_ts', 'symbol', 'seq', 'macd', 'boll_upper', 'boll_mid')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

DEFAULT_SIGNAL_TABLE = "torghut.ta_signals"
"""torghut's ``TRADING_SIGNAL_TABLE`` default."""

INDICATOR_COLUMNS: tuple[str, ...] = (
    "macd",
    "macd_signal",
    "macd_hist",
    "ema12",
    "ema26",
    "rsi14",
    "boll_mid",
    "boll_upper",
    "boll_lower",
    "vwap_session",
    "vwap_w5m",
    "imbalance_spread",
    "imbalance_bid_px",
    "imbalance_ask_px",
)

TA_SIGNALS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("symbol", "LowCardinality(String)"),
    ("event_ts", "DateTime64(3, 'UTC')"),
    ("seq", "UInt64"),
    ("ingest_ts", "DateTime64(3, 'UTC')"),
    ("is_final", "UInt8"),
    ("source", "LowCardinality(String)"),
    ("window_size", "LowCardinality(String)"),
    ("window_step", "Nullable(String)"),
    ("window_start", "Nullable(DateTime64(3, 'UTC'))"),
    ("window_end", "Nullable(DateTime64(3, 'UTC'))"),
    ("version", "UInt32"),
    *((name, "Nullable(Float64)") for name in INDICATOR_COLUMNS),
    ("imbalance_bid_sz", "Nullable(UInt64)"),
    ("imbalance_ask_sz", "Nullable(UInt64)"),
    ("vol_realized_w60s", "Nullable(Float64)"),
)
"""The V3 ``ta_signals`` columns and their ClickHouse types, in DDL order."""

MICROSTRUCTURE_COLUMN = ("microstructure_signal_v1", "Nullable(String)")
"""The column HEAD adds with ``ADD COLUMN IF NOT EXISTS``."""

# torghut's fixed wish-list (contracts section 1.2); "boll_*" takes the table's boll_ columns in table order.
_WISH_LIST: tuple[str, ...] = (
    "event_ts",
    "ts",
    "ingest_ts",
    "symbol",
    "payload",
    "window",
    "window_size",
    "window_step",
    "seq",
    "source",
    "timeframe",
    "macd",
    "macd_signal",
    "macd_hist",
    "signal",
    "rsi",
    "rsi14",
    "ema",
    "ema12",
    "ema26",
    "vwap",
    "vwap_session",
    "vwap_w5m",
    "boll_*",
    "imbalance_spread",
    "vol_realized_w60s",
    "signal_json",
    "close",
    "price",
    "spread",
    "imbalance_bid_px",
    "imbalance_ask_px",
)


@dataclass(frozen=True, slots=True)
class TableRef:
    """A ``database.table`` name, each part a plain identifier (bound server-side as ``Identifier``)."""

    database: str
    table: str

    @classmethod
    def parse(cls, name: str) -> TableRef:
        """Parse ``database.table``.

        Raises:
            ValueError: when the name is not two plain identifiers joined by a dot.
        """
        parts = name.split(".")
        if len(parts) != 2 or not all(_IDENTIFIER.match(part) for part in parts):
            msg = f"signal table must be 'database.table' of plain identifiers, got {name!r}"
            raise ValueError(msg)
        return cls(parts[0], parts[1])

    def __str__(self) -> str:
        return f"{self.database}.{self.table}"


def time_column_of(table_columns: Sequence[str]) -> str:
    """Return torghut's time column: ``event_ts`` if the table has it, else ``ts``.

    Raises:
        ValueError: when the table has neither.
    """
    for name in ("event_ts", "ts"):
        if name in table_columns:
            return name
    msg = f"signal table has neither 'event_ts' nor 'ts' among its columns {list(table_columns)}"
    raise ValueError(msg)


def select_columns(table_columns: Sequence[str]) -> tuple[str, ...]:
    """Return torghut's wish-list intersected with ``table_columns``, in wish-list order.

    The time column comes first (``event_ts``, else ``ts``); ``boll_*`` expands to the table's ``boll_``
    columns in table order.
    """
    present = set(table_columns)
    selected: list[str] = [time_column_of(table_columns)]
    for wish in _WISH_LIST:
        if wish.endswith("*"):
            candidates = [name for name in table_columns if name.startswith(wish[:-1])]
        else:
            candidates = [wish] if wish in present else []
        selected.extend(name for name in candidates if name not in selected)
    return tuple(selected)


def ta_signals_ddl(
    table: TableRef,
    *,
    ttl_days: int | None = 14,
    with_microstructure: bool = False,
) -> str:
    """Return the single-node ``CREATE TABLE IF NOT EXISTS`` statement for ``ta_signals``.

    Args:
        table: Where to create it (torghut's is ``torghut.ta_signals``).
        ttl_days: ``event_ts`` time to live (14 at V3, 35 at HEAD); ``None`` for no TTL, which tests
            holding fixed historical data need.
        with_microstructure: Add HEAD's ``microstructure_signal_v1`` column.
    """
    columns = list(TA_SIGNALS_COLUMNS)
    if with_microstructure:
        columns.append(MICROSTRUCTURE_COLUMN)
    body = ",\n".join(f"    {name} {ch_type}" for name, ch_type in columns)
    ttl = "" if ttl_days is None else f"TTL toDateTime(event_ts) + INTERVAL {int(ttl_days)} DAY\n"
    return (
        f"CREATE TABLE IF NOT EXISTS {table.database}.{table.table}\n(\n{body}\n)\n"
        "ENGINE = ReplacingMergeTree(ingest_ts)\n"
        "PARTITION BY toDate(event_ts)\n"
        "ORDER BY (symbol, event_ts, seq)\n"
        f"{ttl}"
        "SETTINGS index_granularity = 8192"
    )


def create_ta_signals(
    client: Any,
    table: TableRef | str = DEFAULT_SIGNAL_TABLE,
    *,
    ttl_days: int | None = 14,
    with_microstructure: bool = False,
) -> TableRef:
    """Create the database and the ``ta_signals`` table if they do not exist, and return the table.

    Args:
        client: A clickhouse-connect ``Client`` (HTTP or ``chdb://``).
        table: ``database.table`` to create.
        ttl_days: See :func:`ta_signals_ddl`.
        with_microstructure: See :func:`ta_signals_ddl`.
    """
    ref = table if isinstance(table, TableRef) else TableRef.parse(table)
    client.command(f"CREATE DATABASE IF NOT EXISTS {ref.database}")
    client.command(ta_signals_ddl(ref, ttl_days=ttl_days, with_microstructure=with_microstructure))
    return ref


def table_columns(client: Any, table: TableRef) -> tuple[str, ...]:
    """Return the table's column names in table order, read from ``system.columns``.

    Raises:
        ValueError: when the table does not exist (or has no columns).
    """
    result = client.query(
        "SELECT name FROM system.columns WHERE database = {database:String} AND table = {table:String} "
        "ORDER BY position",
        parameters={"database": table.database, "table": table.table},
    )
    names = tuple(str(row[0]) for row in result.result_rows)
    if not names:
        msg = f"signal table {table} does not exist: create it with create_ta_signals() or fix the name"
        raise ValueError(msg)
    return names

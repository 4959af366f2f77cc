"""Idempotent batched writes: each batch is COPYed into a temporary table, then merged with one INSERT.

Every function writes its whole batch in one transaction (a savepoint when the caller already holds one)
and is keyed by a deterministic id (see :mod:`torghut.connectors.postgres.rows`), so writing the same
batch again inserts nothing and changes nothing. Append-only records use ``ON CONFLICT DO NOTHING``;
records that legitimately evolve (catalog entries, executions) are updated only when a column differs,
and an execution only by a report at least as recent as the stored one.

Each function returns the number of rows it inserted or changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from torghut.connectors.postgres import rows
from torghut.contracts.account import AccountSnapshot
from torghut.contracts.decision import Rejection, TradeDecision
from torghut.contracts.execution import ExecutionReport
from torghut.contracts.portfolio import PortfolioIntent, SymbolIntent
from torghut.contracts.signal import DeadLetter
from torghut.contracts.strategy import StrategyDefinition, StrategyIntent

Connection = psycopg.Connection[tuple[object, ...]]


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    columns: tuple[str, ...]
    # The ON CONFLICT clause, in terms of the target table and EXCLUDED.
    on_conflict: str = "DO NOTHING"


def _changed(table: str, columns: Sequence[str]) -> str:
    target = ", ".join(f"{table}.{c}" for c in columns)
    excluded = ", ".join(f"EXCLUDED.{c}" for c in columns)
    return f"({target}) IS DISTINCT FROM ({excluded})"


def _update(table: str, key: str, columns: Sequence[str], extra_set: str = "", extra_where: str = "") -> str:
    assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
    where = _changed(table, columns) + (f" AND {extra_where}" if extra_where else "")
    return f"({key}) DO UPDATE SET {assignments}{extra_set} WHERE {where}"


_STRATEGY_DATA = (
    "name",
    "description",
    "enabled",
    "base_timeframe",
    "universe_type",
    "universe_symbols",
    "max_position_pct_equity",
    "max_notional_per_trade",
)
STRATEGIES = _Table(
    "strategies",
    ("id", *_STRATEGY_DATA),
    _update("strategies", "id", _STRATEGY_DATA, ", updated_at = now()"),
)
STRATEGY_PLACEHOLDERS = _Table("strategies", STRATEGIES.columns)
STRATEGY_VERSIONS = _Table(
    "strategy_versions",
    ("strategy_id", "strategy_type", "version", "parameter_hash", "first_seen"),
    "(strategy_id, strategy_type, version, parameter_hash) DO UPDATE SET first_seen = EXCLUDED.first_seen "
    "WHERE EXCLUDED.first_seen < strategy_versions.first_seen",
)
STRATEGY_INTENTS = _Table(
    "strategy_intents",
    (
        "id",
        "strategy_id",
        "symbol",
        "event_ts",
        "seq",
        "direction",
        "confidence",
        "target_notional",
        "horizon",
        "strategy_type",
        "strategy_version",
        "parameter_hash",
        "feature_snapshot_hash",
        "input_position",
        "intent_json",
    ),
)
SYMBOL_INTENTS = _Table(
    "symbol_intents",
    (
        "id",
        "symbol",
        "event_ts",
        "window_end",
        "seq",
        "horizon",
        "direction",
        "confidence",
        "target_notional",
        "policy",
        "conflict",
        "source_strategy_ids",
        "intent_json",
    ),
)
PORTFOLIO_INTENTS = _Table(
    "portfolio_intents",
    (
        "id",
        "account",
        "symbol",
        "event_ts",
        "direction",
        "net_target_qty",
        "requested_qty",
        "approved_qty",
        "price",
        "status",
        "regime_label",
        "capacity_bucket",
        "allocator_trace",
        "intent_json",
    ),
)
DECISIONS = _Table(
    "trade_decisions",
    (
        "id",
        "strategy_id",
        "alpaca_account_label",
        "symbol",
        "timeframe",
        "decision_json",
        "rationale",
        "decision_hash",
        "status",
    ),
    "(decision_hash) DO NOTHING",
)
REJECTIONS = _Table(
    "rejections",
    ("id", "decision_hash", "stage", "symbol", "event_ts", "reasons", "gate_trace", "rejection_json"),
)
_EXECUTION_DATA = (
    "alpaca_account_label",
    "alpaca_order_id",
    "symbol",
    "side",
    "order_type",
    "time_in_force",
    "submitted_qty",
    "filled_qty",
    "avg_fill_price",
    "fee",
    "status",
    "execution_expected_adapter",
    "execution_actual_adapter",
    "raw_order",
    "last_update_at",
)
EXECUTIONS = _Table(
    "executions",
    ("id", "trade_decision_id", "client_order_id", *_EXECUTION_DATA),
    _update(
        "executions",
        "client_order_id",
        ("trade_decision_id", *_EXECUTION_DATA),
        ", updated_at = now()",
        "EXCLUDED.last_update_at >= executions.last_update_at",
    ),
)
POSITION_SNAPSHOTS = _Table(
    "position_snapshots",
    ("id", "alpaca_account_label", "as_of", "equity", "cash", "buying_power", "positions"),
)
DEAD_LETTERS = _Table(
    "dead_letters",
    ("id", "stage", "reason", "source", "source_partition", "source_offset", "symbol", "event_ts", "raw"),
)


def _stage_name(table: _Table) -> sql.Identifier:
    return sql.Identifier(f"_stage_{table.name}")


def _copy_to_stage(
    conn: Connection, table: _Table, batch: Sequence[rows.Row], columns: Sequence[str]
) -> None:
    stage = _stage_name(table)
    conn.execute(
        # Same columns as the table, no constraints: rows are checked when they reach the table.
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS SELECT * FROM {} WITH NO DATA"
        ).format(stage, sql.Identifier(table.name))
    )
    conn.execute(sql.SQL("TRUNCATE {}").format(stage))
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, names)) as copy:
        for row in batch:
            copy.write_row(row)


def _merge_staged(conn: Connection, table: _Table, select: sql.Composable) -> int:
    names = sql.SQL(", ").join(map(sql.Identifier, table.columns))
    # SQL text built from this module's constants only; every value travels through COPY.
    statement = sql.SQL("INSERT INTO {} ({}) {} ON CONFLICT {}").format(
        sql.Identifier(table.name),
        names,
        select,
        sql.SQL(table.on_conflict),
    )
    return conn.execute(statement).rowcount


def _merge(conn: Connection, table: _Table, batch: Sequence[rows.Row]) -> int:
    """COPY ``batch`` into the table's stage and INSERT it into the table; return the rows written."""
    if not batch:
        return 0
    with conn.transaction():
        _copy_to_stage(conn, table, batch, table.columns)
        names = sql.SQL(", ").join(map(sql.Identifier, table.columns))
        return _merge_staged(conn, table, sql.SQL("SELECT {} FROM {}").format(names, _stage_name(table)))


def upsert_strategies(conn: Connection, definitions: Iterable[StrategyDefinition]) -> int:
    """Insert or update catalog entries in torghut's ``strategies`` (keyed by the strategy id's uuid)."""
    unique = {r[0]: r for r in map(rows.strategy_row, definitions)}
    return _merge(conn, STRATEGIES, list(unique.values()))


def upsert_strategy_versions(conn: Connection, versions: Iterable[rows.StrategyVersion]) -> int:
    """Record strategy versions; an existing one keeps the earliest ``first_seen``."""
    earliest: dict[tuple[str, str, str, str], rows.StrategyVersion] = {}
    for version in versions:
        seen = earliest.get(version.key)
        if seen is None or version.first_seen < seen.first_seen:
            earliest[version.key] = version
    return _merge(conn, STRATEGY_VERSIONS, [rows.strategy_version_row(v) for v in earliest.values()])


def upsert_strategy_intents(conn: Connection, intents: Iterable[StrategyIntent]) -> int:
    """Insert strategy intents not yet stored (id: sha256 of the intent's canonical JSON)."""
    return _merge(conn, STRATEGY_INTENTS, [rows.strategy_intent_row(i) for i in intents])


def upsert_symbol_intents(conn: Connection, intents: Iterable[SymbolIntent]) -> int:
    """Insert aggregated symbol intents not yet stored."""
    return _merge(conn, SYMBOL_INTENTS, [rows.symbol_intent_row(i) for i in intents])


def upsert_portfolio_intents(conn: Connection, intents: Iterable[PortfolioIntent]) -> int:
    """Insert portfolio intents not yet stored."""
    return _merge(conn, PORTFOLIO_INTENTS, [rows.portfolio_intent_row(i) for i in intents])


def upsert_decisions(conn: Connection, decisions: Iterable[TradeDecision]) -> int:
    """Insert trade decisions not yet stored (unique ``decision_hash``); an existing decision is kept as is.

    A decision whose strategy has no ``strategies`` row gets a placeholder row (name = strategy id) so the
    foreign key holds; :func:`upsert_strategies` fills it in later.
    """
    batch = list(decisions)
    if not batch:
        return 0
    with conn.transaction():
        placeholders = {rows.strategy_uuid(d.strategy_id): d.strategy_id for d in batch}
        _merge(conn, STRATEGY_PLACEHOLDERS, [rows.placeholder_strategy_row(s) for s in placeholders.values()])
        return _merge(conn, DECISIONS, [rows.decision_row(d) for d in batch])


def upsert_rejections(conn: Connection, rejections: Iterable[Rejection]) -> int:
    """Insert rejections (with their gate trace); mark a stored ``planned`` decision ``rejected``.

    The decision's ``decision_json`` gains torghut's ``risk_reasons`` (the reasons joined with ``;``).
    """
    batch = [rows.rejection_row(r) for r in rejections]
    if not batch:
        return 0
    with conn.transaction():
        written = _merge(conn, REJECTIONS, batch)
        conn.execute(
            sql.SQL(
                "UPDATE trade_decisions d SET status = 'rejected', "
                "decision_json = d.decision_json || jsonb_build_object('risk_reasons', s.reasons) "
                "FROM {} s WHERE d.decision_hash = s.decision_hash AND d.status = 'planned'"
            ).format(_stage_name(REJECTIONS))
        )
        return written


def upsert_executions(conn: Connection, reports: Iterable[ExecutionReport]) -> int:
    """Insert or update executions by ``client_order_id``, newest report wins; mirror status to decisions.

    ``trade_decision_id`` links the decision whose hash is the client order id. A report older than the
    stored one (by ``event_ts``) changes nothing.
    """
    latest: dict[str, ExecutionReport] = {}
    for report in reports:
        seen = latest.get(report.client_order_id)
        if seen is None or report.event_ts >= seen.event_ts:
            latest[report.client_order_id] = report
    if not latest:
        return 0
    stage = _stage_name(EXECUTIONS)
    staged = tuple(c for c in EXECUTIONS.columns if c != "trade_decision_id")
    select = sql.SQL(
        "SELECT {} FROM {} s LEFT JOIN trade_decisions d ON d.decision_hash = s.client_order_id"
    ).format(
        sql.SQL(", ").join(
            sql.SQL("d.id") if c == "trade_decision_id" else sql.SQL("s.{}").format(sql.Identifier(c))
            for c in EXECUTIONS.columns
        ),
        stage,
    )
    batch = [rows.execution_row(r) for r in latest.values()]
    with conn.transaction():
        _copy_to_stage(conn, EXECUTIONS, batch, staged)
        written = _merge_staged(conn, EXECUTIONS, select)
        conn.execute(
            sql.SQL(
                "UPDATE trade_decisions d SET status = e.status FROM executions e JOIN {} s "
                "ON s.client_order_id = e.client_order_id "
                "WHERE d.id = e.trade_decision_id AND d.status IS DISTINCT FROM e.status"
            ).format(stage)
        )
        return written


def upsert_position_snapshots(conn: Connection, snapshots: Iterable[AccountSnapshot]) -> int:
    """Insert broker position snapshots not yet stored (keyed by account and as-of time)."""
    unique = {r[0]: r for r in map(rows.position_snapshot_row, snapshots)}
    return _merge(conn, POSITION_SNAPSHOTS, list(unique.values()))


def insert_dead_letters(conn: Connection, letters: Iterable[DeadLetter]) -> int:
    """Insert dead letters not yet stored (id from stage, input position and reason)."""
    return _merge(conn, DEAD_LETTERS, [rows.dead_letter_row(d) for d in letters])

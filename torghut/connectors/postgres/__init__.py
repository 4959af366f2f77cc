"""PostgreSQL persistence: torghut's tables plus the engine's own, idempotent batched sinks, a local server.

* :func:`migrate` applies the versioned SQL migrations in ``migrations/``.
* ``upsert_*`` / :func:`insert_dead_letters` write one batch each, idempotently.
* :func:`commit_cursor` / :func:`load_cursor` keep torghut's ``trade_cursor``.
* :func:`set_control` / :func:`load_controls` keep the runtime ``trading_control`` (kill switch, trading
  switch); :class:`PostgresControlSource` reads it before every order, failing closed.
* :class:`PostgresSink` buffers mixed records and writes a batch per transaction, retrying lost
  connections; :class:`PostgresDynamicSink` is its bytewax wrapper.
* :class:`LocalPostgres` starts a throw-away server on 127.0.0.1 (``scripts/pg.sh`` from a shell).
"""

from torghut.connectors.postgres.control import (
    ControlRow,
    PostgresControlSource,
    control_state,
    load_controls,
    set_control,
)
from torghut.connectors.postgres.cursor import TradeCursor, commit_cursor, load_cursor
from torghut.connectors.postgres.rows import StrategyVersion, decision_uuid, strategy_uuid
from torghut.connectors.postgres.schema import MigrationError, applied_versions, load_migrations, migrate
from torghut.connectors.postgres.server import LocalPostgres, PostgresServerError, find_bin_dir
from torghut.connectors.postgres.sink import PersistenceError, PostgresDynamicSink, PostgresSink
from torghut.connectors.postgres.upserts import (
    insert_dead_letters,
    upsert_decisions,
    upsert_executions,
    upsert_portfolio_intents,
    upsert_position_snapshots,
    upsert_rejections,
    upsert_strategies,
    upsert_strategy_intents,
    upsert_strategy_versions,
    upsert_symbol_intents,
)

__all__ = [
    "ControlRow",
    "LocalPostgres",
    "MigrationError",
    "PersistenceError",
    "PostgresControlSource",
    "PostgresDynamicSink",
    "PostgresServerError",
    "PostgresSink",
    "StrategyVersion",
    "TradeCursor",
    "applied_versions",
    "commit_cursor",
    "control_state",
    "decision_uuid",
    "find_bin_dir",
    "insert_dead_letters",
    "load_controls",
    "load_cursor",
    "load_migrations",
    "migrate",
    "set_control",
    "strategy_uuid",
    "upsert_decisions",
    "upsert_executions",
    "upsert_portfolio_intents",
    "upsert_position_snapshots",
    "upsert_rejections",
    "upsert_strategies",
    "upsert_strategy_intents",
    "upsert_strategy_versions",
    "upsert_symbol_intents",
]

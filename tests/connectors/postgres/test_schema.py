from __future__ import annotations

import threading

import psycopg
import pytest

from torghut.connectors.postgres import MigrationError, applied_versions, load_migrations, migrate

ENGINE_TABLES = {
    "strategies",
    "trade_decisions",
    "executions",
    "trade_cursor",
    "position_snapshots",
    "strategy_versions",
    "strategy_intents",
    "symbol_intents",
    "portfolio_intents",
    "rejections",
    "dead_letters",
    "trading_control",
    "order_intents",
    "schema_migrations",
}


def tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {str(r[0]) for r in rows}


def test_migrations_are_numbered_from_one() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))
    assert [m.name for m in load_migrations()][:2] == ["torghut_tables", "engine_tables"]


def test_migrate_applies_everything_then_nothing(empty_dsn: str) -> None:
    everything = [m.version for m in load_migrations()]
    assert migrate(empty_dsn) == everything
    assert tables(empty_dsn) == ENGINE_TABLES
    assert migrate(empty_dsn) == []
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        assert migrate(conn) == []
        assert applied_versions(conn) == everything


def test_applied_versions_of_an_empty_database(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn) as conn:
        assert applied_versions(conn) == []


def test_concurrent_migrations_apply_each_version_once(empty_dsn: str) -> None:
    results: list[list[int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            barrier.wait()
            results.append(migrate(empty_dsn))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(v for r in results for v in r) == [m.version for m in load_migrations()]


def test_an_edited_applied_migration_is_refused(empty_dsn: str) -> None:
    migrate(empty_dsn)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 1")
        with pytest.raises(MigrationError, match="0001_torghut_tables was changed after it was applied"):
            migrate(conn)


def test_trade_decisions_default_status_and_unique_hash(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute("INSERT INTO strategies (id, name) VALUES (gen_random_uuid(), 's')")
    insert = (
        "INSERT INTO trade_decisions (strategy_id, symbol, timeframe, decision_json, decision_hash) "
        "SELECT id, 'AAPL', '1Min', '{}'::jsonb, %s FROM strategies"
    )
    conn.execute(insert, ("h" * 64,))
    row = conn.execute("SELECT status FROM trade_decisions").fetchone()
    assert row == ("planned",)
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(insert, ("h" * 64,))

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.connectors.postgres.support import free_port
from torghut.connectors.postgres import LocalPostgres, PostgresServerError

PG_SH = Path(__file__).resolve().parents[3] / "scripts" / "pg.sh"


@pytest.fixture
def directory() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="torghut-pg-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pg_sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PG_SH), *args], check=False, capture_output=True, text=True)


def select_one(dsn: str) -> object:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT 1").fetchone()
    return None if row is None else row[0]


def test_pg_sh_start_is_idempotent_and_stop_too(directory: Path) -> None:
    port = free_port()
    first = pg_sh("start", str(directory), str(port))
    try:
        assert first.returncode == 0, first.stderr
        dsn = first.stdout.strip()
        assert dsn == f"postgresql://postgres@127.0.0.1:{port}/postgres"
        assert select_one(dsn) == 1
        again = pg_sh("start", str(directory), str(port))
        assert (again.returncode, again.stdout.strip()) == (0, dsn)
    finally:
        stop = pg_sh("stop", str(directory))
    assert stop.returncode == 0, stop.stderr
    with pytest.raises(psycopg.OperationalError):
        select_one(dsn)
    assert pg_sh("stop", str(directory)).returncode == 0


def test_local_postgres_restarts_on_its_existing_cluster(directory: Path) -> None:
    port = free_port()
    with LocalPostgres() as server:
        dsn = server.start(directory, port)
        assert server.start(directory, port) == dsn
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (7)")
        server.stop()
        server.stop()
        assert not server.is_running()
        server.start(directory, port)
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT x FROM kept").fetchall() == [(7,)]
    assert not server.is_running()


def test_a_port_in_use_fails_with_the_log(pg_server: LocalPostgres, directory: Path) -> None:
    assert pg_server.port is not None
    with pytest.raises(PostgresServerError, match=r"did not start on 127\.0\.0\.1"):
        LocalPostgres().start(directory, pg_server.port)

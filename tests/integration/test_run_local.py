"""``torghut run --once`` with no configuration, as a new user runs it: embedded chdb and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.connectors.postgres.support import free_port
from torghut.connectors.postgres import LocalPostgres

pytestmark = pytest.mark.integration

TORGHUT = Path(sys.executable).with_name("torghut")


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Under /tmp and world-traversable: the local PostgreSQL runs as the `postgres` OS user.
    directory = Path(tempfile.mkdtemp(prefix="torghut-run-local-"))
    directory.chmod(0o755)
    yield directory
    server = LocalPostgres()
    server.directory, server.port = directory / "var" / "postgres", 0
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


def test_e_run_once_on_embedded_defaults_leaves_decisions_and_paper_fills_in_postgres(workdir: Path) -> None:
    env = {**os.environ, "TORGHUT_METRICS_ADDRESS": "127.0.0.1:0", "COLUMNS": "200"}
    env.pop("TORGHUT_DATABASE_URL", None)
    done = subprocess.run(
        [str(TORGHUT), "run", "--once"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "seeded 12,000 sample signals" in done.stderr
    assert "stopped the local PostgreSQL" in done.stderr
    assert "decisions" in done.stdout

    server = LocalPostgres()
    try:
        dsn = server.start(workdir / "var" / "postgres", free_port())
        with psycopg.connect(dsn) as conn:
            decisions = conn.execute("SELECT count(*) FROM trade_decisions").fetchone()
            fills = conn.execute(
                "SELECT count(*) FROM executions WHERE status = 'filled' AND execution_actual_adapter = 'paper'"
            ).fetchone()
            cursor = conn.execute("SELECT cursor_at FROM trade_cursor WHERE source = 'clickhouse'").fetchone()
    finally:
        server.stop()
    assert decisions is not None and int(str(decisions[0])) > 0
    assert fills is not None and int(str(fills[0])) > 0
    assert cursor is not None
    assert f"{int(str(decisions[0])):,}" in done.stdout

    again = subprocess.run(
        [str(TORGHUT), "run", "--once"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stderr[-4000:]
    assert "reusing its signals" in again.stderr
    assert "start cursor" in again.stderr

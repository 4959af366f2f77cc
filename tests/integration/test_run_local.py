"""``torghut run --once`` with no configuration, as a new user runs it: embedded chdb and PostgreSQL."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.connectors.postgres.support import free_port
from tests.integration.support import dump_tables
from tests.procs import alive
from torghut.connectors.clickhouse import SignalCursor
from torghut.connectors.postgres import LocalPostgres, TradeCursor, load_cursor

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


def _stored(workdir: Path) -> tuple[dict[str, list[tuple[str, str]]], TradeCursor | None]:
    """Start the run's own PostgreSQL again and read every row (with its ``xmin``) and the cursor."""
    server = LocalPostgres()
    try:
        dsn = server.start(workdir / "var" / "postgres", free_port())
        with psycopg.connect(dsn) as conn:
            cursor = load_cursor(conn, "clickhouse")
        return dump_tables(dsn), cursor
    finally:
        server.stop()


def _run_once(workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TORGHUT), "run", "--once"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_e_run_once_on_embedded_defaults_leaves_decisions_and_paper_fills_in_postgres(workdir: Path) -> None:
    env = {**os.environ, "TORGHUT_METRICS_ADDRESS": "127.0.0.1:0", "COLUMNS": "200"}
    env.pop("TORGHUT_DATABASE_URL", None)
    done = _run_once(workdir, env)
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

    # "Run it again and it resumes from the stored cursor": the seeded signals are all behind that cursor,
    # so the second run starts exactly there, reads nothing, and leaves every row as it was: no row
    # added, none rewritten (same xmin), the cursor unchanged.
    rows_before, stored = _stored(workdir)
    assert stored is not None and stored.cursor_at is not None
    assert rows_before["trade_cursor"] and rows_before["trade_decisions"]

    again = _run_once(workdir, env)

    assert again.returncode == 0, again.stderr[-4000:]
    assert "reusing its signals" in again.stderr
    assert "seeded" not in again.stderr
    resumed = SignalCursor(stored.cursor_at, stored.cursor_seq, stored.cursor_symbol)
    assert f", resuming after the stored cursor {resumed.describe()}" in again.stderr
    rows_after, cursor_after = _stored(workdir)
    assert cursor_after == stored
    assert rows_after == rows_before
    first, second = _summary_rows(done.stdout), _summary_rows(again.stdout)
    assert {name: total for name, (_, total) in second.items()} == {n: t for n, (_, t) in first.items()}
    assert {name: added for name, (added, _) in first.items()} == {n: t for n, (_, t) in first.items()}
    assert all(added == 0 for added, _ in second.values()), second  # the second run added nothing


def _summary_rows(stdout: str) -> dict[str, tuple[int, int]]:
    """The run's summary table read from PostgreSQL: ``decisions``, ``orders``, ... -> (this run, in total)."""
    found = re.findall(r"^│ ([a-z ]+?) +│ +([0-9,]+) │ +([0-9,]+) │$", stdout, flags=re.MULTILINE)
    rows = {name: (int(added.replace(",", "")), int(total.replace(",", ""))) for name, added, total in found}
    assert {"decisions", "fills", "dead letters"} <= rows.keys(), stdout
    return rows


def _postmaster_alive(workdir: Path) -> bool:
    pid_file = workdir / "var" / "postgres" / "data" / "postmaster.pid"
    if not pid_file.exists():
        return False
    return alive(int(pid_file.read_text().split()[0]))


def test_sigterm_ends_a_running_service_and_stops_the_postgresql_it_started(workdir: Path) -> None:
    """``kill`` (or Kubernetes stopping the pod) ends ``torghut run`` as Ctrl-C does: nothing left running."""
    env = {**os.environ, "TORGHUT_METRICS_ADDRESS": "off", "COLUMNS": "200"}
    env.pop("TORGHUT_DATABASE_URL", None)
    proc = subprocess.Popen(
        [str(TORGHUT), "run"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        for line in proc.stdout:  # the service logs its set-up, then polls for new signals until stopped
            seen.append(line)
            if "adapter paper" in line:
                break
        assert _postmaster_alive(workdir), "".join(seen)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=120)  # a hang guard: the service stops at its next poll
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(seen) + rest
    assert proc.returncode == 143, output
    assert "terminated" in output and "stopped the local PostgreSQL" in output
    assert "Traceback" not in output
    assert not _postmaster_alive(workdir)

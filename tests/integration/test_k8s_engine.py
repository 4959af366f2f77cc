"""The Kubernetes deployment's engine container, run for real: the shipped ConfigMap, entrypoint and env.

The StatefulSet's init container and engine container are run here as the pod would run them (the
entrypoint script, the container's arguments, the environment Kubernetes builds from the ConfigMaps and the
``env`` list), with only what points outside the pod replaced: ClickHouse is the chdb HTTP front,
PostgreSQL the test server, the mounted files and the recovery volume live in a temporary directory, and
the deployment has one replica (the peers' pod DNS names do not resolve here). One change to ``--once``
and to the metrics address (127.0.0.1) lets the run end.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.connectors.clickhouse.support import http_client, start_front
from tests.test_deploy_artifacts import ENTRYPOINT, K8S, by_kind, engine_environment, kustomize, mounted_file
from torghut.connectors.clickhouse import TableRef, create_ta_signals
from torghut.connectors.clickhouse.reader import utc_now
from torghut.connectors.postgres import load_cursor
from torghut.connectors.synthetic.generator import TA_SIGNAL_COLUMNS, generate_rows
from torghut.dataflow.local import _typed
from torghut.dataflow.replay import free_addresses

pytestmark = pytest.mark.integration


def _container(docs: list[dict[str, Any]], init: bool) -> dict[str, Any]:
    spec = by_kind(docs, "StatefulSet")["spec"]["template"]["spec"]
    [container] = spec["initContainers" if init else "containers"]
    return dict(container)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, env=env, check=False, timeout=300
    )


def test_the_shipped_engine_container_runs_and_persists_with_recovery(tmp_path: Path, dsn: str) -> None:
    docs = kustomize(K8S)
    front = start_front(tmp_path)
    try:
        admin = http_client(front)
        table = create_ta_signals(admin, TableRef("torghut", "ta_signals"), ttl_days=None)
        start = utc_now().replace(microsecond=0) - timedelta(minutes=3)
        rows = [_typed(row) for row in generate_rows(4, 2, seed=5, start=start)]
        admin.insert(str(table), rows, column_names=list(TA_SIGNAL_COLUMNS))

        mounted = tmp_path / "etc-torghut"
        mounted.mkdir()
        engine = _container(docs, init=False)
        config_path = engine["args"][engine["args"].index("--config") + 1]
        (mounted / "engine.yaml").write_text(mounted_file(docs, config_path))
        env = engine_environment(docs)
        (mounted / "strategies.yaml").write_text(mounted_file(docs, env["TRADING_STRATEGY_CONFIG_PATH"]))
        recovery = tmp_path / "recovery"
        outside = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHON": sys.executable,
            "HOME": str(tmp_path),
            "POD_NAME": "torghut-engine-0",
            "POD_NAMESPACE": "torghut",
            "TORGHUT_REPLICAS": "1",
            "TA_CLICKHOUSE_URL": f"http://127.0.0.1:{front.port}",
            "TA_CLICKHOUSE_PASSWORD": "not-checked-by-the-front",
            "TORGHUT_DATABASE_URL": dsn,
            "TRADING_STRATEGY_CONFIG_PATH": str(mounted / "strategies.yaml"),
            "BYTEWAX_RECOVERY_DIRECTORY": str(recovery),
            "APCA_API_KEY_ID": "unused-by-the-paper-adapter",
            "APCA_API_SECRET_KEY": "unused-by-the-paper-adapter",
        }

        # The init container: this pod's share of the recovery partitions (all of them, one replica).
        init = _container(docs, init=True)
        init_env = {item["name"]: item.get("value", "") for item in init["env"]}
        init_env.update(outside, TORGHUT_RECOVERY_INIT_REPLICAS="1")
        made = _run(init["args"], init_env)
        assert made.returncode == 0, made.stderr
        partitions = int(init_env["TORGHUT_RECOVERY_PARTITIONS"])
        assert len(list(recovery.glob("part-*.sqlite3"))) == partitions

        # The engine container, with the ConfigMap's engine.yaml as it is shipped.
        args = list(engine["args"])
        args[args.index("--config") + 1] = str(mounted / "engine.yaml")
        args[args.index("--metrics-address") + 1] = free_addresses(1)[0]
        result = _run([*args, "--once"], {**env, **outside})
    finally:
        front.stop()

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert f"ClickHouse 127.0.0.1:{front.port} table torghut.ta_signals" in out
    assert f"recovery in {recovery}, snapshots every 30.0 s" in out
    assert "adapter paper" in out
    with psycopg.connect(dsn) as conn:
        decisions = conn.execute("SELECT count(*) FROM trade_decisions").fetchone()
        cursor = load_cursor(conn, "clickhouse")
    assert decisions is not None and int(str(decisions[0])) > 0
    ts = TA_SIGNAL_COLUMNS.index("event_ts")
    assert cursor is not None and cursor.cursor_at == max(row[ts] for row in rows)
    # The run snapshotted its state into the recovery volume (bytewax's own tables).
    snapshots = 0
    for part in recovery.glob("part-*.sqlite3"):
        with closing(sqlite3.connect(part)) as db:
            snapshots += int(db.execute("SELECT count(*) FROM snaps").fetchone()[0])
    assert snapshots > 0

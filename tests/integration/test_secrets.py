"""No secret leaks: not into logs at DEBUG, output, PostgreSQL, recovery files or ``repr`` of the config.

The service runs as a subprocess (``torghut run --once``, logging at DEBUG, stdout and stderr captured) and
once more in process (``caplog`` at DEBUG) with the Alpaca adapter against the local Alpaca-protocol
server, which accepts only the distinctive random key pair, and a PostgreSQL DSN carrying a random
password (trust authentication ignores it). Every secret is then searched for everywhere it could end up.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

from tests.conftest import EXAMPLES
from torghut.connectors.alpaca import AlpacaAdapter, AlpacaConfig
from torghut.connectors.alpaca_server import AlpacaTestServer
from torghut.connectors.postgres import PostgresDynamicSink
from torghut.dataflow.reconcile import PersistedOrderGuard
from torghut.dataflow.service import build_adapter, run_service
from torghut.dataflow.service_config import ClickHouseSourceConfig, load_service_config

pytestmark = pytest.mark.integration

KEY_ID = "AK" + secrets.token_hex(10).upper()
SECRET = "sk-" + secrets.token_urlsafe(24)
PG_PASSWORD = "pw" + secrets.token_hex(12)
CH_PASSWORD = "ch" + secrets.token_hex(12)
SECRETS = (KEY_ID, SECRET, PG_PASSWORD, CH_PASSWORD)

_DEBUG_RUN = (
    "import logging, sys\n"
    "logging.basicConfig(level=logging.DEBUG, format='%(asctime)s %(levelname)s %(name)s: %(message)s')\n"
    "from torghut.cli import main\n"
    "sys.argv = ['torghut', *sys.argv[1:]]\n"
    "main()\n"
)


def _leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [s for s in SECRETS if s.encode() in data]


def _with_password(dsn: str) -> str:
    user, rest = dsn.removeprefix("postgresql://").split("@", 1)
    return f"postgresql://{user}:{PG_PASSWORD}@{rest}"


def _every_row(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        tables = [
            str(r[0])
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
        ]
        dumps = [
            str(row[0])
            for table in tables
            for row in conn.execute(
                sql.SQL("SELECT to_jsonb(t)::text FROM {} t").format(sql.Identifier(table))
            ).fetchall()
        ]
    assert "executions" in tables
    return "\n".join(dumps)


def _env(base_url: str) -> dict[str, str]:
    return {
        "APCA_API_KEY_ID": KEY_ID,
        "APCA_API_SECRET_KEY": SECRET,
        "APCA_API_BASE_URL": base_url + "/v2",
        "TRADING_MODE": "paper",
    }


def _write_config(path: Path, signals: Path, dsn: str, recovery: Path) -> Path:
    data: dict[str, Any] = {
        "source": {"kind": "file", "path": str(signals)},
        "postgres": {"dsn": dsn, "max_attempts": 5, "backoff_max_s": 0.5},
        "adapter": {"kind": "alpaca"},
        "catalog": str(EXAMPLES / "strategies.yaml"),
        "metrics_address": None,
        "recovery_dir": str(recovery),
        "snapshot_interval_s": 0.2,
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def alpaca() -> Any:
    server = AlpacaTestServer(key_id=KEY_ID, secret=SECRET)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def few_signals(clean_signals: Path, tmp_path: Path) -> Path:
    path = tmp_path / "signals.jsonl"
    path.write_bytes(b"\n".join(clean_signals.read_bytes().splitlines()[:2400]) + b"\n")
    return path


def test_no_secret_in_logs_output_tables_recovery_files_or_reprs(
    dsn: str,
    alpaca: AlpacaTestServer,
    few_signals: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret_dsn = _with_password(dsn)
    recovery = tmp_path / "recovery"
    config_path = _write_config(tmp_path / "service.yaml", few_signals, secret_dsn, recovery)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("APCA_", "TORGHUT_", "BYTEWAX_")) and k != "TRADING_STRATEGY_CONFIG_PATH"
    }
    env.update(_env(alpaca.base_url))

    done = subprocess.run(
        [sys.executable, "-c", _DEBUG_RUN, "run", "--config", str(config_path), "--once"],
        capture_output=True,
        env=env,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output.decode(errors="replace")[-3000:]
    assert b" DEBUG " in done.stderr, "the run did not log at DEBUG"
    assert alpaca.stored_orders(), "no order reached the Alpaca server: the keys were not used"

    # In process, with caplog at DEBUG: the same configuration through run_service.
    for name, value in _env(alpaca.base_url).items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)
    config = load_service_config(config_path, {})
    in_process = tmp_path / "recovery-in-process"
    said: list[str] = []
    run_service(config.model_copy(update={"recovery_dir": in_process}), once=True, say=said.append)

    adapter = build_adapter(config)
    alpaca_config = AlpacaConfig.from_env()
    reprs = [
        repr(config),
        str(config),
        repr(config.postgres),
        config.model_dump_json(),
        repr(config.model_dump()),
        repr(alpaca_config),
        str(alpaca_config),
        alpaca_config.model_dump_json(),
        repr(AlpacaAdapter(alpaca_config)),
        repr(adapter),
        repr(PersistedOrderGuard(AlpacaAdapter(alpaca_config), secret_dsn)),
        repr(PostgresDynamicSink(secret_dsn)),
        config.postgres.describe(),
    ]
    clickhouse = ClickHouseSourceConfig(host="ch.internal", password=CH_PASSWORD)  # type: ignore[arg-type]
    reprs += [repr(clickhouse), clickhouse.describe(), clickhouse.model_dump_json()]

    recovery_bytes = b"".join(
        p.read_bytes() for d in (recovery, in_process) for p in d.rglob("*") if p.is_file()
    )
    assert recovery_bytes, "no recovery files were written"
    found = {
        "subprocess stdout and stderr": _leaks(output),
        "log records (caplog)": _leaks(caplog.text + "\n".join(r.getMessage() for r in caplog.records)),
        "progress lines": _leaks("\n".join(said)),
        "PostgreSQL tables": _leaks(_every_row(dsn)),
        "recovery files": _leaks(recovery_bytes),
        "reprs": _leaks("\n".join(reprs)),
    }
    assert {where: leaked for where, leaked in found.items() if leaked} == {}
    # The detector itself works: the configuration file does hold the password.
    assert _leaks(config_path.read_text(encoding="utf-8")) == [PG_PASSWORD]
    assert caplog.records, "nothing was logged in process"

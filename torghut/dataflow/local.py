"""The embedded local defaults of ``torghut run``: chdb as ClickHouse, a local PostgreSQL, the paper adapter.

Everything lives under ``<workdir>/var``:

* ``var/chdb``: an in-process ClickHouse (chdb through clickhouse-connect's ``chdb://`` DSN) holding
  ``torghut.ta_signals``, seeded with generated sample signals (:data:`SAMPLE_SYMBOLS` symbols x
  :data:`SAMPLE_MINUTES` minutes, seed :data:`SAMPLE_SEED`) when the table is empty;
* ``var/postgres``: a PostgreSQL cluster started with :class:`~torghut.connectors.postgres.LocalPostgres`
  on 127.0.0.1:55432 (or a free port when that one is taken), migrated at start. When the PostgreSQL OS
  user cannot traverse ``workdir`` (e.g. under ``/root``), the cluster goes to ``/tmp`` instead.

The sample signals are historical (the V3 reference day), so the source starts before the table's first
row (``start: earliest``, no fast-forward) instead of at ``now - lookback``.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import clickhouse_connect

import torghut
from torghut.connectors.clickhouse import DEFAULT_SIGNAL_TABLE, create_ta_signals
from torghut.connectors.postgres import LocalPostgres, PostgresServerError
from torghut.connectors.synthetic.generator import TA_SIGNAL_COLUMNS, generate_rows
from torghut.dataflow.service_config import (
    DATABASE_URL_ENV,
    DEFAULT_CATALOG,
    ServiceConfig,
    service_config_from_data,
)

SAMPLE_SYMBOLS = 20
SAMPLE_MINUTES = 10
SAMPLE_SEED = 7
DEFAULT_PG_PORT = 55432

_TIMESTAMPS = frozenset({"event_ts", "ingest_ts", "window_start", "window_end"})
_INTEGERS = frozenset({"seq", "imbalance_bid_sz", "imbalance_ask_sz", "is_final", "version"})


def example_catalog(workdir: Path) -> Path:
    """Return ``examples/strategies.yaml`` under ``workdir``, else the one beside the installed package."""
    local = workdir / DEFAULT_CATALOG
    if local.is_file():
        return local
    return Path(torghut.__file__).resolve().parents[1] / DEFAULT_CATALOG


def _typed(row: Mapping[str, Any]) -> list[Any]:
    # generate_rows yields JSONEachRow text (timestamps and UInt64 as strings); inserts want Python values.
    values: list[Any] = []
    for name in TA_SIGNAL_COLUMNS:
        value = row[name]
        if value is not None and name in _TIMESTAMPS:
            value = datetime.fromisoformat(value).replace(tzinfo=UTC)
        elif value is not None and name in _INTEGERS:
            value = int(value)
        values.append(value)
    return values


def _chunks(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[list[Any]]]:
    chunk: list[list[Any]] = []
    for row in rows:
        chunk.append(_typed(row))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def seed_signals(
    client: Any,
    table: str = DEFAULT_SIGNAL_TABLE,
    *,
    symbols: int = SAMPLE_SYMBOLS,
    minutes: int = SAMPLE_MINUTES,
    seed: int = SAMPLE_SEED,
) -> int:
    """Create ``table`` and fill it with generated sample signals when it is empty.

    Returns:
        The number of rows inserted (0 when the table already held rows).
    """
    ref = create_ta_signals(client, table, ttl_days=None)
    name = f"{ref.database}.{ref.table}"
    if int(client.query(f"SELECT count() FROM {name}").result_rows[0][0]):
        return 0
    inserted = 0
    for chunk in _chunks(generate_rows(symbols, minutes, seed), 20_000):
        client.insert(name, chunk, column_names=list(TA_SIGNAL_COLUMNS))
        inserted += len(chunk)
    return inserted


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _running_port(data_dir: Path) -> int | None:
    # postmaster.pid line 4 is the port of a running server.
    pid_file = data_dir / "postmaster.pid"
    try:
        return int(pid_file.read_text(encoding="utf-8").splitlines()[3])
    except (OSError, IndexError, ValueError):
        return None


def _pg_directory(workdir: Path) -> Path:
    preferred = workdir / "var" / "postgres"
    for parent in preferred.resolve().parents:
        if parent.exists() and not parent.stat().st_mode & 0o001 and os.geteuid() == 0:
            digest = hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:12]
            return Path("/tmp") / f"torghut-local-{digest}" / "postgres"
    return preferred


@dataclass
class LocalServices:
    """The local components ``torghut run`` started (or found running); :meth:`stop` stops what it started."""

    postgres: LocalPostgres
    postgres_dir: Path
    started_postgres: bool
    chdb_dsn: str
    clickhouse: Any
    seeded_rows: int

    def stop(self) -> None:
        """Stop the PostgreSQL server if this process started it."""
        if self.started_postgres:
            self.postgres.stop()


def start_local_services(workdir: Path) -> LocalServices:
    """Start (or reuse) the local PostgreSQL and chdb under ``workdir/var`` and seed the signals.

    Raises:
        PostgresServerError: PostgreSQL could not start; the message says why.
    """
    var = (workdir / "var").absolute()
    var.mkdir(parents=True, exist_ok=True)
    chdb_dir = var / "chdb"
    chdb_dsn = f"chdb://{chdb_dir}"
    client = clickhouse_connect.get_client(dsn=chdb_dsn)
    seeded = seed_signals(client)
    directory = _pg_directory(workdir)
    server = LocalPostgres()
    data_dir = directory / "data"
    port = _running_port(data_dir)
    started = port is None
    if port is None:
        port = DEFAULT_PG_PORT if _port_free(DEFAULT_PG_PORT) else _free_port()
    try:
        server.start(directory, port)
    except PostgresServerError:
        client.close()
        raise
    return LocalServices(server, directory, started, chdb_dsn, client, seeded)


def local_service_config(
    services: LocalServices, workdir: Path, environ: Mapping[str, str] | None = None
) -> ServiceConfig:
    """The service configuration of the embedded defaults (engine settings still follow ``TRADING_*``)."""
    env = dict(os.environ if environ is None else environ)
    env.pop(DATABASE_URL_ENV, None)  # the local default always uses the local server it started
    data = {
        "source": {
            "kind": "clickhouse",
            "dsn": services.chdb_dsn,
            "start": "earliest",
            "fast_forward": False,
            "batch_size": 5000,
            "poll_interval_s": 0.5,
        },
        "postgres": {"dsn": services.postgres.dsn, "max_attempts": 20},
        "catalog": str(example_catalog(workdir)),
    }
    return service_config_from_data(data, env, where=" (embedded defaults)")

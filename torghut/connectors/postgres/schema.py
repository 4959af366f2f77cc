"""Versioned SQL migrations (``migrations/NNNN_name.sql``) and ``migrate``, which applies the pending ones.

Applied versions are recorded in ``schema_migrations`` with the file's sha256, so an edited migration that
was already applied is refused rather than silently skipped. Each migration runs in its own transaction
under a transaction-level advisory lock, so two processes migrating at once apply each version once.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import re
from dataclasses import dataclass
from functools import cache

import psycopg

logger = logging.getLogger(__name__)

# An arbitrary constant shared by every process that migrates this schema ("torghut" in ASCII).
ADVISORY_LOCK_KEY = 0x746F72676875
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum char(64) NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migrations on disk and those recorded in the database disagree."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: its version, name, SQL text and the text's sha256."""

    version: int
    name: str
    sql: str
    checksum: str


@cache
def load_migrations() -> tuple[Migration, ...]:
    """Return the packaged migrations in version order.

    Raises:
        MigrationError: A file name does not match ``NNNN_name.sql`` or two files share a version.
    """
    folder = importlib.resources.files("torghut.connectors.postgres") / "migrations"
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            msg = f"migration file {entry.name!r}: expected a name like 0003_add_table.sql"
            raise MigrationError(msg)
        version = int(match.group(1))
        if version in found:
            msg = f"migration version {version} is used by two files ({found[version].name}, {entry.name})"
            raise MigrationError(msg)
        text = entry.read_text(encoding="utf-8")
        found[version] = Migration(version, match.group(2), text, hashlib.sha256(text.encode()).hexdigest())
    return tuple(found[v] for v in sorted(found))


def _applied(conn: psycopg.Connection[tuple[object, ...]]) -> dict[int, str]:
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {int(str(version)): str(checksum) for version, checksum in rows}


def _check_known(migration: Migration, applied: dict[int, str]) -> bool:
    checksum = applied.get(migration.version)
    if checksum is None:
        return False
    if checksum != migration.checksum:
        msg = (
            f"migration {migration.version:04d}_{migration.name} was changed after it was applied "
            f"(database {checksum[:12]}, file {migration.checksum[:12]}): add a new migration instead"
        )
        raise MigrationError(msg)
    return True


def _migrate(conn: psycopg.Connection[tuple[object, ...]]) -> list[int]:
    done: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        conn.execute(_CREATE_TABLE)
    for migration in load_migrations():
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
            # Re-read under the lock: another process may have applied it while we waited.
            if _check_known(migration, _applied(conn)):
                continue
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
        logger.info("applied migration %04d_%s", migration.version, migration.name)
        done.append(migration.version)
    return done


def migrate(target: str | psycopg.Connection[tuple[object, ...]]) -> list[int]:
    """Apply every pending migration; safe to call again and from several processes at once.

    Args:
        target: A DSN, or an open connection (used as is; not closed).

    Returns:
        The versions applied by this call, in order (empty when the schema was up to date).

    Raises:
        MigrationError: An applied migration's file changed, or the migration files are malformed.
    """
    if isinstance(target, str):
        with psycopg.connect(target, autocommit=True) as conn:
            return _migrate(conn)
    return _migrate(target)


def applied_versions(conn: psycopg.Connection[tuple[object, ...]]) -> list[int]:
    """Return the versions recorded in ``schema_migrations`` (empty when the table does not exist)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if exists is None or not exists[0]:
        return []
    return sorted(_applied(conn))

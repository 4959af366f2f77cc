"""Fixtures for the service's integration tests: real PostgreSQL, chdb and tansu, started here.

The PostgreSQL fixtures are the connector tests' own (a session server, one migrated database emptied
before each test); nothing is skipped: a component that cannot start fails the test with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.connectors.postgres.conftest import dsn, pg_server, template_db
from torghut.connectors.tansu import TansuBroker

__all__ = ["broker", "dsn", "pg_server", "template_db"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A tansu broker for the module; a broker that cannot start fails the tests."""
    log = Path(tmp_path_factory.mktemp("tansu")) / "tansu.log"
    tansu = TansuBroker(log_path=log)
    try:
        tansu.start()
    except (OSError, RuntimeError) as exc:
        pytest.fail(f"tansu could not start: {exc}")
    yield tansu
    tansu.stop()

"""Fixtures for the service's integration tests: real PostgreSQL, chdb and tansu, started here.

The PostgreSQL fixtures are the connector tests' own (a session server, one migrated database emptied
before each test); nothing is skipped: a component that cannot start fails the test with the reason.
"""

from __future__ import annotations

from tests.connectors.kafka.conftest import broker
from tests.connectors.postgres.conftest import dsn, pg_server, template_db

__all__ = ["broker", "dsn", "pg_server", "template_db"]

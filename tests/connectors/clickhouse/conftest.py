"""Fixtures for the ClickHouse source tests: a real in-process ClickHouse (chdb) through clickhouse-connect.

chdb holds one data path per process, so every test here shares ``chdb://memory`` and isolates itself in
a database of its own, dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.connectors.clickhouse.support import make_client
from torghut.connectors.clickhouse import TableRef, create_ta_signals


@pytest.fixture(scope="session")
def client() -> Iterator[Any]:
    """A clickhouse-connect client on chdb."""
    ch = make_client()
    yield ch
    ch.close()


@pytest.fixture
def table(client: Any) -> Iterator[TableRef]:
    """A fresh, empty ``ta_signals`` table (no TTL) in a database of its own."""
    database = f"torghut_{uuid.uuid4().hex[:12]}"
    ref = create_ta_signals(client, TableRef(database, "ta_signals"), ttl_days=None)
    yield ref
    client.command(f"DROP DATABASE IF EXISTS {database}")

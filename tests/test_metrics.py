"""The metrics module: names and types, bound-child caching, bounded reasons and the HTTP endpoint."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from torghut import metrics as m

DESIGN_METRICS = {
    "strategy_events": ("counter", ("strategy_id",)),
    "strategy_intents": ("counter", ("strategy_id",)),
    "strategy_errors": ("counter", ("strategy_id",)),
    "strategy_latency_ms": ("histogram", ("strategy_id",)),
    "intent_conflict": ("counter", ()),
    "allocator_reject": ("counter", ("reason",)),
}
OPERATOR_METRICS = {
    "torghut_events_in": ("counter", ()),
    "torghut_dead_letters": ("counter", ("stage", "reason")),
    "torghut_gate_verdicts": ("counter", ("gate", "outcome", "reason")),
    "torghut_orders": ("counter", ("status",)),
    "torghut_strategy_breaker_open": ("gauge", ("strategy_id",)),
    "torghut_signal_lag_seconds": ("gauge", ()),
    "torghut_cursor_event_ts_seconds": ("gauge", ("source",)),
    "torghut_recovery_snapshots": ("counter", ()),
    "torghut_no_signal_reason": ("counter", ("reason",)),
    "torghut_broker_errors": ("counter", ("reason",)),
    "torghut_sink_retries": ("counter", ("sink",)),
    "torghut_kafka_errors": ("counter", ("role", "reason")),
    "torghut_source_errors": ("counter", ("source", "reason")),
    "torghut_runtime_unhandled_exceptions": ("counter", ()),
    "torghut_kill_switch_engaged": ("gauge", ()),
    "torghut_trading_control_read_failures": ("counter", ()),
    "torghut_trading_reconcile_updates": ("counter", ()),
}


@pytest.fixture
def metrics() -> m.EngineMetrics:
    return m.EngineMetrics(CollectorRegistry())


def _families(registry: CollectorRegistry) -> dict[str, str]:
    return {family.name: family.type for family in registry.collect()}


def test_every_metric_has_its_design_name_and_type() -> None:
    families = _families(m.REGISTRY)
    expected = DESIGN_METRICS | OPERATOR_METRICS
    assert {name: families.get(name) for name in expected} == {n: t for n, (t, _) in expected.items()}
    assert set(families) == set(expected), "REGISTRY holds exactly the engine's metrics"


@pytest.mark.parametrize(
    ("name", "labels"), [(n, lb) for n, (_, lb) in (DESIGN_METRICS | OPERATOR_METRICS).items()]
)
def test_label_names(name: str, labels: tuple[str, ...]) -> None:
    # A labelled family with no child yet collects no samples, so read the label names off the collector.
    series = name if name.endswith(("_ms", "_seconds", "_open", "_engaged")) else f"{name}_total"
    collector = m.REGISTRY._names_to_collectors[series]
    assert tuple(collector._labelnames) == labels


def test_exported_series_names_cover_suffixes() -> None:
    names = m.exported_series_names()
    assert {"strategy_events_total", "strategy_latency_ms_bucket", "strategy_latency_ms_count"} <= names
    assert {"strategy_latency_ms_sum", "torghut_signal_lag_seconds", "intent_conflict_total"} <= names
    assert "strategy_events" not in names
    assert "torghut_signal_lag_seconds_total" not in names


def test_latency_buckets_cover_the_slo_range() -> None:
    assert m.LATENCY_BUCKETS_MS[0] == 0.01
    assert m.LATENCY_BUCKETS_MS[-1] == 100.0
    assert 50.0 in m.LATENCY_BUCKETS_MS, "the 50 ms SLO bound must be an exact bucket edge"
    assert list(m.LATENCY_BUCKETS_MS) == sorted(m.LATENCY_BUCKETS_MS)


def test_for_strategy_is_cached_and_counts(metrics: m.EngineMetrics) -> None:
    bound = metrics.strategies.for_strategy("tsmom")
    assert metrics.strategies.for_strategy("tsmom") is bound
    assert metrics.strategies.for_strategy("other") is not bound
    bound.events.inc(3)
    bound.intents.inc()
    bound.errors.inc(2)
    bound.latency.observe(0.02)
    bound.latency.observe(60.0)
    bound.breaker_open.set(1)
    get = metrics.registry.get_sample_value
    labels = {"strategy_id": "tsmom"}
    assert get("strategy_events_total", labels) == 3
    assert get("strategy_intents_total", labels) == 1
    assert get("strategy_errors_total", labels) == 2
    assert get("strategy_latency_ms_count", labels) == 2
    assert get("strategy_latency_ms_bucket", labels | {"le": "0.025"}) == 1
    assert get("strategy_latency_ms_bucket", labels | {"le": "50.0"}) == 1
    assert get("strategy_latency_ms_bucket", labels | {"le": "+Inf"}) == 2
    assert get("torghut_strategy_breaker_open", labels) == 1
    assert get("strategy_events_total", {"strategy_id": "other"}) == 0


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("invalid_event_ts: 'not-a-time' is not ISO 8601", "invalid_event_ts"),
        ("late", "late"),
        ("", "unknown"),
        ("  : nothing before the colon", "unknown"),
        ("x" * 200, "x" * m.MAX_REASON_LENGTH),
    ],
)
def test_bounded_reason(reason: str, label: str) -> None:
    assert m.bounded_reason(reason) == label


def test_labelled_accessors_bound_reasons_and_cache(metrics: m.EngineMetrics) -> None:
    first = metrics.dead_letter("parse", "invalid_json: line 1")
    assert metrics.dead_letter("parse", "invalid_json: line 2") is first
    first.inc()
    metrics.dead_letter("parse", "invalid_json: other").inc()
    metrics.gate_verdict("max_notional", "clip", "qty_clipped: 3 -> 2").inc()
    metrics.gate_verdict("cooldown", "pass", None).inc()
    metrics.allocator_reject("symbol_cap: AAPL").inc()
    metrics.order("submitted").inc(5)
    metrics.order("rejected").inc()
    metrics.cursor("clickhouse").set(1_771_510_205.0)
    metrics.no_signal("empty_batch").inc()
    metrics.broker_error("APIError: 403 forbidden").inc()
    metrics.sink_retry("postgres").inc()
    metrics.kafka_error("producer", "_MSG_TIMED_OUT").inc()
    metrics.source_error("clickhouse", "OperationalError: Error HTTPConnectionPool(...)").inc()
    metrics.events_in.inc(100)
    metrics.intent_conflicts.inc()
    metrics.recovery_snapshots.inc()
    metrics.runtime_unhandled_exceptions.inc()
    metrics.signal_lag_seconds.set(12.5)
    get = metrics.registry.get_sample_value
    assert get("torghut_dead_letters_total", {"stage": "parse", "reason": "invalid_json"}) == 2
    assert (
        get(
            "torghut_gate_verdicts_total",
            {"gate": "max_notional", "outcome": "clip", "reason": "qty_clipped"},
        )
        == 1
    )
    assert get("torghut_gate_verdicts_total", {"gate": "cooldown", "outcome": "pass", "reason": "none"}) == 1
    assert get("allocator_reject_total", {"reason": "symbol_cap"}) == 1
    assert get("torghut_orders_total", {"status": "submitted"}) == 5
    assert get("torghut_cursor_event_ts_seconds", {"source": "clickhouse"}) == 1_771_510_205.0
    assert get("torghut_no_signal_reason_total", {"reason": "empty_batch"}) == 1
    assert get("torghut_broker_errors_total", {"reason": "APIError"}) == 1
    assert get("torghut_sink_retries_total", {"sink": "postgres"}) == 1
    assert get("torghut_kafka_errors_total", {"role": "producer", "reason": "_MSG_TIMED_OUT"}) == 1
    assert get("torghut_source_errors_total", {"source": "clickhouse", "reason": "OperationalError"}) == 1
    assert get("torghut_events_in_total") == 100
    assert get("intent_conflict_total") == 1
    assert get("torghut_recovery_snapshots_total") == 1
    assert get("torghut_runtime_unhandled_exceptions_total") == 1
    assert get("torghut_signal_lag_seconds") == 12.5


def test_registries_are_independent(metrics: m.EngineMetrics) -> None:
    metrics.events_in.inc()
    assert m.EngineMetrics(CollectorRegistry()).registry.get_sample_value("torghut_events_in_total") == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.0.0.0:9464", ("0.0.0.0", 9464)), ("9100", ("127.0.0.1", 9100)), ("[::1]:9000", ("::1", 9000))],
)
def test_parse_metrics_address(text: str, expected: tuple[str, int]) -> None:
    assert m.parse_metrics_address(text) == expected


@pytest.mark.parametrize("text", ["host:", "host:http", "host:70000"])
def test_parse_metrics_address_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        m.parse_metrics_address(text)


def _scrape(port: int) -> dict[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    return {family.name: family.type for family in text_string_to_metric_families(body)}


def test_serve_metrics_on_loopback(metrics: m.EngineMetrics) -> None:
    metrics.strategies.for_strategy("tsmom").events.inc()
    server = m.serve_metrics(port=0, registry=metrics.registry)
    try:
        assert server.address == "127.0.0.1"
        assert server.server.server_address[0] == "127.0.0.1"
        families = _scrape(server.port)
    finally:
        server.close()
    assert families["strategy_events"] == "counter"
    assert not any(name.startswith("process_") for name in families)


def test_serve_metrics_can_include_the_default_registry(metrics: m.EngineMetrics) -> None:
    from prometheus_client import REGISTRY as DEFAULT

    extra = Counter("torghut_test_default_registry_probe", "probe", registry=DEFAULT)
    extra.inc()
    server = m.serve_metrics(port=0, registry=metrics.registry, include_default=True)
    try:
        families = _scrape(server.port)
    finally:
        server.close()
        DEFAULT.unregister(extra)
    assert "torghut_test_default_registry_probe" in families
    assert "torghut_events_in" in families

"""Every Prometheus metric the engine exports, in one registry, with pre-bound children for the hot path.

The design's strategy metrics keep their exact names (``strategy_events_total{strategy_id}``,
``strategy_intents_total``, ``strategy_errors_total``, ``strategy_latency_ms``, ``intent_conflict_total``,
``allocator_reject_total{reason}``); the operator metrics are prefixed ``torghut_``. They all live in
:data:`REGISTRY`, a dedicated :class:`~prometheus_client.CollectorRegistry`, so tests and replays never see
another library's metrics unless :func:`serve_metrics` is asked to merge in the default registry.

Hot-path code never calls ``.labels()`` per event (1.15 us against 0.24 us for a bound child): it asks once
for a bound object and keeps it, and every lookup here is cached per label value.

>>> metrics = EngineMetrics(CollectorRegistry())
>>> nvda = metrics.strategies.for_strategy("tsmom")
>>> nvda.events.inc(); nvda.latency.observe(0.4)
>>> metrics.strategies.for_strategy("tsmom") is nvda
True
>>> metrics.dead_letter("parse", "invalid_event_ts: 'not-a-time'").inc()
>>> metrics.registry.get_sample_value(
...     "torghut_dead_letters_total", {"stage": "parse", "reason": "invalid_event_ts"})
1.0

Every process has its own registry: in a multi-process replay or a bytewax cluster each process serves
its own ``/metrics``, and Prometheus scrapes every pod (the Kubernetes ``ServiceMonitor`` selects the
headless service, so one target per pod); sum over ``pod`` in queries. Label values are bounded: strategy
ids come from the catalog, reasons are cut at their first ``:`` (:func:`bounded_reason`), and symbols are
never labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from threading import Thread
from typing import Generic, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import REGISTRY as DEFAULT_REGISTRY
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS_MS: tuple[float, ...] = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
)
"""Buckets of ``strategy_latency_ms``: 10 us to 100 ms, with the 50 ms SLO threshold as an exact bound."""

DEFAULT_METRICS_ADDRESS = "127.0.0.1"
DEFAULT_METRICS_PORT = 9464
MAX_REASON_LENGTH = 64
"""Reasons longer than this are cut, so a free-text reason cannot create unbounded series."""

_T = TypeVar("_T")


def bounded_reason(reason: str) -> str:
    """Return the label value for a free-form reason: the prefix before the first ``:``, stripped.

    >>> bounded_reason("invalid_event_ts: 'not-a-time'"), bounded_reason(""), bounded_reason("late")
    ('invalid_event_ts', 'unknown', 'late')
    """
    prefix = reason.split(":", 1)[0].strip()
    return prefix[:MAX_REASON_LENGTH] or "unknown"


class _ChildCache(Generic[_T]):
    """Label values -> bound child, created once; a dict lookup per call afterwards."""

    __slots__ = ("_children", "_make")

    def __init__(self, make: Callable[..., _T]) -> None:
        self._make = make
        self._children: dict[tuple[str, ...], _T] = {}

    def get(self, *values: str) -> _T:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._make(*values)
        return child


@dataclass(frozen=True, slots=True)
class BoundStrategyMetrics:
    """One strategy's pre-bound children: call ``.inc()``, ``.observe()`` or ``.set()`` on them only.

    Attributes:
        events: ``strategy_events_total`` (feature vectors the strategy was evaluated on).
        intents: ``strategy_intents_total`` (intents it emitted).
        errors: ``strategy_errors_total`` (plugin failures, including skips while its breaker is open).
        latency: ``strategy_latency_ms`` (evaluation latency per symbol batch, milliseconds).
        breaker_open: ``torghut_strategy_breaker_open`` (1 while its circuit breaker is open, else 0).
    """

    events: Counter
    intents: Counter
    errors: Counter
    latency: Histogram
    breaker_open: Gauge


class StrategyMetrics:
    """The per-strategy metric families, with :meth:`for_strategy` handing out cached bound children."""

    __slots__ = ("_cache", "breaker_open", "errors", "events", "intents", "latency")

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("strategy_id",)
        self.events = Counter(
            "strategy_events_total",
            "Feature vectors each strategy was evaluated on.",
            labels,
            registry=registry,
        )
        self.intents = Counter(
            "strategy_intents_total", "Strategy intents each strategy emitted.", labels, registry=registry
        )
        self.errors = Counter(
            "strategy_errors_total",
            "Plugin failures per strategy (exceptions, undeclared reads, blocked I/O, degraded skips).",
            labels,
            registry=registry,
        )
        self.latency = Histogram(
            "strategy_latency_ms",
            "Strategy evaluation latency per symbol batch, in milliseconds.",
            labels,
            buckets=LATENCY_BUCKETS_MS,
            registry=registry,
        )
        self.breaker_open = Gauge(
            "torghut_strategy_breaker_open",
            "1 while the strategy's circuit breaker is open (strategy degraded), else 0.",
            labels,
            registry=registry,
        )
        self._cache: _ChildCache[BoundStrategyMetrics] = _ChildCache(self._bind)

    def _bind(self, strategy_id: str) -> BoundStrategyMetrics:
        return BoundStrategyMetrics(
            events=self.events.labels(strategy_id),
            intents=self.intents.labels(strategy_id),
            errors=self.errors.labels(strategy_id),
            latency=self.latency.labels(strategy_id),
            breaker_open=self.breaker_open.labels(strategy_id),
        )

    def for_strategy(self, strategy_id: str) -> BoundStrategyMetrics:
        """Return the strategy's bound children (created on the first call, the same object afterwards)."""
        return self._cache.get(strategy_id)


class EngineMetrics:
    """All of the engine's metrics on one registry.

    Counters without labels are attributes to use directly (``metrics.events_in.inc(n)``); labelled ones
    are reached through cached accessors that return a bound child.

    Args:
        registry: where the metrics are registered; :data:`METRICS` uses :data:`REGISTRY`.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.strategies = StrategyMetrics(registry)
        self.intent_conflicts = Counter(
            "intent_conflict_total",
            "Symbol/horizon groups whose strategy intents disagreed on direction.",
            registry=registry,
        )
        self.events_in = Counter(
            "torghut_events_in_total", "Raw signal records read by the sources.", registry=registry
        )
        self.runtime_unhandled_exceptions = Counter(
            "torghut_runtime_unhandled_exceptions_total",
            "Exceptions that escaped the strategy runtime's isolation (must stay 0).",
            registry=registry,
        )
        self.recovery_snapshots = Counter(
            "torghut_recovery_snapshots_total",
            "State snapshots taken for bytewax recovery.",
            registry=registry,
        )
        self.signal_lag_seconds = Gauge(
            "torghut_signal_lag_seconds",
            "Wall-clock seconds between now and the newest signal event time processed.",
            registry=registry,
        )
        self.kill_switch_engaged = Gauge(
            "torghut_kill_switch_engaged",
            "1 while the firewall blocks every order: static or runtime kill switch, or unreadable control.",
            registry=registry,
        )
        self.control_read_failures = Counter(
            "torghut_trading_control_read_failures_total",
            "Failed reads of the runtime trading control (each fails closed: the order is rejected).",
            registry=registry,
        )
        self.reconcile_updates = Counter(
            "torghut_trading_reconcile_updates_total",
            "executions rows brought up to date with the broker's order status while the service runs.",
            registry=registry,
        )
        self._allocator_rejects = Counter(
            "allocator_reject_total",
            "Symbol intents the allocator rejected, by reason.",
            ("reason",),
            registry=registry,
        )
        self._dead_letters = Counter(
            "torghut_dead_letters_total",
            "Input records turned into dead letters, by stage and reason prefix.",
            ("stage", "reason"),
            registry=registry,
        )
        self._gate_verdicts = Counter(
            "torghut_gate_verdicts_total",
            "Risk and firewall gate verdicts, by gate, outcome (pass, clip, reject) and reason prefix.",
            ("gate", "outcome", "reason"),
            registry=registry,
        )
        self._orders = Counter(
            "torghut_orders_total",
            "Orders the execute stage handled, by status (submitted, rejected, filled, duplicate, ...).",
            ("status",),
            registry=registry,
        )
        self._cursor = Gauge(
            "torghut_cursor_event_ts_seconds",
            "Event time (Unix seconds) of the committed ingest cursor, by source.",
            ("source",),
            registry=registry,
        )
        self._no_signal = Counter(
            "torghut_no_signal_reason_total",
            "Source polls that returned no signal, by reason.",
            ("reason",),
            registry=registry,
        )
        self._broker_errors = Counter(
            "torghut_broker_errors_total",
            "Broker adapter errors, by reason prefix.",
            ("reason",),
            registry=registry,
        )
        self._sink_retries = Counter(
            "torghut_sink_retries_total", "Sink write retries, by sink.", ("sink",), registry=registry
        )
        self._source_errors = Counter(
            "torghut_source_errors_total",
            "Failed source polls (each followed by a backoff), by source and reason (the error's class).",
            ("source", "reason"),
            registry=registry,
        )
        self._kafka_errors = Counter(
            "torghut_kafka_errors_total",
            "Kafka client errors, by role (producer, consumer) and reason (librdkafka's error name).",
            ("role", "reason"),
            registry=registry,
        )
        self._allocator_cache: _ChildCache[Counter] = _ChildCache(self._allocator_rejects.labels)
        self._dead_letter_cache: _ChildCache[Counter] = _ChildCache(self._dead_letters.labels)
        self._gate_cache: _ChildCache[Counter] = _ChildCache(self._gate_verdicts.labels)
        self._orders_cache: _ChildCache[Counter] = _ChildCache(self._orders.labels)
        self._cursor_cache: _ChildCache[Gauge] = _ChildCache(self._cursor.labels)
        self._no_signal_cache: _ChildCache[Counter] = _ChildCache(self._no_signal.labels)
        self._broker_cache: _ChildCache[Counter] = _ChildCache(self._broker_errors.labels)
        self._sink_cache: _ChildCache[Counter] = _ChildCache(self._sink_retries.labels)
        self._kafka_error_cache: _ChildCache[Counter] = _ChildCache(self._kafka_errors.labels)
        self._source_error_cache: _ChildCache[Counter] = _ChildCache(self._source_errors.labels)

    def allocator_reject(self, reason: str) -> Counter:
        """Return the ``allocator_reject_total`` child for ``reason`` (cut at its first ``:``)."""
        return self._allocator_cache.get(bounded_reason(reason))

    def dead_letter(self, stage: str, reason: str) -> Counter:
        """Return the ``torghut_dead_letters_total`` child for ``stage`` and the reason's prefix."""
        return self._dead_letter_cache.get(stage, bounded_reason(reason))

    def gate_verdict(self, gate: str, outcome: str, reason: str | None) -> Counter:
        """Return the ``torghut_gate_verdicts_total`` child; a passing verdict has reason ``none``."""
        return self._gate_cache.get(gate, outcome, "none" if reason is None else bounded_reason(reason))

    def order(self, status: str) -> Counter:
        """Return the ``torghut_orders_total`` child for an order ``status``."""
        return self._orders_cache.get(status)

    def cursor(self, source: str) -> Gauge:
        """Return the ``torghut_cursor_event_ts_seconds`` child for ``source``."""
        return self._cursor_cache.get(source)

    def no_signal(self, reason: str) -> Counter:
        """Return the ``torghut_no_signal_reason_total`` child for ``reason``."""
        return self._no_signal_cache.get(bounded_reason(reason))

    def broker_error(self, reason: str) -> Counter:
        """Return the ``torghut_broker_errors_total`` child for ``reason`` (cut at its first ``:``)."""
        return self._broker_cache.get(bounded_reason(reason))

    def sink_retry(self, sink: str) -> Counter:
        """Return the ``torghut_sink_retries_total`` child for ``sink``."""
        return self._sink_cache.get(sink)

    def kafka_error(self, role: str, reason: str) -> Counter:
        """Return the ``torghut_kafka_errors_total`` child for ``role`` and the reason's prefix."""
        return self._kafka_error_cache.get(role, bounded_reason(reason))

    def source_error(self, source: str, reason: str) -> Counter:
        """Return the ``torghut_source_errors_total`` child for ``source`` and the reason's prefix."""
        return self._source_error_cache.get(source, bounded_reason(reason))


REGISTRY = CollectorRegistry(auto_describe=True)
"""The engine's own registry: every metric of this module and nothing else."""

METRICS = EngineMetrics(REGISTRY)
"""The process-wide metrics, on :data:`REGISTRY`."""


def exported_series_names(registry: CollectorRegistry = REGISTRY) -> frozenset[str]:
    """Return every series name ``registry`` can export, whether or not a labelled child exists yet.

    Counters export ``<name>_total`` and ``<name>_created``; histograms ``_bucket``, ``_count``, ``_sum``
    and ``_created``; gauges their bare name.
    """
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "gauge": ("",),
    }
    names: set[str] = set()
    for family in registry.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return frozenset(names)


class _Merged(Collector):
    """Yields the families of several registries, so one endpoint serves them all."""

    def __init__(self, registries: Iterable[CollectorRegistry]) -> None:
        self._registries = tuple(registries)

    def collect(self) -> Iterator[Metric]:
        for registry in self._registries:
            yield from registry.collect()


@dataclass(frozen=True, slots=True)
class MetricsServer:
    """A running ``/metrics`` HTTP server; :meth:`close` stops it."""

    address: str
    port: int
    server: WSGIServer
    thread: Thread

    def close(self) -> None:
        """Stop serving and wait for the server thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def parse_metrics_address(value: str) -> tuple[str, int]:
    """Split ``host:port`` (``--metrics-address``); a bare port binds the default 127.0.0.1.

    >>> parse_metrics_address("0.0.0.0:9464"), parse_metrics_address("9100")
    (('0.0.0.0', 9464), ('127.0.0.1', 9100))

    Raises:
        ValueError: the port is not an integer in 0..65535.
    """
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]") or DEFAULT_METRICS_ADDRESS
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        msg = f"metrics address {value!r}: expected HOST:PORT with a port in 0..65535"
        raise ValueError(msg)
    return host, port


def serve_metrics(
    address: str = DEFAULT_METRICS_ADDRESS,
    port: int = DEFAULT_METRICS_PORT,
    *,
    registry: CollectorRegistry = REGISTRY,
    include_default: bool = False,
) -> MetricsServer:
    """Serve ``registry`` at ``http://address:port/metrics`` from a daemon thread.

    Args:
        address: the interface to bind; 127.0.0.1 unless a pod must be scraped (``0.0.0.0``).
        port: the TCP port; 0 picks a free one (read it back from the handle).
        registry: the registry to serve, :data:`REGISTRY` by default.
        include_default: also serve prometheus_client's default registry (process and GC metrics, and
            whatever other libraries registered there).

    Returns:
        The running server; call :meth:`MetricsServer.close` to stop it.
    """
    served = registry
    if include_default:
        served = CollectorRegistry(auto_describe=False)
        served.register(_Merged((registry, DEFAULT_REGISTRY)))
    server, thread = start_http_server(port, addr=address, registry=served)
    return MetricsServer(address, int(server.server_port), server, thread)

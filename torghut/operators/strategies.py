"""The strategies stage: every enabled strategy on every feature vector, per symbol.

:class:`StrategyRuntime` is the pure logic (``evaluate_batch(state, vectors) -> (state, result)``, and
``evaluate`` for one vector); :func:`strategies_stage` is the thin bytewax wrapper that keeps one
:class:`RuntimeState` per symbol and decodes the symbol's raw records first
(:func:`~torghut.operators.decode.decode_record`: parse and normalize in one call).
A plugin that raises, reads an undeclared feature or touches the network produces a
:class:`~torghut.contracts.strategy.StrategyError` (reason: the exception class name) and counts towards
its circuit breaker; the other strategies are unaffected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from time import monotonic, perf_counter_ns
from typing import Any, ClassVar, TypeGuard

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from torghut.contracts.decision import TradeDecision
from torghut.contracts.features import FeatureVectorV3
from torghut.contracts.frozen import FrozenMap
from torghut.contracts.signal import DeadLetter, RawRecord, SymbolWatermark
from torghut.contracts.strategy import StrategyDefinition, StrategyError, StrategyIntent
from torghut.metrics import METRICS
from torghut.operators.decode import decode_record
from torghut.strategies.base import IntentDraft, StrategyParams, StrategyPlugin
from torghut.strategies.config import RuntimeConfig
from torghut.strategies.guard import begin_evaluation, end_evaluation, install_network_guard, take_violation
from torghut.strategies.registry import StrategyRegistry
from torghut.strategies.state import STATE_VERSION, RuntimeState, SlotState, fingerprint
from torghut.strategies.view import FeatureView

CIRCUIT_BREAKER = "circuit_breaker"
STRATEGY_DEGRADED = "strategy_degraded"
UNREGISTERED = "unregistered"
PLUGIN_NOT_FOUND = "plugin_not_found"


class PluginOutputError(TypeError):
    """A plugin returned something other than ``(Sequence[IntentDraft], state)``."""


@dataclass(slots=True)
class StrategyCounters:
    """Per-strategy metrics (torghut's ``strategy_*_total`` and ``strategy_latency_ms``), process-local."""

    events: int = 0
    intents: int = 0
    errors: int = 0
    latency_ms: float = 0.0
    latency_ms_total: float = 0.0


@dataclass(frozen=True, slots=True)
class _Slot:
    definition: StrategyDefinition
    plugin: StrategyPlugin[Any, Any] | None
    params: StrategyParams | None
    fingerprint: str
    names: tuple[str, ...]
    declared: frozenset[str]
    universe: frozenset[str]
    counters: StrategyCounters


class StrategyRuntime:
    """Evaluate the enabled strategies of a catalog, in strategy id order, for one symbol's events.

    Args:
        definitions: the catalog's definitions (disabled ones are ignored).
        registry: where each definition's exact ``strategy_type@version`` is looked up.
        config: circuit breaker settings.

    Raises:
        ValueError: a definition's params do not validate against its plugin's parameter model.
    """

    def __init__(
        self,
        definitions: Iterable[StrategyDefinition],
        registry: StrategyRegistry,
        config: RuntimeConfig | None = None,
    ) -> None:
        install_network_guard()
        self.config = config or RuntimeConfig()
        self._cooldown = timedelta(seconds=self.config.circuit_cooldown_s)
        enabled = sorted((d for d in definitions if d.enabled), key=lambda d: d.strategy_id)
        self._slots = tuple(self._slot(d, registry) for d in enabled)

    @staticmethod
    def _slot(definition: StrategyDefinition, registry: StrategyRegistry) -> _Slot:
        info = registry.get(definition.strategy_type, definition.version)
        plugin = info.plugin if info is not None else None
        params = None
        if plugin is not None:
            try:
                params = plugin.validate_params(definition.params)
            except ValueError as exc:
                msg = f"strategy {definition.strategy_id!r} ({plugin.key}): invalid params: {exc}"
                raise ValueError(msg) from exc
        names = plugin.required_features if plugin is not None else ()
        return _Slot(
            definition=definition,
            plugin=plugin,
            params=params,
            fingerprint=fingerprint(definition),
            names=names,
            declared=frozenset(names),
            universe=frozenset(definition.universe_symbols),
            counters=StrategyCounters(),
        )

    @property
    def definitions(self) -> tuple[StrategyDefinition, ...]:
        """The enabled definitions this runtime evaluates, in order."""
        return tuple(slot.definition for slot in self._slots)

    def initial_state(self) -> RuntimeState:
        """Return the state of a symbol never seen before (slots are created lazily)."""
        return RuntimeState()

    def restore(self, snapshot: object) -> RuntimeState:
        """Return the state to resume from a recovery snapshot (``None`` for a new symbol).

        Raises:
            ValueError: the snapshot is not a :class:`RuntimeState` of a supported schema version.
        """
        if snapshot is None:
            return self.initial_state()
        if isinstance(snapshot, RuntimeState) and snapshot.version == STATE_VERSION:
            return snapshot
        found = getattr(snapshot, "version", type(snapshot).__name__)
        msg = f"unsupported strategies snapshot {found!r} (expected RuntimeState version {STATE_VERSION})"
        raise ValueError(msg)

    def latency_totals(self) -> list[float]:
        """Cumulative evaluation latency (ms) per enabled strategy, in slot order: read, not copied."""
        return [slot.counters.latency_ms_total for slot in self._slots]

    def strategy_ids(self) -> tuple[str, ...]:
        """The enabled strategies' ids, in slot (evaluation) order."""
        return tuple(slot.definition.strategy_id for slot in self._slots)

    def totals(self) -> dict[str, tuple[int, int, int, float]]:
        """Cumulative ``(events, intents, errors, latency_ms)`` per strategy, read from the live counters."""
        return {
            slot.definition.strategy_id: (
                slot.counters.events,
                slot.counters.intents,
                slot.counters.errors,
                slot.counters.latency_ms_total,
            )
            for slot in self._slots
        }

    def counters(self) -> dict[str, StrategyCounters]:
        """Return a copy of the per-strategy counters, by strategy id."""
        return {s.definition.strategy_id: dataclasses.replace(s.counters) for s in self._slots}

    def evaluate(
        self, state: RuntimeState, fv: FeatureVectorV3
    ) -> tuple[RuntimeState, list[StrategyIntent], list[StrategyError]]:
        """Evaluate every enabled strategy on ``fv``; return the next state, the intents and the errors."""
        state, result = self.evaluate_batch(state, [fv])
        return state, result.intents.get(0, []), result.errors.get(0, [])

    def evaluate_batch(
        self, state: RuntimeState, batch: Sequence[FeatureVectorV3]
    ) -> tuple[RuntimeState, BatchResult]:
        """Evaluate every enabled strategy on one symbol's vectors, in order; return the next state.

        Equal to calling :meth:`evaluate` on each vector in turn (strategies are independent, so each one
        runs over the whole batch before the next: its latency is measured once per batch).
        """
        previous = state.strategies
        slots: dict[str, SlotState] = {}
        result = BatchResult()
        changed = len(previous) != len(self._slots)
        for slot in self._slots:
            sid = slot.definition.strategy_id
            current = previous.get(sid)
            if current is None or current.fingerprint != slot.fingerprint:
                current = self._fresh(slot)
                changed = True
            following = self._run_slot(slot, current, batch, result)
            if following is not current:
                changed = True
            slots[sid] = following
        return (RuntimeState(FrozenMap(slots)) if changed else state), result

    def _run_slot(  # noqa: PLR0912, PLR0915 - one tight loop per strategy and batch: the hot path
        self, slot: _Slot, current: SlotState, batch: Sequence[FeatureVectorV3], result: BatchResult
    ) -> SlotState:
        definition = slot.definition
        timeframe = definition.base_timeframe
        universe = slot.universe
        plugin = slot.plugin
        params, names, declared = slot.params, slot.names, slot.declared
        warmup = plugin.warmup_bars if plugin is not None else 0
        plugin_state = current.plugin_state
        seen = current.bars_seen
        consecutive = current.consecutive_errors
        degraded_until = current.degraded_until
        dirty = False
        events = intents = errors = 0
        started = perf_counter_ns()
        begin_evaluation()
        try:
            for index, fv in enumerate(batch):
                if fv.timeframe != timeframe or (universe and fv.symbol not in universe):
                    continue
                events += 1
                if degraded_until is not None and fv.event_ts <= degraded_until:
                    result.error(index, _error(definition, CIRCUIT_BREAKER, STRATEGY_DEGRADED, fv))
                    errors += 1
                    continue
                if plugin is None:
                    result.error(index, _error(definition, UNREGISTERED, PLUGIN_NOT_FOUND, fv))
                    errors += 1
                    continue
                failure: Exception | None
                try:
                    drafts, next_state = plugin.evaluate(
                        params, FeatureView(fv.values, names, declared), plugin_state
                    )
                    if drafts != ():  # most evaluations emit nothing
                        _check_drafts(drafts)
                except Exception as exc:  # noqa: BLE001 - isolation: a plugin failure is data, never a crash
                    failure = exc
                    take_violation()
                else:
                    failure = take_violation()
                if failure is not None:
                    result.error(index, _error(definition, plugin.strategy_type, type(failure).__name__, fv))
                    errors += 1
                    consecutive += 1
                    if consecutive >= self.config.circuit_errors:
                        consecutive, degraded_until = 0, fv.event_ts + self._cooldown
                    dirty = True
                    continue
                warming = seen < warmup
                if warming or next_state is not plugin_state or consecutive or degraded_until is not None:
                    # bars_seen saturates at the warm-up length: an unchanged stateless slot is reused as is.
                    seen = seen + 1 if warming else seen
                    plugin_state, consecutive, degraded_until = next_state, 0, None
                    dirty = True
                if warming or not drafts:
                    continue
                feature_hash = result.feature_hash(index, fv)
                for draft in drafts:
                    result.intent(index, _intent(definition, plugin, draft, fv, feature_hash))
                intents += len(drafts)
        finally:
            end_evaluation()
            if events:
                elapsed_ms = (perf_counter_ns() - started) / 1e6
                counters = slot.counters
                counters.events += events
                counters.intents += intents
                counters.errors += errors
                counters.latency_ms = elapsed_ms
                counters.latency_ms_total += elapsed_ms
        if not dirty:
            return current
        return SlotState(current.fingerprint, plugin_state, seen, consecutive, degraded_until)

    @staticmethod
    def _fresh(slot: _Slot) -> SlotState:
        if slot.plugin is None:
            return SlotState(slot.fingerprint, None)
        return SlotState(slot.fingerprint, slot.plugin.initial_state(slot.params))


class BatchResult:
    """What :meth:`StrategyRuntime.evaluate_batch` produced, by the batch index of the vector."""

    __slots__ = ("_hashes", "errors", "intents")

    def __init__(self) -> None:
        self.intents: dict[int, list[StrategyIntent]] = {}
        self.errors: dict[int, list[StrategyError]] = {}
        self._hashes: dict[int, str] = {}

    def intent(self, index: int, intent: StrategyIntent) -> None:
        """Add an intent of vector ``index`` (strategies in evaluation order)."""
        self.intents.setdefault(index, []).append(intent)

    def error(self, index: int, error: StrategyError) -> None:
        """Add an error of vector ``index``."""
        self.errors.setdefault(index, []).append(error)

    def feature_hash(self, index: int, fv: FeatureVectorV3) -> str:
        """The normalization hash of vector ``index``, computed once however many strategies emit on it."""
        found = self._hashes.get(index)
        if found is None:
            found = self._hashes[index] = fv.normalization_hash()
        return found


def _check_drafts(drafts: object) -> None:
    if drafts == ():  # most evaluations emit nothing
        return
    if not isinstance(drafts, list | tuple) or not all(isinstance(d, IntentDraft) for d in drafts):
        msg = f"evaluate must return (Sequence[IntentDraft], state); got drafts {drafts!r}"
        raise PluginOutputError(msg)


def _error(definition: StrategyDefinition, plugin_id: str, reason: str, fv: FeatureVectorV3) -> StrategyError:
    return StrategyError(
        strategy_id=definition.strategy_id,
        strategy_type=definition.strategy_type,
        plugin_id=plugin_id,
        reason=reason,
        symbol=fv.symbol,
        event_ts=fv.event_ts,
        seq=fv.seq,
    )


def _intent(
    definition: StrategyDefinition,
    plugin: StrategyPlugin[Any, Any],
    draft: IntentDraft,
    fv: FeatureVectorV3,
    feature_hash: str,
) -> StrategyIntent:
    price = fv.values.get("price")
    return StrategyIntent(
        strategy_id=definition.strategy_id,
        symbol=fv.symbol,
        direction=draft.direction,
        confidence=draft.confidence,
        target_notional=draft.target_notional,
        horizon=fv.timeframe,
        explain=tuple(draft.explain),
        feature_snapshot_hash=feature_hash,
        strategy_type=definition.strategy_type,
        strategy_version=definition.version,
        parameter_hash=definition.parameter_hash,
        event_ts=fv.event_ts,
        seq=fv.seq,
        required_features=plugin.required_features,
        price=price if isinstance(price, Decimal) else None,
        position=fv.position,
    )


StrategyOutput = StrategyIntent | StrategyError | TradeDecision | SymbolWatermark
LegacyFallback = Callable[[FeatureVectorV3], Sequence[TradeDecision]]
#: Extra records per symbol batch from its feature vectors (the service's ingest marks).
BatchMarker = Callable[[list[FeatureVectorV3]], Sequence[Any]]


class StrategiesLogic(StatefulBatchLogic[Sequence[RawRecord], Any, RuntimeState]):
    """One symbol's raw signals in, its dead letters, intents, errors and watermarks out.

    Each raw record is decoded (:func:`~torghut.operators.decode.decode_record`: parse and normalize)
    into a feature vector or a dead letter, then the runtime evaluates the batch's vectors. The state is
    the runtime's, snapshotted as plain immutable data. With a ``fallback`` (torghut's
    ``TRADING_STRATEGY_RUNTIME_FALLBACK_LEGACY``), an event on which the runtime produced no intent yields
    the legacy decisions instead. A batch with vectors ends with a :class:`SymbolWatermark` (carrying how
    many vectors it closes), so the aggregation downstream can close windows in event time.

    Args:
        runtime: The strategies to run (shared by every symbol on the worker).
        resume_state: The symbol's snapshot to resume from, or None.
        fallback: Legacy decisions for events without intents.
        emit_features: Also emit every feature vector (``replay --emit-features``).
        marker: Extra records per batch from its vectors (the service's ingest marks).
    """

    def __init__(
        self,
        runtime: StrategyRuntime,
        resume_state: RuntimeState | None,
        fallback: LegacyFallback | None = None,
        *,
        emit_features: bool = False,
        marker: BatchMarker | None = None,
    ) -> None:
        self._runtime = runtime
        self._state = runtime.restore(resume_state)
        self._fallback = fallback
        self._emit_features = emit_features
        self._marker = marker
        self._publisher = MetricsPublisher.for_runtime(runtime)

    def on_batch(self, values: list[Sequence[RawRecord]]) -> tuple[Iterable[Any], bool]:
        """Decode the groups' records, evaluate the vectors; outputs follow input and evaluation order."""
        out: list[Any] = []
        features: list[FeatureVectorV3] = []
        events = 0
        for group in values:
            events += len(group)
            for raw, position in group:
                item = decode_record(raw, position)
                if type(item) is FeatureVectorV3:
                    features.append(item)
                else:
                    out.append(item)
        METRICS.events_in.inc(events)
        if features:
            self._evaluate(features, out)
        self._publisher.flush_if_due()
        return out, StatefulBatchLogic.RETAIN

    def _evaluate(self, features: list[FeatureVectorV3], out: list[Any]) -> None:
        runtime = self._runtime
        fallback = self._fallback
        latency_before = runtime.latency_totals()
        try:
            self._state, result = runtime.evaluate_batch(self._state, features)
            if result.intents or result.errors or fallback is not None:
                intents_at, errors_at = result.intents, result.errors
                for index, fv in enumerate(features):
                    intents = intents_at.get(index)
                    if intents:
                        out.extend(intents)
                    errors = errors_at.get(index)
                    if errors:
                        out.extend(errors)
                    if fallback is not None and not intents:
                        out.extend(fallback(fv))
        except Exception:
            METRICS.runtime_unhandled_exceptions.inc()
            raise
        self._publisher.observe_batch(latency_before, runtime.latency_totals())
        last = features[-1]
        out.append(SymbolWatermark(last.symbol, last.event_ts, len(features)))
        if self._emit_features:
            out.extend(features)
        if self._marker is not None:
            out.extend(self._marker(features))

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        """Publish the last counter deltas at the end of input."""
        self._publisher.flush()
        return [], StatefulBatchLogic.RETAIN

    def snapshot(self) -> RuntimeState:
        """Return the (immutable) state; bytewax pickles it."""
        METRICS.recovery_snapshots.inc()
        return self._state


class MetricsPublisher:
    """Publishes one worker's strategy metrics: latency per symbol batch, counters at most every 0.25 s.

    The runtime keeps cumulative plain counters per strategy (shared by every symbol on the worker); the
    counters are pushed to Prometheus as deltas, throttled in wall-clock time (metrics only, never a
    decision), so the cost does not grow with the number of symbol batches. One publisher per runtime.
    """

    _by_runtime: ClassVar[dict[int, MetricsPublisher]] = {}
    INTERVAL_S = 0.25

    def __init__(self, runtime: StrategyRuntime) -> None:
        self._runtime = runtime
        ids = runtime.strategy_ids()
        self._bound = [METRICS.strategies.for_strategy(sid) for sid in ids]
        self._published: dict[str, tuple[int, int, int, float]] = {}
        self._next_flush = 0.0

    @classmethod
    def for_runtime(cls, runtime: StrategyRuntime) -> MetricsPublisher:
        """Return the worker's publisher for ``runtime`` (created on first use)."""
        publisher = cls._by_runtime.get(id(runtime))
        if publisher is None or publisher._runtime is not runtime:
            publisher = cls._by_runtime[id(runtime)] = cls(runtime)
        return publisher

    def observe_batch(self, before: list[float], after: list[float]) -> None:
        """Observe each strategy's evaluation latency over one symbol batch (strategies it evaluated)."""
        for bound, was, now in zip(self._bound, before, after, strict=True):
            if now != was:
                bound.latency.observe(now - was)

    def flush_if_due(self) -> None:
        """Push the counters' deltas when the interval has passed."""
        now = monotonic()
        if now < self._next_flush:
            return
        self._next_flush = now + self.INTERVAL_S
        self.flush()

    def flush(self) -> None:
        """Push every counter's delta since the last flush."""
        totals = self._runtime.totals()
        publish_batch_metrics(self._published, totals)
        self._published = totals


CounterTotals = dict[str, tuple[int, int, int, float]]


def publish_batch_metrics(before: CounterTotals, after: CounterTotals) -> None:
    """Push per-strategy counter deltas (events, intents, errors) and the breaker state to Prometheus."""
    for strategy_id, (events, intents, errors, _) in after.items():
        was = before.get(strategy_id, (0, 0, 0, 0.0))
        if events == was[0]:
            continue
        bound = METRICS.strategies.for_strategy(strategy_id)
        bound.events.inc(events - was[0])
        if intents != was[1]:
            bound.intents.inc(intents - was[1])
        if errors != was[2]:
            bound.errors.inc(errors - was[2])
        bound.breaker_open.set(1 if errors - was[2] == events - was[0] else 0)


@dataclass(frozen=True)
class StrategiesOut:
    """Streams returned by :func:`strategies_stage`."""

    intents: Stream[StrategyIntent]
    errors: Stream[StrategyError]
    dead_letters: Stream[DeadLetter]
    #: Intents, watermarks and legacy decisions, still keyed by symbol: the aggregation's input.
    ticks: KeyedStream[StrategyIntent | SymbolWatermark | TradeDecision]
    #: Legacy decisions (fallback or legacy mode), unkeyed.
    decisions: Stream[TradeDecision]
    #: How many feature vectors each symbol batch normalized (one count per watermark).
    normalized: Stream[int]
    #: The feature vectors (only with ``emit_features``).
    features: Stream[FeatureVectorV3]
    #: The marker's records.
    marks: Stream[Any]


def _is_intent(item: object) -> TypeGuard[StrategyIntent]:
    return type(item) is StrategyIntent


def _is_error(item: object) -> TypeGuard[StrategyError]:
    return type(item) is StrategyError


def _is_dead_letter(item: object) -> TypeGuard[DeadLetter]:
    return type(item) is DeadLetter


def _is_decision(item: object) -> TypeGuard[TradeDecision]:
    return type(item) is TradeDecision


def _is_tick(item: object) -> bool:
    kind = type(item)
    return kind is StrategyIntent or kind is SymbolWatermark or kind is TradeDecision


def _is_feature(item: object) -> TypeGuard[FeatureVectorV3]:
    return type(item) is FeatureVectorV3


_STAGE_TYPES = (StrategyIntent, StrategyError, DeadLetter, TradeDecision, SymbolWatermark, FeatureVectorV3)


def _is_mark(item: object) -> bool:
    return type(item) not in _STAGE_TYPES


def _normalized(item: object) -> int | None:
    return item.normalized if type(item) is SymbolWatermark else None


@operator
def strategies_stage(
    step_id: str,
    up: KeyedStream[Sequence[RawRecord]],
    runtime: StrategyRuntime,
    fallback: LegacyFallback | None = None,
    *,
    emit_features: bool = False,
    marker: BatchMarker | None = None,
) -> StrategiesOut:
    """Decode and evaluate a symbol-keyed stream of raw ``(record, position)`` groups, in order.

    The state lives in the inner step ``evaluate`` (persisted by recovery as ``<step_id>.evaluate``, with
    :class:`RuntimeState` snapshots): keep both names stable. Every raw record ends as a feature vector
    (evaluated, counted in ``normalized``) or a dead letter.

    >>> import bytewax.operators as op
    >>> from bytewax.dataflow import Dataflow
    >>> from bytewax.testing import TestingSink, TestingSource, run_main
    >>> from torghut.contracts.signal import InputPosition
    >>> from torghut.strategies.catalog import parse_catalog
    >>> from torghut.strategies.registry import default_registry
    >>> registry = default_registry()
    >>> catalog = parse_catalog([{"name": "macd", "base_timeframe": "1Sec"}], registry, digest="")
    >>> row = (b'{"symbol":"NVDA","event_ts":"2026-02-19 14:30:05.000","window_size":"PT1S",'
    ...        b'"macd":1,"macd_signal":0.5,"rsi14":30,"price":10}')
    >>> flow = Dataflow("doc")
    >>> raw = op.input("in", flow, TestingSource([(row, InputPosition("doc", "p0", 0))]))
    >>> keyed = op.map("group", raw, lambda item: ("NVDA", [item]))
    >>> out = strategies_stage("strategies", keyed, StrategyRuntime(catalog.definitions, registry))
    >>> intents = []
    >>> op.output("intents", out.intents, TestingSink(intents))
    >>> run_main(flow)
    >>> [(i.strategy_id, i.direction, i.confidence) for i in intents]
    [('macd', 'buy', Decimal('0.65'))]
    """

    def build(resume: RuntimeState | None) -> StrategiesLogic:
        return StrategiesLogic(runtime, resume, fallback, emit_features=emit_features, marker=marker)

    evaluated = op.stateful_batch("evaluate", up, build)
    unkeyed = op.key_rm("unkey", evaluated)
    # bytewax's filter does not narrow the item type: the predicates below do, at run time.
    intents: Stream[Any] = op.filter("intents", unkeyed, _is_intent)
    errors: Stream[Any] = op.filter("errors", unkeyed, _is_error)
    dead_letters: Stream[Any] = op.filter("dead_letters", unkeyed, _is_dead_letter)
    decisions: Stream[Any] = op.filter("decisions", unkeyed, _is_decision)
    ticks: KeyedStream[Any] = op.filter_value("ticks", evaluated, _is_tick)
    normalized = op.filter_map("normalized", unkeyed, _normalized)
    features: Stream[Any] = op.filter("features", unkeyed, _is_feature)
    marks = op.filter("marks", unkeyed, _is_mark)
    return StrategiesOut(
        intents=intents,
        errors=errors,
        dead_letters=dead_letters,
        ticks=ticks,
        decisions=decisions,
        normalized=normalized,
        features=features,
        marks=marks,
    )


__all__ = [
    "CIRCUIT_BREAKER",
    "STRATEGY_DEGRADED",
    "BatchResult",
    "PluginOutputError",
    "RuntimeConfig",
    "StrategiesLogic",
    "StrategiesOut",
    "StrategyCounters",
    "StrategyRuntime",
    "strategies_stage",
]

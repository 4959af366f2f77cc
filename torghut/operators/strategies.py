"""The strategies stage: every enabled strategy on every feature vector, per symbol.

:class:`StrategyRuntime` is the pure logic (``evaluate(state, fv) -> (state, intents, errors)``);
:func:`strategies_stage` is the thin bytewax wrapper that keeps one :class:`RuntimeState` per symbol.
A plugin that raises, reads an undeclared feature or touches the network produces a
:class:`~torghut.contracts.strategy.StrategyError` (reason: the exception class name) and counts towards
its circuit breaker; the other strategies are unaffected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from time import monotonic, perf_counter_ns
from typing import Any, ClassVar, TypeGuard

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from torghut.contracts.decision import TradeDecision
from torghut.contracts.features import FeatureVectorV3
from torghut.contracts.frozen import FrozenMap
from torghut.contracts.signal import SymbolWatermark
from torghut.contracts.strategy import StrategyDefinition, StrategyError, StrategyIntent
from torghut.metrics import METRICS
from torghut.strategies.base import IntentDraft, StrategyParams, StrategyPlugin
from torghut.strategies.config import RuntimeConfig
from torghut.strategies.guard import begin_evaluation, end_evaluation, install_network_guard
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
        previous = state.strategies
        slots: dict[str, SlotState] = {}
        intents: list[StrategyIntent] = []
        errors: list[StrategyError] = []
        feature_hash: str | None = None
        changed = len(previous) != len(self._slots)
        for slot in self._slots:
            definition = slot.definition
            sid = definition.strategy_id
            current = previous.get(sid)
            if current is None or current.fingerprint != slot.fingerprint:
                current = self._fresh(slot)
                changed = True
            slots[sid] = current
            if definition.base_timeframe != fv.timeframe or (
                slot.universe and fv.symbol not in slot.universe
            ):
                continue
            counters = slot.counters
            counters.events += 1
            if current.degraded_until is not None and fv.event_ts <= current.degraded_until:
                errors.append(_error(definition, CIRCUIT_BREAKER, STRATEGY_DEGRADED, fv))
                counters.errors += 1
                continue
            plugin = slot.plugin
            if plugin is None:
                errors.append(_error(definition, UNREGISTERED, PLUGIN_NOT_FOUND, fv))
                counters.errors += 1
                continue
            drafts, plugin_state, failure = self._call(slot, plugin, fv, current.plugin_state)
            if failure is not None:
                errors.append(_error(definition, plugin.strategy_type, type(failure).__name__, fv))
                counters.errors += 1
                slots[sid] = self._failed(current, fv.event_ts)
                changed = True
                continue
            warming = current.bars_seen < plugin.warmup_bars
            if (
                warming
                or plugin_state is not current.plugin_state
                or current.consecutive_errors
                or current.degraded_until is not None
            ):
                # bars_seen saturates at the warm-up length: an unchanged stateless slot is reused as is.
                seen = current.bars_seen + 1 if warming else current.bars_seen
                slots[sid] = SlotState(slot.fingerprint, plugin_state, seen)
                changed = True
            if warming or not drafts:
                continue
            if feature_hash is None:
                feature_hash = fv.normalization_hash()
            intents.extend(_intent(definition, plugin, draft, fv, feature_hash) for draft in drafts)
            counters.intents += len(drafts)
        return (RuntimeState(FrozenMap(slots)) if changed else state), intents, errors

    @staticmethod
    def _fresh(slot: _Slot) -> SlotState:
        if slot.plugin is None:
            return SlotState(slot.fingerprint, None)
        return SlotState(slot.fingerprint, slot.plugin.initial_state(slot.params))

    @staticmethod
    def _call(
        slot: _Slot, plugin: StrategyPlugin[Any, Any], fv: FeatureVectorV3, plugin_state: Any
    ) -> tuple[Sequence[IntentDraft], Any, Exception | None]:
        view = FeatureView(fv.values, slot.names, slot.declared)
        started = perf_counter_ns()
        begin_evaluation()
        try:
            drafts, next_state = plugin.evaluate(slot.params, view, plugin_state)
            _check_drafts(drafts)
        except Exception as exc:  # noqa: BLE001 - isolation: a plugin failure is data, never a crash
            failure: Exception | None = exc
            drafts, next_state = (), plugin_state
        else:
            failure = None
        finally:
            violation = end_evaluation()
            elapsed_ms = (perf_counter_ns() - started) / 1e6
            slot.counters.latency_ms = elapsed_ms
            slot.counters.latency_ms_total += elapsed_ms
        return drafts, next_state, failure or violation

    def _failed(self, current: SlotState, event_ts: datetime) -> SlotState:
        consecutive = current.consecutive_errors + 1
        if consecutive >= self.config.circuit_errors:
            return dataclasses.replace(
                current, consecutive_errors=0, degraded_until=event_ts + self._cooldown
            )
        return dataclasses.replace(current, consecutive_errors=consecutive)


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


class StrategiesLogic(StatefulBatchLogic[FeatureVectorV3, StrategyOutput, RuntimeState]):
    """One symbol's strategies: the runtime's state, snapshotted as plain immutable data.

    With a ``fallback`` (torghut's ``TRADING_STRATEGY_RUNTIME_FALLBACK_LEGACY``), an event on which the
    runtime produced no intent yields the legacy decisions instead. Each batch ends with a
    :class:`SymbolWatermark`, so the aggregation downstream can close windows in event time.
    """

    def __init__(
        self,
        runtime: StrategyRuntime,
        resume_state: RuntimeState | None,
        fallback: LegacyFallback | None = None,
    ) -> None:
        self._runtime = runtime
        self._state = runtime.restore(resume_state)
        self._fallback = fallback
        self._publisher = MetricsPublisher.for_runtime(runtime)

    def on_batch(self, values: list[FeatureVectorV3]) -> tuple[Iterable[StrategyOutput], bool]:
        """Evaluate each vector in order; intents and errors go downstream in evaluation order."""
        out: list[StrategyOutput] = []
        fallback = self._fallback
        runtime = self._runtime
        latency_before = runtime.latency_totals()
        try:
            for fv in values:
                self._state, intents, errors = runtime.evaluate(self._state, fv)
                out.extend(intents)
                out.extend(errors)
                if fallback is not None and not intents:
                    out.extend(fallback(fv))
        except Exception:
            METRICS.runtime_unhandled_exceptions.inc()
            raise
        self._publisher.observe_batch(latency_before, runtime.latency_totals())
        self._publisher.flush_if_due()
        if values:
            last = values[-1]
            out.append(SymbolWatermark(last.symbol, last.event_ts))
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[StrategyOutput], bool]:
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
    ticks: KeyedStream[StrategyIntent | SymbolWatermark | TradeDecision]


def _is_intent(item: StrategyOutput) -> TypeGuard[StrategyIntent]:
    return isinstance(item, StrategyIntent)


def _is_error(item: StrategyOutput) -> TypeGuard[StrategyError]:
    return isinstance(item, StrategyError)


def _is_tick(item: StrategyOutput) -> bool:
    return not isinstance(item, StrategyError)


@operator
def strategies_stage(
    step_id: str,
    up: KeyedStream[FeatureVectorV3],
    runtime: StrategyRuntime,
    fallback: LegacyFallback | None = None,
) -> StrategiesOut:
    """Run ``runtime`` on a symbol-keyed stream of feature vectors.

    The state lives in the inner step ``evaluate`` (persisted by recovery as ``<step_id>.evaluate``, with
    :class:`RuntimeState` snapshots): keep both names stable.

    >>> from datetime import UTC, datetime
    >>> from decimal import Decimal
    >>> import bytewax.operators as op
    >>> from bytewax.dataflow import Dataflow
    >>> from bytewax.testing import TestingSink, TestingSource, run_main
    >>> from torghut.contracts import FeatureVectorV3, FrozenMap
    >>> from torghut.strategies.catalog import parse_catalog
    >>> from torghut.strategies.registry import default_registry
    >>> registry = default_registry()
    >>> entry = {"name": "macd", "base_timeframe": "1Sec"}
    >>> catalog = parse_catalog([entry], registry, digest="")
    >>> values = {"macd": Decimal(1), "macd_signal": Decimal(0), "rsi14": Decimal(30), "price": Decimal(10)}
    >>> ts = datetime(2026, 2, 19, 14, 30, 5, tzinfo=UTC)
    >>> fv = FeatureVectorV3(ts, "NVDA", "1Sec", 1, "ta", "3.0.0", FrozenMap(values))
    >>> flow = Dataflow("doc")
    >>> keyed = op.key_on("key", op.input("in", flow, TestingSource([fv])), lambda v: v.symbol)
    >>> out = strategies_stage("strategies", keyed, StrategyRuntime(catalog.definitions, registry))
    >>> intents = []
    >>> op.output("intents", out.intents, TestingSink(intents))
    >>> run_main(flow)
    >>> [(i.strategy_id, i.direction, i.confidence) for i in intents]
    [('macd', 'buy', Decimal('0.65'))]
    """
    evaluated = op.stateful_batch("evaluate", up, lambda resume: StrategiesLogic(runtime, resume, fallback))
    unkeyed = op.key_rm("unkey", evaluated)
    # bytewax's filter does not narrow the item type: the predicates below do, at run time.
    intents: Stream[Any] = op.filter("intents", unkeyed, _is_intent)
    errors: Stream[Any] = op.filter("errors", unkeyed, _is_error)
    ticks: KeyedStream[Any] = op.filter_value("ticks", evaluated, _is_tick)
    return StrategiesOut(intents=intents, errors=errors, ticks=ticks)


__all__ = [
    "CIRCUIT_BREAKER",
    "STRATEGY_DEGRADED",
    "PluginOutputError",
    "RuntimeConfig",
    "StrategiesLogic",
    "StrategiesOut",
    "StrategyCounters",
    "StrategyRuntime",
    "strategies_stage",
]

"""Aggregation of strategy intents into symbol intents: conflict policies and the event-time window.

A *group* is the intents of one (symbol, horizon) in one tumbling event-time window. A policy turns a
group into one :class:`SymbolIntent` (or, for the veto policy, :class:`DroppedIntents`), keeping every
intent that lost with its reason:

- ``torghut`` (default) is torghut's ``IntentAggregator`` (contracts §4.5): rank by
  ``(-confidence, -target_notional, strategy_id)``; ``net = Σ confidence * ±notional`` decides the
  direction, ``net == 0`` takes the top-ranked intent's; losers are ``outvoted_by_net_direction``
  (``net_tie_break`` when net was 0).
- ``priority``: the intent with the lowest catalog priority number (then torghut's rank) decides the
  direction; opposing intents lose as ``lower_priority`` or, at the winner's own priority,
  ``outranked_at_equal_priority``.
- ``veto``: a group with both directions yields no symbol intent and every intent loses as
  ``conflict_veto``; a one-sided group is aggregated as ``torghut``.

In every policy the intents on the winning side contribute as in torghut: confidence is their mean and
target notional their sum (the total absolute notional when that sum is not positive), both quantized
to 0.0001 (half-even, torghut's default context).

Beyond torghut's rank key, ties are broken by the remaining intent fields (event time, seq, explain,
hashes...), so the output never depends on the order intents arrive in; torghut's stable sort would
have kept arrival order there instead.

>>> from datetime import UTC, datetime
>>> window_end_for(datetime(2026, 2, 19, 14, 30, 0, 250000, tzinfo=UTC), 1).isoformat()
'2026-02-19T14:30:01+00:00'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from torghut.contracts.decision import TradeDecision
from torghut.contracts.frozen import FrozenMap
from torghut.contracts.portfolio import AggregateOutput, DroppedIntents, LosingIntent, SymbolIntent
from torghut.contracts.signal import SymbolProgress, SymbolWatermark
from torghut.contracts.strategy import Direction, StrategyIntent
from torghut.operators.portfolio_config import DEFAULT_STRATEGY_PRIORITY, AggregationConfig

CONFLICT_EXPLAIN = "intent_conflict_resolved"
REASON_OUTVOTED = "outvoted_by_net_direction"
REASON_NET_TIE = "net_tie_break"
REASON_LOWER_PRIORITY = "lower_priority"
REASON_EQUAL_PRIORITY = "outranked_at_equal_priority"
REASON_CONFLICT_VETO = "conflict_veto"
REASON_LATE = "late"

_QUANTUM = Decimal("0.0001")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

AggregationPolicy = Callable[[Sequence[StrategyIntent], datetime], AggregateOutput]
"""A policy: the intents of one (symbol, horizon) group and the window end -> its outcome."""


def _rank_key(intent: StrategyIntent) -> tuple[Any, ...]:
    # torghut's key first; the rest only orders what torghut's stable sort left in arrival order.
    return (
        -intent.confidence,
        -intent.target_notional,
        intent.strategy_id,
        intent.event_ts,
        intent.seq,
        intent.explain,
        intent.feature_snapshot_hash,
        intent.strategy_version,
        intent.parameter_hash,
        str(intent.confidence),
        str(intent.target_notional),
        str(intent.price),
        intent.direction,
        intent.strategy_type,
        intent.horizon,
        intent.position.label() if intent.position is not None else "",
    )


def _latest_key(intent: StrategyIntent) -> tuple[Any, ...]:
    return (intent.event_ts, intent.seq, *(_rank_key(intent)[2:]))


def _signed(intent: StrategyIntent) -> Decimal:
    return intent.target_notional if intent.direction == "buy" else -intent.target_notional


def _check_group(intents: Sequence[StrategyIntent]) -> list[StrategyIntent]:
    if not intents:
        msg = "an aggregation group needs at least one strategy intent"
        raise ValueError(msg)
    keys = {(i.symbol, i.horizon) for i in intents}
    if len(keys) != 1:
        msg = f"an aggregation group holds one (symbol, horizon); found {sorted(keys)}"
        raise ValueError(msg)
    return sorted(intents, key=_rank_key)


def _loser(intent: StrategyIntent, reason: str) -> LosingIntent:
    return LosingIntent(
        strategy_id=intent.strategy_id,
        direction=intent.direction,
        confidence=intent.confidence,
        target_notional=intent.target_notional,
        reason=reason,
        event_ts=intent.event_ts,
        seq=intent.seq,
        strategy_version=intent.strategy_version,
        parameter_hash=intent.parameter_hash,
    )


def _build(
    ranked: list[StrategyIntent],
    direction: Direction,
    window_end: datetime,
    policy: str,
    loser_reason: Callable[[StrategyIntent], str],
) -> SymbolIntent:
    """Build the symbol intent for ``direction`` from a ranked group (torghut's output rules)."""
    conflict = len({i.direction for i in ranked}) > 1
    selected = [i for i in ranked if i.direction == direction]
    confidence = sum((i.confidence for i in selected), Decimal(0)) / Decimal(len(selected))
    selected_notional = sum((i.target_notional for i in selected), Decimal(0))
    total_notional = sum((abs(i.target_notional) for i in ranked), Decimal(0))
    notional = selected_notional if selected_notional > 0 else total_notional
    explain = selected[0].explain + ((CONFLICT_EXPLAIN,) if conflict else ())
    by_time = sorted(ranked, key=_latest_key)
    latest = by_time[-1]
    priced = [i for i in by_time if i.price is not None]
    versions: dict[str, str] = {}
    param_hashes: dict[str, str] = {}
    for intent in sorted(selected, key=_latest_key):  # the latest event's provenance wins
        versions[intent.strategy_id] = intent.strategy_version
        param_hashes[intent.strategy_id] = intent.parameter_hash
    return SymbolIntent(
        symbol=latest.symbol,
        direction=direction,
        confidence=confidence.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN),
        target_notional=notional.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN),
        horizon=latest.horizon,
        explain=explain,
        source_strategy_ids=tuple(dict.fromkeys(i.strategy_id for i in selected)),
        feature_snapshot_hashes=tuple(sorted({i.feature_snapshot_hash for i in ranked})),
        event_ts=latest.event_ts,
        window_end=window_end,
        seq=latest.seq,
        policy=policy,
        conflict=conflict,
        losers=tuple(_loser(i, loser_reason(i)) for i in ranked if i.direction != direction),
        price=priced[-1].price if priced else None,
        strategy_versions=FrozenMap(sorted(versions.items())),
        parameter_hashes=FrozenMap(sorted(param_hashes.items())),
        position=latest.position,
    )


def torghut_policy(intents: Sequence[StrategyIntent], window_end: datetime) -> SymbolIntent:
    """Aggregate one group exactly as torghut's ``IntentAggregator`` (contracts §4.5).

    Args:
        intents: The strategy intents of one (symbol, horizon) window, in any order.
        window_end: The (exclusive) end of their event-time window.

    Returns:
        The symbol intent; opposing intents are its losers (``outvoted_by_net_direction``, or
        ``net_tie_break`` when the net score was exactly 0).

    Raises:
        ValueError: ``intents`` is empty or spans several (symbol, horizon) keys.
    """
    ranked = _check_group(intents)
    net = sum((i.confidence * _signed(i) for i in ranked), Decimal(0))
    if net == 0:
        direction: Direction = ranked[0].direction
        reason = REASON_NET_TIE
    else:
        direction = "buy" if net > 0 else "sell"
        reason = REASON_OUTVOTED
    return _build(ranked, direction, window_end, "torghut", lambda _: reason)


def priority_policy(
    intents: Sequence[StrategyIntent],
    window_end: datetime,
    priorities: Mapping[str, int],
) -> SymbolIntent:
    """Aggregate one group by strict catalog priority: the lowest priority number sets the direction.

    The winner is the first intent by ``(priority, torghut's rank)``; intents on its side contribute
    as in torghut, opposing ones lose as ``lower_priority`` (or ``outranked_at_equal_priority`` when
    their priority equals the winner's). A strategy missing from ``priorities`` has priority 100.

    Raises:
        ValueError: ``intents`` is empty or spans several (symbol, horizon) keys.
    """

    def priority(intent: StrategyIntent) -> int:
        return priorities.get(intent.strategy_id, DEFAULT_STRATEGY_PRIORITY)

    ranked = _check_group(intents)
    winner = min(ranked, key=lambda i: (priority(i), _rank_key(i)))
    top = priority(winner)

    def reason(intent: StrategyIntent) -> str:
        return REASON_EQUAL_PRIORITY if priority(intent) == top else REASON_LOWER_PRIORITY

    return _build(ranked, winner.direction, window_end, "priority", reason)


def veto_policy(intents: Sequence[StrategyIntent], window_end: datetime) -> AggregateOutput:
    """Drop a conflicting group entirely (every intent loses as ``conflict_veto``), else aggregate it.

    Raises:
        ValueError: ``intents`` is empty or spans several (symbol, horizon) keys.
    """
    ranked = _check_group(intents)
    if len({i.direction for i in ranked}) == 1:
        return replace(torghut_policy(ranked, window_end), policy="veto")
    latest = max(ranked, key=_latest_key)
    return DroppedIntents(
        symbol=latest.symbol,
        horizon=latest.horizon,
        window_end=window_end,
        policy="veto",
        reason=REASON_CONFLICT_VETO,
        losers=tuple(_loser(i, REASON_CONFLICT_VETO) for i in ranked),
        event_ts=latest.event_ts,
        seq=latest.seq,
        conflict=True,
    )


def make_policy(config: AggregationConfig) -> AggregationPolicy:
    """Return the policy function ``config.policy`` names (priority closes over its priority map)."""
    if config.policy == "priority":
        priorities = FrozenMap(config.strategy_priorities)
        return lambda intents, window_end: priority_policy(intents, window_end, priorities)
    if config.policy == "veto":
        return veto_policy
    return torghut_policy


def window_end_for(event_ts: datetime, window_s: int) -> datetime:
    """Return the exclusive end of the epoch-aligned ``window_s``-second window holding ``event_ts``."""
    if event_ts.tzinfo is None:
        msg = f"event time must be tz-aware UTC, found naive {event_ts.isoformat()}"
        raise ValueError(msg)
    width_us = window_s * 1_000_000
    offset_us = (event_ts - _EPOCH) // _ONE_US
    return _EPOCH + _ONE_US * ((offset_us // width_us + 1) * width_us)


def _output_key(output: AggregateOutput) -> tuple[datetime, str, str, int]:
    order = 0 if isinstance(output, DroppedIntents) and output.reason == REASON_LATE else 1
    return (output.window_end, output.symbol, output.horizon, order)


@dataclass(frozen=True, slots=True)
class WindowState:
    """The aggregator's snapshot: open windows and counters, all plain immutable data.

    Attributes:
        windows: ``(window_end, intents)`` per open window, ascending by window end.
        watermark: The latest event time seen (intents and :meth:`SymbolWindowAggregator.on_watermark`).
        closed_through: The latest window end closed so far (for the record; lateness is decided by
            the watermark).
        conflicts_total: Conflicting (symbol, horizon) groups closed so far.
        late_total: Strategy intents dropped as late so far.
        version: The snapshot layout version (bump with a migration when the layout changes).
    """

    windows: tuple[tuple[datetime, tuple[StrategyIntent, ...]], ...] = ()
    watermark: datetime | None = None
    closed_through: datetime | None = None
    conflicts_total: int = 0
    late_total: int = 0
    version: int = 1


class SymbolWindowAggregator:
    """Collect strategy intents per tumbling event-time window and aggregate each window on close.

    A window ``[end - window_s, end)`` closes once the watermark (the latest event time seen, from an
    intent or an :meth:`on_watermark` call for a feature event without intents) reaches
    ``end + allowed_lateness_s``, and at :meth:`flush`. An intent whose window the watermark had
    already passed when it arrived (``end + allowed_lateness_s <= watermark``, so its window is closed
    or, if it was empty, would have been) is *late*: it is emitted at once as :class:`DroppedIntents`
    with reason ``late`` and counted in ``late_total``, never merged into a result already emitted.
    Outputs come sorted by ``(window_end, symbol, horizon)``, late drops first.

    >>> from datetime import UTC, datetime
    >>> agg = SymbolWindowAggregator(AggregationConfig())
    >>> state, out = agg.on_watermark(WindowState(), datetime(2026, 2, 19, 14, 30, tzinfo=UTC))
    >>> out, state.watermark.isoformat()
    ([], '2026-02-19T14:30:00+00:00')
    """

    __slots__ = ("_lateness", "_policy", "_policy_name", "_window_s")

    def __init__(self, config: AggregationConfig, policy: AggregationPolicy | None = None) -> None:
        self._window_s = config.window_s
        self._lateness = timedelta(seconds=config.allowed_lateness_s)
        self._policy = policy or make_policy(config)
        self._policy_name = config.policy

    def on_intents(
        self, state: WindowState, intents: Iterable[StrategyIntent]
    ) -> tuple[WindowState, list[AggregateOutput]]:
        """Add intents to their windows, then close the windows the new watermark has passed."""
        late: list[StrategyIntent] = []
        windows = dict(state.windows)
        watermark = state.watermark
        for intent in intents:
            end = window_end_for(intent.event_ts, self._window_s)
            if state.watermark is not None and end + self._lateness <= state.watermark:
                late.append(intent)
            else:
                windows[end] = (*windows.get(end, ()), intent)
            watermark = intent.event_ts if watermark is None else max(watermark, intent.event_ts)
        outputs = self._late_outputs(late)
        state = replace(
            state,
            windows=tuple(sorted(windows.items())),
            watermark=watermark,
            late_total=state.late_total + len(late),
        )
        state, closed = self._close(
            state, lambda end: watermark is not None and end + self._lateness <= watermark
        )
        return state, sorted(outputs + closed, key=_output_key)

    def on_watermark(
        self, state: WindowState, event_ts: datetime
    ) -> tuple[WindowState, list[AggregateOutput]]:
        """Advance event time without intents (a feature event) and close the windows it has passed."""
        watermark = event_ts if state.watermark is None else max(state.watermark, event_ts)
        state = replace(state, watermark=watermark)
        state, closed = self._close(state, lambda end: end + self._lateness <= watermark)
        return state, sorted(closed, key=_output_key)

    advance = on_watermark

    def frontier(self, state: WindowState) -> datetime | None:
        """The least window end any symbol intent still to come from ``state`` can have (None: unbounded).

        An open window closes at its end; a new intent is accepted only into a window whose end plus the
        allowed lateness is past the watermark (else it is late and dropped), so it ends at least one
        microsecond (the resolution of event times) after ``watermark - allowed_lateness``.

        >>> from datetime import UTC, datetime
        >>> agg = SymbolWindowAggregator(AggregationConfig(allowed_lateness_s=2))
        >>> state, _ = agg.on_watermark(WindowState(), datetime(2026, 2, 19, 14, 30, 10, tzinfo=UTC))
        >>> agg.frontier(state).isoformat(), agg.frontier(WindowState())
        ('2026-02-19T14:30:08.000001+00:00', None)
        """
        if state.watermark is None:
            return None
        bound = state.watermark - self._lateness + _ONE_US
        if state.windows and state.windows[0][0] < bound:
            return state.windows[0][0]
        return bound

    def flush(self, state: WindowState) -> tuple[WindowState, list[AggregateOutput]]:
        """Close every open window (end of input)."""
        state, closed = self._close(state, lambda _: True)
        return state, sorted(closed, key=_output_key)

    def _close(
        self, state: WindowState, due: Callable[[datetime], bool]
    ) -> tuple[WindowState, list[AggregateOutput]]:
        outputs: list[AggregateOutput] = []
        remaining: list[tuple[datetime, tuple[StrategyIntent, ...]]] = []
        closed_through = state.closed_through
        conflicts = 0
        for end, intents in state.windows:
            if not due(end):
                remaining.append((end, intents))
                continue
            closed_through = end if closed_through is None else max(closed_through, end)
            groups: dict[tuple[str, str], list[StrategyIntent]] = {}
            for intent in intents:
                groups.setdefault((intent.symbol, intent.horizon), []).append(intent)
            for key in sorted(groups):
                output = self._policy(groups[key], end)
                conflicts += int(output.conflict)
                outputs.append(output)
        new_state = replace(
            state,
            windows=tuple(remaining),
            closed_through=closed_through,
            conflicts_total=state.conflicts_total + conflicts,
        )
        return new_state, outputs

    def _late_outputs(self, late: list[StrategyIntent]) -> list[AggregateOutput]:
        groups: dict[tuple[datetime, str, str], list[StrategyIntent]] = {}
        for intent in late:
            key = (window_end_for(intent.event_ts, self._window_s), intent.symbol, intent.horizon)
            groups.setdefault(key, []).append(intent)
        outputs: list[AggregateOutput] = []
        for (end, symbol, horizon), intents in sorted(groups.items()):
            ranked = sorted(intents, key=_rank_key)
            latest = max(ranked, key=_latest_key)
            outputs.append(
                DroppedIntents(
                    symbol=symbol,
                    horizon=horizon,
                    window_end=end,
                    policy=self._policy_name,
                    reason=REASON_LATE,
                    losers=tuple(_loser(i, REASON_LATE) for i in ranked),
                    event_ts=latest.event_ts,
                    seq=latest.seq,
                    conflict=len({i.direction for i in ranked}) > 1,
                )
            )
        return outputs


AggregateInput = StrategyIntent | SymbolWatermark | TradeDecision
AggregateStageOutput = SymbolIntent | DroppedIntents | TradeDecision | SymbolProgress


class AggregateLogic(StatefulBatchLogic[AggregateInput, AggregateStageOutput, WindowState]):
    """One symbol's open windows; legacy decisions (the runtime's fallback) pass straight through.

    With ``progress``, a batch that moves the symbol's :meth:`SymbolWindowAggregator.frontier` ends with a
    :class:`SymbolProgress` (for an account stage that releases by frontier).
    """

    def __init__(
        self, aggregator: SymbolWindowAggregator, resume_state: WindowState | None, *, progress: bool = False
    ) -> None:
        if resume_state is not None and resume_state.version != WindowState().version:
            msg = (
                f"aggregation snapshot version {resume_state.version} is not supported (expected "
                f"{WindowState().version}); resume with the engine version that wrote it, or start a new "
                "recovery store"
            )
            raise ValueError(msg)
        self._aggregator = aggregator
        self._state = resume_state if resume_state is not None else WindowState()
        self._progress = progress
        self._reported: datetime | None = None

    def on_batch(self, values: list[AggregateInput]) -> tuple[Iterable[AggregateStageOutput], bool]:
        """Add intents to windows, close windows at each watermark, pass decisions through."""
        out: list[AggregateStageOutput] = []
        intents: list[StrategyIntent] = []
        for value in values:
            if isinstance(value, StrategyIntent):
                intents.append(value)
                continue
            if intents:
                self._state, closed = self._aggregator.on_intents(self._state, intents)
                out.extend(closed)
                intents = []
            if isinstance(value, SymbolWatermark):
                self._state, closed = self._aggregator.on_watermark(self._state, value.event_ts)
                out.extend(closed)
            else:
                out.append(value)
        if intents:
            self._state, closed = self._aggregator.on_intents(self._state, intents)
            out.extend(closed)
        if self._progress and values:
            self._report(values[-1].symbol, out)
        return out, StatefulBatchLogic.RETAIN

    def _report(self, symbol: str, out: list[AggregateStageOutput]) -> None:
        through = self._aggregator.frontier(self._state)
        if through is not None and (self._reported is None or through > self._reported):
            self._reported = through
            out.append(SymbolProgress(symbol, through))

    def on_eof(self) -> tuple[Iterable[AggregateStageOutput], bool]:
        """Close every open window at the end of input."""
        self._state, closed = self._aggregator.flush(self._state)
        return closed, StatefulBatchLogic.RETAIN

    def snapshot(self) -> WindowState:
        """Return the immutable window state; bytewax pickles it."""
        return self._state


@operator
def aggregate_stage(
    step_id: str,
    up: KeyedStream[AggregateInput],
    aggregator: SymbolWindowAggregator,
    *,
    progress: bool = False,
) -> Stream[AggregateStageOutput]:
    """Aggregate each symbol's strategy intents per event-time window into symbol intents.

    With ``progress``, each symbol also reports its :class:`SymbolProgress`. The state lives in the inner
    step ``windows`` (persisted by recovery as ``<step_id>.windows``).
    """

    def build(resume: WindowState | None) -> AggregateLogic:
        return AggregateLogic(aggregator, resume, progress=progress)

    closed = op.stateful_batch("windows", up, build)
    return op.key_rm("unkey", closed)

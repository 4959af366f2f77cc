"""Prometheus accounting of the flow's output records, off the per-event hot path.

Records (dead letters, symbol intents, portfolio intents, decisions, rejections, executions) are a small
fraction of events, so one ``inspect`` step over the record stream counts them; per-event counters
(events in, strategy evaluations) are incremented once per batch by the stages themselves.

``torghut_signal_lag_seconds`` is not set here: these are output records, which exist only when a strategy
acts, while the lag is about the newest *input* signal, and a wall-clock read per record would cost the
replay's hot path. The ClickHouse source sets it once per poll instead. A replay (file source) leaves it
unset, its signals being historical. The Kafka source leaves it unset too: only the parse stage decodes a
record's event time, so a per-batch update there is where a Kafka lag would belong.
"""

from __future__ import annotations

from typing import Any

from torghut.contracts.decision import Rejection, TradeDecision
from torghut.contracts.execution import ExecutionReport
from torghut.contracts.portfolio import PortfolioIntent, SymbolIntent
from torghut.contracts.signal import DeadLetter
from torghut.metrics import METRICS


def observe_record(step_id: str, record: Any) -> None:
    """Count one output record in the engine's metrics (an ``op.inspect`` callback)."""
    if isinstance(record, DeadLetter):
        METRICS.dead_letter(record.stage, record.reason).inc()
    elif isinstance(record, SymbolIntent):
        if record.conflict:
            METRICS.intent_conflicts.inc()
    elif isinstance(record, PortfolioIntent):
        if record.status == "rejected":
            for reason in record.reason_codes or ("allocator_rejected",):
                METRICS.allocator_reject(reason).inc()
    elif isinstance(record, TradeDecision):
        for verdict in record.gate_trace:
            METRICS.gate_verdict(verdict.gate, verdict.outcome, verdict.reason).inc()
    elif isinstance(record, Rejection):
        METRICS.order("rejected").inc()
    elif isinstance(record, ExecutionReport):
        METRICS.order("submitted").inc()
        if record.status != "submitted":
            METRICS.order(record.status).inc()

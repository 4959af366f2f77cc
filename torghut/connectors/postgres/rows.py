"""Contracts to table rows: the deterministic ids and the column values every sink writes.

Pure functions, no I/O. Ids are deterministic so that a record delivered twice maps to the same row:

* engine tables: the sha256 hex of the record's canonical JSON (a dead letter: of its stage, position and
  reason, since its raw input may be anything);
* torghut tables (uuid keys): a uuid5 of the natural key (decision hash, client order id, strategy id,
  account and time), so a replay into an empty database yields the same ids.

JSON columns receive the canonical JSON text (decimals as strings), which PostgreSQL parses into ``jsonb``.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from torghut.contracts.account import AccountSnapshot
from torghut.contracts.decision import Rejection, TradeDecision
from torghut.contracts.execution import ExecutionReport
from torghut.contracts.hashing import canonical_json, sha256_hex, to_jsonable
from torghut.contracts.portfolio import PortfolioIntent, SymbolIntent
from torghut.contracts.signal import DeadLetter
from torghut.contracts.strategy import StrategyDefinition, StrategyIntent

Row = tuple[Any, ...]

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/proompteng/lab/torghut-engine")
_STRATEGY_NS = uuid.uuid5(_NAMESPACE, "strategies")
_DECISION_NS = uuid.uuid5(_NAMESPACE, "trade_decisions")
_EXECUTION_NS = uuid.uuid5(_NAMESPACE, "executions")
_SNAPSHOT_NS = uuid.uuid5(_NAMESPACE, "position_snapshots")


@dataclass(frozen=True, slots=True)
class StrategyVersion:
    """One (strategy, plugin type, exact version, parameter hash) the engine ran, and when first seen.

    ``first_seen`` is an event time, so a replay records the same value.
    """

    strategy_id: str
    strategy_type: str
    version: str
    parameter_hash: str
    first_seen: datetime

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The table's primary key."""
        return (self.strategy_id, self.strategy_type, self.version, self.parameter_hash)

    @classmethod
    def from_intent(cls, intent: StrategyIntent) -> StrategyVersion:
        """Return the version an intent was produced by, first seen at the intent's event time."""
        return cls(
            intent.strategy_id,
            intent.strategy_type,
            intent.strategy_version,
            intent.parameter_hash,
            intent.event_ts,
        )

    @classmethod
    def from_definition(cls, definition: StrategyDefinition, first_seen: datetime) -> StrategyVersion:
        """Return the version a catalog entry pins, first seen at ``first_seen``."""
        return cls(
            definition.strategy_id,
            definition.strategy_type,
            definition.version,
            definition.parameter_hash,
            first_seen,
        )


def strategy_uuid(strategy_id: str) -> uuid.UUID:
    """Return the ``strategies.id`` of an engine strategy id.

    A torghut strategy id is already the row's uuid and is kept; any other id (``intraday_tsmom_v1@paper``)
    maps to a stable uuid5.

    >>> str(strategy_uuid("6f1c0b9e-2f5e-4a8a-9d3e-1b2c3d4e5f60"))
    '6f1c0b9e-2f5e-4a8a-9d3e-1b2c3d4e5f60'
    >>> strategy_uuid("a") == strategy_uuid("a") != strategy_uuid("b")
    True
    """
    try:
        return uuid.UUID(strategy_id)
    except ValueError:
        return uuid.uuid5(_STRATEGY_NS, strategy_id)


def decision_uuid(decision_hash: str) -> uuid.UUID:
    """Return the ``trade_decisions.id`` of a decision hash."""
    return uuid.uuid5(_DECISION_NS, decision_hash)


def _label(account: str) -> str | None:
    return account or None


def strategy_row(definition: StrategyDefinition) -> Row:
    """Return a ``strategies`` row (torghut's catalog apply: ``universe_type`` holds the plugin type)."""
    symbols = canonical_json(list(definition.universe_symbols)) if definition.universe_symbols else None
    return (
        strategy_uuid(definition.strategy_id),
        definition.strategy_name,
        definition.description,
        definition.enabled,
        definition.base_timeframe,
        definition.strategy_type,
        symbols,
        definition.max_position_pct_equity,
        definition.max_notional_per_trade,
    )


def placeholder_strategy_row(strategy_id: str) -> Row:
    """Return a minimal ``strategies`` row for a decision whose strategy was never upserted (FK target)."""
    return (strategy_uuid(strategy_id), strategy_id, None, True, "1Min", "unknown", None, None, None)


def strategy_version_row(version: StrategyVersion) -> Row:
    """Return a ``strategy_versions`` row."""
    return (*version.key, version.first_seen)


def strategy_intent_row(intent: StrategyIntent) -> Row:
    """Return a ``strategy_intents`` row keyed by the sha256 of the intent's canonical JSON."""
    text = canonical_json(intent)
    return (
        sha256_hex(text),
        intent.strategy_id,
        intent.symbol,
        intent.event_ts,
        intent.seq,
        intent.direction,
        intent.confidence,
        intent.target_notional,
        intent.horizon,
        intent.strategy_type,
        intent.strategy_version,
        intent.parameter_hash,
        intent.feature_snapshot_hash,
        None if intent.position is None else intent.position.label(),
        text,
    )


def symbol_intent_row(intent: SymbolIntent) -> Row:
    """Return a ``symbol_intents`` row keyed by the sha256 of the intent's canonical JSON."""
    text = canonical_json(intent)
    return (
        sha256_hex(text),
        intent.symbol,
        intent.event_ts,
        intent.window_end,
        intent.seq,
        intent.horizon,
        intent.direction,
        intent.confidence,
        intent.target_notional,
        intent.policy,
        intent.conflict,
        canonical_json(intent.source_strategy_ids),
        text,
    )


def portfolio_intent_row(intent: PortfolioIntent) -> Row:
    """Return a ``portfolio_intents`` row keyed by the sha256 of the intent's canonical JSON."""
    text = canonical_json(intent)
    return (
        sha256_hex(text),
        intent.account,
        intent.symbol,
        intent.event_ts,
        intent.direction,
        intent.net_target_qty,
        intent.requested_qty,
        intent.approved_qty,
        intent.price,
        intent.status,
        intent.regime_label,
        intent.capacity_bucket,
        canonical_json(intent.allocator_trace),
        text,
    )


def decision_row(decision: TradeDecision) -> Row:
    """Return a ``trade_decisions`` row; ``decision_json`` is the whole decision (trace and provenance)."""
    return (
        decision_uuid(decision.decision_hash),
        strategy_uuid(decision.strategy_id),
        _label(decision.account),
        decision.symbol,
        decision.timeframe,
        canonical_json(decision),
        decision.rationale,
        decision.decision_hash,
        decision.status,
    )


def rejection_row(rejection: Rejection) -> Row:
    """Return a ``rejections`` row keyed by the sha256 of the rejection's canonical JSON."""
    text = canonical_json(rejection)
    return (
        sha256_hex(text),
        rejection.decision_hash,
        rejection.stage,
        rejection.symbol,
        rejection.event_ts,
        rejection.risk_reasons,
        canonical_json(rejection.gate_trace),
        text,
    )


def _raw_str(raw: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = raw.get(name)
        if value is not None:
            return str(value)
    return None


def execution_row(report: ExecutionReport) -> Row:
    """Return an ``executions`` row (without ``trade_decision_id``, which the database joins in).

    Order type and time in force come from the adapter's raw order.
    """
    return (
        uuid.uuid5(_EXECUTION_NS, report.client_order_id),
        report.client_order_id,
        _label(report.account),
        report.broker_order_id or None,
        report.symbol,
        report.side,
        _raw_str(report.raw, "type", "order_type"),
        _raw_str(report.raw, "time_in_force"),
        report.qty,
        report.filled_qty,
        report.avg_fill_price,
        report.fee,
        report.status,
        _raw_str(report.raw, "execution_expected_adapter", "expected_adapter"),
        report.adapter,
        canonical_json(report.raw),
        report.event_ts,
    )


def position_snapshot_row(snapshot: AccountSnapshot) -> Row:
    """Return a ``position_snapshots`` row keyed by (account, as-of time)."""
    key = f"{snapshot.account}|{snapshot.event_ts.isoformat()}"
    return (
        uuid.uuid5(_SNAPSHOT_NS, key),
        _label(snapshot.account),
        snapshot.event_ts,
        snapshot.equity,
        snapshot.cash,
        snapshot.buying_power,
        canonical_json(snapshot.positions),
    )


def _jsonb_safe(value: Any) -> Any:
    # jsonb rejects NUL characters and NaN/Infinity, both of which a broken input row may hold.
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(_jsonb_safe(k)): _jsonb_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonb_safe(v) for v in value]
    if value is None or isinstance(value, bool | int):
        return value
    return _jsonb_safe(to_jsonable(value))


def dead_letter_id(letter: DeadLetter) -> str:
    """Return a dead letter's id: sha256 of its stage, input position and reason.

    The reason is part of the key because one input can fail more than once at one stage (two strategies);
    a letter without a position is keyed by its whole canonical JSON.
    """
    if letter.position is None:
        return sha256_hex(letter)
    return sha256_hex({"stage": letter.stage, "position": letter.position, "reason": letter.reason})


def dead_letter_row(letter: DeadLetter) -> Row:
    """Return a ``dead_letters`` row; the raw input is stored as JSON (bytes decoded, NUL replaced)."""
    position = letter.position
    return (
        dead_letter_id(letter),
        letter.stage,
        _jsonb_safe(letter.reason),
        None if position is None else position.source,
        None if position is None else position.partition,
        None if position is None else position.offset,
        None if letter.symbol is None else _jsonb_safe(letter.symbol),
        letter.event_ts,
        canonical_json(_jsonb_safe(letter.raw)),
    )

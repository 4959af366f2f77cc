"""Trade decisions, gate verdicts and rejections: what the decision path emits and why.

A gate never raises on a business rejection: it returns a :class:`GateVerdict` naming the gate, the outcome,
the reason and the inputs it saw. A decision carries the whole trace of verdicts it went through, and a
blocked decision becomes a :class:`Rejection` with the same trace.

>>> v = rejected("symbol_allowed", "symbol_not_allowed", symbol="TSLA")
>>> v.outcome, v.reason, dict(v.inputs)
('reject', 'symbol_not_allowed', {'symbol': 'TSLA'})
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from torghut.contracts.frozen import EMPTY as EMPTY_MAP
from torghut.contracts.frozen import FrozenMap, freeze, freeze_kwargs
from torghut.contracts.strategy import Direction

GateOutcome = Literal["pass", "clip", "reject"]
OrderType = Literal["market", "limit", "stop", "stop_limit"]
TimeInForce = Literal["day", "gtc", "ioc", "fok"]
DecisionStatus = Literal["planned", "approved", "rejected", "submitted", "filled"]
RejectionStage = Literal["allocator", "policy", "risk", "firewall", "execution"]


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """One gate's verdict on one order or decision, with the reason and the inputs it saw.

    ``clipped_qty`` is the quantity a ``"clip"`` verdict reduced the order to. A ``"clip"`` or ``"reject"``
    verdict must carry a non-empty reason; violating that is a programmer error and raises.
    """

    gate: str
    outcome: GateOutcome
    reason: str | None = None
    inputs: FrozenMap[str, Any] = EMPTY_MAP
    clipped_qty: Decimal | None = None

    def __post_init__(self) -> None:
        if self.outcome != "pass" and not self.reason:
            msg = f"gate {self.gate!r}: a {self.outcome!r} verdict needs a non-empty reason"
            raise ValueError(msg)
        if (self.outcome == "clip") != (self.clipped_qty is not None):
            msg = f"gate {self.gate!r}: clipped_qty is required for, and only for, a 'clip' verdict"
            raise ValueError(msg)

    @property
    def blocks(self) -> bool:
        """Whether this verdict stops the order."""
        return self.outcome == "reject"


def passed(gate: str, /, **inputs: Any) -> GateVerdict:
    """Return a ``"pass"`` verdict recording ``inputs``."""
    return GateVerdict(gate, "pass", None, freeze_kwargs(inputs))


def rejected(gate: str, reason: str, /, **inputs: Any) -> GateVerdict:
    """Return a ``"reject"`` verdict with ``reason`` and ``inputs``."""
    return GateVerdict(gate, "reject", reason, freeze_kwargs(inputs))


def clipped(gate: str, reason: str, qty: Decimal, /, **inputs: Any) -> GateVerdict:
    """Return a ``"clip"`` verdict reducing the order to ``qty``."""
    return GateVerdict(gate, "clip", reason, freeze_kwargs(inputs), clipped_qty=qty)


def _optional_str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def decision_hash(
    *,
    strategy_id: str,
    symbol: str,
    event_ts: datetime,
    timeframe: str,
    action: str,
    qty: Decimal,
    order_type: str,
    time_in_force: str,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    params: Any,
) -> str:
    """Return torghut V3's decision hash, which is also the order's ``client_order_id``.

    sha256 hex of ``json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)``; it uses
    ``default=str`` exactly as torghut does (a ``datetime`` nested in ``params`` encodes as ``str(dt)``),
    so it deliberately does not go through :func:`torghut.contracts.hashing.canonical_json`.

    >>> from datetime import UTC
    >>> len(decision_hash(strategy_id="s", symbol="AAPL", event_ts=datetime(2026, 1, 1, tzinfo=UTC),
    ...     timeframe="1Min", action="buy", qty=Decimal(1), order_type="market", time_in_force="day",
    ...     limit_price=None, stop_price=None, params={}))
    64
    """
    payload = {
        "strategy_id": strategy_id,
        "symbol": symbol,
        "event_ts": event_ts.isoformat(),
        "timeframe": timeframe,
        "action": action,
        "qty": str(qty),
        "order_type": order_type,
        "time_in_force": time_in_force,
        "limit_price": _optional_str(limit_price),
        "stop_price": _optional_str(stop_price),
        "params": params,
    }
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class TradeDecision:
    """Torghut's ``StrategyDecision`` plus the engine's hash, status, gate trace and provenance.

    Build one with :meth:`create`, which computes ``decision_hash`` from the hashed fields as emitted, so a
    later status or trace change never alters the hash (torghut hashes before sizing and policy).
    """

    strategy_id: str
    symbol: str
    event_ts: datetime
    timeframe: str
    action: Direction
    qty: Decimal
    order_type: OrderType = "market"
    time_in_force: TimeInForce = "day"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    rationale: str | None = None
    params: FrozenMap[str, Any] = EMPTY_MAP
    decision_hash: str = ""
    account: str = ""
    status: DecisionStatus = "planned"
    gate_trace: tuple[GateVerdict, ...] = ()
    provenance: FrozenMap[str, Any] = field(default=EMPTY_MAP)

    @classmethod
    def create(
        cls,
        *,
        strategy_id: str,
        symbol: str,
        event_ts: datetime,
        timeframe: str,
        action: Direction,
        qty: Decimal,
        order_type: OrderType = "market",
        time_in_force: TimeInForce = "day",
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        rationale: str | None = None,
        params: Any = EMPTY_MAP,
        account: str = "",
        provenance: Any = EMPTY_MAP,
    ) -> TradeDecision:
        """Build a planned decision and compute its torghut decision hash."""
        frozen_params: FrozenMap[str, Any] = freeze(params)
        digest = decision_hash(
            strategy_id=strategy_id,
            symbol=symbol,
            event_ts=event_ts,
            timeframe=timeframe,
            action=action,
            qty=qty,
            order_type=order_type,
            time_in_force=time_in_force,
            limit_price=limit_price,
            stop_price=stop_price,
            params=frozen_params,
        )
        return cls(
            strategy_id=strategy_id,
            symbol=symbol,
            event_ts=event_ts,
            timeframe=timeframe,
            action=action,
            qty=qty,
            order_type=order_type,
            time_in_force=time_in_force,
            limit_price=limit_price,
            stop_price=stop_price,
            rationale=rationale,
            params=frozen_params,
            decision_hash=digest,
            account=account,
            provenance=freeze(provenance),
        )

    def recompute_hash(self) -> str:
        """Return the hash of the current hashed fields (equal to ``decision_hash`` unless edited)."""
        return decision_hash(
            strategy_id=self.strategy_id,
            symbol=self.symbol,
            event_ts=self.event_ts,
            timeframe=self.timeframe,
            action=self.action,
            qty=self.qty,
            order_type=self.order_type,
            time_in_force=self.time_in_force,
            limit_price=self.limit_price,
            stop_price=self.stop_price,
            params=self.params,
        )


@dataclass(frozen=True, slots=True)
class Rejection:
    """A decision or order that was blocked: where, why, and every verdict it collected on the way."""

    decision_hash: str
    symbol: str
    event_ts: datetime
    stage: RejectionStage
    reasons: tuple[str, ...]
    gate_trace: tuple[GateVerdict, ...]

    def __post_init__(self) -> None:
        if not self.reasons or not all(self.reasons):
            msg = f"rejection of {self.decision_hash!r} at {self.stage!r} needs non-empty reasons"
            raise ValueError(msg)

    @property
    def risk_reasons(self) -> str:
        """The reasons joined with ``;``, as torghut appends them to ``decision_json.risk_reasons``."""
        return ";".join(self.reasons)


def rejection_from_trace(
    *,
    decision_hash: str,
    symbol: str,
    event_ts: datetime,
    stage: RejectionStage,
    gate_trace: tuple[GateVerdict, ...],
) -> Rejection:
    """Build a :class:`Rejection` whose reasons are those of the trace's ``"reject"`` verdicts, in order."""
    reasons = tuple(v.reason for v in gate_trace if v.blocks and v.reason)
    return Rejection(decision_hash, symbol, event_ts, stage, reasons, gate_trace)

"""Execution policy: a portfolio intent or a legacy decision becomes a draft order, or policy verdicts.

Torghut's ``ExecutionPolicy`` (contracts section 5.4), as pure functions:

- a ``market`` order becomes ``limit`` when ``TRADING_EXECUTION_PREFER_LIMIT`` and a price is known, at
  price ± spread/2 (+ for a buy), rounded half-up to a 0.01 tick (0.0001 below $1);
- ``min_notional_not_met`` (notional < min), ``max_notional_exceeded`` (notional > strategy max, else global;
  both sides), ``shorts_not_allowed``, ``participation_exceeds_max`` (notional / ADV > max rate);
- retry delays ``min(base * mult^i, max)`` and the retryable-error classification.

The kill switch is enforced by the firewall, the only path to an adapter, not here.

>>> round_to_tick(Decimal("187.105")), round_to_tick(Decimal("0.123456"))
(Decimal('187.11'), Decimal('0.1235'))
>>> retry_delays(TradingConfig(trading_execution_max_retries=5))
(0.25, 0.5, 1.0, 2.0, 2.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from torghut.contracts.decision import (
    GateVerdict,
    Rejection,
    TradeDecision,
    passed,
    rejected,
    rejection_from_trace,
)
from torghut.contracts.features import optional_decimal
from torghut.contracts.frozen import freeze
from torghut.contracts.portfolio import OrderIntent, PortfolioIntent
from torghut.contracts.strategy import Direction
from torghut.operators.trading_config import TradingConfig

ADV_PARAM_KEYS: tuple[str, ...] = (
    "adv",
    "avg_dollar_volume",
    "avg_daily_dollar_volume",
    "average_daily_volume",
)
_DEFAULT_MAX_PARTICIPATION = Decimal("0.1")
_RETRYABLE_TOKENS = ("timeout", "temporarily", "try again", "connection", "503", "rate limit")
_NON_RETRYABLE_TOKENS = ("reject", "insufficient", "invalid", "unknown symbol", "not allowed")


def tick_size(price: Decimal) -> Decimal:
    """Return the US-equity tick for ``price``: 0.0001 below $1 (by absolute value), else 0.01."""
    return Decimal("0.0001") if price.copy_abs() < 1 else Decimal("0.01")


def round_to_tick(price: Decimal) -> Decimal:
    """Round ``price`` half-up to its tick."""
    return price.quantize(tick_size(price), rounding=ROUND_HALF_UP)


def near_touch_limit_price(price: Decimal, spread: Decimal | None, side: Direction) -> Decimal:
    """Return the limit price: price + spread/2 for a buy, - for a sell, tick-rounded; no spread = price."""
    if spread is None or spread <= 0:
        return round_to_tick(price)
    half = spread / Decimal(2)
    return round_to_tick(price + half if side == "buy" else price - half)


def is_short_increasing(side: Direction, qty: Decimal, position_qty: Decimal) -> bool:
    """Torghut's test: a sell while flat or short, or a sell larger than the long position."""
    if side == "buy":
        return False
    return position_qty <= 0 or qty > position_qty


def retry_delays(config: TradingConfig) -> tuple[float, ...]:
    """Return the retry delays in seconds, ``min(base * mult^i, max)`` for each allowed retry.

    Inputs are sanitised as torghut does: a base ≤ 0 becomes 0.1, a multiplier < 1 becomes 1, and a max below
    the base becomes the base.
    """
    retries = max(config.trading_execution_max_retries, 0)
    base = config.trading_execution_backoff_base_seconds
    base = base if base > 0 else 0.1
    mult = config.trading_execution_backoff_multiplier
    mult = mult if mult >= 1 else 1.0
    cap = max(config.trading_execution_backoff_max_seconds, base)
    delays: list[float] = []
    delay = base
    for _ in range(retries):
        delays.append(min(delay, cap))
        delay *= mult
    return tuple(delays)


def is_retryable_error(error: BaseException | str) -> bool:
    """Classify a broker error: retry timeouts, connection errors, 503s and rate limits, never rejections.

    An exception whose class name contains ``timeout`` or ``connection`` is retryable. Otherwise the message
    decides: any of ``reject, insufficient, invalid, unknown symbol, not allowed`` means no retry; then any
    of ``timeout, temporarily, try again, connection, 503, rate limit`` means retry; anything else, no retry.

    >>> is_retryable_error("503 Service Unavailable"), is_retryable_error("order rejected: 503")
    (True, False)
    """
    if isinstance(error, BaseException):
        name = type(error).__name__.lower()
        if "timeout" in name or "connection" in name:
            return True
    message = str(error).lower()
    if any(token in message for token in _NON_RETRYABLE_TOKENS):
        return False
    return any(token in message for token in _RETRYABLE_TOKENS)


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """The policy's draft order (built even when rejected) and one verdict per policy rule."""

    draft: OrderIntent
    verdicts: tuple[GateVerdict, ...]
    notional: Decimal | None
    participation_rate: Decimal | None
    selected_order_type: str
    retry_delays: tuple[float, ...]

    @property
    def approved(self) -> bool:
        """Whether no policy rule rejected the draft."""
        return not any(v.blocks for v in self.verdicts)

    @property
    def order(self) -> OrderIntent | None:
        """The draft when approved, else ``None``."""
        return self.draft if self.approved else None

    @property
    def reasons(self) -> tuple[str, ...]:
        """The rejection reasons, in rule order."""
        return tuple(v.reason for v in self.verdicts if v.blocks and v.reason)

    def rejection(self) -> Rejection | None:
        """Return the :class:`Rejection` for a rejected draft, else ``None``."""
        if self.approved:
            return None
        return rejection_from_trace(
            decision_hash=self.draft.client_order_id,
            symbol=self.draft.symbol,
            event_ts=self.draft.event_ts,
            stage="policy",
            gate_trace=self.verdicts,
        )


def _select_order_type(
    order_type: str,
    limit_price: Decimal | None,
    price: Decimal | None,
    spread: Decimal | None,
    side: Direction,
    prefer_limit: bool,
) -> tuple[str, Decimal | None]:
    if order_type not in ("market", "limit"):
        msg = f"execution policy supports market and limit orders, got order_type={order_type!r}"
        raise ValueError(msg)
    if order_type == "market" and prefer_limit and price is not None:
        return "limit", near_touch_limit_price(price, spread, side)
    if order_type == "limit" and limit_price is None and price is not None:
        return "limit", round_to_tick(price)
    return order_type, None if limit_price is None else round_to_tick(limit_price)


def apply_execution_policy(
    *,
    account: str,
    symbol: str,
    side: Direction,
    qty: Decimal,
    event_ts: datetime,
    client_order_id: str,
    config: TradingConfig,
    price: Decimal | None,
    position_qty: Decimal,
    order_type: str = "market",
    time_in_force: str = "day",
    limit_price: Decimal | None = None,
    spread: Decimal | None = None,
    adv: Decimal | None = None,
    strategy_max_notional: Decimal | None = None,
    audit: dict[str, Any] | None = None,
    intent_key: str = "",
) -> PolicyResult:
    """Apply torghut's execution policy to one order and return the draft with every rule's verdict.

    ``price`` is the signal reference price (torghut's ``params.price``); ``strategy_max_notional`` overrides
    ``TRADING_MAX_NOTIONAL_PER_TRADE`` when set; ``position_qty`` is the signed current position.
    """
    selected, limit = _select_order_type(
        order_type, limit_price, price, spread, side, config.trading_execution_prefer_limit
    )
    notional_price = price if price is not None else limit
    notional = notional_price * qty if notional_price is not None else None
    verdicts: list[GateVerdict] = []

    order_inputs = {"requested": order_type, "selected": selected, "price": price, "spread": spread}
    if selected == "limit" and limit is None:
        verdicts.append(rejected("policy.order_type", "missing_limit_price", **order_inputs))
    else:
        verdicts.append(passed("policy.order_type", limit_price=limit, **order_inputs))

    if qty <= 0:
        verdicts.append(rejected("policy.qty", "qty_non_positive", qty=qty))
    else:
        verdicts.append(passed("policy.qty", qty=qty))

    min_notional = config.trading_min_notional_per_trade
    if min_notional is not None and notional is not None and notional < min_notional:
        verdicts.append(
            rejected("policy.min_notional", "min_notional_not_met", notional=notional, min=min_notional)
        )
    else:
        verdicts.append(passed("policy.min_notional", notional=notional, min=min_notional))

    max_notional = (
        strategy_max_notional if strategy_max_notional is not None else config.trading_max_notional_per_trade
    )
    if max_notional is not None and notional is not None and notional > max_notional:
        verdicts.append(
            rejected("policy.max_notional", "max_notional_exceeded", notional=notional, max=max_notional)
        )
    else:
        verdicts.append(passed("policy.max_notional", notional=notional, max=max_notional))

    short_increasing = is_short_increasing(side, qty, position_qty)
    shorts_inputs = {"short_increasing": short_increasing, "position_qty": position_qty}
    if short_increasing and not config.trading_allow_shorts:
        verdicts.append(rejected("policy.shorts", "shorts_not_allowed", **shorts_inputs))
    else:
        verdicts.append(passed("policy.shorts", **shorts_inputs))

    max_rate = config.trading_max_participation_rate
    max_rate = _DEFAULT_MAX_PARTICIPATION if max_rate <= 0 else min(max_rate, Decimal(1))
    participation = notional / adv if notional is not None and adv is not None and adv > 0 else None
    rate_inputs = {"participation_rate": participation, "max": max_rate, "adv": adv}
    if participation is not None and participation > max_rate:
        verdicts.append(rejected("policy.participation", "participation_exceeds_max", **rate_inputs))
    else:
        verdicts.append(passed("policy.participation", **rate_inputs))

    delays = retry_delays(config)
    reasons = [v.reason for v in verdicts if v.blocks]
    execution_policy = {
        "approved": not reasons,
        "reasons": reasons,
        "notional": notional,
        "participation_rate": participation,
        "selected_order_type": selected,
        "retry_delays": list(delays),
    }
    draft = OrderIntent(
        account=account,
        symbol=symbol,
        side=side,
        qty=qty,
        order_type=selected,
        time_in_force=time_in_force,
        limit_price=limit,
        client_order_id=client_order_id,
        event_ts=event_ts,
        audit=freeze(
            {
                **(audit or {}),
                "reference_price": price,
                "spread": spread,
                "execution_policy": execution_policy,
            }
        ),
        intent_key=intent_key,
    )
    return PolicyResult(draft, tuple(verdicts), notional, participation, selected, delays)


def policy_for_intent(
    intent: PortfolioIntent,
    *,
    client_order_id: str,
    config: TradingConfig,
    position_qty: Decimal,
    strategy_max_notional: Decimal | None = None,
    spread: Decimal | None = None,
    adv: Decimal | None = None,
    intent_key: str = "",
) -> PolicyResult:
    """Apply the policy to an allocator intent: trade ``approved_qty`` on ``direction`` at ``price``.

    ``intent_key`` is the symbol intent's key (:func:`~torghut.contracts.portfolio.symbol_intent_key`),
    carried by the order.
    """
    return apply_execution_policy(
        account=intent.account,
        symbol=intent.symbol,
        side=intent.direction,
        qty=intent.approved_qty,
        event_ts=intent.event_ts,
        client_order_id=client_order_id,
        config=config,
        price=intent.price,
        position_qty=position_qty,
        spread=spread,
        adv=adv,
        strategy_max_notional=strategy_max_notional,
        audit={
            "source_strategy_ids": list(intent.source_strategy_ids),
            "net_target_qty": intent.net_target_qty,
        },
        intent_key=intent_key,
    )


def _first_truthy(params: Any, keys: tuple[str, ...]) -> Any:
    # torghut chains these keys with ``or``: a zero or empty value falls through to the next key
    for key in keys:
        value = params.get(key)
        if value:
            return value
    return None


def policy_for_decision(
    decision: TradeDecision,
    *,
    config: TradingConfig,
    position_qty: Decimal,
    strategy_max_notional: Decimal | None = None,
    intent_key: str | None = None,
) -> PolicyResult:
    """Apply the policy to a legacy decision; the price, spread and ADV come from its ``params``.

    The order's intent key is ``intent_key``, by default the decision hash. The account stage passes the
    hash of the decision as planned when it re-sizes the decision against the broker's account.
    """
    return apply_execution_policy(
        account=decision.account or config.account_label,
        symbol=decision.symbol,
        side=decision.action,
        qty=decision.qty,
        event_ts=decision.event_ts,
        client_order_id=decision.decision_hash,
        config=config,
        price=optional_decimal(decision.params.get("price")),
        position_qty=position_qty,
        order_type=decision.order_type,
        time_in_force=decision.time_in_force,
        limit_price=decision.limit_price,
        spread=optional_decimal(decision.params.get("spread")),
        adv=optional_decimal(_first_truthy(decision.params, ADV_PARAM_KEYS)),
        strategy_max_notional=strategy_max_notional,
        audit={"strategy_id": decision.strategy_id, "rationale": decision.rationale},
        intent_key=decision.decision_hash if intent_key is None else intent_key,
    )

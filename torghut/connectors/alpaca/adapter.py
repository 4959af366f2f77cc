"""The Alpaca execution adapter: idempotent order submission through alpaca-py.

Idempotency rests on the ``client_order_id`` (the decision hash, torghut §5.6):

- ``submit`` first asks the broker for an order under that id and back-fills it when found;
- alpaca-py's own retries of 429/504 are switched off, so one ``submit`` sends at most one POST;
- when a POST's outcome is unknown (timeout, lost connection, 5xx, unreadable answer) the order is
  looked up again before anything is reported, and an order still not found is reported as a
  retryable :class:`AlpacaError`: sending it again later is safe, because Alpaca refuses a second order
  with the same id and ``submit`` then returns the first one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.models import Order, Position, TradeAccount
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, MarketOrderRequest, OrderRequest

from torghut.connectors.alpaca.config import AlpacaConfig
from torghut.connectors.alpaca.errors import (
    AlpacaError,
    BrokerFailure,
    OrderFirewallBoundaryViolation,
    classify,
    status_code_of,
)
from torghut.contracts.account import AccountSnapshot
from torghut.contracts.execution import ExecutionReport
from torghut.contracts.frozen import FrozenMap, freeze
from torghut.contracts.portfolio import OrderIntent
from torghut.contracts.strategy import Direction

logger = logging.getLogger(__name__)

ADAPTER_NAME = "alpaca"
_BROKER_ERRORS = (APIError, requests.RequestException, ValueError)
_DUPLICATE_CODE = 40010001
_DUPLICATE_MESSAGE = "client_order_id must be unique"
_TIME_IN_FORCE = frozenset(t.value for t in TimeInForce)


@dataclass(frozen=True, slots=True)
class OrderFirewallToken:
    """Proof that a broker mutation comes through the order firewall (torghut §5.5).

    Only the firewall should create one; the adapter refuses mutations without it.

    Attributes:
        issuer: The module or component that issued the token, for the audit log.
    """

    issuer: str


class _SingleAttemptTradingClient(TradingClient):
    """alpaca-py's ``TradingClient`` with its automatic retries off and a timeout on every request.

    ``RESTClient`` retries 429 and 504 three times, 3 s apart (``_retry``, ``_retry_codes``); a retried
    POST could place an order twice, and the caller owns the retry policy anyway. alpaca-py passes no
    timeout to ``requests``, so a hung broker would block forever without ``_one_request`` adding one.
    """

    def __init__(self, config: AlpacaConfig) -> None:
        super().__init__(
            api_key=config.api_key_id.get_secret_value(),
            secret_key=config.api_secret_key.get_secret_value(),
            paper=config.paper,
            url_override=config.base_url,
        )
        self._retry = 0
        self._retry_codes = []
        self._timeout_s = config.request_timeout_s

    def _one_request(self, method: str, url: str, opts: dict[str, Any], retry: int) -> dict[str, Any]:
        return super()._one_request(method, url, {**opts, "timeout": self._timeout_s}, 0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._base_url!r})"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _decimal(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _local_rejection(what: str) -> BrokerFailure:
    return BrokerFailure(reason=f"local_pre_submit_rejected reason={what}", retryable=False)


class AlpacaAdapter:
    """An :class:`ExecutionAdapter` for Alpaca (paper or live) through alpaca-py.

    Args:
        config: Connection settings; the keys stay inside the alpaca-py client.
        clock: Wall clock for snapshot and rejection timestamps (tz-aware UTC).
        client: A ready client (tests); by default a single-attempt ``TradingClient`` from ``config``.
    """

    def __init__(
        self,
        config: AlpacaConfig,
        *,
        clock: Callable[[], datetime] = _utc_now,
        client: TradingClient | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._client = client if client is not None else _SingleAttemptTradingClient(config)

    def __repr__(self) -> str:
        return (
            f"AlpacaAdapter(account={self._config.account_label!r}, mode={self._config.trading_mode!r}, "
            f"base_url={self._config.base_url!r})"
        )

    @property
    def name(self) -> str:
        """The adapter name recorded in every report."""
        return ADAPTER_NAME

    @property
    def account(self) -> str:
        """The account label (``TRADING_ACCOUNT_LABEL``)."""
        return self._config.account_label

    def submit(self, order: OrderIntent) -> ExecutionReport:
        """Place ``order`` at most once under its ``client_order_id`` and report the broker's order.

        Returns:
            The broker's order (new, back-filled or found after an unknown outcome), or a report with
            status ``rejected`` and ``raw["reason"]`` when the broker (or a local pre-submit check)
            refused it for good.

        Raises:
            AlpacaError: ``retryable`` is True: the outcome is unknown or transient and no order was
                found under the id; submitting the same intent again is safe.
        """
        local = self._pre_submit_check(order)
        if local is not None:
            return self._rejected(order, local)
        existing = self._lookup(order.client_order_id)
        if existing is not None:
            logger.info("alpaca order back-filled client_order_id=%s", order.client_order_id)
            return self._report(existing)
        request = self._order_request(order)
        try:
            placed = self._client.submit_order(request)
        except _BROKER_ERRORS as exc:
            return self._after_failed_submit(order, exc)
        logger.info(
            "alpaca order submitted client_order_id=%s symbol=%s side=%s qty=%s",
            order.client_order_id,
            order.symbol,
            order.side,
            order.qty,
        )
        return self._report(cast(Order, placed))

    def get_by_client_order_id(self, client_order_id: str) -> ExecutionReport | None:
        """Return the broker's order under ``client_order_id``, or None when there is none (404).

        Raises:
            AlpacaError: The lookup itself failed.
        """
        order = self._lookup(client_order_id)
        return None if order is None else self._report(order)

    def open_orders(self) -> tuple[ExecutionReport, ...]:
        """Return every open order of the account.

        Raises:
            AlpacaError: The broker call failed.
        """
        try:
            orders = self._client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
        except _BROKER_ERRORS as exc:
            raise AlpacaError(classify(exc)) from None
        return tuple(self._report(o) for o in cast(list[Order], orders))

    def account_snapshot(self) -> AccountSnapshot:
        """Return equity, cash, buying power and signed positions (shorts negative).

        Raises:
            AlpacaError: A broker call failed.
        """
        try:
            account = cast(TradeAccount, self._client.get_account())
            positions = cast(list[Position], self._client.get_all_positions())
        except _BROKER_ERRORS as exc:
            raise AlpacaError(classify(exc)) from None
        signed: dict[str, Decimal] = {}
        avg_prices: dict[str, Decimal] = {}
        marks: dict[str, Decimal] = {}
        for position in positions:
            qty = abs(Decimal(position.qty))
            if position.side.value == "short":
                qty = -qty
            signed[position.symbol] = signed.get(position.symbol, Decimal(0)) + qty
            avg = _decimal(position.avg_entry_price)
            if avg is not None and avg > 0:
                avg_prices[position.symbol] = avg
            mark = _decimal(position.current_price)
            if mark is not None and mark > 0:
                marks[position.symbol] = mark
        return AccountSnapshot(
            account=self.account,
            equity=_decimal(account.equity) or Decimal(0),
            cash=_decimal(account.cash) or Decimal(0),
            buying_power=_decimal(account.buying_power) or Decimal(0),
            positions=FrozenMap(signed),
            event_ts=self._clock(),
            avg_prices=FrozenMap(avg_prices),
            marks=FrozenMap(marks),
        )

    def cancel_all(self, token: OrderFirewallToken) -> tuple[str, ...]:
        """Cancel every open order; only the order firewall may call this.

        Args:
            token: The firewall's token.

        Returns:
            The broker ids of the orders Alpaca accepted to cancel.

        Raises:
            OrderFirewallBoundaryViolation: ``token`` is not an :class:`OrderFirewallToken`.
            AlpacaError: The broker call failed.
        """
        if not isinstance(token, OrderFirewallToken):
            operation = "cancel_all"
            raise OrderFirewallBoundaryViolation(operation)
        try:
            responses = self._client.cancel_orders()
        except _BROKER_ERRORS as exc:
            raise AlpacaError(classify(exc)) from None
        cancelled = tuple(str(r.id) for r in cast(list[Any], responses) if r.status < 300)
        logger.warning("alpaca cancel_all issuer=%s cancelled=%d", token.issuer, len(cancelled))
        return cancelled

    def close(self) -> None:
        """Close the HTTP session."""
        self._client._session.close()

    def _pre_submit_check(self, order: OrderIntent) -> BrokerFailure | None:
        if self._config.live_blocked:
            return BrokerFailure(reason="live_trading_disabled", retryable=False)
        problem = None
        if order.account != self.account:
            problem = "account_mismatch"
        elif order.side not in ("buy", "sell"):
            problem = "invalid_side"
        elif order.qty <= 0:
            problem = "qty_not_positive"
        elif order.order_type not in ("market", "limit"):
            problem = "unsupported_order_type"
        elif order.order_type == "limit" and (order.limit_price is None or order.limit_price <= 0):
            problem = "missing_limit_price"
        elif order.time_in_force not in _TIME_IN_FORCE:
            problem = "invalid_time_in_force"
        elif not order.client_order_id or len(order.client_order_id) > 128:
            problem = "invalid_client_order_id"
        return None if problem is None else _local_rejection(problem)

    @staticmethod
    def _order_request(order: OrderIntent) -> OrderRequest:
        common: dict[str, Any] = {
            "symbol": order.symbol,
            "qty": float(order.qty),
            "side": OrderSide(order.side),
            "time_in_force": TimeInForce(order.time_in_force),
            "client_order_id": order.client_order_id,
        }
        if order.order_type == "limit":
            return LimitOrderRequest(limit_price=float(cast(Decimal, order.limit_price)), **common)
        return MarketOrderRequest(**common)

    def _lookup(self, client_order_id: str) -> Order | None:
        try:
            return cast(Order, self._client.get_order_by_client_id(client_order_id))
        except _BROKER_ERRORS as exc:
            if status_code_of(exc) == 404:
                return None
            raise AlpacaError(classify(exc)) from None

    def _after_failed_submit(self, order: OrderIntent, exc: Exception) -> ExecutionReport:
        failure = classify(exc)
        duplicate = failure.code == _DUPLICATE_CODE and _DUPLICATE_MESSAGE in (failure.message or "")
        if not (failure.retryable or duplicate) or failure.status_code == 429:
            # The broker answered and refused (or throttled before acting): nothing to look up.
            if failure.retryable:
                raise AlpacaError(failure) from None
            logger.warning(
                "alpaca order rejected client_order_id=%s reason=%s", order.client_order_id, failure.reason
            )
            return self._rejected(order, failure)
        try:
            found = self._lookup(order.client_order_id)
        except AlpacaError:
            found = None
        if found is not None:
            logger.info(
                "alpaca order found after %s client_order_id=%s", failure.reason, order.client_order_id
            )
            return self._report(found)
        logger.warning(
            "alpaca order outcome unknown client_order_id=%s reason=%s", order.client_order_id, failure.reason
        )
        raise AlpacaError(failure if failure.retryable else _as_retryable(failure)) from None

    def _report(self, order: Order) -> ExecutionReport:
        side = order.side.value if order.side is not None else None
        if side not in ("buy", "sell"):
            failure = BrokerFailure(reason=f"alpaca_order_unsupported side={side}", retryable=False)
            raise AlpacaError(failure)
        filled = _decimal(order.filled_qty) or Decimal(0)
        return ExecutionReport(
            client_order_id=order.client_order_id,
            broker_order_id=str(order.id),
            account=self.account,
            symbol=order.symbol or "",
            side=cast(Direction, side),
            qty=_decimal(order.qty) or Decimal(0),
            filled_qty=filled,
            avg_fill_price=_decimal(order.filled_avg_price) if filled > 0 else None,
            fee=Decimal(0),
            status=order.status.value,
            adapter=ADAPTER_NAME,
            event_ts=order.updated_at.astimezone(UTC),
            raw=freeze(order.model_dump(mode="json")),
        )

    def _rejected(self, order: OrderIntent, failure: BrokerFailure) -> ExecutionReport:
        return ExecutionReport.unfilled(
            order, status="rejected", adapter=ADAPTER_NAME, event_ts=self._clock(), raw=failure.to_json()
        )


def _as_retryable(failure: BrokerFailure) -> BrokerFailure:
    # Alpaca said "duplicate" yet no order can be found under the id: treat as transient.
    return BrokerFailure(
        reason=failure.reason,
        retryable=True,
        status_code=failure.status_code,
        code=failure.code,
        message=failure.message,
        existing_order_id=failure.existing_order_id,
    )

"""The broker's account for the account stage in live mode: equity, cash, positions, open orders.

:class:`BrokerAccountFeed` is the :class:`~torghut.operators.account.AccountFeed` the service gives the
account stage with the ``alpaca`` adapter. The stage reads it at the start of every release; the feed asks
the broker (``get_account``, ``get_all_positions``, open orders) at most every ``interval_s`` seconds of
wall-clock time, as torghut caches its account snapshot for ``TRADING_RECONCILE_MS``, and returns None in
between. A failed read is logged (at most one warning a minute), counted in
``torghut_broker_errors_total``, and retried at the next release after ``retry_s``; meanwhile the stage
keeps deciding against the last snapshot it applied.

Sizing against the broker makes a decision depend on when it was made. A decision re-made after a
restart may therefore get another size, and so another client order id, than the order already sent for
its intent: :class:`~torghut.dataflow.reconcile.PersistedOrderGuard` recognises the intent by its key and
refuses the second order (``duplicate_intent``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

from torghut.connectors.alpaca import AlpacaError
from torghut.contracts.account import AccountSnapshot
from torghut.contracts.execution import ExecutionReport
from torghut.metrics import METRICS

logger = logging.getLogger(__name__)

RETRY_S = 1.0
"""How long after a failed read the next one may happen."""
_WARN_EVERY_S = 60.0


class BrokerAccount(Protocol):
    """A broker that reports the account and its open orders (the Alpaca adapter)."""

    def account_snapshot(self) -> AccountSnapshot:
        """Equity, cash, buying power and signed positions."""
        ...

    def open_orders(self) -> tuple[ExecutionReport, ...]:
        """Every open order of the account."""
        ...


class BrokerAccountFeed:
    """Reads the broker's account at most every ``interval_s`` seconds (wall clock).

    Args:
        broker: Where the account is read.
        interval_s: The least time between two snapshots (the first read always asks).
        retry_s: The least time between a failed read and the next.
        clock: Monotonic seconds (tests pass their own).
        on_open_orders: Called with the broker's open orders at every read (the service's
            :class:`~torghut.dataflow.reconcile.OrderStatusRefresh`).

    >>> from datetime import UTC, datetime
    >>> from decimal import Decimal
    >>> from torghut.contracts.frozen import FrozenMap
    >>> class Broker:
    ...     def account_snapshot(self):
    ...         one = Decimal(1)
    ...         return AccountSnapshot("live", one, one, one, FrozenMap(), datetime(2026, 1, 1, tzinfo=UTC))
    ...     def open_orders(self):
    ...         return ()
    >>> now = [0.0]
    >>> feed = BrokerAccountFeed(Broker(), 15.0, clock=lambda: now[0])
    >>> feed.read().open_orders, feed.read()
    (0, None)
    >>> now[0] = 15.0
    >>> feed.read() is not None
    True
    """

    __slots__ = (
        "_broker",
        "_clock",
        "_failures",
        "_interval_s",
        "_next_at",
        "_on_open_orders",
        "_retry_s",
        "_warned_at",
    )

    def __init__(
        self,
        broker: BrokerAccount,
        interval_s: float,
        *,
        retry_s: float = RETRY_S,
        clock: Callable[[], float] = time.monotonic,
        on_open_orders: Callable[[Sequence[ExecutionReport]], object] | None = None,
    ) -> None:
        self._broker = broker
        self._on_open_orders = on_open_orders
        self._interval_s = interval_s
        self._retry_s = retry_s
        self._clock = clock
        self._next_at: float | None = None
        self._warned_at: float | None = None
        self._failures = 0

    def __repr__(self) -> str:
        return f"BrokerAccountFeed(every {self._interval_s} s)"

    def read(self) -> AccountSnapshot | None:
        """The broker's account with its open order count when one is due; None otherwise or on failure."""
        now = self._clock()
        if self._next_at is not None and now < self._next_at:
            return None
        try:
            snapshot = self._broker.account_snapshot()
            open_orders = self._broker.open_orders()
        except AlpacaError as error:
            self._failed(now, error)
            return None
        if self._on_open_orders is not None:
            self._on_open_orders(open_orders)
        if self._failures:
            logger.warning("broker account read again after %d failed read(s)", self._failures)
            self._failures, self._warned_at = 0, None
        self._next_at = now + self._interval_s
        return replace(snapshot, open_orders=len(open_orders))

    def _failed(self, now: float, error: AlpacaError) -> None:
        self._failures += 1
        self._next_at = now + self._retry_s
        METRICS.broker_error(error.reason).inc()
        if self._warned_at is None or now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            logger.warning(
                "broker account read failed (%d in a row), deciding against the last snapshot: %s",
                self._failures,
                error.reason,
            )

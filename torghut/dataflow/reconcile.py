"""Reconciling the broker with PostgreSQL: at start-up in live mode, and before every order submission.

**Start-up** (:func:`reconcile_at_startup`, called by ``run_service`` when the adapter is ``alpaca``):
before trading resumes, the broker's open orders and positions are compared with PostgreSQL by the pure
:func:`compare`:

* an order PostgreSQL holds in a non-final status that is not open at the broker is looked up by its
  client order id: found in a final status, its row is brought up to date (``closed_at_broker``); not found
  at all, its row is marked (``execution_fallback_reason = reconcile_unknown_at_broker``) and reported
  (``missing_at_broker``) once: a marked row is not compared again;
* an open broker order whose client order id PostgreSQL does not know (``unknown_to_postgres``) is, by
  the :data:`ReconcilePolicy`: ``adopt``: inserted into ``executions`` with the adapter marker
  ``reconciled``; ``report``: logged; ``halt``: the service refuses to start;
* positions (signed quantity per symbol) implied by the fills PostgreSQL recorded for the account
  (adapters ``alpaca`` and ``reconciled``) that differ from the broker's are reported; with ``halt`` the
  service refuses to start.

With ``halt`` any difference stops the start with :class:`ReconcileHalt`, whose message lists them and
says how to proceed. ``report`` is the default.

**While the service runs** (:class:`OrderStatusRefresh`, torghut's reconcile every
``TRADING_RECONCILE_MS``): each time the broker account feed reads the account it also lists the open
orders; every order PostgreSQL holds in a non-final status is brought up to date: from that list while it
is open (a partial fill, say), else looked up by its client order id (filled, cancelled, expired since).
Only rows whose status or filled quantity changed are written (``torghut_trading_reconcile_updates_total``);
the decision's status follows (``upsert_executions``). An order the broker does not know at all is marked
as at start-up (``reconcile_unknown_at_broker``) and not looked up again. A failed look-up or write is
logged and retried at the next read.

**Before every submit** (:class:`PersistedOrderGuard`, torghut §5.6): bytewax output is at-least-once
around a crash, so a resumed service replays the orders of its last unfinished epoch. The firewall's
memory of sent ids comes from the last snapshot and the Alpaca adapter finds an order the broker stored
under the id, but a broker that *refused* an order stores nothing, so the replay would POST it again (the
service crash test measured up to three POSTs of one id). The guard consults ``executions`` by client
order id first and returns the stored report without calling the broker; every report is written through
to ``executions`` as soon as the adapter returns it, before the flow moves on, so the window in which a
refused order could be sent twice shrinks to the instant between the broker's answer and that commit.
``retry_pending`` rows (outcome unknown) are not final: such an order goes to the adapter again, which
looks it up at the broker before any POST.

The guard also keeps each intent to one order (``order_intents``). The client order id hashes the sized
decision, and in live mode the account stage sizes against the broker's account, so a decision re-made
after a restart may come out with another size and id. Before the first order of an intent (its
``intent_key``) is sent, the guard claims the intent for the order's id; an order of a claimed intent under
another id is refused (:class:`~torghut.connectors.broker.IntentAlreadySent`, the firewall's
``duplicate_intent``) when the claimed order is in ``executions`` (any status but ``retry_pending``) or
at the broker (looked up by its id; a found order is written to ``executions``). When neither holds it,
the earlier order never reached the broker: the claim passes to the new id and the order is sent. A
look-up that fails sends nothing: the order is reported ``retry_pending``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import psycopg

from torghut.connectors.alpaca import AlpacaAdapter, AlpacaError
from torghut.connectors.broker import ExecutionAdapter, IntentAlreadySent
from torghut.connectors.postgres import upsert_executions
from torghut.contracts.account import AccountSnapshot
from torghut.contracts.execution import FINAL_STATUSES, ExecutionReport
from torghut.contracts.frozen import freeze
from torghut.contracts.portfolio import OrderIntent
from torghut.metrics import METRICS

logger = logging.getLogger(__name__)

ReconcilePolicy = Literal["adopt", "report", "halt"]
"""What start-up reconciliation does with differences: adopt unknown broker orders, report, or halt."""

RECONCILED_ADAPTER = "reconciled"
"""``execution_actual_adapter`` of an order adopted from the broker at start-up."""

UNKNOWN_AT_BROKER = "reconcile_unknown_at_broker"
"""``execution_fallback_reason`` marking a stored open order the broker does not know."""

RETRY_PENDING = "retry_pending"
_LIVE_ADAPTERS = ("alpaca", RECONCILED_ADAPTER)
_EXECUTION_COLUMNS = (
    "client_order_id, alpaca_order_id, alpaca_account_label, symbol, side, submitted_qty, filled_qty, "
    "avg_fill_price, fee, status, execution_actual_adapter, last_update_at, raw_order"
)


class ReconcileHalt(ValueError):
    """The broker and PostgreSQL disagree and the policy is ``halt``: the service must not start."""


@dataclass(frozen=True, slots=True)
class PositionDifference:
    """One symbol whose signed quantity differs between the broker and PostgreSQL's fills."""

    symbol: str
    broker_qty: Decimal
    stored_qty: Decimal


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """The differences found between the broker and PostgreSQL at start-up.

    Attributes:
        missing_at_broker: Client order ids open in PostgreSQL that the broker does not know at all.
        closed_at_broker: Broker reports of orders open in PostgreSQL that the broker has closed since.
        unknown_to_postgres: Open broker orders whose client order id PostgreSQL does not know.
        positions: Position differences, by symbol.
    """

    missing_at_broker: tuple[str, ...] = ()
    closed_at_broker: tuple[ExecutionReport, ...] = ()
    unknown_to_postgres: tuple[ExecutionReport, ...] = ()
    positions: tuple[PositionDifference, ...] = ()

    @property
    def clean(self) -> bool:
        """Whether there is nothing to act on or report."""
        return not (
            self.missing_at_broker or self.closed_at_broker or self.unknown_to_postgres or self.positions
        )

    def describe(self) -> list[str]:
        """One line per difference, for the log and the halt message."""
        lines = [
            f"order {cid} is open in PostgreSQL but unknown at the broker" for cid in self.missing_at_broker
        ]
        lines += [
            f"order {r.client_order_id} is open in PostgreSQL but {r.status} at the broker"
            for r in self.closed_at_broker
        ]
        lines += [
            f"broker order {r.client_order_id} ({r.side} {r.qty} {r.symbol}, {r.status}) is unknown to "
            "PostgreSQL"
            for r in self.unknown_to_postgres
        ]
        lines += [
            f"position {p.symbol}: broker {p.broker_qty}, PostgreSQL fills {p.stored_qty}"
            for p in self.positions
        ]
        return lines


def compare(
    *,
    broker_open: Iterable[ExecutionReport],
    broker_positions: Mapping[str, Decimal],
    stored_open: Iterable[str],
    known_ids: Iterable[str],
    stored_positions: Mapping[str, Decimal],
    closed_lookup: Mapping[str, ExecutionReport | None],
) -> Reconciliation:
    """Compare the broker's view with PostgreSQL's; pure.

    Args:
        broker_open: The broker's open orders.
        broker_positions: The broker's signed positions by symbol.
        stored_open: Client order ids PostgreSQL holds in a non-final status (``retry_pending`` and rows
            already marked unknown at the broker excluded).
        known_ids: Every client order id PostgreSQL holds.
        stored_positions: Signed positions implied by PostgreSQL's fills.
        closed_lookup: The broker's answer to a lookup by client order id of each stored open order that
            is not among ``broker_open`` (None: not found).

    >>> compare(broker_open=(), broker_positions={"AAPL": Decimal(5)}, stored_open=("c1",), known_ids=("c1",),
    ...         stored_positions={"AAPL": Decimal(5)}, closed_lookup={"c1": None}).missing_at_broker
    ('c1',)
    """
    open_reports = {r.client_order_id: r for r in broker_open}
    known = frozenset(known_ids)
    missing: list[str] = []
    closed: list[ExecutionReport] = []
    for cid in sorted(set(stored_open) - set(open_reports)):
        found = closed_lookup.get(cid)
        if found is None:
            missing.append(cid)
        else:
            closed.append(found)
    unknown = tuple(open_reports[cid] for cid in sorted(set(open_reports) - known))
    positions = tuple(
        PositionDifference(
            symbol, broker_positions.get(symbol, Decimal(0)), stored_positions.get(symbol, Decimal(0))
        )
        for symbol in sorted(set(broker_positions) | set(stored_positions))
        if broker_positions.get(symbol, Decimal(0)) != stored_positions.get(symbol, Decimal(0))
    )
    return Reconciliation(tuple(missing), tuple(closed), unknown, positions)


Connection = psycopg.Connection[tuple[Any, ...]]


def _report_from_row(row: Sequence[Any]) -> ExecutionReport:
    cid, broker_id, label, symbol, side, qty, filled, avg, fee, status, adapter, updated, raw = row
    return ExecutionReport(
        client_order_id=str(cid),
        broker_order_id=str(broker_id or ""),
        account=str(label or ""),
        symbol=str(symbol),
        side=side,
        qty=Decimal(qty),
        filled_qty=Decimal(filled),
        avg_fill_price=None if avg is None else Decimal(avg),
        fee=Decimal(0) if fee is None else Decimal(fee),
        status=str(status),
        adapter=str(adapter or ""),
        event_ts=updated if updated is not None else datetime(1970, 1, 1, tzinfo=UTC),
        raw=freeze(raw or {}),
    )


def stored_open(conn: Connection, account: str) -> dict[str, tuple[str, Decimal]]:
    """``client_order_id -> (status, filled_qty)`` of ``account``'s orders PostgreSQL holds as not final.

    ``retry_pending`` rows and rows already marked unknown at the broker are left out.
    """
    rows = conn.execute(
        "SELECT client_order_id, status, filled_qty FROM executions WHERE alpaca_account_label = %s "
        "AND status <> ALL(%s) AND status <> %s AND execution_actual_adapter = ANY(%s) "
        "AND execution_fallback_reason IS DISTINCT FROM %s",
        (account, sorted(FINAL_STATUSES), RETRY_PENDING, list(_LIVE_ADAPTERS), UNKNOWN_AT_BROKER),
    ).fetchall()
    return {str(cid): (str(status), Decimal(filled)) for cid, status, filled in rows}


def stored_state(conn: Connection, account: str) -> tuple[list[str], set[str], dict[str, Decimal]]:
    """Read PostgreSQL's side for ``account``: open client order ids, every known id, fill positions."""
    open_ids = list(stored_open(conn, account))
    known = {str(r[0]) for r in conn.execute("SELECT client_order_id FROM executions").fetchall()}
    positions = {
        str(symbol): Decimal(qty)
        for symbol, qty in conn.execute(
            "SELECT symbol, sum(CASE side WHEN 'buy' THEN filled_qty ELSE -filled_qty END) FROM executions "
            "WHERE alpaca_account_label = %s AND execution_actual_adapter = ANY(%s) GROUP BY symbol",
            (account, list(_LIVE_ADAPTERS)),
        ).fetchall()
        if Decimal(qty) != 0
    }
    return open_ids, known, positions


def reconcile_at_startup(
    dsn: str,
    adapter: AlpacaAdapter,
    policy: ReconcilePolicy,
    *,
    say: Callable[[str], None] = logger.info,
) -> Reconciliation:
    """Compare the broker with PostgreSQL and apply ``policy``; see the module docstring.

    Raises:
        ReconcileHalt: ``policy`` is ``halt`` and there is a difference; the message lists them.
        AlpacaError: A broker call failed.
    """
    account = adapter.account
    broker_open = adapter.open_orders()
    snapshot: AccountSnapshot = adapter.account_snapshot()
    with psycopg.connect(dsn, autocommit=True) as conn:
        open_ids, known, stored_positions = stored_state(conn, account)
        open_at_broker = {r.client_order_id for r in broker_open}
        lookups = {cid: adapter.get_by_client_order_id(cid) for cid in open_ids if cid not in open_at_broker}
        result = compare(
            broker_open=broker_open,
            broker_positions=dict(snapshot.positions),
            stored_open=open_ids,
            known_ids=known,
            stored_positions=stored_positions,
            closed_lookup=lookups,
        )
        lines = result.describe()
        if policy == "halt" and not result.clean:
            msg = (
                f"start-up reconciliation found {len(lines)} difference(s) between the broker and PostgreSQL "
                "for account "
                + repr(account)
                + ":\n  "
                + "\n  ".join(lines)
                + "\nResolve them at the broker "
                "or in PostgreSQL, or start with adapter.reconcile: report (log them) or adopt (insert "
                "unknown broker orders)."
            )
            raise ReconcileHalt(msg)
        _apply(conn, result, policy)
    for line in lines:
        logger.warning("reconcile: %s", line)
    adopted = len(result.unknown_to_postgres) if policy == "adopt" else 0
    say(
        f"reconciled with the broker ({policy}): {len(broker_open)} open orders, "
        f"{len(snapshot.positions)} positions, {len(lines)} difference(s), {adopted} adopted"
    )
    return result


def _apply(conn: Connection, result: Reconciliation, policy: ReconcilePolicy) -> None:
    reports = list(result.closed_at_broker)
    if policy == "adopt":
        reports += [dataclasses.replace(r, adapter=RECONCILED_ADAPTER) for r in result.unknown_to_postgres]
    if reports:
        upsert_executions(conn, reports)
    if result.missing_at_broker:
        conn.execute(
            "UPDATE executions SET execution_fallback_reason = %s, updated_at = now() "
            "WHERE client_order_id = ANY(%s)",
            (UNKNOWN_AT_BROKER, list(result.missing_at_broker)),
        )


def _connected(conn: Connection | None, dsn: str) -> Connection:
    """``conn`` while it is open, else a new autocommit connection."""
    if conn is None or conn.closed:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    return conn


class OrderStatusRefresh:
    """Brings ``executions`` rows of orders not yet final up to date with the broker; see the module doc.

    Args:
        dsn: The PostgreSQL DSN (secret; never in ``repr``).
        broker: Where closed orders are looked up by client order id (the Alpaca adapter).
        account: The account label whose rows are refreshed.
    """

    __slots__ = ("_account", "_broker", "_conn", "_dsn")

    def __init__(self, dsn: str, broker: AlpacaAdapter, account: str) -> None:
        self._dsn = dsn
        self._broker = broker
        self._account = account
        self._conn: Connection | None = None

    def __repr__(self) -> str:
        return f"OrderStatusRefresh(account={self._account!r}, dsn=<redacted>)"

    def __call__(self, broker_open: Sequence[ExecutionReport]) -> int:
        """Refresh against the broker's open orders ``broker_open``; return how many rows changed."""
        try:
            conn = self._connection()
            stored = stored_open(conn, self._account)
            at_broker = {r.client_order_id: r for r in broker_open}
            changed: list[ExecutionReport] = []
            missing: list[str] = []
            for cid, (status, filled) in sorted(stored.items()):
                report = at_broker.get(cid) or self._broker.get_by_client_order_id(cid)
                if report is None:
                    missing.append(cid)
                elif report.status != status or report.filled_qty != filled:
                    changed.append(report)
            # As at start-up: an order the broker does not know is marked, reported once, not looked up again.
            _apply(
                conn,
                Reconciliation(missing_at_broker=tuple(missing), closed_at_broker=tuple(changed)),
                "report",
            )
        except (AlpacaError, psycopg.Error) as error:
            if isinstance(error, psycopg.Error) and self._conn is not None:
                self._conn.close()
            logger.warning("order status refresh failed, retried at the next account read: %s", error)
            return 0
        METRICS.reconcile_updates.inc(len(changed) + len(missing))
        for cid in missing:
            logger.warning("reconcile: order %s is open in PostgreSQL but unknown at the broker", cid)
        for report in changed:
            logger.info(
                "order %s is %s at the broker (filled %s)",
                report.client_order_id,
                report.status,
                report.filled_qty,
            )
        return len(changed) + len(missing)

    def _connection(self) -> Connection:
        self._conn = _connected(self._conn, self._dsn)
        return self._conn


class PersistedOrderGuard:
    """An execution adapter wrapper that checks PostgreSQL ``executions`` before any submit.

    A stored report (any status but ``retry_pending``) is returned without calling the broker; otherwise
    the wrapped adapter submits (it looks the id up at the broker first) and its report is written to
    ``executions`` at once. A database failure raises: no order is sent unchecked.

    Args:
        inner: The adapter orders go to.
        dsn: The PostgreSQL DSN (secret; never in ``repr``).
    """

    __slots__ = ("_conn", "_dsn", "_inner")

    def __init__(self, inner: ExecutionAdapter, dsn: str) -> None:
        self._inner = inner
        self._dsn = dsn
        self._conn: Connection | None = None

    def __repr__(self) -> str:
        return f"PersistedOrderGuard({self._inner!r}, dsn=<redacted>)"

    @property
    def name(self) -> str:
        """The wrapped adapter's name."""
        return self._inner.name

    def submit(self, order: OrderIntent) -> ExecutionReport:
        """Return the stored report of ``order``'s client order id, else submit and store the report.

        Raises:
            IntentAlreadySent: The order's intent was already sent under another client order id.
        """
        if order.intent_key:
            refused = self._claim(order)
            if refused is not None:
                upsert_executions(self._connection(), [refused])
                return refused
        stored = self.stored(order.client_order_id)
        if stored is not None:
            logger.info(
                "order found in PostgreSQL, not resubmitted client_order_id=%s", order.client_order_id
            )
            return stored
        report = self._inner.submit(order)
        upsert_executions(self._connection(), [report])
        return report

    def stored(self, client_order_id: str) -> ExecutionReport | None:
        """The report PostgreSQL holds under ``client_order_id`` (None when absent or ``retry_pending``)."""
        row = (
            self._connection()
            .execute(
                f"SELECT {_EXECUTION_COLUMNS} FROM executions WHERE client_order_id = %s AND status <> %s",
                (client_order_id, RETRY_PENDING),
            )
            .fetchone()
        )
        return None if row is None else _report_from_row(row)

    def get_by_client_order_id(self, client_order_id: str) -> ExecutionReport | None:
        """Look the order up in the wrapped adapter."""
        return self._inner.get_by_client_order_id(client_order_id)

    def account_snapshot(self) -> AccountSnapshot:
        """The wrapped adapter's account snapshot."""
        return self._inner.account_snapshot()

    def _claim(self, order: OrderIntent) -> ExecutionReport | None:
        """Claim ``order``'s intent for its id; None when the order may go on to the broker.

        Returns a ``retry_pending`` report (nothing sent) when the earlier order of the intent could not
        be looked up at the broker.

        Raises:
            IntentAlreadySent: The earlier order of the intent exists.
        """
        conn = self._connection()
        key = (order.account, order.intent_key)
        conn.execute(
            "INSERT INTO order_intents (account_label, intent_key, client_order_id) VALUES (%s, %s, %s) "
            "ON CONFLICT (account_label, intent_key) DO NOTHING",
            (*key, order.client_order_id),
        )
        row = conn.execute(
            "SELECT client_order_id FROM order_intents WHERE account_label = %s AND intent_key = %s", key
        ).fetchone()
        claimed = str(row[0]) if row is not None else order.client_order_id
        if claimed == order.client_order_id:
            return None
        earlier = self.stored(claimed)
        if earlier is None:
            try:
                earlier = self._inner.get_by_client_order_id(claimed)
            except AlpacaError as error:
                logger.warning(
                    "intent %s: the look-up of its earlier order %s failed, nothing sent: %s",
                    order.intent_key,
                    claimed,
                    error.reason,
                )
                return ExecutionReport.unfilled(
                    order,
                    status=RETRY_PENDING,
                    adapter=self._inner.name,
                    event_ts=order.event_ts,
                    raw={"reason": f"intent_lookup_failed:{error.reason}", "retryable": True},
                )
            if earlier is not None:
                upsert_executions(conn, [earlier])
        if earlier is not None:
            logger.info(
                "intent %s already sent as %s, not sent again as %s",
                order.intent_key,
                claimed,
                order.client_order_id,
            )
            raise IntentAlreadySent(order.intent_key, claimed)
        conn.execute(
            "UPDATE order_intents SET client_order_id = %s, created_at = now() "
            "WHERE account_label = %s AND intent_key = %s",
            (order.client_order_id, *key),
        )
        logger.info(
            "intent %s: its earlier order %s never reached the broker; sending %s",
            order.intent_key,
            claimed,
            order.client_order_id,
        )
        return None

    def _connection(self) -> Connection:
        self._conn = _connected(self._conn, self._dsn)
        return self._conn

"""The runtime trading control in PostgreSQL: the ``trading_control`` table that ``torghut control`` sets.

One row per account label, plus the row ``*`` that applies to every account. The state an account sees
combines its row and ``*``: the kill switch is engaged if either engages it, trading is disabled if either
disables it; no row at all means the static configuration alone applies
(:class:`~torghut.operators.control.ControlState`). Every write bumps the row's ``version``.

:class:`PostgresControlSource` is the service's :class:`~torghut.operators.control.ControlSource`: one
indexed SELECT per read on a kept autocommit connection (so every read sees the latest committed row),
short timeouts, and fail-closed on any database error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from torghut.metrics import METRICS
from torghut.operators.control import ControlState

logger = logging.getLogger(__name__)

Connection = psycopg.Connection[tuple[object, ...]]

GLOBAL_ACCOUNT = "*"
"""The label of the row that applies to every account."""
SOURCE_NAME = "postgres"

_COLUMNS = "account_label, kill_switch, trading_enabled, reason, updated_by, updated_at, version"
_SELECT_ALL = f"SELECT {_COLUMNS} FROM trading_control ORDER BY account_label"
_SELECT_FOR = f"SELECT {_COLUMNS} FROM trading_control WHERE account_label IN (%s, %s) ORDER BY account_label"
_UPSERT = f"""
INSERT INTO trading_control AS t (account_label, kill_switch, trading_enabled, reason, updated_by)
VALUES (
    %(account)s,
    coalesce(%(kill_switch)s::boolean, false),
    coalesce(%(trading_enabled)s::boolean, true),
    %(reason)s,
    %(updated_by)s
)
ON CONFLICT (account_label) DO UPDATE SET
    kill_switch = coalesce(%(kill_switch)s::boolean, t.kill_switch),
    trading_enabled = coalesce(%(trading_enabled)s::boolean, t.trading_enabled),
    reason = EXCLUDED.reason,
    updated_by = EXCLUDED.updated_by,
    updated_at = now(),
    version = t.version + 1
RETURNING {_COLUMNS}
"""


@dataclass(frozen=True, slots=True)
class ControlRow:
    """One ``trading_control`` row."""

    account_label: str
    kill_switch: bool
    trading_enabled: bool
    reason: str | None
    updated_by: str
    updated_at: datetime
    version: int


def _row(values: Sequence[object]) -> ControlRow:
    label, kill_switch, trading_enabled, reason, updated_by, updated_at, version = values
    if not isinstance(updated_at, datetime):
        msg = f"trading_control.updated_at of {label!r} is {updated_at!r}, expected a timestamp"
        raise TypeError(msg)
    return ControlRow(
        account_label=str(label),
        kill_switch=bool(kill_switch),
        trading_enabled=bool(trading_enabled),
        reason=None if reason is None else str(reason),
        updated_by=str(updated_by),
        updated_at=updated_at,
        version=int(str(version)),
    )


def load_controls(conn: Connection, account: str | None = None) -> list[ControlRow]:
    """Return every row, or with ``account`` the rows that apply to it (its own and ``*``), by label."""
    if account is None:
        rows = conn.execute(_SELECT_ALL).fetchall()
    else:
        rows = conn.execute(_SELECT_FOR, (account, GLOBAL_ACCOUNT)).fetchall()
    return [_row(r) for r in rows]


def set_control(
    conn: Connection,
    account: str,
    *,
    updated_by: str,
    kill_switch: bool | None = None,
    trading_enabled: bool | None = None,
    reason: str | None = None,
) -> ControlRow:
    """Create or update ``account``'s row; a switch left None keeps its value (new rows: released, enabled).

    Returns:
        The row as stored, with its new ``version``.
    """
    params = {
        "account": account,
        "kill_switch": kill_switch,
        "trading_enabled": trading_enabled,
        "reason": reason,
        "updated_by": updated_by,
    }
    with conn.transaction():
        row = conn.execute(_UPSERT, params).fetchone()
    if row is None:  # pragma: no cover - an upsert with RETURNING always returns the row
        msg = f"trading_control upsert of {account!r} returned nothing"
        raise RuntimeError(msg)
    return _row(row)


def control_state(rows: Sequence[ControlRow]) -> ControlState:
    """Combine the rows that apply to one account: any kill switch engages, any disable disables.

    >>> from datetime import UTC
    >>> at = datetime(2026, 2, 19, tzinfo=UTC)
    >>> state = control_state([ControlRow("*", True, True, "incident 42", "ops", at, 3),
    ...                        ControlRow("live", False, True, None, "ops", at, 1)])
    >>> state.kill_switch, state.trading_enabled, state.revision, state.reason
    (True, True, '*@3,live@1', '*: incident 42')
    """
    reasons = "; ".join(f"{r.account_label}: {r.reason}" for r in rows if r.reason)
    return ControlState(
        kill_switch=any(r.kill_switch for r in rows),
        trading_enabled=all(r.trading_enabled for r in rows),
        source=SOURCE_NAME,
        revision=",".join(f"{r.account_label}@{r.version}" for r in rows),
        reason=reasons or None,
    )


class PostgresControlSource:
    """Reads ``account``'s control from ``trading_control``; a database failure fails closed, never raises.

    The connection is opened on the first read (only the worker that owns the account stage connects) and
    kept. A failed read on a kept connection (the server may have closed an idle one) is retried once on a
    new connection; a failure on a new connection returns an unavailable state, which the firewall turns
    into a ``trading_control_unavailable`` rejection, counts ``torghut_trading_control_read_failures_total``
    and logs a warning (the first of a series; recovery is logged too).

    Args:
        dsn: The PostgreSQL DSN (secret: never in ``repr`` or logs).
        account: The account label whose row (and ``*``) applies.
        timeout_s: Connect timeout, statement timeout and TCP user timeout of every read.
    """

    __slots__ = ("_account", "_conn", "_dsn", "_failing", "_timeout_s")

    def __init__(self, dsn: str, account: str, *, timeout_s: float = 2.0) -> None:
        self._dsn = dsn
        self._account = account
        self._timeout_s = timeout_s
        self._conn: Connection | None = None
        self._failing = False

    def __repr__(self) -> str:
        return f"PostgresControlSource(account={self._account!r}, dsn=<redacted>)"

    @property
    def account(self) -> str:
        """The account label whose control is read."""
        return self._account

    def read(self) -> ControlState:
        """Return the current control of the account (unavailable, never an exception, on a DB error)."""
        reused = self._conn is not None and not self._conn.closed
        try:
            rows = self._select()
        except psycopg.Error as error:
            self._drop()
            if not reused:
                return self._unavailable(error)
            try:
                rows = self._select()
            except psycopg.Error as again:
                self._drop()
                return self._unavailable(again)
        if self._failing:
            self._failing = False
            logger.warning("trading control of account %s is readable again", self._account)
        return control_state(rows)

    def close(self) -> None:
        """Close the connection (a later read opens a new one)."""
        self._drop()

    def _select(self) -> list[ControlRow]:
        if self._conn is None or self._conn.closed:
            timeout_ms = max(1, round(self._timeout_s * 1000))
            self._conn = psycopg.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=max(1, round(self._timeout_s)),
                tcp_user_timeout=timeout_ms,
            )
            self._conn.execute(f"SET statement_timeout = {timeout_ms}".encode())
        return load_controls(self._conn, self._account)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:  # closing a broken connection: nothing left to release
                pass

    def _unavailable(self, error: psycopg.Error) -> ControlState:
        METRICS.control_read_failures.inc()
        reason = f"{type(error).__name__}: {str(error).strip()}"
        if not self._failing:
            self._failing = True
            logger.warning(
                "trading control of account %s cannot be read, every order is rejected "
                "(trading_control_unavailable) until it can: %s",
                self._account,
                reason,
            )
        return ControlState(available=False, source=SOURCE_NAME, reason=reason)

"""The account event stream (fills, broker snapshots) and the account view the portfolio stages read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from torghut.contracts.frozen import EMPTY as EMPTY_MAP
from torghut.contracts.frozen import FrozenMap
from torghut.contracts.strategy import Direction


@dataclass(frozen=True, slots=True)
class Fill:
    """An execution: a paper fill in replay, a broker fill in live mode."""

    account: str
    symbol: str
    side: Direction
    qty: Decimal
    price: Decimal
    fee: Decimal
    client_order_id: str
    event_ts: datetime


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """A broker account and positions snapshot; positions are signed quantities by symbol.

    ``avg_prices`` and ``marks`` are the broker's average entry price and current price of each position
    (empty when the broker gave none); ``open_orders`` how many orders are open at the broker (None: not
    read).
    """

    account: str
    equity: Decimal
    cash: Decimal
    buying_power: Decimal
    positions: FrozenMap[str, Decimal]
    event_ts: datetime
    avg_prices: FrozenMap[str, Decimal] = EMPTY_MAP
    marks: FrozenMap[str, Decimal] = EMPTY_MAP
    open_orders: int | None = None


AccountEvent = Fill | AccountSnapshot


@dataclass(frozen=True, slots=True)
class AccountView:
    """What the allocator and the risk gates may read about the account at one decision.

    ``positions`` are signed quantities; ``avg_prices`` their average entry prices; ``marks`` the last
    reference price seen per symbol (for exposure and P&L), all in event time.
    """

    account: str
    equity: Decimal
    cash: Decimal
    buying_power: Decimal
    positions: FrozenMap[str, Decimal] = EMPTY_MAP
    avg_prices: FrozenMap[str, Decimal] = EMPTY_MAP
    marks: FrozenMap[str, Decimal] = EMPTY_MAP
    realized_pnl: Decimal = Decimal(0)
    session_start_equity: Decimal | None = None

    def position(self, symbol: str) -> Decimal:
        """Return the signed position quantity in ``symbol`` (0 when flat)."""
        return self.positions.get(symbol, Decimal(0))

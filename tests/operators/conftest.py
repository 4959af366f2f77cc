"""Shared inputs for the parse and normalize tests: torghut's documented NVDA row (contracts section 1.3)."""

from __future__ import annotations

from typing import Any

import pytest

from torghut.contracts.signal import InputPosition

# A real-shaped torghut.ta_signals row as ClickHouse JSONEachRow returns it, with the column set
# torghut's ingestor selects (seq is a quoted UInt64; there is no "spread" column).
NVDA_ROW: dict[str, Any] = {
    "event_ts": "2026-02-19 14:30:05.000",
    "ingest_ts": "2026-02-19 14:30:05.250",
    "symbol": "NVDA",
    "window_size": "PT1S",
    "window_step": "PT1S",
    "seq": "1234",
    "source": "ta",
    "macd": 0.0123,
    "macd_signal": 0.01,
    "macd_hist": 0.0023,
    "rsi14": 58.2,
    "ema12": 187.05,
    "ema26": 186.9,
    "vwap_session": 187.1,
    "vwap_w5m": 187.08,
    "boll_mid": 187.0,
    "boll_upper": 187.6,
    "boll_lower": 186.4,
    "imbalance_spread": 0.02,
    "vol_realized_w60s": 0.00031,
    "imbalance_bid_px": 187.09,
    "imbalance_ask_px": 187.11,
}


@pytest.fixture
def nvda_row() -> dict[str, Any]:
    """A fresh copy of the NVDA row, safe to modify."""
    return dict(NVDA_ROW)


@pytest.fixture
def position() -> InputPosition:
    """A fixed input position."""
    return InputPosition("test", "p0", 42)

"""Seeded sample ``torghut.ta_signals`` rows, shaped as ClickHouse returns them in ``JSONEachRow``.

Each symbol follows its own geometric-Brownian price path, sampled as 1-second microbars. Every bar is
run through :class:`~torghut.connectors.synthetic.indicators.SignalIndicators`, the producer's maths,
and becomes one flat row. Rows come out ordered by ``(event_ts, symbol)``, the order of the ingestor's
cursor query, with ClickHouse's JSON conventions: ``DateTime64(3)`` as ``"YYYY-MM-DD HH:MM:SS.mmm"``,
``UInt64`` (``seq`` and the quote sizes) as quoted strings, nulls as ``None``.

Each symbol's path depends only on ``(seed, symbol index)``, so the first ``k`` symbols of a large sample
are the same as a ``k``-symbol sample with the same seed.

Example:
    >>> rows = list(generate_rows(symbols=2, minutes=1, seed=7))
    >>> len(rows), rows[0]["symbol"], rows[0]["event_ts"], rows[0]["seq"]
    (120, 'AAPL', '2026-02-19 14:30:00.000', '1')
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from statistics import NormalDist
from typing import Any

import orjson

from torghut.connectors.clickhouse.schema import TA_SIGNALS_COLUMNS
from torghut.connectors.synthetic.indicators import SignalIndicators

__all__ = [
    "DEFAULT_START",
    "REAL_TICKERS",
    "TA_SIGNAL_COLUMNS",
    "generate_rows",
    "symbol_names",
    "write_sample_signals",
]

DEFAULT_START = datetime(2026, 2, 19, 14, 30, tzinfo=UTC)
"""The default first ``event_ts``: the V3 reference day's regular-session open (09:30 New York)."""

TA_SIGNAL_COLUMNS: tuple[str, ...] = tuple(name for name, _ in TA_SIGNALS_COLUMNS)
"""The ``torghut.ta_signals`` columns in DDL order (the ClickHouse schema module is the one source)."""
"""The ``torghut.ta_signals`` columns in DDL order (what ``SELECT *`` returns)."""

REAL_TICKERS: tuple[str, ...] = (
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AVGO", "BRK.B", "JPM",
    "LLY", "V", "UNH", "XOM", "MA", "COST", "HD", "PG", "JNJ", "NFLX",
    "ABBV", "CRM", "BAC", "ORCL", "AMD", "KO", "CVX", "MRK", "PEP", "ADBE",
    "WMT", "TMO", "CSCO", "ACN", "MCD", "LIN", "ABT", "INTC", "QCOM", "DIS",
    "TXN", "IBM", "CAT", "GE", "AMAT", "INTU", "NOW", "UBER", "PLTR", "SPY",
)  # fmt: skip
"""Ticker-like names handed out first; later symbols are ``S0050``, ``S0051``, ..."""

_SECONDS_PER_TRADING_YEAR = 252 * 6.5 * 3600
_BAR_MS = 1000
_TICK = 0.01

# Draws come from quantile tables indexed by random bits: a table look-up costs a tenth of
# ``random.gauss`` and is just as deterministic. 4096 levels reach +-3.5 standard deviations.
_TABLE_BITS = 12
_TABLE_SIZE = 1 << _TABLE_BITS
_MASK = _TABLE_SIZE - 1
_NORMAL = tuple(NormalDist().inv_cdf((i + 0.5) / _TABLE_SIZE) for i in range(_TABLE_SIZE))
_EXPONENTIAL = tuple(-math.log(1.0 - (i + 0.5) / _TABLE_SIZE) for i in range(_TABLE_SIZE))
_UNIT = tuple((i + 0.5) / _TABLE_SIZE for i in range(_TABLE_SIZE))
_MS_TEXT = tuple(f"{ms:03d}" for ms in range(1000))
_SIZE_TEXT = tuple(str(100 * lots) for lots in range(1, 24))


def symbol_names(count: int) -> list[str]:
    """Return the first ``count`` sample symbol names, in generation (not lexical) order.

    Example:
        >>> symbol_names(3), symbol_names(52)[-1]
        (['AAPL', 'MSFT', 'NVDA'], 'S0051')
    """
    if count < 0:
        msg = f"symbol count must be >= 0, got {count}"
        raise ValueError(msg)
    head = list(REAL_TICKERS[:count])
    return head + [f"S{i:04d}" for i in range(len(head), count)]


def _symbol_rng(seed: int, index: int) -> random.Random:
    digest = hashlib.sha256(f"torghut-sample:{seed}:{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


class _SymbolPath:
    """One symbol's price path, quote and indicator state; :meth:`step` emits its next row."""

    __slots__ = (
        "close",
        "delay_offset",
        "drift",
        "drift_sigma",
        "indicators",
        "log_price",
        "lots",
        "rng",
        "seq",
        "sigma",
        "spread_px",
        "spread_ticks",
        "symbol",
        "volume_mean",
    )

    def __init__(self, symbol: str, seed: int, index: int) -> None:
        rng = _symbol_rng(seed, index)
        self.rng = rng
        self.symbol = symbol
        self.log_price = math.log(rng.uniform(15.0, 600.0))
        self.close = round(math.exp(self.log_price) * 100.0) / 100.0
        annual_vol = rng.uniform(0.25, 1.2)
        self.sigma = annual_vol / math.sqrt(_SECONDS_PER_TRADING_YEAR)
        self.drift = 0.0
        self.drift_sigma = 0.01 * self.sigma
        self.spread_ticks = rng.randint(1, 4)
        self.spread_px = self.spread_ticks / 100.0
        self.volume_mean = rng.uniform(50.0, 3000.0)
        self.lots = rng.randint(1, 20)
        self.delay_offset = rng.randrange(1000)
        self.indicators = SignalIndicators()
        self.seq = 0

    def step(self, ts_ms: int, event_ts: str, window_end: str, ingest_prefix: str) -> dict[str, Any]:
        # One 60-bit draw feeds five 12-bit table indices (fewer calls into ``random``).
        bits = self.rng.getrandbits(5 * _TABLE_BITS)
        # An Ornstein-Uhlenbeck drift gives trends long enough to cross MACD and push RSI to its
        # extremes, as intraday order flow does; the volatility itself differs by symbol.
        drift = self.drift = 0.995 * self.drift + _NORMAL[bits & _MASK] * self.drift_sigma
        self.log_price += drift + _NORMAL[(bits >> 12) & _MASK] * self.sigma
        prev_close = self.close
        close = round(math.exp(self.log_price) * 100.0) / 100.0 or _TICK  # never below one tick
        self.close = close
        # The microbar: open at the previous close, high/low a little beyond, the bar VWAP at the
        # typical price; the VWAP and volume feed the session and 5-minute VWAPs.
        wiggle = close * self.sigma
        up = wiggle * _UNIT[(bits >> 24) & _MASK]
        down = wiggle * _UNIT[(bits >> 36) & _MASK]
        if close > prev_close:
            high, low = close + up, prev_close - down
        else:
            high, low = prev_close + up, close - down
        volume = float(1 + int(_EXPONENTIAL[bits >> 48] * self.volume_mean))
        ind = self.indicators
        ind.update(ts_ms, close, (high + low + close) / 3.0, volume)

        spread_ticks = self.spread_ticks
        bid_ticks = math.floor(close * 100.0 - spread_ticks * 0.5 + 0.5)
        seq = self.seq = self.seq + 1
        lots = self.lots
        return {
            "symbol": self.symbol,
            "event_ts": event_ts,
            "seq": str(seq),
            "ingest_ts": ingest_prefix + _MS_TEXT[20 + (self.delay_offset + seq * 37) % 480],
            "is_final": 1,
            "source": "ta",
            "window_size": "PT1S",
            "window_step": "PT1S",
            "window_start": event_ts,
            "window_end": window_end,
            "version": 1,
            "macd": ind.macd,
            "macd_signal": ind.macd_signal,
            "macd_hist": ind.macd_hist,
            "ema12": ind.ema12,
            "ema26": ind.ema26,
            "rsi14": ind.rsi14,
            "boll_mid": ind.boll_mid,
            "boll_upper": ind.boll_upper,
            "boll_lower": ind.boll_lower,
            "vwap_session": ind.vwap_session,
            "vwap_w5m": ind.vwap_w5m,
            "imbalance_spread": self.spread_px,
            "imbalance_bid_px": bid_ticks / 100.0,
            "imbalance_ask_px": (bid_ticks + spread_ticks) / 100.0,
            "imbalance_bid_sz": _SIZE_TEXT[(seq * 7 + lots) % 23],
            "imbalance_ask_sz": _SIZE_TEXT[(seq * 11 + 3 * lots) % 19],
            "vol_realized_w60s": ind.vol_realized_w60s,
        }


def generate_rows(
    symbols: int, minutes: int, seed: int, start: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Yield ``symbols * minutes * 60`` sample ``ta_signals`` rows ordered by ``(event_ts, symbol)``.

    Every symbol has one 1-second microbar per second from ``start``. ``event_ts`` is the bar's start,
    ``window_start``/``window_end`` its ``PT1S`` window, ``ingest_ts`` the event time plus a deterministic
    20-499 ms delay and ``seq`` a per-symbol counter from ``"1"``. Indicator columns are null exactly
    where the producer writes null (RSI on the first bar, Bollinger before 20 bars, volatility before
    61 bars).

    Args:
        symbols: Number of symbols (>= 1): ``AAPL``, ``MSFT``, ``NVDA``, ... then ``S0050``, ...
        minutes: Number of minutes of 1-second bars (>= 1).
        seed: Seed; the same arguments always yield the same rows.
        start: First ``event_ts``; tz-aware, on a whole second. Defaults to :data:`DEFAULT_START`.

    Yields:
        One dict per row with exactly the keys :data:`TA_SIGNAL_COLUMNS`, in that order.

    Raises:
        ValueError: If a count is below 1 or ``start`` is naive or not on a whole second.
    """
    if symbols < 1 or minutes < 1:
        msg = f"symbols and minutes must be >= 1, got symbols={symbols} minutes={minutes}"
        raise ValueError(msg)
    start = DEFAULT_START if start is None else start
    if start.tzinfo is None or start.utcoffset() is None:
        msg = f"start must be timezone-aware (UTC), got naive {start.isoformat()}"
        raise ValueError(msg)
    if start.microsecond:
        msg = f"start must be on a whole second, got {start.isoformat()}"
        raise ValueError(msg)
    start = start.astimezone(UTC)
    names = symbol_names(symbols)
    paths = sorted(
        (_SymbolPath(name, seed, index) for index, name in enumerate(names)),
        key=lambda path: path.symbol,
    )
    start_ms = int(start.timestamp()) * 1000
    one_second = timedelta(seconds=1)
    second_text = start.strftime("%Y-%m-%d %H:%M:%S")
    for k in range(minutes * 60):
        next_text = (start + (k + 1) * one_second).strftime("%Y-%m-%d %H:%M:%S")
        event_ts = f"{second_text}.000"
        window_end = f"{next_text}.000"
        ingest_prefix = f"{second_text}."
        ts_ms = start_ms + k * _BAR_MS
        for path in paths:
            yield path.step(ts_ms, event_ts, window_end, ingest_prefix)
        second_text = next_text


def write_sample_signals(
    path: str | os.PathLike[str],
    symbols: int,
    minutes: int,
    seed: int,
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write :func:`generate_rows` to ``path`` as JSONL (one orjson-encoded row per line).

    Args:
        path: Output file; created or truncated.
        symbols: Number of symbols, as for :func:`generate_rows`.
        minutes: Number of minutes, as for :func:`generate_rows`.
        seed: Seed, as for :func:`generate_rows`.
        progress: Called with the running row count after every 100,000 rows and once at the end.

    Returns:
        The number of rows written.
    """
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    count = 0
    chunk: list[bytes] = []
    with open(path, "wb") as out:
        for row in generate_rows(symbols, minutes, seed):
            chunk.append(dumps(row, option=newline))
            if len(chunk) == 100_000:
                out.write(b"".join(chunk))
                count += len(chunk)
                chunk.clear()
                if progress is not None:
                    progress(count)
        out.write(b"".join(chunk))
        count += len(chunk)
    if progress is not None:
        progress(count)
    return count

"""Streaming TA indicators computed the way torghut's Flink TA producer computes them.

Every class here is an O(1)-per-bar state machine over plain Python floats, so a sample generator (or a
test) can feed one 1-second microbar at a time and read the ``ta_signals`` columns back.

Seeding follows the producer (``TechnicalIndicators.kt`` in the dorvud TA job), not TA-Lib:

* An EMA is seeded with the first value it sees (``ema12 = ema26 = close`` on the first bar), so it is
  never null. TA-Lib seeds with the SMA of the first ``n`` values instead. The two differ by a term that
  shrinks by ``1 - alpha`` per bar (``25/27`` for EMA26), so after a few hundred bars they agree to well
  below ``1e-9`` relative.
* The MACD signal line is an EMA(9) of MACD, which is ``0`` on the first bar: the same as seeding it at 0.
* RSI uses Wilder smoothing (``alpha = 1/14``) of gains and losses that start at ``0``, and is null until
  there are two bars. TA-Lib seeds with the simple mean of the first 14 changes; the difference decays
  by ``13/14`` per bar. With no gains and no losses RSI is ``0`` (TA-Lib and the producer agree).
* Bollinger bands use the population standard deviation of the last 20 closes, null until 20 bars.
* Realised volatility is the population standard deviation of the log returns of the last 60 s, null
  until the series spans the whole window (61 one-second bars, 60 returns).

Example:
    >>> ema = Ema(12)
    >>> ema.update(10.0), ema.update(23.0)
    (10.0, 12.0)
"""

from __future__ import annotations

import math
from collections import deque

__all__ = [
    "Bollinger",
    "Ema",
    "Macd",
    "RealizedVolatility",
    "RollingMoments",
    "RollingVwap",
    "SessionVwap",
    "SignalIndicators",
    "WilderRsi",
]

_RECENTRE_EVERY = 512  # pushes between exact recomputations of the rolling sums (bounds float drift)


class Ema:
    """Exponential moving average with ``alpha = 2 / (period + 1)``, seeded with the first value.

    Args:
        period: The EMA period ``n``; must be at least 1.

    Raises:
        ValueError: If ``period`` is below 1.
    """

    __slots__ = ("alpha", "value")

    def __init__(self, period: int) -> None:
        if period < 1:
            msg = f"EMA period must be >= 1, got {period}"
            raise ValueError(msg)
        self.alpha = 2.0 / (period + 1)
        self.value: float | None = None

    def update(self, x: float) -> float:
        """Fold in one value and return the new average."""
        prev = self.value
        value = x if prev is None else prev + (x - prev) * self.alpha
        self.value = value
        return value


class Macd:
    """MACD line ``EMA(fast) - EMA(slow)``, its EMA(signal) line and the histogram ``macd - signal``.

    Each EMA is seeded like :class:`Ema` (first value). After :meth:`update`, read ``ema_fast``,
    ``ema_slow``, ``macd``, ``signal`` and ``hist``.

    Args:
        fast: Fast EMA period (12).
        slow: Slow EMA period (26).
        signal: Signal EMA period (9).
    """

    __slots__ = ("alpha_fast", "alpha_signal", "alpha_slow", "ema_fast", "ema_slow", "hist", "macd", "signal")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        if min(fast, slow, signal) < 1:
            msg = f"MACD periods must be >= 1, got fast={fast} slow={slow} signal={signal}"
            raise ValueError(msg)
        self.alpha_fast = 2.0 / (fast + 1)
        self.alpha_slow = 2.0 / (slow + 1)
        self.alpha_signal = 2.0 / (signal + 1)
        self.ema_fast: float | None = None
        self.ema_slow: float | None = None
        self.macd: float | None = None
        self.signal: float | None = None
        self.hist: float | None = None

    def update(self, close: float) -> float:
        """Fold in one close and return the new MACD line value."""
        fast = self.ema_fast
        slow = self.ema_slow
        signal = self.signal
        if fast is None or slow is None or signal is None:
            fast = slow = close
            macd = signal = 0.0
        else:
            fast += (close - fast) * self.alpha_fast
            slow += (close - slow) * self.alpha_slow
            macd = fast - slow
            signal += (macd - signal) * self.alpha_signal
        self.ema_fast = fast
        self.ema_slow = slow
        self.macd = macd
        self.signal = signal
        self.hist = macd - signal
        return macd


class WilderRsi:
    """Relative strength index with Wilder smoothing of gains and losses seeded at zero.

    Args:
        period: The smoothing period (14); ``alpha = 1 / period``.
    """

    __slots__ = ("alpha", "avg_gain", "avg_loss", "prev_close")

    def __init__(self, period: int = 14) -> None:
        if period < 1:
            msg = f"RSI period must be >= 1, got {period}"
            raise ValueError(msg)
        self.alpha = 1.0 / period
        self.avg_gain = 0.0
        self.avg_loss = 0.0
        self.prev_close: float | None = None

    def update(self, close: float) -> float | None:
        """Fold in one close; return RSI in ``[0, 100]``, or None on the first bar."""
        prev = self.prev_close
        self.prev_close = close
        if prev is None:
            return None
        change = close - prev
        alpha = self.alpha
        if change > 0.0:
            gain = self.avg_gain = self.avg_gain + (change - self.avg_gain) * alpha
            loss = self.avg_loss = self.avg_loss - self.avg_loss * alpha
        else:
            gain = self.avg_gain = self.avg_gain - self.avg_gain * alpha
            loss = self.avg_loss = self.avg_loss + (-change - self.avg_loss) * alpha
        total = gain + loss
        return 0.0 if total == 0.0 else 100.0 * (gain / total)  # TA-Lib order: never above 100


class RollingMoments:
    """Mean and population variance of a sliding window of floats, O(1) per push and pop.

    Sums are kept relative to an anchor (the window mean, refreshed with an exact recomputation every
    512 pushes), so the variance of prices near 100 moving by cents keeps about 12 significant digits
    instead of the 7 that raw sums of squares would leave.
    """

    __slots__ = ("_anchor", "_pushes", "_s1", "_s2", "values")

    def __init__(self) -> None:
        self.values: deque[float] = deque()
        self._anchor = 0.0
        self._s1 = 0.0
        self._s2 = 0.0
        self._pushes = 0

    def push(self, x: float) -> None:
        """Append ``x`` as the newest value."""
        self.values.append(x)
        self._pushes += 1
        if self._pushes >= _RECENTRE_EVERY or len(self.values) == 1:
            self._recentre()
            return
        d = x - self._anchor
        self._s1 += d
        self._s2 += d * d

    def pop(self) -> None:
        """Drop the oldest value."""
        d = self.values.popleft() - self._anchor
        self._s1 -= d
        self._s2 -= d * d

    def slide(self, x: float) -> None:
        """Append ``x`` and drop the oldest value: :meth:`push` then :meth:`pop` in one call."""
        values = self.values
        values.append(x)
        anchor = self._anchor
        d_in = x - anchor
        d_out = values.popleft() - anchor
        self._s1 += d_in - d_out
        self._s2 += d_in * d_in - d_out * d_out
        self._pushes += 1
        if self._pushes >= _RECENTRE_EVERY:
            self._recentre()

    def pstdev(self) -> float:
        """Return the population standard deviation of the window (which must not be empty)."""
        n = len(self.values)
        m = self._s1 / n
        var = self._s2 / n - m * m
        return math.sqrt(var) if var > 0.0 else 0.0

    def mean_pstdev(self) -> tuple[float, float]:
        """Return ``(mean, population standard deviation)`` of the window (which must not be empty)."""
        n = len(self.values)
        m = self._s1 / n
        var = self._s2 / n - m * m
        return self._anchor + m, math.sqrt(var) if var > 0.0 else 0.0

    def _recentre(self) -> None:
        values = self.values
        anchor = math.fsum(values) / len(values)
        self._anchor = anchor
        self._s1 = math.fsum(v - anchor for v in values)
        self._s2 = math.fsum((v - anchor) * (v - anchor) for v in values)
        self._pushes = 0


class Bollinger:
    """Bollinger bands: SMA of the last ``period`` closes ± ``k`` population standard deviations.

    Args:
        period: Number of closes (20).
        k: Band width in standard deviations (2).
    """

    __slots__ = ("k", "moments", "period")

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        if period < 1:
            msg = f"Bollinger period must be >= 1, got {period}"
            raise ValueError(msg)
        self.period = period
        self.k = k
        self.moments = RollingMoments()

    def update(self, close: float) -> tuple[float, float, float] | None:
        """Fold in one close; return ``(mid, upper, lower)``, or None before ``period`` closes."""
        moments = self.moments
        if len(moments.values) == self.period:
            moments.slide(close)
        else:
            moments.push(close)
            if len(moments.values) < self.period:
                return None
        mid, std = moments.mean_pstdev()
        width = self.k * std
        return mid, mid + width, mid - width


class SessionVwap:
    """Session VWAP: cumulative ``price * volume`` over cumulative volume since :meth:`reset`."""

    __slots__ = ("pv", "volume")

    def __init__(self) -> None:
        self.pv = 0.0
        self.volume = 0.0

    def reset(self) -> None:
        """Start a new session."""
        self.pv = 0.0
        self.volume = 0.0

    def update(self, price: float, volume: float) -> float | None:
        """Fold in one bar (its VWAP and volume); return the session VWAP, or None with no volume yet."""
        self.pv += price * volume
        self.volume += volume
        return self.pv / self.volume if self.volume > 0.0 else None


class RollingVwap:
    """VWAP over a time window: the bars whose timestamp lies in ``(now - window_ms, now]``.

    While the session is younger than the window the VWAP is over the bars seen so far.

    Args:
        window_ms: Window length in milliseconds (300,000 for ``vwap_w5m``).
    """

    __slots__ = ("bars", "pv", "volume", "window_ms")

    def __init__(self, window_ms: int = 300_000) -> None:
        if window_ms <= 0:
            msg = f"rolling VWAP window must be positive, got {window_ms} ms"
            raise ValueError(msg)
        self.window_ms = window_ms
        self.bars: deque[tuple[int, float, float]] = deque()
        self.pv = 0.0
        self.volume = 0.0

    def update(self, ts_ms: int, price: float, volume: float) -> float | None:
        """Fold in one bar at ``ts_ms``; return the window VWAP, or None with no volume in the window."""
        bars = self.bars
        pv = price * volume
        bars.append((ts_ms, pv, volume))
        self.pv += pv
        self.volume += volume
        cutoff = ts_ms - self.window_ms
        while bars[0][0] <= cutoff:
            _, old_pv, old_v = bars.popleft()
            self.pv -= old_pv
            self.volume -= old_v
        if len(bars) == 1:  # resynchronise: subtraction must not leave residue behind
            self.pv = pv
            self.volume = volume
        return self.pv / self.volume if self.volume > 0.0 else None


class RealizedVolatility:
    """Population standard deviation of the log returns in a time window ``(now - window_ms, now]``.

    A return is timestamped with the bar that ends it. The value is None until the series spans the
    whole window (for 1-second bars and 60 s: from the 61st bar, over 60 returns).

    Args:
        window_ms: Window length in milliseconds (60,000 for ``vol_realized_w60s``).
    """

    __slots__ = ("first_ts_ms", "moments", "prev_close", "times", "window_ms")

    def __init__(self, window_ms: int = 60_000) -> None:
        if window_ms <= 0:
            msg = f"volatility window must be positive, got {window_ms} ms"
            raise ValueError(msg)
        self.window_ms = window_ms
        self.moments = RollingMoments()
        self.times: deque[int] = deque()
        self.prev_close: float | None = None
        self.first_ts_ms: int | None = None

    def update(self, ts_ms: int, close: float) -> float | None:
        """Fold in one close at ``ts_ms``; return the realised volatility, or None while warming up."""
        prev = self.prev_close
        self.prev_close = close
        if prev is None:
            self.first_ts_ms = ts_ms
            return None
        moments = self.moments
        times = self.times
        log_return = math.log(close / prev)
        times.append(ts_ms)
        cutoff = ts_ms - self.window_ms
        if times[0] <= cutoff:  # steady state: one return enters, one leaves
            times.popleft()
            moments.slide(log_return)
            while times[0] <= cutoff:
                times.popleft()
                moments.pop()
        else:
            moments.push(log_return)
        first = self.first_ts_ms
        if first is None or ts_ms - first < self.window_ms or len(times) < 2:
            return None
        return moments.pstdev()


class SignalIndicators:
    """Every ``ta_signals`` indicator of one symbol, advanced one microbar at a time.

    After :meth:`update` the attributes named like the ``ta_signals`` columns hold the row's values
    (None where the producer writes null).

    Example:
        >>> ind = SignalIndicators()
        >>> ind.update(0, close=100.0, bar_vwap=100.0, volume=10.0)
        >>> ind.ema12, ind.macd, ind.rsi14, ind.vwap_session
        (100.0, 0.0, None, 100.0)
    """

    __slots__ = (
        "_bollinger",
        "_macd",
        "_rsi",
        "_session_vwap",
        "_volatility",
        "_w5m_vwap",
        "boll_lower",
        "boll_mid",
        "boll_upper",
        "ema12",
        "ema26",
        "macd",
        "macd_hist",
        "macd_signal",
        "rsi14",
        "vol_realized_w60s",
        "vwap_session",
        "vwap_w5m",
    )

    def __init__(self) -> None:
        self._macd = Macd(12, 26, 9)
        self._rsi = WilderRsi(14)
        self._bollinger = Bollinger(20, 2.0)
        self._session_vwap = SessionVwap()
        self._w5m_vwap = RollingVwap(300_000)
        self._volatility = RealizedVolatility(60_000)
        self.ema12: float | None = None
        self.ema26: float | None = None
        self.macd: float | None = None
        self.macd_signal: float | None = None
        self.macd_hist: float | None = None
        self.rsi14: float | None = None
        self.boll_mid: float | None = None
        self.boll_upper: float | None = None
        self.boll_lower: float | None = None
        self.vwap_session: float | None = None
        self.vwap_w5m: float | None = None
        self.vol_realized_w60s: float | None = None

    def update(self, ts_ms: int, close: float, bar_vwap: float, volume: float) -> None:
        """Advance every indicator by one bar.

        Args:
            ts_ms: Bar timestamp, epoch milliseconds; strictly increasing.
            close: The bar's close (drives EMA, MACD, RSI, Bollinger and volatility).
            bar_vwap: The bar's own VWAP (drives the session and 5-minute VWAPs).
            volume: The bar's volume.
        """
        macd = self._macd
        macd.update(close)
        self.ema12 = macd.ema_fast
        self.ema26 = macd.ema_slow
        self.macd = macd.macd
        self.macd_signal = macd.signal
        self.macd_hist = macd.hist
        self.rsi14 = self._rsi.update(close)
        bands = self._bollinger.update(close)
        if bands is not None:
            self.boll_mid, self.boll_upper, self.boll_lower = bands
        self.vwap_session = self._session_vwap.update(bar_vwap, volume)
        self.vwap_w5m = self._w5m_vwap.update(ts_ms, bar_vwap, volume)
        self.vol_realized_w60s = self._volatility.update(ts_ms, close)

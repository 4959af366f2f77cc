"""The streaming indicators against TA-Lib and against straightforward reference computations."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from torghut.connectors.synthetic.indicators import (
    Bollinger,
    Ema,
    Macd,
    RealizedVolatility,
    RollingMoments,
    RollingVwap,
    SessionVwap,
    SignalIndicators,
    WilderRsi,
)

# Our EMAs and RSI seed like the producer (first value / zero), TA-Lib seeds with an SMA. The gap decays
# by at least 13/14 per bar, so after WARMUP bars it is far below the tolerance.
WARMUP = 350
REL = 1e-9
COMPOSITE_FIELDS = (
    "ema12",
    "ema26",
    "macd",
    "macd_signal",
    "macd_hist",
    "rsi14",
    "boll_mid",
    "boll_upper",
    "boll_lower",
)


def gbm_path(
    seed: int, n: int, *, start: float = 100.0, sigma: float = 0.002, drift: float = 0.0
) -> list[float]:
    rng = random.Random(seed)
    price = start
    closes = []
    for _ in range(n):
        price *= math.exp(drift + rng.gauss(0.0, sigma))
        closes.append(price)
    return closes


def run_composite(closes: list[float]) -> list[tuple[float | None, ...]]:
    ind = SignalIndicators()
    out = []
    for i, close in enumerate(closes):
        ind.update(i * 1000, close, close, 100.0)
        out.append(tuple(getattr(ind, name) for name in COMPOSITE_FIELDS))
    return out


def assert_matches_talib(closes: list[float]) -> None:
    """Every price-scale value within REL of the price, RSI within REL of its 0-100 scale."""
    c = np.asarray(closes, dtype=np.float64)
    ema12, ema26 = talib.EMA(c, 12), talib.EMA(c, 26)
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    rsi = talib.RSI(c, 14)
    upper, mid, lower = talib.BBANDS(c, 20, 2, 2)
    ours = run_composite(closes)
    for i in range(WARMUP, len(closes)):
        row = ours[i]
        scale = closes[i]
        expected = (ema12[i], ema26[i], macd[i], signal[i], hist[i], rsi[i], mid[i], upper[i], lower[i])
        for name, got, want in zip(COMPOSITE_FIELDS, row, expected, strict=True):
            assert got is not None, (name, i)
            tol = REL * (100.0 if name == "rsi14" else scale)
            assert abs(got - want) <= tol, (name, i, got, want)


# --- against TA-Lib ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_composite_matches_talib_after_warmup(seed: int) -> None:
    assert_matches_talib(gbm_path(seed, 1200))


def test_composite_matches_talib_on_cent_rounded_prices_with_flat_runs() -> None:
    closes = [round(p, 2) for p in gbm_path(9, 1000, sigma=0.0002)]
    assert any(a == b for a, b in itertools.pairwise(closes))  # zero changes do occur
    assert_matches_talib(closes)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    start=st.floats(1.0, 5000.0),
    sigma=st.floats(1e-4, 0.03),
    drift=st.floats(-1e-3, 1e-3),
    n=st.integers(WARMUP + 1, 700),
)
def test_composite_matches_talib_on_random_paths(
    seed: int, start: float, sigma: float, drift: float, n: int
) -> None:
    assert_matches_talib(gbm_path(seed, n, start=start, sigma=sigma, drift=drift))


def test_ema_class_matches_talib_after_warmup() -> None:
    closes = gbm_path(4, 800)
    expected = talib.EMA(np.asarray(closes), 26)
    ema = Ema(26)
    for i, close in enumerate(closes):
        got = ema.update(close)
        if i >= WARMUP:
            assert got == pytest.approx(expected[i], rel=REL)


def test_early_values_differ_from_talib_only_by_seeding() -> None:
    # Documented choice: first-value seeding, so the very first bar is the close, not null.
    closes = gbm_path(5, 40)
    macd = Macd()
    macd.update(closes[0])
    assert (macd.ema_fast, macd.ema_slow, macd.macd, macd.signal, macd.hist) == (
        closes[0],
        closes[0],
        0.0,
        0.0,
        0.0,
    )
    assert math.isnan(talib.EMA(np.asarray(closes), 12)[0])


# --- seeding, nulls and edge cases ---------------------------------------------------------------


def test_ema_seeds_with_first_value_and_uses_alpha_two_over_n_plus_one() -> None:
    ema = Ema(3)
    assert ema.update(10.0) == 10.0
    assert ema.update(20.0) == 15.0  # alpha = 0.5
    with pytest.raises(ValueError, match="period"):
        Ema(0)


def test_rsi_is_null_on_first_bar_then_wilder_smoothed() -> None:
    rsi = WilderRsi(14)
    assert rsi.update(100.0) is None
    assert rsi.update(101.0) == 100.0
    assert rsi.update(100.0) == pytest.approx(100.0 * (13 / 14) / (13 / 14 + 1))
    flat = WilderRsi(14)
    flat.update(5.0)
    assert flat.update(5.0) == 0.0  # no gains and no losses: 0, like TA-Lib and the producer


def test_bollinger_is_null_until_period_then_population_bands() -> None:
    closes = gbm_path(6, 60)
    boll = Bollinger(20, 2.0)
    for i, close in enumerate(closes):
        bands = boll.update(close)
        if i < 19:
            assert bands is None
            continue
        assert bands is not None
        window = closes[i - 19 : i + 1]
        mid, std = statistics.fmean(window), statistics.pstdev(window)
        assert bands == pytest.approx((mid, mid + 2 * std, mid - 2 * std), rel=1e-12)


def test_rolling_moments_stay_exact_over_long_drifting_series() -> None:
    values = [round(p, 2) for p in gbm_path(7, 5000, start=100.0, sigma=0.001, drift=2e-5)]
    moments = RollingMoments()
    for i, value in enumerate(values):
        if i >= 20:
            moments.slide(value)
        else:
            moments.push(value)
        window = values[max(0, i - 19) : i + 1]
        mean, std = moments.mean_pstdev()
        assert mean == pytest.approx(statistics.fmean(window), rel=1e-13)
        assert std == pytest.approx(statistics.pstdev(window), rel=1e-9, abs=1e-12)


# --- VWAPs and volatility against references -------------------------------------------------------


def test_session_vwap_is_cumulative_and_resets() -> None:
    rng = random.Random(11)
    vwap = SessionVwap()
    pv = vol = 0.0
    for _ in range(500):
        price, volume = rng.uniform(90, 110), float(rng.randint(1, 500))
        pv += price * volume
        vol += volume
        assert vwap.update(price, volume) == pytest.approx(pv / vol, rel=1e-12)
    vwap.reset()
    assert vwap.update(50.0, 0.0) is None
    assert vwap.update(50.0, 10.0) == 50.0


def test_rolling_vwap_is_time_windowed_including_gaps() -> None:
    rng = random.Random(12)
    bars: list[tuple[int, float, float]] = []
    rolling = RollingVwap(300_000)
    ts = 0
    for _ in range(3000):
        ts += 1000 if rng.random() < 0.9 else rng.choice([2000, 45_000, 301_000])
        bar = (ts, rng.uniform(95, 105), float(rng.randint(1, 900)))
        bars.append(bar)
        in_window = [(p, v) for t, p, v in bars if t > ts - 300_000]
        expected = sum(p * v for p, v in in_window) / sum(v for _, v in in_window)
        assert rolling.update(*bar) == pytest.approx(expected, rel=1e-10)
    assert len(rolling.bars) <= 300


def test_realized_volatility_against_reference() -> None:
    closes = [round(p, 2) for p in gbm_path(13, 2000, sigma=0.0005)]
    vol = RealizedVolatility(60_000)
    for i, close in enumerate(closes):
        got = vol.update(i * 1000, close)
        if i < 60:
            assert got is None, i
            continue
        returns = [math.log(b / a) for a, b in zip(closes[i - 60 : i], closes[i - 59 : i + 1], strict=True)]
        assert len(returns) == 60
        assert got == pytest.approx(statistics.pstdev(returns), rel=1e-8, abs=1e-15)


def test_realized_volatility_window_is_time_based() -> None:
    vol = RealizedVolatility(60_000)
    assert vol.update(0, 100.0) is None
    assert vol.update(30_000, 101.0) is None  # series spans only 30 s
    got = vol.update(60_000, 100.0)  # spans 60 s: returns at 30 s and 60 s are in (0, 60 s]
    r = [math.log(101.0 / 100.0), math.log(100.0 / 101.0)]
    assert got == pytest.approx(statistics.pstdev(r))
    got = vol.update(125_000, 102.0)  # only the newest return remains
    assert got is None  # fewer than two returns in the window


@pytest.mark.parametrize("cls", [RollingVwap, RealizedVolatility])
def test_windows_reject_non_positive_length(cls: type) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        cls(0)


def test_composite_null_pattern_matches_producer() -> None:
    ind = SignalIndicators()
    closes = gbm_path(14, 70)
    seen = []
    for i, close in enumerate(closes):
        ind.update(i * 1000, close, close, 10.0)
        seen.append((ind.rsi14 is None, ind.boll_mid is None, ind.vol_realized_w60s is None))
    assert seen[0] == (True, True, True)
    assert seen[1] == (False, True, True)
    assert seen[19] == (False, False, True)
    assert seen[60] == (False, False, False)
    assert all(s == (False, True, True) for s in seen[1:19])

"""``intraday_tsmom@1.1.0``: torghut's intraday time-series momentum plugin.

With ``hist = macd - macd_signal`` and ``vol = vol_realized_w60s`` (may be missing), and the
thresholds below as parameters whose defaults are torghut V3's hard-coded ("legacy") profile:

- Nothing when any of ``ema12``, ``ema26``, ``macd``, ``macd_signal``, ``rsi14`` is missing.
- ``vol_ok``: vol is missing, or ``vol_floor <= vol <= vol_ceil`` (0.001 and 0.012).
- BUY when ``ema12 > ema26``, ``macd > macd_signal``, ``vol_ok``, ``hist >= bullish_hist_min`` (0.04)
  and ``min_bull_rsi <= rsi14 <= max_bull_rsi`` (52..62). Confidence 0.64, +0.05 when
  ``hist >= strong_hist_min`` (0.10), +0.03 when vol is present and ``<= low_vol_ceil`` (0.008), capped
  at 0.82. Explain ``("tsmom_trend_up", "momentum_confirmed", "volatility_within_budget")``.
- SELL when ``ema12 < ema26``, ``macd < macd_signal``, ``rsi14 >= min_bear_rsi`` (66) and
  ``macd_signal - macd >= bearish_hist_min`` (0.06). Confidence 0.62, +0.03 when
  ``rsi14 >= strong_bear_rsi`` (72), capped at 0.78.
  Explain ``("tsmom_trend_down", "momentum_reversal_exit")``.

Target notional: ``max_notional_per_trade`` when > 0, else 100. Stateless, no warm-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from torghut.strategies.base import IntentDraft, StrategyParams, StrategyPlugin, default_target_notional
from torghut.strategies.view import FeatureView

_BUY_EXPLAIN = ("tsmom_trend_up", "momentum_confirmed", "volatility_within_budget")
_SELL_EXPLAIN = ("tsmom_trend_down", "momentum_reversal_exit")


class TsmomParams(StrategyParams):
    """Thresholds of ``intraday_tsmom``; the defaults are torghut V3's legacy profile."""

    bullish_hist_min: Decimal = Decimal("0.04")
    bearish_hist_min: Decimal = Decimal("0.06")
    min_bull_rsi: Decimal = Decimal(52)
    max_bull_rsi: Decimal = Decimal(62)
    min_bear_rsi: Decimal = Decimal(66)
    vol_floor: Decimal = Decimal("0.001")
    vol_ceil: Decimal = Decimal("0.012")
    low_vol_ceil: Decimal = Decimal("0.008")
    strong_hist_min: Decimal = Decimal("0.10")
    strong_bear_rsi: Decimal = Decimal(72)


class IntradayTsmom(StrategyPlugin[TsmomParams, None]):
    """Torghut's V3 ``IntradayTsmomPlugin`` with its thresholds as parameters."""

    strategy_type = "intraday_tsmom"
    version = "1.1.0"
    params_model = TsmomParams
    required_features = ("price", "ema12", "ema26", "macd", "macd_signal", "rsi14", "vol_realized_w60s")
    warmup_bars = 0

    def initial_state(self, params: TsmomParams) -> None:
        """Stateless."""
        return None

    def evaluate(
        self, params: TsmomParams, features: FeatureView, state: None
    ) -> tuple[Sequence[IntentDraft], None]:
        """Apply the trend-up entry and trend-down exit rules."""
        ema12 = features.decimal("ema12")
        ema26 = features.decimal("ema26")
        macd = features.decimal("macd")
        signal = features.decimal("macd_signal")
        rsi = features.decimal("rsi14")
        vol = features.decimal("vol_realized_w60s")
        if ema12 is None or ema26 is None or macd is None or signal is None or rsi is None:
            return (), None
        hist = macd - signal
        vol_ok = vol is None or params.vol_floor <= vol <= params.vol_ceil
        if (
            ema12 > ema26
            and macd > signal
            and vol_ok
            and hist >= params.bullish_hist_min
            and params.min_bull_rsi <= rsi <= params.max_bull_rsi
        ):
            confidence = Decimal("0.64")
            if hist >= params.strong_hist_min:
                confidence += Decimal("0.05")
            if vol is not None and vol <= params.low_vol_ceil:
                confidence += Decimal("0.03")
            draft = IntentDraft(
                "buy", min(confidence, Decimal("0.82")), default_target_notional(params), _BUY_EXPLAIN
            )
            return (draft,), None
        if (
            ema12 < ema26
            and macd < signal
            and rsi >= params.min_bear_rsi
            and (signal - macd) >= params.bearish_hist_min
        ):
            confidence = Decimal("0.62")
            if rsi >= params.strong_bear_rsi:
                confidence += Decimal("0.03")
            draft = IntentDraft(
                "sell", min(confidence, Decimal("0.78")), default_target_notional(params), _SELL_EXPLAIN
            )
            return (draft,), None
        return (), None

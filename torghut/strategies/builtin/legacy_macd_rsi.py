"""``legacy_macd_rsi@1.0.0``: torghut's original MACD/RSI rule as a plugin, unchanged.

Rules (strict inequalities, so ``macd == macd_signal`` and RSI exactly 35 or 65 never trigger):

- BUY when ``macd > macd_signal`` and ``rsi14 < 35``; confidence 0.65, explain
  ``("macd_cross_up", "rsi_oversold")``.
- SELL when ``macd < macd_signal`` and ``rsi14 > 65``; confidence 0.65, explain
  ``("macd_cross_down", "rsi_overbought")``.
- Nothing when any of ``macd``, ``macd_signal``, ``rsi14`` is missing; price is declared but not needed.

Target notional: ``max_notional_per_trade`` when > 0, else 100. Stateless, no warm-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from torghut.strategies.base import IntentDraft, StrategyParams, StrategyPlugin, default_target_notional
from torghut.strategies.view import FeatureView

_CONFIDENCE = Decimal("0.65")
_RSI_OVERSOLD = Decimal(35)
_RSI_OVERBOUGHT = Decimal(65)


class LegacyMacdRsi(StrategyPlugin[StrategyParams, None]):
    """Torghut's V3 ``LegacyMacdRsiPlugin``."""

    strategy_type = "legacy_macd_rsi"
    version = "1.0.0"
    params_model = StrategyParams
    required_features = ("macd", "macd_signal", "rsi14", "price")
    warmup_bars = 0

    def initial_state(self, params: StrategyParams) -> None:
        """Stateless."""
        return None

    def evaluate(
        self, params: StrategyParams, features: FeatureView, state: None
    ) -> tuple[Sequence[IntentDraft], None]:
        """Apply the MACD/RSI rule."""
        macd = features.decimal("macd")
        signal = features.decimal("macd_signal")
        rsi = features.decimal("rsi14")
        if macd is None or signal is None or rsi is None:
            return (), None
        if macd > signal and rsi < _RSI_OVERSOLD:
            draft = IntentDraft(
                "buy", _CONFIDENCE, default_target_notional(params), ("macd_cross_up", "rsi_oversold")
            )
            return (draft,), None
        if macd < signal and rsi > _RSI_OVERBOUGHT:
            draft = IntentDraft(
                "sell", _CONFIDENCE, default_target_notional(params), ("macd_cross_down", "rsi_overbought")
            )
            return (draft,), None
        return (), None

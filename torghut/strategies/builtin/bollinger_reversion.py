"""``bollinger_reversion@1.0.0``: fade confirmed Bollinger band breaks when RSI agrees.

Features: ``price``, ``boll_upper``, ``boll_lower``, ``rsi14``. Warm-up: 20 bars (the producer's
Bollinger bands need 20 bars; the runtime suppresses intents until this strategy has seen them).

State per symbol: ``(below_streak, above_streak, cooldown_left)``.

Each bar, with ``buffer = band_buffer_bps / 10000``:

- *below* is ``price < boll_lower * (1 - buffer)``; *above* is ``price > boll_upper * (1 + buffer)``.
  Each streak grows by one on a bar that satisfies it and resets to 0 otherwise (also when a feature is
  missing).
- While ``cooldown_left > 0`` it only counts down.
- BUY when ``below_streak >= confirm_bars`` and ``rsi14 < rsi_oversold``; SELL when
  ``above_streak >= confirm_bars`` and ``rsi14 > rsi_overbought``. Both inequalities are strict.
  Confidence 0.60, +0.05 when RSI is a further ``rsi_extreme_margin`` beyond its threshold, +0.03 when
  the streak reached twice ``confirm_bars``, capped at 0.68. Explain
  ``("bollinger_lower_break", "rsi_oversold", "mean_reversion_entry")`` or
  ``("bollinger_upper_break", "rsi_overbought", "mean_reversion_exit")``.
- After an intent both streaks reset and ``cooldown_left = cooldown_bars``.

Target notional: ``max_notional_per_trade`` when > 0, else 100.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from pydantic import Field

from torghut.strategies.base import IntentDraft, StrategyParams, StrategyPlugin, default_target_notional
from torghut.strategies.view import FeatureView

BollingerState = tuple[int, int, int]

_BPS = Decimal(10000)
_ONE = Decimal(1)
_BUY_EXPLAIN = ("bollinger_lower_break", "rsi_oversold", "mean_reversion_entry")
_SELL_EXPLAIN = ("bollinger_upper_break", "rsi_overbought", "mean_reversion_exit")


class BollingerParams(StrategyParams):
    """Parameters of ``bollinger_reversion``."""

    confirm_bars: int = Field(default=2, ge=1)
    cooldown_bars: int = Field(default=10, ge=0)
    band_buffer_bps: Decimal = Field(default=Decimal(0), ge=0)
    rsi_oversold: Decimal = Decimal(30)
    rsi_overbought: Decimal = Decimal(70)
    rsi_extreme_margin: Decimal = Field(default=Decimal(10), ge=0)


class BollingerReversion(StrategyPlugin[BollingerParams, BollingerState]):
    """Mean reversion on confirmed band breaks, with a cooldown in bars."""

    strategy_type = "bollinger_reversion"
    version = "1.0.0"
    params_model = BollingerParams
    required_features = ("price", "boll_upper", "boll_lower", "rsi14")
    warmup_bars = 20

    def initial_state(self, params: BollingerParams) -> BollingerState:
        """No streaks, no cooldown."""
        return (0, 0, 0)

    def evaluate(
        self, params: BollingerParams, features: FeatureView, state: BollingerState
    ) -> tuple[Sequence[IntentDraft], BollingerState]:
        """Advance the streaks and cooldown; emit on a confirmed break."""
        below_streak, above_streak, cooldown = state
        price = features.decimal("price")
        upper = features.decimal("boll_upper")
        lower = features.decimal("boll_lower")
        rsi = features.decimal("rsi14")
        if price is None or upper is None or lower is None or rsi is None:
            return (), (0, 0, max(0, cooldown - 1))
        buffer = params.band_buffer_bps / _BPS
        below_streak = below_streak + 1 if price < lower * (_ONE - buffer) else 0
        above_streak = above_streak + 1 if price > upper * (_ONE + buffer) else 0
        if cooldown > 0:
            return (), (below_streak, above_streak, cooldown - 1)
        if below_streak >= params.confirm_bars and rsi < params.rsi_oversold:
            extreme = rsi <= params.rsi_oversold - params.rsi_extreme_margin
            confidence = self._confidence(params, extreme=extreme, streak=below_streak)
            draft = IntentDraft("buy", confidence, default_target_notional(params), _BUY_EXPLAIN)
            return (draft,), (0, 0, params.cooldown_bars)
        if above_streak >= params.confirm_bars and rsi > params.rsi_overbought:
            extreme = rsi >= params.rsi_overbought + params.rsi_extreme_margin
            confidence = self._confidence(params, extreme=extreme, streak=above_streak)
            draft = IntentDraft("sell", confidence, default_target_notional(params), _SELL_EXPLAIN)
            return (draft,), (0, 0, params.cooldown_bars)
        return (), (below_streak, above_streak, 0)

    @staticmethod
    def _confidence(params: BollingerParams, *, extreme: bool, streak: int) -> Decimal:
        confidence = Decimal("0.60")
        if extreme:
            confidence += Decimal("0.05")
        if streak >= 2 * params.confirm_bars:
            confidence += Decimal("0.03")
        return min(confidence, Decimal("0.68"))

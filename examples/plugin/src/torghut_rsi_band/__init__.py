"""``rsi_band@1.0.0``: buy when RSI crosses back up through the lower band, sell when it crosses down.

An example of a third-party plugin (see docs/strategy-author-guide.md). It is state-carrying: it keeps the
previous bar's RSI, so it emits only on the bar where RSI re-enters the band, not on every bar outside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from pydantic import Field, model_validator

from torghut.strategies.base import IntentDraft, StrategyParams, StrategyPlugin, default_target_notional
from torghut.strategies.view import FeatureView

__all__ = ["RsiBand", "RsiBandParams"]


class RsiBandParams(StrategyParams):
    """Parameters of ``rsi_band@1.0.0`` (frozen, unknown keys rejected: inherited from StrategyParams)."""

    lower: Decimal = Field(default=Decimal(30), gt=0, lt=100)
    upper: Decimal = Field(default=Decimal(70), gt=0, lt=100)
    confidence: Decimal = Field(default=Decimal("0.6"), gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> RsiBandParams:
        if self.lower >= self.upper:
            msg = f"lower ({self.lower}) must be below upper ({self.upper})"
            raise ValueError(msg)
        return self


RsiBandState = Decimal | None
"""The previous bar's RSI (None before the first bar with an RSI): plain data, snapshotted by bytewax."""


class RsiBand(StrategyPlugin[RsiBandParams, RsiBandState]):
    """RSI band re-entry.

    >>> plugin = RsiBand()
    >>> params = plugin.validate_params({"lower": "30", "max_notional_per_trade": "250"})
    >>> state = plugin.initial_state(params)
    >>> _, state = plugin.evaluate(params, plugin.view({"rsi14": Decimal(25)}), state)
    >>> drafts, state = plugin.evaluate(params, plugin.view({"rsi14": Decimal(31)}), state)
    >>> drafts[0].direction, drafts[0].target_notional, drafts[0].explain
    ('buy', Decimal('250'), ('rsi_band', 'rsi_reentered_lower_band'))
    """

    strategy_type = "rsi_band"
    version = "1.0.0"
    params_model = RsiBandParams
    required_features = ("rsi14",)
    warmup_bars = 1

    def initial_state(self, params: RsiBandParams) -> RsiBandState:
        """No previous RSI."""
        return None

    def evaluate(
        self, params: RsiBandParams, features: FeatureView, state: RsiBandState
    ) -> tuple[Sequence[IntentDraft], RsiBandState]:
        """Emit when RSI crosses back into the band; remember this bar's RSI."""
        rsi = features.decimal("rsi14")
        if rsi is None:
            return (), state
        notional = default_target_notional(params)
        if state is not None and state < params.lower <= rsi:
            explain = ("rsi_band", "rsi_reentered_lower_band")
            return (IntentDraft("buy", params.confidence, notional, explain),), rsi
        if state is not None and state > params.upper >= rsi:
            explain = ("rsi_band", "rsi_reentered_upper_band")
            return (IntentDraft("sell", params.confidence, notional, explain),), rsi
        return (), rsi

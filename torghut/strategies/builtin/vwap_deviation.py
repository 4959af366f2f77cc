"""``vwap_deviation``: fade the 5-minute VWAP's deviation from the session VWAP, in two versions.

Both versions read ``vwap_w5m`` (the recent, volume-weighted price) and ``vwap_session`` and measure
``dev_bps = (vwap_w5m - vwap_session) / vwap_session * 10000``. (``price`` would not do: on torghut's flat
``ta_signals`` rows the price *is* the session VWAP, so its deviation is always zero.)
(no signal, and the state resets, when either is missing or the VWAP is not positive). Below the VWAP is a
BUY (reversion up), above it a SELL. Target notional: ``max_notional_per_trade`` when > 0, else 100.

``vwap_deviation@1.0.0`` (persistence counter, no warm-up). State ``(side, streak)``:

- A bar is on side -1 when ``dev_bps <= -entry_bps``, +1 when ``dev_bps >= entry_bps``, else 0.
- The streak counts consecutive bars on the same non-zero side.
- When it reaches ``persist_bars`` (default 3) an intent is emitted and the streak restarts from 0.
- Confidence 0.55, +0.05 when ``|dev_bps| >= 2 * entry_bps``. Default ``entry_bps`` is 25.
- Explain ``("vwap_deviation", "vwap_5m_below_session"|"vwap_5m_above_session", "deviation_persistent")``.

``vwap_deviation@2.0.0`` (EWMA, edge-triggered, 5 warm-up bars). State ``(ewma_bps, zone)``:

- ``ewma = dev`` on the first bar, then ``ewma + alpha * (dev - ewma)`` (default alpha 0.25), quantized
  to 1e-6 bps.
- The zone is -1 when ``ewma <= -entry_bps``, +1 when ``ewma >= entry_bps``, 0 when
  ``|ewma| < rearm_bps``, and unchanged in between (hysteresis). Default ``entry_bps`` 15, ``rearm_bps`` 5.
- An intent is emitted only when the zone becomes non-zero (one intent per excursion).
- Confidence 0.58, +0.04 when ``|ewma| >= 2 * entry_bps``.
- Explain ``("vwap_ewma_deviation", "vwap_5m_below_session"|"vwap_5m_above_session")``.

Pinning ``@1.0.0`` in the catalog rolls a strategy back to the persistence rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from pydantic import Field

from torghut.contracts.strategy import Direction
from torghut.strategies.base import IntentDraft, StrategyParams, StrategyPlugin, default_target_notional
from torghut.strategies.view import FeatureView

_BPS = Decimal(10000)
_EWMA_QUANTUM = Decimal("0.000001")
_REQUIRED = ("vwap_w5m", "vwap_session")


def _deviation_bps(features: FeatureView) -> Decimal | None:
    price = features.decimal("vwap_w5m")
    vwap = features.decimal("vwap_session")
    if price is None or vwap is None or vwap <= 0:
        return None
    return (price - vwap) / vwap * _BPS


def _side_label(side: int) -> tuple[Direction, str]:
    return ("buy", "vwap_5m_below_session") if side < 0 else ("sell", "vwap_5m_above_session")


class VwapDeviationParams(StrategyParams):
    """Parameters of ``vwap_deviation@1.0.0``."""

    entry_bps: Decimal = Field(default=Decimal(25), gt=0)
    persist_bars: int = Field(default=3, ge=1)


VwapV1State = tuple[int, int]


class VwapDeviationV1(StrategyPlugin[VwapDeviationParams, VwapV1State]):
    """Persistent deviation from the session VWAP."""

    strategy_type = "vwap_deviation"
    version = "1.0.0"
    params_model = VwapDeviationParams
    required_features = _REQUIRED
    warmup_bars = 0

    def initial_state(self, params: VwapDeviationParams) -> VwapV1State:
        """No side, no streak."""
        return (0, 0)

    def evaluate(
        self, params: VwapDeviationParams, features: FeatureView, state: VwapV1State
    ) -> tuple[Sequence[IntentDraft], VwapV1State]:
        """Count persistent bars on one side; emit when the streak reaches ``persist_bars``."""
        dev = _deviation_bps(features)
        if dev is None:
            return (), (0, 0)
        side = -1 if dev <= -params.entry_bps else 1 if dev >= params.entry_bps else 0
        if side == 0:
            return (), (0, 0)
        streak = state[1] + 1 if side == state[0] else 1
        if streak < params.persist_bars:
            return (), (side, streak)
        confidence = Decimal("0.55")
        if abs(dev) >= 2 * params.entry_bps:
            confidence += Decimal("0.05")
        direction, label = _side_label(side)
        explain = ("vwap_deviation", label, "deviation_persistent")
        return (IntentDraft(direction, confidence, default_target_notional(params), explain),), (side, 0)


class VwapEwmaParams(StrategyParams):
    """Parameters of ``vwap_deviation@2.0.0``."""

    entry_bps: Decimal = Field(default=Decimal(15), gt=0)
    rearm_bps: Decimal = Field(default=Decimal(5), ge=0)
    alpha: Decimal = Field(default=Decimal("0.25"), gt=0, le=1)


VwapV2State = tuple[Decimal | None, int]


class VwapDeviationV2(StrategyPlugin[VwapEwmaParams, VwapV2State]):
    """EWMA-smoothed deviation from the session VWAP, one intent per excursion."""

    strategy_type = "vwap_deviation"
    version = "2.0.0"
    params_model = VwapEwmaParams
    required_features = _REQUIRED
    warmup_bars = 5

    def initial_state(self, params: VwapEwmaParams) -> VwapV2State:
        """No average yet, neutral zone."""
        return (None, 0)

    def evaluate(
        self, params: VwapEwmaParams, features: FeatureView, state: VwapV2State
    ) -> tuple[Sequence[IntentDraft], VwapV2State]:
        """Update the EWMA and the zone; emit when a new excursion starts."""
        dev = _deviation_bps(features)
        if dev is None:
            return (), (None, 0)
        ewma, zone = state
        ewma = dev if ewma is None else ewma + params.alpha * (dev - ewma)
        ewma = ewma.quantize(_EWMA_QUANTUM)
        if ewma <= -params.entry_bps:
            new_zone = -1
        elif ewma >= params.entry_bps:
            new_zone = 1
        elif abs(ewma) < params.rearm_bps:
            new_zone = 0
        else:
            new_zone = zone
        if new_zone in (0, zone):
            return (), (ewma, new_zone)
        confidence = Decimal("0.58")
        if abs(ewma) >= 2 * params.entry_bps:
            confidence += Decimal("0.04")
        direction, label = _side_label(new_zone)
        explain = ("vwap_ewma_deviation", label)
        draft = IntentDraft(direction, confidence, default_target_notional(params), explain)
        return (draft,), (ewma, new_zone)

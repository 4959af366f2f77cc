"""The strategies shipped with the engine (``default_registry`` registers them)."""

from torghut.strategies.base import StrategyPlugin
from torghut.strategies.builtin.bollinger_reversion import BollingerReversion
from torghut.strategies.builtin.intraday_tsmom import IntradayTsmom
from torghut.strategies.builtin.legacy_macd_rsi import LegacyMacdRsi
from torghut.strategies.builtin.vwap_deviation import VwapDeviationV1, VwapDeviationV2

BUILTIN_PLUGINS: tuple[type[StrategyPlugin], ...] = (  # type: ignore[type-arg]
    LegacyMacdRsi,
    IntradayTsmom,
    BollingerReversion,
    VwapDeviationV1,
    VwapDeviationV2,
)

__all__ = [
    "BUILTIN_PLUGINS",
    "BollingerReversion",
    "IntradayTsmom",
    "LegacyMacdRsi",
    "VwapDeviationV1",
    "VwapDeviationV2",
]

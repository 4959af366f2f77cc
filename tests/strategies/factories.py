"""Feature vectors and catalogs for the strategy tests (built directly, no normalizer)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from torghut.contracts import VALUE_FIELDS_V3, FeatureVectorV3, FrozenMap, StrategyDefinition
from torghut.strategies.catalog import parse_catalog
from torghut.strategies.registry import StrategyRegistry

T0 = datetime(2026, 2, 19, 14, 30, tzinfo=UTC)
_RAW = frozenset(("signal_quality_flag", "staleness_ms"))


def values(**features: Any) -> FrozenMap[str, Any]:
    """All 17 V3 value fields (None unless given); numbers become Decimals as the normalizer makes them."""
    out: dict[str, Any] = dict.fromkeys(VALUE_FIELDS_V3)
    for name, value in features.items():
        numeric = name not in _RAW and isinstance(value, int | float | str)
        out[name] = Decimal(str(value)) if numeric else value
    return FrozenMap(out)


def fv(
    symbol: str = "NVDA", *, seconds: float = 0, seq: int = 1, timeframe: str = "1Sec", **features: Any
) -> FeatureVectorV3:
    """A feature vector at ``T0 + seconds``."""
    return FeatureVectorV3(
        event_ts=T0 + timedelta(seconds=seconds),
        symbol=symbol,
        timeframe=timeframe,
        seq=seq,
        source="ta",
        feature_schema_version="3.0.0",
        values=values(**features),
    )


def definitions(registry: StrategyRegistry, *entries: Mapping[str, Any]) -> tuple[StrategyDefinition, ...]:
    """Catalog definitions for newer-shape ``entries``."""
    return parse_catalog([dict(e) for e in entries], registry, digest="test").definitions


LEGACY_BUY: dict[str, Any] = {"macd": "0.5", "macd_signal": "0.4", "rsi14": "30", "price": "187.1"}
"""A vector on which legacy_macd_rsi buys."""

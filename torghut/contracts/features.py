"""``FeatureVectorV3``: torghut's canonical, versioned feature vector and its normalization hash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from torghut.contracts.frozen import FrozenMap
from torghut.contracts.hashing import sha256_hex
from torghut.contracts.signal import InputPosition

FEATURE_SCHEMA_VERSION_V3 = "3.0.0"
REQUIRED_FEATURES_V3: tuple[str, ...] = ("price", "macd", "macd_signal", "rsi14")
IDENTITY_FIELDS_V3: tuple[str, ...] = (
    "event_ts",
    "symbol",
    "timeframe",
    "seq",
    "source",
    "feature_schema_version",
)
VALUE_FIELDS_V3: tuple[str, ...] = (
    "price",
    "ema12",
    "ema26",
    "macd",
    "macd_signal",
    "macd_hist",
    "vwap_session",
    "vwap_w5m",
    "rsi14",
    "boll_mid",
    "boll_upper",
    "boll_lower",
    "vol_realized_w60s",
    "imbalance_spread",
    "spread",
    "signal_quality_flag",
    "staleness_ms",
)
VALUE_FIELD_SET_V3 = frozenset(VALUE_FIELDS_V3)

FeatureValue = Decimal | int | str | float | bool | None


@dataclass(frozen=True, slots=True)
class FeatureVectorV3:
    """Torghut's ``FeatureVectorV3``: identity fields plus the 17 V3 values, in event time.

    The normalization hash is derived from the other fields, so it is computed on demand
    (:meth:`normalization_hash`) where an intent or a features record needs it, not on every event.
    """

    event_ts: datetime
    symbol: str
    timeframe: str
    seq: int
    source: str
    feature_schema_version: str
    values: FrozenMap[str, Any]
    ingest_ts: datetime | None = None
    position: InputPosition | None = None

    def normalization_hash(self) -> str:
        """Return torghut's normalization hash (the same hex digest torghut computes)."""
        return normalization_hash(self)


def normalization_hash(fv: FeatureVectorV3) -> str:
    """Torghut V3's hash: sha256 of compact sorted JSON over identity and values.

    ``seq`` is ``seq or 0``, ``source`` is ``source or "unknown"``, decimals are ``str(Decimal)``.
    """
    values = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in fv.values.items()}
    obj = {
        "event_ts": fv.event_ts.isoformat(),
        "symbol": fv.symbol,
        "timeframe": fv.timeframe,
        "seq": fv.seq or 0,
        "source": fv.source or "unknown",
        "feature_schema_version": fv.feature_schema_version,
        "values": values,
    }
    return sha256_hex(obj)


def optional_decimal(value: object) -> Decimal | None:
    """Torghut's ``optional_decimal``: ``Decimal(str(value))``, with ``None`` for anything that fails.

    >>> optional_decimal(0.1), optional_decimal("abc"), optional_decimal(True)
    (Decimal('0.1'), None, None)
    """
    kind = type(value)
    if kind is float:
        # str(float) is the shortest text that reads back as the float; orjson writes the same digits and
        # exponent about 3x faster (property-tested in tests/operators/test_decode.py), and writes a
        # non-finite float as null.
        text = orjson.dumps(value)
        return Decimal(repr(value) if text == b"null" else text.decode())
    if value is None:
        return None
    if kind is Decimal:
        return value  # type: ignore[return-value]
    try:
        return Decimal(str(value))
    except (ValueError, TypeError, ArithmeticError):
        return None

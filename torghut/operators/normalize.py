"""Normalization: ``SignalEnvelope`` -> torghut's ``FeatureVectorV3``, or a ``DeadLetter``.

:func:`map_feature_values_v3` and :func:`normalize` reproduce torghut V3's ``app/trading/features.py``
(``map_feature_values_v3`` and ``normalize_feature_vector_v3``) value for value, so the normalization hash
(:meth:`FeatureVectorV3.normalization_hash`, computed lazily where it is needed) is torghut's.

Where torghut raises ``FeatureNormalizationError`` the reason string is the same, as data. One rejection is
the engine's own: a value that is a non-finite ``Decimal`` (NaN, sNaN, Infinity), which torghut would carry
into the strategies, is rejected as ``non_finite_feature:<names>``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from torghut.contracts.features import (
    FEATURE_SCHEMA_VERSION_V3,
    REQUIRED_FEATURES_V3,
    FeatureVectorV3,
    optional_decimal,
)
from torghut.contracts.frozen import FrozenMap
from torghut.contracts.hashing import json_safe
from torghut.contracts.signal import DeadLetter, SignalEnvelope

_UTC = UTC
DEFAULT_TIMEFRAME = "1Min"
DEFAULT_SOURCE = "unknown"
# torghut joins the sorted missing names with "|" (``'|'.join(sorted(missing))`` in features.py).
REASON_LIST_SEPARATOR = "|"
_PRICE_KEYS = ("price", "close", "c", "last", "vwap", "vwap_session", "vwap_w5m")
_VOLATILITY_KEYS = ("vol_realized_w60s", "volatility", "vol", "sigma")
_EMPTY: FrozenMap[str, Any] = FrozenMap()


def _nested(payload: FrozenMap[str, Any], block: str, key: str) -> Any:
    item = payload.get(block)
    if isinstance(item, dict):
        return item.get(key)
    return None


def _extract_macd(payload: FrozenMap[str, Any]) -> tuple[Decimal | None, Decimal | None]:
    block = payload.get("macd")
    if isinstance(block, dict):
        return optional_decimal(block.get("macd")), optional_decimal(block.get("signal"))
    return optional_decimal(block), optional_decimal(payload.get("macd_signal"))


def _extract_price(payload: FrozenMap[str, Any]) -> Decimal | None:
    vwap = payload.get("vwap")
    if isinstance(vwap, dict):
        for key in ("session", "w5m"):
            if key in vwap:
                value = optional_decimal(vwap.get(key))
                if value is not None:
                    return value
    # The first key present decides, even when its value is null or not a number.
    for key in _PRICE_KEYS:
        if key in payload:
            return optional_decimal(payload.get(key))
    imbalance = payload.get("imbalance")
    if isinstance(imbalance, dict):
        bid_px = imbalance.get("bid_px")
        ask_px = imbalance.get("ask_px")
        if bid_px is not None and ask_px is not None:
            try:
                bid = optional_decimal(bid_px)
                ask = optional_decimal(ask_px)
                if bid is not None and ask is not None:
                    return (bid + ask) / 2
            except (TypeError, ArithmeticError):
                pass
    return None


def _extract_volatility(payload: FrozenMap[str, Any]) -> Decimal | None:
    vol_realized = payload.get("vol_realized")
    if isinstance(vol_realized, dict):
        nested = optional_decimal(vol_realized.get("w60s"))
        if nested is not None:
            return nested
    for key in _VOLATILITY_KEYS:
        if key in payload:
            return optional_decimal(payload.get(key))
    return None


def staleness_ms(event_ts: datetime, ingest_ts: datetime | None) -> int:
    """Torghut's ``staleness_ms``: ``int((ingest_ts - event_ts).total_seconds() * 1000)``, at least 0.

    Event and ingest time only (no wall clock), so a replay gives the same value.
    """
    if ingest_ts is None:
        return 0
    if event_ts.tzinfo is _UTC and ingest_ts.tzinfo is _UTC:
        delta = ingest_ts - event_ts
    else:
        delta = ingest_ts.astimezone(_UTC) - event_ts.astimezone(_UTC)
    return max(0, int(delta.total_seconds() * 1000))


def map_feature_values_v3(envelope: SignalEnvelope) -> dict[str, Any]:
    """Map an envelope's payload to torghut's 17 V3 feature values (torghut's ``map_feature_values_v3``).

    Numbers become ``Decimal(str(x))`` (``None`` when that fails); ``signal_quality_flag`` is taken raw;
    ``staleness_ms`` is ``ingest_ts - event_ts`` in whole milliseconds, never negative.

    Args:
        envelope: A parsed signal; its payload is the flat-row payload or the nested envelope shape.

    Returns:
        A dict with exactly the keys of ``VALUE_FIELDS_V3``, in that order.

    >>> from datetime import UTC, datetime
    >>> env = SignalEnvelope(datetime(2026, 1, 1, tzinfo=UTC), "AAPL",
    ...                      FrozenMap({"macd": FrozenMap({"macd": 0.5, "signal": 0.25}), "rsi": 30}))
    >>> values = map_feature_values_v3(env)
    >>> values["macd"], values["rsi14"], values["price"], values["staleness_ms"]
    (Decimal('0.5'), Decimal('30'), None, 0)
    """
    payload = envelope.payload or _EMPTY
    macd, macd_signal = _extract_macd(payload)
    get = payload.get
    return {
        "price": _extract_price(payload),
        "ema12": optional_decimal(get("ema12") or _nested(payload, "ema", "ema12")),
        "ema26": optional_decimal(get("ema26") or _nested(payload, "ema", "ema26")),
        "macd": macd,
        "macd_signal": macd_signal,
        "macd_hist": optional_decimal(get("macd_hist") or _nested(payload, "macd", "hist")),
        "vwap_session": optional_decimal(get("vwap_session") or _nested(payload, "vwap", "session")),
        "vwap_w5m": optional_decimal(get("vwap_w5m") or _nested(payload, "vwap", "w5m")),
        "rsi14": optional_decimal(get("rsi14") or get("rsi")),
        "boll_mid": optional_decimal(get("boll_mid") or _nested(payload, "boll", "mid")),
        "boll_upper": optional_decimal(get("boll_upper") or _nested(payload, "boll", "upper")),
        "boll_lower": optional_decimal(get("boll_lower") or _nested(payload, "boll", "lower")),
        "vol_realized_w60s": _extract_volatility(payload),
        "imbalance_spread": optional_decimal(
            get("imbalance_spread") or _nested(payload, "imbalance", "spread")
        ),
        "spread": optional_decimal(get("spread")),
        "signal_quality_flag": get("signal_quality_flag"),
        "staleness_ms": staleness_ms(envelope.event_ts, envelope.ingest_ts),
    }


def schema_major_version(declared: object) -> int | None:
    """Return the major version of a declared ``feature_schema_version``, or ``None`` if unparseable.

    >>> schema_major_version("v3.1"), schema_major_version(" 2.0.0 "), schema_major_version("garbage")
    (3, 2, None)
    """
    cleaned = str(declared).strip().lower()
    if cleaned.startswith("v"):
        cleaned = cleaned[1:]
    head = cleaned.split(".", 1)[0]
    if not head.isdigit():
        return None
    try:
        return int(head)
    except ValueError:  # digits int() cannot read, such as superscripts; torghut would crash here
        return None


def _reject(envelope: SignalEnvelope, reason: str) -> DeadLetter:
    raw = json_safe(envelope)  # the envelope's fields; its payload may hold NaN or ints past 64 bits
    return DeadLetter("normalize", reason, raw, envelope.position, envelope.symbol, envelope.event_ts)


def normalize(envelope: SignalEnvelope) -> FeatureVectorV3 | DeadLetter:
    """Normalize an envelope into torghut's ``FeatureVectorV3``, or a dead letter saying why not.

    Checks, in torghut's order: a declared schema whose major version is not 3
    (``incompatible_feature_schema:<declared>``; an unparseable version is accepted), then the required
    features (``missing_required_features:<sorted names joined by "|">``), then the engine's own
    ``non_finite_feature:<names>``. ``timeframe`` defaults to ``"1Min"``, ``seq`` to 0 and ``source`` to
    ``"unknown"``: the values torghut stores and hashes. Never raises.

    Args:
        envelope: A parsed signal.

    Returns:
        The feature vector (carrying ``ingest_ts`` and the input position), or a dead letter from stage
        ``normalize`` whose ``raw`` is the envelope's fields as JSON-safe data (:func:`json_safe`).

    >>> from datetime import UTC, datetime
    >>> ts = datetime(2026, 1, 1, tzinfo=UTC)
    >>> env = SignalEnvelope(ts, "AAPL", FrozenMap({"price": 1, "macd": 2, "macd_signal": 1, "rsi14": 50}))
    >>> fv = normalize(env)
    >>> fv.timeframe, fv.seq, fv.source, fv.values["price"]
    ('1Min', 0, 'unknown', Decimal('1'))
    >>> normalize(SignalEnvelope(ts, "AAPL", FrozenMap({"rsi14": 0}))).reason
    'missing_required_features:macd|macd_signal|price|rsi14'
    """
    payload = envelope.payload or _EMPTY
    declared = payload.get("feature_schema_version")
    if declared is not None:
        major = schema_major_version(declared)
        if major is not None and major != 3:
            return _reject(envelope, f"incompatible_feature_schema:{declared}")
    values = map_feature_values_v3(envelope)
    missing = [name for name in REQUIRED_FEATURES_V3 if values[name] is None]
    if missing:
        return _reject(envelope, "missing_required_features:" + REASON_LIST_SEPARATOR.join(sorted(missing)))
    non_finite = [
        name for name, value in values.items() if isinstance(value, Decimal) and not value.is_finite()
    ]
    if non_finite:
        return _reject(envelope, "non_finite_feature:" + REASON_LIST_SEPARATOR.join(sorted(non_finite)))
    return FeatureVectorV3(
        event_ts=envelope.event_ts,
        symbol=envelope.symbol,
        timeframe=envelope.timeframe or DEFAULT_TIMEFRAME,
        seq=envelope.seq or 0,
        source=envelope.source or DEFAULT_SOURCE,
        feature_schema_version=FEATURE_SCHEMA_VERSION_V3,
        values=FrozenMap(values),
        ingest_ts=envelope.ingest_ts,
        position=envelope.position,
    )

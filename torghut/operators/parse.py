"""Parsing: one raw signal record in, one ``SignalEnvelope`` or one ``DeadLetter`` out.

The flow calls it through :func:`~torghut.operators.decode.decode_record` (parse and normalize fused).

:func:`parse_record` reproduces torghut V3's ``ClickHouseSignalIngestor.parse_row`` (timestamps, timeframe,
``_payload_from_flat_row``) for the three shapes a signal arrives in:

- a flat ``torghut.ta_signals`` row as ClickHouse ``JSONEachRow`` returns it;
- the nested Avro ``TaSignal`` JSON (``window{}``, ``macd{}``, ``vwap{}`` ...): its payload is the nested
  blocks themselves, which the normalizer's mapping reads;
- torghut's ``SignalEnvelope`` dict, with a ``payload`` dict or JSON string.

Where torghut would skip a row with a log line (or crash), a dead letter with a precise reason is
returned instead. Deliberate differences from torghut, all on inputs ClickHouse and the Avro producer
never send:

- timestamps with a non-UTC offset are converted to UTC (torghut kept the offset, so its hash differs);
- a ``payload`` string that is not a JSON object, or a payload of another type, is a dead letter
  (torghut silently rebuilt the payload from flat columns);
- the symbol must match torghut's symbol regex (torghut only validated it in replay queries).

The hot path (a flat row) decodes with orjson and uses no pydantic; the standard library's ``json``
(torghut's decoder) is used only where orjson refuses input torghut accepted (``NaN``, ``1e400``) and for
the rare ``payload``/``signal_json`` strings, so their numbers decode exactly as torghut's did.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NoReturn, cast

import orjson
from pydantic import TypeAdapter, ValidationError

from torghut.contracts.frozen import FrozenMap, freeze
from torghut.contracts.hashing import json_safe
from torghut.contracts.signal import DeadLetter, InputPosition, SignalEnvelope

_UTC = UTC
SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,31}")
_ISO_DURATION = re.compile(r"PT(\d+)([SMH])")
_LEGACY_DURATION = re.compile(r"(?i)\s*(\d+)\s*(sec|secs|s|min|minute|minutes|m|hour|hours|h)\s*")
_ISO_UNITS = {"S": "Sec", "M": "Min", "H": "Hour"}
_LEGACY_UNITS = {
    "sec": "Sec",
    "secs": "Sec",
    "s": "Sec",
    "min": "Min",
    "minute": "Min",
    "minutes": "Min",
    "m": "Min",
    "hour": "Hour",
    "hours": "Hour",
    "h": "Hour",
}
_EVENT_TS_KEYS = ("event_ts", "ts", "timestamp")
# The Avro TaSignal blocks; a row holding any of them as an object is the nested envelope shape.
NESTED_BLOCKS = ("macd", "vwap", "ema", "boll", "imbalance", "vol_realized", "window")
# Row keys that are envelope identity, never payload, in the nested shape.
_IDENTITY_KEYS = frozenset(
    ("event_ts", "ts", "timestamp", "ingest_ts", "symbol", "seq", "source", "timeframe", "payload")
)
_EXTENDED_FLAT_KEYS = (
    "macd_hist",
    "ema12",
    "ema26",
    "vwap_session",
    "vwap_w5m",
    "boll_mid",
    "boll_upper",
    "boll_lower",
    "imbalance_spread",
    "vol_realized_w60s",
)
_MAX_FAST_SEQ_DIGITS = 18
_CLICKHOUSE_TS_LEN = len("2026-02-19 14:30:05.000")
_SHOW_LIMIT = 64
_TS_CACHE: dict[str, datetime] = {}
_TS_CACHE_SIZE = 8192
#: The reason of a record nested deeper than Python's recursion limit.
TOO_DEEPLY_NESTED = "too_deeply_nested"
# Only for the rare seq values that are not a plain int or digit string: pydantic's own lax int
# coercion is what torghut's ``SignalEnvelope.seq`` applied, so this reproduces it exactly.
_LAX_INT: TypeAdapter[int] = TypeAdapter(int)


class RowRejected(ValueError):
    """A row that becomes a dead letter; :func:`parse_record` turns it into one and never raises it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _fail(reason: str) -> NoReturn:
    raise RowRejected(reason)


def _show(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _SHOW_LIMIT else text[:_SHOW_LIMIT] + "..."


def parse_ts(value: object) -> datetime | None:
    """Parse a timestamp the way torghut's ``_parse_ts`` does, always returning tz-aware UTC.

    Strings are ISO 8601 (``Z`` is read as ``+00:00``; naive values are UTC), numbers are epoch seconds,
    ``datetime`` objects are taken as they are (naive means UTC). Anything unparseable is ``None``.

    >>> parse_ts("2026-02-19 14:30:05.000").isoformat()
    '2026-02-19T14:30:05+00:00'
    >>> parse_ts(0).isoformat(), parse_ts("soon")
    ('1970-01-01T00:00:00+00:00', None)
    """
    if isinstance(value, str):
        return _parse_ts_text(value)
    if isinstance(value, datetime):
        return _to_utc(value)
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(float(value), tz=_UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _parse_ts_text(value: str) -> datetime | None:
    # Every symbol's row of one bar carries the same event time: parsed once, then shared (immutable).
    cached = _TS_CACHE.get(value)
    if cached is not None:
        return cached
    parsed = _parse_ts_uncached(value)
    if parsed is not None:
        if len(_TS_CACHE) >= _TS_CACHE_SIZE:
            _TS_CACHE.clear()
        _TS_CACHE[value] = parsed
    return parsed


def _parse_ts_uncached(value: str) -> datetime | None:
    if len(value) == _CLICKHOUSE_TS_LEN and value[10] == " " and value[19] == ".":
        # ClickHouse DateTime64(3) text, always UTC: one C-level parse and no tz replace.
        try:
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:
            pass
    try:
        return _to_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _to_utc(parsed: datetime) -> datetime | None:
    tzinfo = parsed.tzinfo
    if tzinfo is None:
        # The positional constructor is several times faster than ``replace(tzinfo=...)``.
        p = parsed
        return datetime(p.year, p.month, p.day, p.hour, p.minute, p.second, p.microsecond, _UTC)
    if tzinfo is _UTC:
        return parsed
    try:
        return parsed.astimezone(_UTC)
    except (OverflowError, ValueError):
        return None


@lru_cache(maxsize=512)
def timeframe_from_duration(value: str | None) -> str | None:
    """Map an ISO duration (``PT1S``) or a legacy size (``1m``, ``1 hour``) to torghut's timeframe.

    >>> timeframe_from_duration("PT1S"), timeframe_from_duration("5min"), timeframe_from_duration("P1D")
    ('1Sec', '5Min', None)
    """
    if not value:
        return None
    match = _ISO_DURATION.fullmatch(value)
    if match is not None:
        return f"{int(match.group(1))}{_ISO_UNITS[match.group(2)]}"
    legacy = _LEGACY_DURATION.fullmatch(value)
    if legacy is None:
        return None
    return f"{int(legacy.group(1))}{_LEGACY_UNITS[legacy.group(2).lower()]}"


def _coerce_timeframe(row: dict[str, Any], payload: dict[str, Any]) -> str | None:
    # torghut's precedence: payload.timeframe, row timeframe, then window.size / window_size / window_step.
    if payload:
        timeframe = payload.get("timeframe")
        if isinstance(timeframe, str):
            return timeframe
    timeframe = row.get("timeframe")
    if isinstance(timeframe, str):
        return timeframe
    size: str | None = None
    window = row.get("window")
    if isinstance(window, dict):
        raw_size = window.get("size")
        if isinstance(raw_size, str):
            size = raw_size
    if size is None:
        raw_size = row.get("window_size")
        if isinstance(raw_size, str):
            size = raw_size
    if size is None:
        raw_step = row.get("window_step")
        if isinstance(raw_step, str):
            size = raw_step
    return timeframe_from_duration(size)


def flat_timeframe(row: dict[str, Any]) -> str | None:
    """The timeframe of a row whose payload carries none: its ``timeframe``, else its window size."""
    return _coerce_timeframe(row, {})


def event_ts_of(row: dict[str, Any]) -> datetime:
    """The row's event time (``event_ts``, else ``ts``, else ``timestamp``), as torghut reads it.

    Raises:
        RowRejected: No key holds a parseable time (``missing_event_ts`` or ``invalid_event_ts:<value>``).
    """
    # torghut: event_ts, else ts, else timestamp; an unparseable value falls through to the next key.
    first_invalid: object = None
    for key in _EVENT_TS_KEYS:
        value = row.get(key)
        if value is None:
            continue
        parsed = parse_ts(value)
        if parsed is not None:
            return parsed
        if first_invalid is None:
            first_invalid = value
    if first_invalid is None:
        _fail("missing_event_ts")
    _fail(f"invalid_event_ts:{_show(first_invalid)}")


def coerce_seq(value: object) -> int | None:
    """A row's ``seq`` as an int (pydantic's lax rule, as torghut's model), ``None`` when absent.

    Raises:
        RowRejected: ``invalid_seq:<value>``.
    """
    if value is None:
        return None
    if type(value) is int:
        return value
    if type(value) is str and len(value) <= _MAX_FAST_SEQ_DIGITS and value.isascii() and value.isdigit():
        return int(value)
    try:
        return _LAX_INT.validate_python(value)
    except ValidationError:
        _fail(f"invalid_seq:{_show(value)}")


def ingest_ts_of(value: object) -> datetime | None:
    """A row's ``ingest_ts`` (None when absent or an unparseable string).

    Raises:
        RowRejected: ``invalid_ingest_ts:<value>`` for an epoch number out of range.
    """
    if value is None:
        return None
    parsed = parse_ts(value)
    # torghut keeps a row whose ingest_ts string is unparseable (ingest_ts=None) but drops one whose
    # epoch number cannot be converted; the latter is a dead letter here.
    if parsed is None and isinstance(value, (int, float)) and not isinstance(value, bool):
        _fail(f"invalid_ingest_ts:{_show(value)}")
    return parsed


def _payload_column(value: object) -> dict[str, Any]:
    """Torghut's ``_normalize_payload``, with undecodable payloads rejected instead of ignored."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return cast(dict[str, Any], value)
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            decoded = json.loads(value)
        except ValueError:
            _fail("invalid_payload_json")
        if decoded is None:
            return {}
        if isinstance(decoded, dict):
            return cast(dict[str, Any], decoded)
        _fail("invalid_payload_json")
    _fail(f"invalid_payload_type:{type(value).__name__}")


def _merge_macd(payload: dict[str, Any], row: dict[str, Any]) -> None:
    macd_val = row.get("macd")
    signal_val = row.get("macd_signal") or row.get("signal")
    if macd_val is None and signal_val is None:
        return
    block = payload.setdefault("macd", {})
    if isinstance(block, dict):
        if macd_val is not None:
            block["macd"] = macd_val
        if signal_val is not None:
            block["signal"] = signal_val
    else:
        payload["macd"] = {"macd": macd_val, "signal": signal_val}


def _merge_price(payload: dict[str, Any], row: dict[str, Any]) -> None:
    for key in ("vwap_session", "vwap_w5m", "vwap"):
        value = row.get(key)
        if value is not None:
            payload["price"] = value
            return
    bid_px = row.get("imbalance_bid_px")
    ask_px = row.get("imbalance_ask_px")
    if bid_px is not None and ask_px is not None:
        try:
            payload["price"] = (float(bid_px) + float(ask_px)) / 2
        except (TypeError, ValueError):
            pass
        except OverflowError:
            # torghut's parse_row catches this around the whole row and skips it.
            _fail("invalid_price_mid")


def _merge_imbalance(payload: dict[str, Any], row: dict[str, Any]) -> None:
    spread = row.get("spread")
    if spread is not None and "imbalance" not in payload:
        payload["imbalance"] = {"spread": spread}
    imbalance = payload.get("imbalance")
    if isinstance(imbalance, dict):
        for target, column in (
            ("bid_px", "imbalance_bid_px"),
            ("ask_px", "imbalance_ask_px"),
            ("spread", "spread"),
        ):
            value = row.get(column)
            if value is not None and target not in imbalance:
                imbalance[target] = value


def payload_from_flat_row(row: dict[str, Any]) -> dict[str, Any]:
    """Build the payload of a flat row exactly as torghut's ``_payload_from_flat_row`` does.

    Only non-null values are copied. ``price`` falls back to the first non-null of ``vwap_session``,
    ``vwap_w5m``, ``vwap``, then the bid/ask mid; an ``imbalance`` block exists only when a column
    literally named ``spread`` does (or ``signal_json`` brought one).

    Raises:
        RowRejected: The bid/ask mid overflows a float (torghut drops such a row).

    >>> payload_from_flat_row({"macd": 0.5, "macd_signal": 0.25, "vwap_session": 10.0, "rsi14": None})
    {'macd': {'macd': 0.5, 'signal': 0.25}, 'price': 10.0, 'vwap_session': 10.0}
    """
    payload: dict[str, Any] = {}
    signal_json = row.get("signal_json")
    if isinstance(signal_json, str):
        try:
            decoded = json.loads(signal_json)
        except ValueError:  # json.JSONDecodeError, or a lone surrogate
            decoded = None
        if isinstance(decoded, dict):
            payload.update(decoded)
    _merge_macd(payload, row)
    for key in ("rsi", "rsi14", "ema", "vwap", "price", "close"):
        value = row.get(key)
        if value is not None and key not in payload:
            payload[key] = value
    if "price" not in payload:
        _merge_price(payload, row)
    _merge_imbalance(payload, row)
    for key in _EXTENDED_FLAT_KEYS:
        value = row.get(key)
        if value is not None and key not in payload:
            payload[key] = value
    return payload


def _payload_from_nested_row(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key not in _IDENTITY_KEYS}


def _is_nested(row: dict[str, Any]) -> bool:
    for block in NESTED_BLOCKS:
        if isinstance(row.get(block), dict):
            return True
    return False


def _check_keys(payload: dict[str, Any]) -> dict[str, Any]:
    for key in payload:
        if not isinstance(key, str):
            _fail("invalid_payload_key")
    return payload


def _envelope(row: dict[str, Any], position: InputPosition) -> SignalEnvelope | DeadLetter:
    symbol = row.get("symbol")
    if symbol is None:
        return DeadLetter("parse", "missing_symbol", json_safe(row), position)
    if not isinstance(symbol, str) or SYMBOL.fullmatch(symbol) is None:
        return DeadLetter("parse", "invalid_symbol", json_safe(row), position)
    event_ts: datetime | None = None
    try:
        event_ts = event_ts_of(row)
        ingest_ts = ingest_ts_of(row.get("ingest_ts"))
        seq = coerce_seq(row.get("seq"))
        source = row.get("source")
        if source is not None and not isinstance(source, str):
            _fail(f"invalid_source:{_show(source)}")
        payload = _payload_column(row.get("payload"))
        if payload:
            payload = _check_keys(payload)
        elif _is_nested(row):
            payload = _check_keys(_payload_from_nested_row(row))
        else:
            payload = payload_from_flat_row(row)
        frozen_payload: FrozenMap[str, Any] = freeze(payload)
    except RowRejected as rejected:
        return DeadLetter("parse", rejected.reason, json_safe(row), position, symbol, event_ts)
    return SignalEnvelope(
        event_ts=event_ts,
        symbol=symbol,
        payload=frozen_payload,
        timeframe=_coerce_timeframe(row, payload),
        ingest_ts=ingest_ts,
        seq=seq,
        source=source,
        position=position,
    )


def decode_json(raw: bytes | bytearray | memoryview | str) -> Any:
    """Decode JSON with orjson, falling back to torghut's ``json.loads`` for what orjson refuses.

    Raises:
        ValueError: Neither decoder reads the text.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        # What orjson refuses but torghut's json.loads reads (NaN, Infinity, 1e400) parses as torghut did.
        return json.loads(raw if isinstance(raw, str) else bytes(raw).decode("utf-8"))


def _undecodable_text(raw: bytes | bytearray | memoryview | str) -> str:
    if isinstance(raw, str):
        return raw
    return bytes(raw).decode("utf-8", "backslashreplace")


def parse_record(raw: object, position: InputPosition) -> SignalEnvelope | DeadLetter:
    """Parse one raw record into a ``SignalEnvelope``, or a ``DeadLetter`` saying why not. Never raises.

    Args:
        raw: An already-decoded dict, or ``bytes``/``str`` holding one JSON object.
        position: Where the record came from; carried by the envelope or the dead letter.

    Returns:
        The envelope (tz-aware UTC timestamps, frozen payload), or a dead letter from stage ``parse``
        with the reason, the original input (JSON-safe) and the symbol and event time when known.

    >>> pos = InputPosition("doc", "p0", 7)
    >>> env = parse_record(b'{"symbol":"NVDA","event_ts":"2026-02-19 14:30:05.000","seq":"12",'
    ...                    b'"window_size":"PT1S","rsi14":58.2}', pos)
    >>> env.timeframe, env.seq, dict(env.payload)
    ('1Sec', 12, {'rsi14': 58.2})
    >>> parse_record(b"{oops", pos).reason, parse_record("[1]", pos).reason
    ('invalid_json', 'not_an_object')
    """
    try:
        if isinstance(raw, dict):
            return _envelope(cast(dict[str, Any], raw), position)
        if isinstance(raw, (bytes, bytearray, memoryview, str)):
            try:
                decoded = decode_json(raw)
            except ValueError:
                return DeadLetter("parse", "invalid_json", json_safe(_undecodable_text(raw)), position)
            if isinstance(decoded, dict):
                return _envelope(decoded, position)
            return DeadLetter("parse", "not_an_object", json_safe(decoded), position)
        return DeadLetter("parse", "not_an_object", json_safe(raw), position)
    except RecursionError:
        # Nesting deeper than Python's recursion limit cannot be frozen or hashed: only input text is kept.
        text = (
            json_safe(_undecodable_text(raw))
            if isinstance(raw, (bytes, bytearray, memoryview, str))
            else None
        )
        return DeadLetter("parse", TOO_DEEPLY_NESTED, text, position)

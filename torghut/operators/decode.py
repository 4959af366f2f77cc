"""Raw record -> ``FeatureVectorV3`` or ``DeadLetter`` in one call: parse and normalize, fused.

:func:`decode_record` is, by definition, ``normalize(parse_record(raw))`` (:mod:`torghut.operators.parse`
and :mod:`torghut.operators.normalize`). It only adds a fast path for the shape nearly every signal has, a
flat ``torghut.ta_signals`` row without ``payload``, ``signal_json``, nested blocks or a ``spread`` column:
that row is mapped to the 17 V3 values directly, without building the intermediate payload, envelope and
frozen maps. Whatever the fast path does not fully cover (any other shape, and every row that would be
rejected) goes through the two stages, so dead letters are theirs, byte for byte. The equivalence is
property-tested (``tests/operators/test_decode.py``).

:func:`routing_symbol` is the symbol a raw record is routed by before decoding: exactly the symbol the
parser reads, found without decoding the record when that is provably the same.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import partial
from itertools import compress
from operator import is_not
from typing import Any, Final

import orjson

from torghut.contracts.features import (
    FEATURE_SCHEMA_VERSION_V3,
    VALUE_FIELDS_V3,
    FeatureVectorV3,
    optional_decimal,
)
from torghut.contracts.frozen import FrozenMap
from torghut.contracts.signal import DeadLetter, InputPosition
from torghut.operators import parse as _parse
from torghut.operators.normalize import DEFAULT_SOURCE, DEFAULT_TIMEFRAME, normalize, staleness_ms
from torghut.operators.parse import RowRejected, parse_record

#: A JSON record's ``symbol`` field, found without decoding the record.
SYMBOL_FIELD: Final = re.compile(rb'"symbol"\s*:\s*"([^"\\]{1,64})"')
_SYMBOL_KEY: Final = b'"symbol"'
_ESCAPE: Final = b"\\u"
# Columns whose presence (as anything but null) sends a row down the two-stage path.
_SLOW_COLUMNS: Final = ("payload", "signal_json", "spread")
_NESTED_BLOCKS: Final = _parse.NESTED_BLOCKS
# Any of these keys needs a closer look; ``macd``, a flat column too, is checked where it is read.
_SLOW_KEYS: Final = frozenset((*_SLOW_COLUMNS, *_NESTED_BLOCKS)) - {"macd"}
_DECIMAL: Final = Decimal
# The decimal columns of a flat row: the V3 values up to ``spread``, in their order.
_FAST_KEYS: Final = VALUE_FIELDS_V3[: VALUE_FIELDS_V3.index("spread")]
_ATOM_TYPES: Final = frozenset((float, int, type(None)))
# Every V3 value but ``staleness_ms`` (set after), in order; ``spread`` and the quality flag stay None.
_VALUE_KEYS: Final = (*_FAST_KEYS, "spread", "signal_quality_flag")
_IS_PRESENT: Final = partial(is_not, None)


def _fast_values(row: dict[str, Any]) -> dict[str, Any] | None:  # noqa: PLR0912
    """The 17 values of a flat row (``staleness_ms`` excepted), or None when the row needs the slow path.

    Columns torghut reads as ``row[k] or <nested block value>`` map a zero (or any false value) to None,
    as the absent nested block does; the others convert any non-null value.
    """
    get = row.get
    if not _SLOW_KEYS.isdisjoint(row):
        for column in _SLOW_COLUMNS:
            if get(column) is not None:
                return None
        for block in _NESTED_BLOCKS:
            if type(get(block)) is dict:
                return None
    price = get("price")
    if price is None:
        price = get("vwap_session")
        if price is None:
            price = get("vwap_w5m")
            if price is None:
                price = get("vwap")
                if price is None:
                    bid, ask = get("imbalance_bid_px"), get("imbalance_ask_px")
                    if bid is not None and ask is not None:
                        if type(bid) not in _ATOM_TYPES or type(ask) not in _ATOM_TYPES:
                            return None  # strings, booleans: the parser's own rules
                        price = (float(bid) + float(ask)) / 2
                    else:
                        price = get("close")
    macd = get("macd")
    if type(macd) is dict:
        return None  # the nested envelope shape
    signal = get("macd_signal") or get("signal")
    rsi = get("rsi14") or get("rsi")
    ema12, ema26, hist = get("ema12"), get("ema26"), get("macd_hist")
    vwap_session, vwap_w5m = get("vwap_session"), get("vwap_w5m")
    boll_mid, boll_upper, boll_lower = get("boll_mid"), get("boll_upper"), get("boll_lower")
    vol, imbalance_spread = get("vol_realized_w60s"), get("imbalance_spread")
    raws = (
        price,
        ema12 or None,
        ema26 or None,
        macd,
        signal,
        hist or None,
        vwap_session or None,
        vwap_w5m or None,
        rsi,
        boll_mid or None,
        boll_upper or None,
        boll_lower or None,
        vol,
        imbalance_spread or None,
    )
    return _decimals(raws)


def _decimals(raws: tuple[Any, ...]) -> dict[str, Any] | None:
    """The values of ``raws`` by ``_VALUE_KEYS``: each one's ``optional_decimal``, from one ``orjson.dumps``.

    None when a value is not finite: the row goes to the two stages.

    A row's columns are floats (or ints): their JSON texts, split, are the texts ``optional_decimal``
    reads. Anything else (a string, a boolean, a nested value, a non-finite float written as ``null``,
    an int past 64 bits) makes a text that is no number or a count that does not match, and the values
    are then converted one by one. Picking the present values and placing their decimals back by key
    happens in C (``compress``, ``dict.update``), not in a Python loop.
    """
    present_at = list(map(_IS_PRESENT, raws))
    present = list(compress(raws, present_at))
    numbers = None
    try:
        numbers = list(map(_DECIMAL, orjson.dumps(present).decode()[1:-1].split(",")))
    except (TypeError, ArithmeticError, ValueError):
        pass
    values: dict[str, Any] = dict.fromkeys(_VALUE_KEYS)
    if numbers is None or len(numbers) != len(present):
        one_by_one = [None if v is None else optional_decimal(v) for v in raws]
        if any(v is not None and not v.is_finite() for v in one_by_one):
            return None  # the normalizer's non_finite_feature dead letter (JSON numbers are finite)
        values.update(zip(_FAST_KEYS, one_by_one, strict=True))
        return values
    values.update(zip(compress(_FAST_KEYS, present_at), numbers, strict=True))
    return values


def _fast_features(row: dict[str, Any], position: InputPosition) -> FeatureVectorV3 | None:
    """The feature vector of a flat row that normalizes cleanly; None sends the row to the two stages."""
    symbol = row.get("symbol")
    if type(symbol) is not str or _parse.SYMBOL.fullmatch(symbol) is None:
        return None
    values = _fast_values(row)
    if values is None:
        return None
    price, macd, macd_signal, rsi14 = values["price"], values["macd"], values["macd_signal"], values["rsi14"]
    if price is None or macd is None or macd_signal is None or rsi14 is None:
        return None  # missing required features: the normalizer's dead letter
    source = row.get("source")
    if source is not None and type(source) is not str:
        return None
    try:
        event_ts = _parse.event_ts_of(row)
        ingest_ts = _parse.ingest_ts_of(row.get("ingest_ts"))
        seq = _parse.coerce_seq(row.get("seq"))
    except RowRejected:
        return None
    values["staleness_ms"] = staleness_ms(event_ts, ingest_ts)
    return FeatureVectorV3(
        event_ts=event_ts,
        symbol=symbol,
        timeframe=_parse.flat_timeframe(row) or DEFAULT_TIMEFRAME,
        seq=seq or 0,
        source=source or DEFAULT_SOURCE,
        feature_schema_version=FEATURE_SCHEMA_VERSION_V3,
        values=FrozenMap(values),
        ingest_ts=ingest_ts,
        position=position,
    )


def decode_record(raw: object, position: InputPosition) -> FeatureVectorV3 | DeadLetter:
    """Decode one raw record into a feature vector or a dead letter saying why not. Never raises.

    Equal to ``normalize(parse_record(raw, position))`` for every input (a dead letter from either stage
    passes through).

    >>> pos = InputPosition("doc", "p0", 7)
    >>> fv = decode_record(b'{"symbol":"NVDA","event_ts":"2026-02-19 14:30:05.000","window_size":"PT1S",'
    ...                    b'"macd":0.5,"macd_signal":0.25,"rsi14":58.2,"vwap_session":101.5}', pos)
    >>> fv.symbol, fv.timeframe, fv.values["price"], fv.values["rsi14"]
    ('NVDA', '1Sec', Decimal('101.5'), Decimal('58.2'))
    >>> decode_record(b'{"symbol":"NVDA","event_ts":"2026-02-19 14:30:05.000"}', pos).reason
    'missing_required_features:macd|macd_signal|price|rsi14'
    """
    row: object = raw
    if type(raw) is bytes or type(raw) is str:
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError:
            row = None
    parsed = None
    if type(row) is dict:
        try:
            fast = _fast_features(row, position)
        except RecursionError:  # a column nested past the recursion limit: the parser dead-letters it
            fast = None
        if fast is not None:
            return fast
        parsed = parse_record(row, position)
        if type(parsed) is DeadLetter and parsed.reason == _parse.TOO_DEEPLY_NESTED:
            parsed = None  # keep the input text in the dead letter, as parsing the raw record does
    if parsed is None:
        parsed = parse_record(raw, position)
    if type(parsed) is DeadLetter:
        return parsed
    return normalize(parsed)  # type: ignore[arg-type]


def routing_symbol(raw: object) -> str:
    r"""The symbol the parser will read from ``raw`` (``""`` when it reads none or no valid one), to route by.

    Bytes are searched for a ``"symbol":"..."`` field without decoding. That is the parser's symbol when
    the text holds exactly one ``"symbol"`` and no ``\u`` escape (so no key spelled with escapes can
    repeat it); any other record is decoded to find out.

    >>> routing_symbol(b'{"seq":1,"symbol":"AAPL"}'), routing_symbol(b'{"symbol":"A","symbol":"B"}')
    ('AAPL', 'B')
    >>> routing_symbol({"symbol": "MSFT"}), routing_symbol(b"{oops")
    ('MSFT', '')
    """
    if type(raw) is dict:
        return _routable(raw.get("symbol"))
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    if not isinstance(raw, bytes | bytearray):
        return ""
    plain = plain_symbol(raw)
    if plain is not None:
        return _routable(plain.decode("utf-8", "replace"))
    match = SYMBOL_FIELD.search(raw)
    if match is not None and raw.count(_SYMBOL_KEY) == 1 and _ESCAPE not in raw:
        return _routable(match.group(1).decode("utf-8", "replace"))
    try:
        decoded = _parse.decode_json(raw)
    except (ValueError, RecursionError):
        return ""
    return _routable(decoded.get("symbol") if isinstance(decoded, dict) else None)


def plain_symbol(raw: bytes | bytearray) -> bytes | None:
    """The bytes of the common row's symbol, from which :func:`routing_symbol` reads it without decoding.

    The common row holds one ``"symbol"``, no backslash (so no escape) and a string of 1 to 64 bytes right
    after its colon; for any other row, None. The routing symbol of a row with plain symbol bytes depends
    on those bytes alone.

    >>> plain_symbol(b'{"symbol":"AAPL","seq":1}'), plain_symbol(b'{"symbol":"A","symbol":"B"}')
    (b'AAPL', None)
    """
    at = raw.find(_SYMBOL_KEY)
    if at < 0 or raw.find(_SYMBOL_KEY, at + 8) >= 0 or raw.find(b"\\") >= 0:
        return None
    start = at + 8
    if raw[start : start + 2] != b':"':
        return None
    end = raw.find(b'"', start + 2)
    return bytes(raw[start + 2 : end]) if 0 < end - start - 2 <= 64 else None


def _routable(symbol: object) -> str:
    # Only ASCII symbols pass the parser's symbol check: any other record is a dead letter, routed with
    # the records without a symbol (bytewax keys must be valid UTF-8, which a lone surrogate is not).
    return symbol if type(symbol) is str and symbol.isascii() else ""

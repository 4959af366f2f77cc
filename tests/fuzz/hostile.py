"""Hostile values and the invariants every input must satisfy; used by the hypothesis tests and atheris.

The pools are plain data so the atheris harnesses (``fuzz/``) can pick from them with a
``FuzzedDataProvider`` while the hypothesis tests sample them with ``st.sampled_from``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC
from decimal import Decimal
from typing import Any

import orjson

from torghut.contracts.features import VALUE_FIELDS_V3, FeatureVectorV3
from torghut.contracts.hashing import canonical_json
from torghut.contracts.signal import DeadLetter, InputPosition, SignalEnvelope
from torghut.operators.normalize import normalize
from torghut.operators.parse import parse_record
from torghut.strategies.catalog import Catalog, CatalogError

POSITION = InputPosition("hostile", "p0", 0)
LONG = "A" * 100_000

HOSTILE_NUMBERS: tuple[Any, ...] = (
    float("nan"),
    float("inf"),
    float("-inf"),
    -0.0,
    0,
    1e308,
    -1e308,
    5e-324,
    10**400,
    -(10**400),
    2**63,
    2**64,
    -(2**63) - 1,
    True,
    False,
)
HOSTILE_STRINGS: tuple[str, ...] = (
    "NaN",
    "-nan",
    "sNaN",
    "Infinity",
    "-Infinity",
    "inf",
    "1e999",
    "-1e999",
    "1e-999999",
    "-0",
    "-0.0",
    "0x10",
    "1_000",
    " 2.5 ",
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x1b[31m",
    "\u202e",
    "📈🚀",
    "９９",  # noqa: RUF001 - fullwidth digits: Decimal reads them
    "²",
    "\ud800",  # a lone surrogate, as json.loads produces from "\\ud800"
    "AAPL'; DROP TABLE x;--",
    "Robert'); DROP TABLE ta_signals;--",
    LONG,
)
HOSTILE_SYMBOLS: tuple[str, ...] = (
    "AAPL'; DROP TABLE x;--",
    "AAPL\x00",
    "AAPL\n",
    "📈",
    "Ω",
    "ＡＡＰＬ",  # noqa: RUF001 - fullwidth letters are not ASCII
    "A" * 33,
    LONG,
    "-AAPL",
    ".",
    "\ud800",
    "",
)
VALID_SYMBOLS: tuple[str, ...] = ("NVDA", "BRK.B", "BTC/USD", "a1", "A" * 32)
HOSTILE_TIMESTAMPS: tuple[Any, ...] = (
    "0001-01-01T00:00:00",
    "0001-01-01T00:00:00+01:00",  # underflows when converted to UTC
    "9999-12-31T23:59:59.999999",
    "9999-12-31T23:59:59-01:00",  # overflows when converted to UTC
    "9999-12-31 23:59:59.999",
    "2026-02-19 14:30:05.000",
    "2026-02-19T14:30:05Z",
    "2026-02-19T14:30:05.000000001Z",
    "2026-02-30 00:00:00.000",
    "2026-13-45",
    "1970-01-01T00:00:00+14:00",
    "NaN",
    "",
    -1,
    -1e10,
    -62135596800,
    -62135596801,
    253402300799,
    253402300800,
    1e20,
    -1e20,
    10**400,
    float("nan"),
    float("inf"),
    True,
)
SEQS: tuple[Any, ...] = (0, 1, 1, 2, -1, "7", "007", "-3", 2**64, 10**400, "9" * 30, 1.5, "1.0", "１")  # noqa: RUF001
FIELD_NAMES: tuple[str, ...] = (
    "price", "close", "c", "last", "vwap", "vwap_session", "vwap_w5m", "macd", "macd_signal", "signal",
    "macd_hist", "rsi", "rsi14", "ema", "ema12", "ema26", "boll_mid", "boll_upper", "boll_lower",
    "imbalance_spread", "spread", "imbalance_bid_px", "imbalance_ask_px", "vol_realized_w60s",
    "volatility", "vol", "sigma", "signal_quality_flag", "feature_schema_version", "signal_json",
    "window_size", "window_step", "timeframe", "source", "ingest_ts",
)  # fmt: skip
NESTED_BLOCKS: dict[str, tuple[str, ...]] = {
    "macd": ("macd", "signal", "hist"),
    "ema": ("ema12", "ema26"),
    "vwap": ("session", "w5m"),
    "boll": ("mid", "upper", "lower"),
    "imbalance": ("spread", "bid_px", "ask_px", "bid_sz", "ask_sz"),
    "vol_realized": ("w60s",),
    "window": ("size", "step", "start", "end"),
}
# The numeric feature values; ``signal_quality_flag`` is carried raw (contracts section 2), so it is not one.
NUMERIC_FIELDS = tuple(name for name in VALUE_FIELDS_V3 if name != "signal_quality_flag")
_FIELD = re.compile(r"field ['\"]")  # the field's repr: quoted with ' or, if it holds a ', with "
_ENTRY_LABEL = re.compile(r"strategies\[\d+\]( \((name|strategy_id)=.*\))?", re.DOTALL)


def nested(depth: int, leaf: Any = 1) -> Any:
    """Return ``depth`` alternating dict/list levels around ``leaf`` (built without recursion)."""
    value = leaf
    for level in range(depth):
        value = {"x": value} if level % 2 else [value]
    return value


def run_chain(raw: object) -> SignalEnvelope | FeatureVectorV3 | DeadLetter:
    """Parse, then normalize what parsed: the engine's first two stages, without a dataflow."""
    parsed = parse_record(raw, POSITION)
    if isinstance(parsed, SignalEnvelope):
        return normalize(parsed)
    return parsed


def check_outcome(result: object) -> FeatureVectorV3 | DeadLetter:
    """Assert the hostile-input invariant for one chain result and return it.

    A feature vector has tz-aware UTC times, an int ``seq``, a 64-hex hash and only finite ``Decimal``,
    ``None`` or ``int`` numeric values; a dead letter has a stage, a non-empty reason and canonical JSON
    that orjson reads back, and a raw input orjson writes.
    """
    assert isinstance(result, FeatureVectorV3 | DeadLetter), type(result)
    assert result.position == POSITION
    if isinstance(result, FeatureVectorV3):
        assert result.event_ts.tzinfo is UTC
        assert result.ingest_ts is None or result.ingest_ts.tzinfo is UTC
        assert type(result.seq) is int
        assert tuple(result.values) == VALUE_FIELDS_V3
        for name in NUMERIC_FIELDS:
            value = result.values[name]
            assert value is None or type(value) is int or type(value) is Decimal, (name, value)
            assert not isinstance(value, Decimal) or value.is_finite(), (name, value)
        assert type(result.values["staleness_ms"]) is int
        assert result.values["staleness_ms"] >= 0
        assert re.fullmatch(r"[0-9a-f]{64}", result.normalization_hash())
        canonical_json(result)
    else:
        assert result.stage in ("parse", "normalize")
        assert isinstance(result.reason, str)
        assert result.reason
        problems = orjson_problems(result)
        assert not problems, problems
    return result


def orjson_problems(letter: DeadLetter) -> list[str]:
    """Say how a dead letter fails orjson: ``dumps`` of its raw, or ``loads`` of its sink line."""
    problems = []
    try:
        orjson.dumps(letter.raw)
    except TypeError as exc:
        problems.append(f"orjson.dumps(raw): {exc}")
    try:
        orjson.loads(canonical_json(letter))
    except orjson.JSONDecodeError as exc:
        problems.append(f"orjson.loads(line): {exc}")
    return problems


def check_catalog_outcome(outcome: Catalog | BaseException) -> None:
    """Assert the catalog invariant: a valid catalog, or a CatalogError naming an entry and a field."""
    if isinstance(outcome, Catalog):
        assert all(d.strategy_id for d in outcome.definitions)
        assert [d.strategy_id for d in outcome.definitions] == sorted(
            d.strategy_id for d in outcome.definitions
        )
        assert all(f.level == "warning" for f in outcome.findings)
        return
    assert isinstance(outcome, CatalogError), f"{type(outcome).__name__}: {outcome}"
    assert outcome.findings
    message = str(outcome)
    for finding in outcome.findings:
        assert finding.level == "error"
        assert str(finding) in message
        if finding.entry == "catalog":
            assert finding.message
            continue
        assert _ENTRY_LABEL.fullmatch(finding.entry), finding.entry
        assert _FIELD.search(finding.message) or "expected a mapping of strategy fields" in finding.message, (
            finding.message
        )


def pick(pool: Iterable[Any], index: int) -> Any:
    """Return ``pool[index % len(pool)]``: a deterministic pick for harnesses and fixed inputs."""
    items = tuple(pool)
    return items[index % len(items)]

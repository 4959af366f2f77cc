"""Hostile catalogs: every document loads to a ``Catalog`` or raises a ``CatalogError`` naming entry and field.

Random structures with wrong types in every field, unknown keys, duplicate names, huge numbers and
unicode names go through ``parse_catalog``; the same structures written as YAML (with anchors, aliases,
small alias bombs and tags) or JSON, sometimes damaged, go through ``load_catalog``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.conftest import TALLY, FuzzReport, fuzz_settings
from tests.fuzz.hostile import HOSTILE_NUMBERS, HOSTILE_STRINGS, check_catalog_outcome
from torghut.strategies.catalog import _MAX_VALUES, Catalog, CatalogError, load_catalog, parse_catalog
from torghut.strategies.config import RegistryConfig
from torghut.strategies.registry import StrategyRegistry, default_registry

STRUCTURE_BUDGET = 500
DOCUMENT_BUDGET = 400
REGISTRY = default_registry(RegistryConfig(entry_points=False))

FIELDS = (
    "name", "description", "enabled", "strategy_id", "strategy_type", "version", "params", "priority",
    "base_timeframe", "universe_type", "universe_symbols", "symbols", "max_position_pct_equity",
    "max_notional_per_trade",
)  # fmt: skip
PARAM_KEYS = (
    "max_notional_per_trade", "max_position_pct_equity", "base_timeframe", "universe_symbols",
    "bullish_hist_min", "vol_ceil", "confirm_bars", "cooldown_bars", "band_buffer_bps", "unknown_param",
)  # fmt: skip
TYPES = ("legacy_macd_rsi", "intraday_tsmom", "bollinger_reversion", "vwap_deviation", "static", "nope", "")
VERSIONS = ("1.0.0", "1.1.0", "2.0.0", "9.9.9", 1.0, 1e400)
NAMES = ("a", "b", "Ω-strategy", "📈", "a'; DROP TABLE strategies;--", "x\x00y", "A" * 10_000, "", " ")
SCALAR = st.one_of(
    st.sampled_from(HOSTILE_NUMBERS),
    st.sampled_from(HOSTILE_STRINGS),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
)
ANY = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELD_VALUE: dict[str, st.SearchStrategy[Any]] = {
    "name": st.one_of(st.sampled_from(NAMES), ANY),
    "strategy_id": st.one_of(st.sampled_from(NAMES), ANY),
    "strategy_type": st.one_of(st.sampled_from(TYPES), ANY),
    "universe_type": st.one_of(st.sampled_from(TYPES), ANY),
    "version": st.one_of(st.sampled_from(VERSIONS), ANY),
    "params": st.one_of(st.dictionaries(st.sampled_from(PARAM_KEYS), ANY, max_size=4), ANY),
    "universe_symbols": st.one_of(st.lists(st.sampled_from(NAMES), max_size=3), st.just("NVDA, ,AMD"), ANY),
    "symbols": st.one_of(st.just("NVDA,AMD"), ANY),
}


@st.composite
def entries(draw: st.DrawFn) -> Any:
    """One catalog entry: mostly a mapping of known fields, some plausible, some hostile, some unknown."""
    if draw(st.integers(0, 9)) == 0:
        return draw(ANY)
    entry: dict[str, Any] = {}
    if draw(st.booleans()):  # a plausible core, so validation reaches the registry and the plugin params
        entry["name"] = draw(st.sampled_from(NAMES[:3]))
        entry["strategy_type"] = draw(st.sampled_from(TYPES[:4]))
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=5, unique=True)):
        entry[field] = draw(FIELD_VALUE.get(field, ANY))
    if draw(st.integers(0, 4)) == 0:
        entry[draw(st.text(min_size=1, max_size=8))] = draw(ANY)  # an unknown key
    return entry


@st.composite
def catalogs(draw: st.DrawFn) -> Any:
    """A catalog document's data: a list, a ``strategies`` mapping, or something else entirely."""
    items: list[Any] = draw(st.lists(entries(), max_size=4))
    duplicate: bool = draw(st.booleans())
    if items and duplicate:
        items.append(dict(items[0]) if isinstance(items[0], dict) else items[0])  # a duplicate entry
    shape = draw(st.integers(0, 5))
    if shape == 0:
        return draw(ANY)
    if shape == 1:
        return {"strategies": items, draw(st.text(max_size=5)): draw(ANY)}
    return items if shape < 4 else {"strategies": items}


def outcome_of(data: Any, registry: StrategyRegistry = REGISTRY) -> Catalog | BaseException:
    try:
        return parse_catalog(data, registry, digest="")
    except Exception as exc:  # the invariant check names any other exception type as the failure
        return exc


@fuzz_settings(STRUCTURE_BUDGET)
@given(catalogs())
@example([{"name": "a"}, {"name": "a"}])
@example([{"strategy_id": "x", "max_notional_per_trade": float("inf"), "priority": 10**400}])
@example(
    {
        "strategies": [
            {
                "name": "Ω",
                "strategy_type": "legacy_macd_rsi",
                "version": "1.0.0",
                "params": {"unknown_param": 1},
            }
        ]
    }
)
@example([{"name": "a", "max_position_pct_equity": "1e999", "max_notional_per_trade": 10**30}])
@example([["not", "a", "mapping"], None, 1])
def check_structures(data: Any) -> None:
    TALLY["catalog.structures"] += 1
    check_catalog_outcome(outcome_of(data))


def test_hostile_catalog_structures(fuzz_report: FuzzReport) -> None:
    fuzz_report.run("catalog.structures", check_structures, STRUCTURE_BUDGET)


# YAML-only constructs, spliced into a dumped document.
YAML_SNIPPETS = (
    "strategies:\n  - &e {name: a, strategy_type: legacy_macd_rsi}\n  - *e\n",
    "strategies:\n  - name: a\n    params: &p {x: *p}\n",
    "strategies: &s [*s]\n",
    "x: &x [1, 2]\ny: &y [*x, *x, *x]\nstrategies:\n  - {name: a, params: {x: [*y, *y, *y]}}\n",
    "strategies:\n  - <<: {name: merged}\n    strategy_type: legacy_macd_rsi\n",
    "strategies:\n  - name: !!python/object/apply:os.system ['true']\n",
    "strategies:\n  - name: !!python/name:os.system\n",
    "strategies:\n  - name: !!binary aGVsbG8=\n",
    "strategies:\n  - name: !!set {a, b}\n",
    "strategies:\n  - name: 2026-02-19\n",
    "strategies:\n  - name: .nan\n    max_notional_per_trade: .inf\n",
    "strategies:\n  - ? [a, b]\n    : 1\n",
    "%YAML 1.1\n---\nstrategies: []\n---\nstrategies: []\n",
    "strategies:\n  - name: a\n\tpriority: 1\n",
    "strategies:\n  - name: !custom a\n",
)
JUNK = (b"\xff", b"\x00", b"{", b"]", b"\t", b": :", b"- -", b"&a", b"*a", b"!!", b"\xef\xbb\xbf", b"\n  -")


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, bytes]:
    """A catalog document as bytes with its file suffix: YAML or JSON, maybe damaged."""
    suffix = draw(st.sampled_from((".yaml", ".yml", ".json")))
    if suffix != ".json" and draw(st.integers(0, 3)) == 0:
        text = draw(st.sampled_from(YAML_SNIPPETS)).encode()
    else:
        data = draw(catalogs())
        try:
            text = (
                json.dumps(data) if suffix == ".json" else yaml.safe_dump(data, allow_unicode=True)
            ).encode("utf-8", "surrogatepass")
        except (ValueError, yaml.YAMLError):
            text = b"strategies: []\n"
    if draw(st.integers(0, 3)) == 0:
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.sampled_from(JUNK)) + text[cut:]
    return suffix, text


@fuzz_settings(DOCUMENT_BUDGET)
@given(documents())
@example((".json", b"[1e999, NaN, -Infinity]"))
@example((".json", b'[{"name": "\\ud800"}]'))
@example((".yaml", b"strategies:\n  - name: \xff\n"))
def check_documents(tmp_dir: Path, document: tuple[str, bytes]) -> None:
    TALLY["catalog.documents"] += 1
    suffix, text = document
    path = tmp_dir / f"catalog{suffix}"
    path.write_bytes(text)
    try:
        outcome: Catalog | BaseException = load_catalog(path, REGISTRY)
    except Exception as exc:  # the invariant check names any other exception type as the failure
        outcome = exc
    check_catalog_outcome(outcome)


def test_hostile_catalog_documents(fuzz_report: FuzzReport, tmp_path: Path) -> None:
    fuzz_report.run("catalog.documents", lambda: check_documents(tmp_path), DOCUMENT_BUDGET)


def test_python_tags_are_refused_by_safe_loading(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "catalog.yaml"
    path.write_text(f"strategies:\n  - name: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(CatalogError, match="could not determine a constructor for the tag"):
        load_catalog(path, REGISTRY)
    assert not marker.exists()


def alias_bomb(levels: int, width: int = 9) -> str:
    """A billion-laughs document: ``width ** levels`` references to one string, in a few hundred bytes."""
    lines = ['a0: &a0 "lol"']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    body = "\n".join(f"      {line}" for line in lines)
    return f"strategies:\n  - name: bomb\n    params:\n{body}\n"


def test_small_alias_bomb_is_rejected_quickly(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(alias_bomb(4))
    with pytest.raises(CatalogError, match="params"):
        load_catalog(path, REGISTRY)


class CountingList(list[Any]):
    """A list that counts, across all instances, the elements anyone iterates over."""

    visited = 0

    def __iter__(self) -> Iterator[Any]:
        for item in super().__iter__():
            CountingList.visited += 1
            yield item


def counting(data: Any, seen: dict[int, Any]) -> Any:
    """``data`` with every list a ``CountingList``, shared values (YAML aliases) still shared."""
    if id(data) in seen:
        return seen[id(data)]
    if isinstance(data, list):
        seen[id(data)] = copy = CountingList()
        copy.extend(counting(item, seen) for item in data)
        return copy
    if isinstance(data, dict):
        seen[id(data)] = mapping = {}
        mapping.update({key: counting(value, seen) for key, value in data.items()})
        return mapping
    return data


@pytest.mark.parametrize("levels", [4, 5, 7, 9])
def test_alias_bomb_error_stays_small(tmp_path: Path, levels: int) -> None:
    # 9**9 = 387M references from a ~500-byte file: an error message naming the field needs none of them.
    path = tmp_path / "catalog.yaml"
    path.write_text(alias_bomb(levels))
    with pytest.raises(CatalogError) as info:
        load_catalog(path, REGISTRY)
    assert len(str(info.value)) < 4_000, f"{len(str(info.value))} characters"
    expanded = sum(9**level for level in range(1, levels + 1))  # the values the aliases stand for
    if expanded > _MAX_VALUES:
        # Refused by counting, never expanded: one finding about the whole file.
        assert [(f.entry, f.message) for f in info.value.findings] == [
            ("catalog", f"expected at most {_MAX_VALUES} values (YAML aliases expanded), found more")
        ]
    else:
        assert info.value.findings and all("field 'params." in f.message for f in info.value.findings)
    # The work is bounded by the value budget, whatever the expansion: count the values visited.
    data = counting(yaml.safe_load(path.read_text()), {})
    CountingList.visited = 0
    with pytest.raises(CatalogError) as again:
        parse_catalog(data, REGISTRY, digest="")
    # The same findings (values are shown differently: a CountingList is not a list to reprlib).
    assert [(f.entry, f.message.partition(", found")[0]) for f in again.value.findings] == [
        (f.entry, f.message.partition(", found")[0]) for f in info.value.findings
    ]
    assert CountingList.visited <= 2 * min(expanded, _MAX_VALUES), f"{CountingList.visited} values visited"


def test_error_messages_show_values_bounded() -> None:
    huge = ["x" * 100_000] * 50
    with pytest.raises(CatalogError) as info:
        parse_catalog([{"name": "y" * 100_000, "priority": huge}, huge], REGISTRY, digest="")
    assert len(str(info.value)) < 4_000
    assert "field 'priority'" in str(info.value)


def test_an_entry_with_many_errors_lists_a_bounded_number() -> None:
    entry = {"name": "a", **{f"unknown_{i}": i for i in range(5000)}}
    with pytest.raises(CatalogError) as info:
        parse_catalog([entry], REGISTRY, digest="")
    assert len(info.value.findings) == 20
    assert "(and 4980 more errors in this entry)" in str(info.value)
    assert len(str(info.value)) < 10_000


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_deeply_nested_document_is_a_catalog_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"catalog{suffix}"
    path.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(CatalogError, match=r"nested too deeply") as info:
        load_catalog(path, REGISTRY)
    assert str(path) in str(info.value)


def test_deep_data_is_a_catalog_error_not_a_recursion_error() -> None:
    deep: Any = [{"name": "a"}]
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(CatalogError, match="nested too deeply"):
        parse_catalog(deep, REGISTRY, digest="")


@pytest.mark.parametrize("field", ["max_notional_per_trade", "max_position_pct_equity"])
@pytest.mark.parametrize("amount", [10**12, 10**20, 10**400, "1e999999", "999999999999.999999999"])
def test_huge_amount_is_a_catalog_error(field: str, amount: object) -> None:
    with pytest.raises(CatalogError, match=f"field '{field}': expected a number that fits numeric"):
        parse_catalog([{"name": "a", field: amount}], REGISTRY, digest="")

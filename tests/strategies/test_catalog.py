"""Catalog: both torghut shapes, torghut's parameter hash, and errors that name entry and field."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from torghut.contracts import StrategyDefinition
from torghut.strategies.catalog import (
    CatalogError,
    StrategyConfig,
    load_catalog,
    parse_catalog,
    strategy_type_from_universe_type,
    validate_catalog,
    version_from_description,
)
from torghut.strategies.config import RegistryConfig
from torghut.strategies.registry import StrategyRegistry, default_registry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def registry() -> StrategyRegistry:
    return default_registry(RegistryConfig(entry_points=False))


def errors_of(data: Any, registry: StrategyRegistry) -> str:
    with pytest.raises(CatalogError) as info:
        parse_catalog(data, registry, digest="")
    return str(info.value)


def torghut_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(params, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


class TestExamples:
    def test_v3_configmap(self, registry: StrategyRegistry) -> None:
        path = EXAMPLES / "strategies-v3.yaml"
        catalog = load_catalog(path, registry)
        assert catalog.digest == hashlib.sha256(path.read_bytes()).hexdigest()
        tsmom, macd = catalog.definitions
        assert (tsmom.strategy_id, tsmom.strategy_type, tsmom.version, tsmom.enabled) == (
            "intraday-tsmom-profit-v2",
            "intraday_tsmom",
            "1.1.0",
            True,
        )
        assert (macd.strategy_id, macd.strategy_type, macd.version, macd.enabled) == (
            "macd-rsi-default",
            "legacy_macd_rsi",
            "1.0.0",
            False,
        )
        expected = {
            "max_position_pct_equity": "0.08000000",
            "max_notional_per_trade": "1000.00000000",
            "base_timeframe": "1Sec",
            "universe_symbols": None,
        }
        assert dict(tsmom.params) == expected
        assert tsmom.parameter_hash == torghut_hash(expected)
        assert tsmom.base_timeframe == "1Sec"
        assert tsmom.feature_requirements == (
            "price", "ema12", "ema26", "macd", "macd_signal", "rsi14", "vol_realized_w60s"
        )  # fmt: skip
        assert catalog.enabled() == (tsmom,)

    def test_newer_shape(self, registry: StrategyRegistry) -> None:
        catalog = load_catalog(EXAMPLES / "strategies.yaml", registry)
        by_id: dict[str, StrategyDefinition] = {d.strategy_id: d for d in catalog.definitions}
        assert [d.strategy_id for d in catalog.definitions] == sorted(by_id)
        assert len(catalog.enabled()) == 4
        assert by_id["vwap-deviation"].version == "2.0.0"
        assert by_id["vwap-deviation-rollback"].version == "1.0.0"
        assert by_id["bollinger-reversion"].universe_symbols == ()  # trades every symbol
        assert by_id["vwap-deviation-rollback"].universe_symbols == (
            "TSLA",
            "AVGO",
            "AMD",
            "MU",
        )  # CSV `symbols`
        tsmom = by_id["intraday_tsmom_v1@paper"]
        assert tsmom.params["bullish_hist_min"] == "0.005"
        assert tsmom.params["universe_symbols"] is None
        assert tsmom.parameter_hash == torghut_hash(dict(tsmom.params))
        assert validate_catalog(EXAMPLES / "strategies.yaml", registry) == []

    def test_json_and_top_level_list(self, tmp_path: Path, registry: StrategyRegistry) -> None:
        entries = yaml.safe_load((EXAMPLES / "strategies-v3.yaml").read_text())["strategies"]
        path = tmp_path / "strategies.json"
        path.write_text(json.dumps(entries))
        catalog = load_catalog(path, registry)
        assert [d.strategy_id for d in catalog.definitions] == [
            "intraday-tsmom-profit-v2",
            "macd-rsi-default",
        ]


class TestTorghutRules:
    @pytest.mark.parametrize(
        ("universe_type", "strategy_type"),
        [
            (None, "legacy_macd_rsi"),
            ("static", "legacy_macd_rsi"),
            ("legacy_macd_rsi", "legacy_macd_rsi"),
            ("intraday_tsmom", "intraday_tsmom_v1"),
            ("tsmom_intraday", "intraday_tsmom_v1"),
            ("bollinger_reversion", "bollinger_reversion"),
        ],
    )
    def test_universe_type_mapping(self, universe_type: str | None, strategy_type: str) -> None:
        assert strategy_type_from_universe_type(universe_type) == strategy_type

    @pytest.mark.parametrize(
        ("description", "version"),
        [(None, "1.0.0"), ("demo", "1.0.0"), ("tuned, version=1.1.0", "1.1.0"), ("x, version=", "1.0.0")],
    )
    def test_version_from_description(self, description: str | None, version: str) -> None:
        assert version_from_description(description) == version

    def test_config_normalisation(self) -> None:
        cfg = StrategyConfig.model_validate(
            {"strategy_id": "s1", "strategy_type": "intraday_tsmom", "version": "1.1.0", "symbols": "A, B,"}
        )
        assert (cfg.name, cfg.universe_type, cfg.description) == (
            "s1",
            "intraday_tsmom_v1",
            "intraday_tsmom v1.1.0",
        )
        assert cfg.universe_symbols == ["A", "B"]
        cfg = StrategyConfig.model_validate(
            {"name": "n", "strategy_type": "x", "version": "2", "description": "d"}
        )
        assert cfg.description == "d (x@2)"

    def test_unpinned_newer_entry_resolves_to_lowest_version_with_warning(
        self, registry: StrategyRegistry
    ) -> None:
        catalog = parse_catalog(
            [{"strategy_id": "v", "strategy_type": "vwap_deviation"}], registry, digest=""
        )
        assert catalog.definitions[0].version == "1.0.0"
        (finding,) = catalog.findings
        assert finding.level == "warning" and "not pinned" in finding.message

    def test_v3_universe_type_can_name_any_plugin(self, registry: StrategyRegistry) -> None:
        catalog = parse_catalog(
            {"strategies": [{"name": "b", "universe_type": "bollinger_reversion"}]}, registry, digest=""
        )
        assert catalog.definitions[0].strategy_type == "bollinger_reversion"


class TestErrors:
    def test_unknown_field(self, registry: StrategyRegistry) -> None:
        message = errors_of([{"name": "ok"}, {"name": "bad", "capital_authority": {}}], registry)
        assert "strategies[1] (name='bad')" in message
        assert "field 'capital_authority'" in message
        assert "strategies[0]" not in message

    def test_bad_catalog_value(self, registry: StrategyRegistry) -> None:
        message = errors_of([{"name": "m", "max_notional_per_trade": "lots"}], registry)
        assert "strategies[0] (name='m')" in message
        assert "field 'max_notional_per_trade'" in message and "decimal" in message and "'lots'" in message

    def test_amount_must_fit_numeric_20_8(self, registry: StrategyRegistry) -> None:
        message = errors_of([{"name": "m", "max_notional_per_trade": "1e13"}], registry)
        assert "numeric(20,8)" in message

    def test_plugin_param_validated_against_resolved_plugin(self, registry: StrategyRegistry) -> None:
        entry = {"strategy_id": "b", "strategy_type": "bollinger_reversion", "version": "1.0.0"}
        message = errors_of([{**entry, "params": {"confirm_bars": "many", "colour": "red"}}], registry)
        assert "strategies[0] (strategy_id='b')" in message
        assert "field 'params.confirm_bars'" in message and "'many'" in message
        assert "field 'params.colour'" in message
        assert "bollinger_reversion@1.0.0" in message

    def test_v2_param_rejected_by_pinned_v1(self, registry: StrategyRegistry) -> None:
        entry = {"strategy_id": "v", "strategy_type": "vwap_deviation", "version": "1.0.0"}
        message = errors_of([{**entry, "params": {"alpha": "0.3"}}], registry)
        assert "field 'params.alpha'" in message and "vwap_deviation@1.0.0" in message

    def test_duplicates(self, registry: StrategyRegistry) -> None:
        message = errors_of(
            [{"name": "a"}, {"name": "a"}, {"strategy_id": "x"}, {"name": "y", "strategy_id": "x"}], registry
        )
        assert "strategies[1] (name='a'): field 'name': expected a unique name" in message
        assert "first in strategies[0]" in message
        assert "strategies[3] (name='y'): field 'strategy_id'" in message
        # Two entries with one strategy id and no names: one error, about the id (not also the derived name).
        twice = errors_of([{"strategy_id": "x"}, {"strategy_id": "x"}], registry)
        assert "field 'strategy_id': expected a unique strategy_id" in twice
        assert "field 'name'" not in twice

    def test_type_errors_read_as_expectations(self, registry: StrategyRegistry) -> None:
        entry = {"strategy_id": "b", "strategy_type": "bollinger_reversion", "version": "1.0.0"}
        message = errors_of([{**entry, "params": {"confirm_bars": "three"}}], registry)
        assert "field 'params.confirm_bars': expected a valid integer" in message
        assert "Input should" not in message and "found 'three'" in message

    def test_unknown_type_names_installed(self, registry: StrategyRegistry) -> None:
        message = errors_of([{"strategy_id": "q", "strategy_type": "quantum", "version": "1.0.0"}], registry)
        assert "field 'strategy_type'" in message and "quantum@1.0.0" in message
        assert "installed: bollinger_reversion@1.0.0" in message

    def test_unknown_pinned_version(self, registry: StrategyRegistry) -> None:
        message = errors_of(
            [{"strategy_id": "v", "strategy_type": "vwap_deviation", "version": "3.0.0"}], registry
        )
        assert "field 'version'" in message and "vwap_deviation@3.0.0 (pinned)" in message
        assert "vwap_deviation@2.0.0" in message

    def test_unknown_v3_universe_type(self, registry: StrategyRegistry) -> None:
        assert "field 'universe_type'" in errors_of([{"name": "x", "universe_type": "jangar"}], registry)

    def test_missing_name(self, registry: StrategyRegistry) -> None:
        message = errors_of([{"enabled": True}], registry)
        assert "strategies[0]" in message and "a 'name' or a 'strategy_id'" in message

    @pytest.mark.parametrize("data", [{"strategy": []}, "text", [1]])
    def test_bad_shapes(self, data: Any, registry: StrategyRegistry) -> None:
        assert "expected" in errors_of(data, registry)

    def test_files(self, tmp_path: Path, registry: StrategyRegistry) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text("strategies: [\n")
        with pytest.raises(CatalogError, match="expected valid YAML or JSON") as failure:
            load_catalog(bad, registry)
        assert f'in "{bad}", line 2' in str(failure.value)  # the file and line, not "<byte string>"
        with pytest.raises(CatalogError, match="cannot read"):
            load_catalog(tmp_path / "missing.yaml", registry)
        (finding,) = validate_catalog(bad, registry)
        assert finding.level == "error" and finding.entry == "catalog"

    def test_validate_collects_every_error(self, tmp_path: Path, registry: StrategyRegistry) -> None:
        path = tmp_path / "s.yaml"
        path.write_text(
            yaml.safe_dump([{"name": "a", "enabled": "maybe"}, {"name": "b", "universe_type": "zz"}])
        )
        findings = validate_catalog(path, registry)
        assert [f.entry for f in findings] == ["strategies[0] (name='a')", "strategies[1] (name='b')"]
        assert all(f.level == "error" for f in findings)

"""Registry: interface checks, exact pins, torghut's alias map and resolution order, entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.strategies.fake_dist import install_fake_distribution
from torghut.strategies.base import StrategyParams, StrategyPlugin
from torghut.strategies.builtin import LegacyMacdRsi
from torghut.strategies.config import RegistryConfig
from torghut.strategies.registry import (
    PluginRegistrationError,
    StrategyRegistry,
    default_registry,
    discover_entry_points,
    plugin_rows,
)


@pytest.fixture
def registry() -> StrategyRegistry:
    return default_registry(RegistryConfig(entry_points=False))


def plugin_class(**attrs: Any) -> type[StrategyPlugin[Any, Any]]:
    namespace: dict[str, Any] = {
        "strategy_type": "probe",
        "version": "1.0.0",
        "params_model": StrategyParams,
        "required_features": ("price",),
        "warmup_bars": 0,
        "initial_state": lambda self, params: None,
        "evaluate": lambda self, params, features, state: ((), state),
    }
    namespace.update(attrs)
    return type("Probe", (StrategyPlugin,), namespace)


class TestResolution:
    def test_builtins(self, registry: StrategyRegistry) -> None:
        assert registry.keys() == (
            "bollinger_reversion@1.0.0",
            "intraday_tsmom@1.1.0",
            "legacy_macd_rsi@1.0.0",
            "vwap_deviation@1.0.0",
            "vwap_deviation@2.0.0",
        )

    def test_exact_pins_side_by_side(self, registry: StrategyRegistry) -> None:
        for version in ("1.0.0", "2.0.0"):
            resolution = registry.resolve("vwap_deviation", version, pinned=True)
            assert resolution is not None
            assert (resolution.info.plugin.version, resolution.via) == (version, "exact")
        assert registry.resolve("vwap_deviation", "3.0.0", pinned=True) is None

    def test_torghut_alias_map(self, registry: StrategyRegistry) -> None:
        tsmom = registry.resolve("intraday_tsmom_v1", "1.0.0")
        legacy = registry.resolve("legacy_macd_rsi", "9.9.9")
        assert tsmom is not None and (tsmom.info.key, tsmom.via) == ("intraday_tsmom@1.1.0", "alias")
        assert legacy is not None and (legacy.info.key, legacy.via) == ("legacy_macd_rsi@1.0.0", "alias")

    def test_pinned_alias_must_match_version(self, registry: StrategyRegistry) -> None:
        assert registry.resolve("intraday_tsmom_v1", "1.1.0", pinned=True) is not None
        assert registry.resolve("intraday_tsmom_v1", "2.0.0", pinned=True) is None

    def test_lowest_lexical_version_fallback(self, registry: StrategyRegistry) -> None:
        registry.register(plugin_class(strategy_type="vwap_deviation", version="10.0.0"))
        resolution = registry.resolve("vwap_deviation", "9.0.0")
        assert resolution is not None
        assert (resolution.info.plugin.version, resolution.via) == ("1.0.0", "lowest_version")
        assert registry.versions("vwap_deviation") == ("1.0.0", "10.0.0", "2.0.0")  # lexical, as torghut

    def test_unknown_type(self, registry: StrategyRegistry) -> None:
        assert registry.resolve("nope", "1.0.0") is None
        assert "vwap_deviation@2.0.0" in registry
        assert "nope@1.0.0" not in registry

    def test_list_rows(self, registry: StrategyRegistry) -> None:
        rows = {f"{r.strategy_type}@{r.version}": r for r in plugin_rows(registry)}
        row = rows["bollinger_reversion@1.0.0"]
        assert (row.source, row.warmup_bars) == ("torghut-engine", 20)
        assert row.required_features == ("price", "boll_upper", "boll_lower", "rsi14")
        assert "cooldown_bars: int = 10" in row.params
        assert rows["legacy_macd_rsi@1.0.0"].params == ()


class TestRegistrationChecks:
    @pytest.mark.parametrize(
        ("attrs", "problem"),
        [
            ({"required_features": ("price", "sentiment")}, "not FeatureVectorV3 value fields"),
            ({"version": "1.0"}, "semantic version"),
            ({"strategy_type": "bad@type"}, "strategy_type"),
            ({"warmup_bars": -1}, "warmup_bars"),
            ({"params_model": dict}, "StrategyParams subclass"),
            ({"api_version": 99}, "api_version"),
        ],
    )
    def test_bad_plugin_is_named(self, attrs: dict[str, Any], problem: str) -> None:
        with pytest.raises(PluginRegistrationError, match=problem) as info:
            StrategyRegistry().register(plugin_class(**attrs), label="my-plugin")
        assert "my-plugin" in str(info.value)

    def test_params_model_must_be_frozen_and_strict(self) -> None:
        class Loose(StrategyParams):
            model_config: ClassVar = {"frozen": False, "extra": "allow"}

        with pytest.raises(PluginRegistrationError, match="frozen with extra='forbid'"):
            StrategyRegistry().register(plugin_class(params_model=Loose))

    def test_not_a_plugin(self) -> None:
        with pytest.raises(PluginRegistrationError, match="expected a StrategyPlugin subclass"):
            StrategyRegistry().register(object)

    def test_duplicate_key(self, registry: StrategyRegistry) -> None:
        with pytest.raises(PluginRegistrationError, match="already registered by torghut-engine"):
            registry.register(LegacyMacdRsi)

    def test_blocked_builtin(self) -> None:
        registry = default_registry(RegistryConfig(entry_points=False, blocked=("vwap_deviation@2.0.0",)))
        assert registry.versions("vwap_deviation") == ("1.0.0",)
        assert registry.skipped == ["builtin vwap_deviation@2.0.0"]


class TestEntryPoints:
    def test_discovers_plugin_with_its_distribution(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        install_fake_distribution(tmp_path, monkeypatch, {"exploding": "Exploding"})
        registry = default_registry()
        info = registry.get("exploding", "0.1.0")
        assert info is not None
        assert (info.source, info.source_version, info.entry_point) == (
            "torghut-fake-plugins",
            "0.1",
            "exploding",
        )
        assert "exploding@0.1.0" in registry.keys()

    def test_block_list(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        install_fake_distribution(tmp_path, monkeypatch, {"exploding": "Exploding"})
        for blocked in ("exploding", "torghut-fake-plugins", "exploding@0.1.0"):
            registry = default_registry(RegistryConfig(blocked=(blocked,)))
            assert registry.get("exploding", "0.1.0") is None
            assert "torghut-fake-plugins" in registry.skipped[0]

    def test_import_failure_names_entry_point(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        install_fake_distribution(tmp_path, monkeypatch, {"broken": "torghut_fake_missing_module:Thing"})
        with pytest.raises(PluginRegistrationError) as info:
            discover_entry_points(StrategyRegistry())
        message = str(info.value)
        assert "'broken'" in message and "torghut-fake-plugins 0.1" in message
        assert "ModuleNotFoundError" in message

    def test_non_plugin_object_names_entry_point(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        install_fake_distribution(tmp_path, monkeypatch, {"bogus": "NotAPlugin"})
        with pytest.raises(PluginRegistrationError, match=r"entry point 'bogus'.*StrategyPlugin subclass"):
            discover_entry_points(StrategyRegistry())

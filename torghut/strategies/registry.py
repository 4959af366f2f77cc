"""The plugin registry: built-ins, entry-point plugins, exact pins and torghut's resolution order.

Plugins are keyed by ``strategy_type@version``; several versions of one type live side by side. Third-party
plugins are found through the entry-point group ``torghut.strategies``: each entry point loads a
:class:`~torghut.strategies.base.StrategyPlugin` subclass, and its distribution name and version are
recorded. Every class is checked when it registers; a bad one stops start-up with an error naming it.

>>> registry = default_registry(RegistryConfig(entry_points=False))
>>> registry.resolve("intraday_tsmom_v1", "1.0.0").info.key
'intraday_tsmom@1.1.0'
>>> registry.versions("vwap_deviation")
('1.0.0', '2.0.0')
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

from torghut import __version__
from torghut.contracts.features import VALUE_FIELD_SET_V3
from torghut.contracts.frozen import FrozenMap
from torghut.strategies.base import PLUGIN_API_VERSION, SEMVER, StrategyParams, StrategyPlugin
from torghut.strategies.builtin import BUILTIN_PLUGINS
from torghut.strategies.config import RegistryConfig

AnyPlugin = StrategyPlugin[Any, Any]

ALIASES: Mapping[str, tuple[str, str]] = FrozenMap(
    {
        "legacy_macd_rsi": ("legacy_macd_rsi", "1.0.0"),
        "intraday_tsmom_v1": ("intraday_tsmom", "1.1.0"),
    }
)
"""Torghut's default plugin map: catalog ``strategy_type`` alias -> ``(type, version)``."""

BUILTIN_SOURCE = "torghut-engine"
_TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


class PluginRegistrationError(Exception):
    """A plugin could not be loaded or does not satisfy the plugin interface."""


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """A registered plugin instance and where it came from."""

    plugin: AnyPlugin
    source: str
    source_version: str
    entry_point: str | None = None

    @property
    def key(self) -> str:
        """``strategy_type@version``."""
        return self.plugin.key


@dataclass(frozen=True, slots=True)
class Resolution:
    """The plugin a catalog entry resolved to, and which rule matched."""

    info: PluginInfo
    via: Literal["exact", "alias", "lowest_version"]


@dataclass(frozen=True, slots=True)
class PluginRow:
    """One row of ``torghut strategies list``."""

    strategy_type: str
    version: str
    source: str
    source_version: str
    required_features: tuple[str, ...]
    warmup_bars: int
    params: tuple[str, ...]


class StrategyRegistry:
    """Installed plugins by ``strategy_type@version``, plus the alias map for catalog resolution."""

    def __init__(self, aliases: Mapping[str, tuple[str, str]] = ALIASES) -> None:
        self._plugins: dict[tuple[str, str], PluginInfo] = {}
        self._aliases = dict(aliases)
        self.skipped: list[str] = []

    def register(
        self,
        plugin_cls: object,
        *,
        source: str = BUILTIN_SOURCE,
        source_version: str = __version__,
        entry_point: str | None = None,
        label: str | None = None,
    ) -> PluginInfo:
        """Check ``plugin_cls`` against the plugin interface, instantiate it and register it.

        Raises:
            PluginRegistrationError: the class breaks the interface or its key is already registered.
        """
        name = label or str(getattr(plugin_cls, "__qualname__", repr(plugin_cls)))
        plugin = _instantiate(plugin_cls, name)
        key = (plugin.strategy_type, plugin.version)
        existing = self._plugins.get(key)
        if existing is not None:
            msg = (
                f"strategy plugin {name}: {plugin.key} is already registered by {existing.source} "
                f"{existing.source_version}"
            )
            raise PluginRegistrationError(msg)
        info = PluginInfo(plugin, source, source_version, entry_point)
        self._plugins[key] = info
        return info

    def get(self, strategy_type: str, version: str) -> PluginInfo | None:
        """Return the plugin registered exactly as ``strategy_type@version``."""
        return self._plugins.get((strategy_type, version))

    def resolve(self, strategy_type: str, version: str, *, pinned: bool = False) -> Resolution | None:
        """Resolve a catalog entry's type and version to a plugin.

        Torghut's order: the exact ``(type, version)``; then the alias map by type; then the lexically
        lowest version registered for the type. A ``pinned`` entry (one that states its version) accepts
        only the exact plugin or an alias to that same version.
        """
        exact = self._plugins.get((strategy_type, version))
        if exact is not None:
            return Resolution(exact, "exact")
        alias = self._aliases.get(strategy_type)
        if alias is not None and (not pinned or alias[1] == version):
            target = self._plugins.get(alias)
            if target is not None:
                return Resolution(target, "alias")
        if pinned:
            return None
        versions = self.versions(strategy_type)
        if not versions:
            return None
        return Resolution(self._plugins[(strategy_type, versions[0])], "lowest_version")

    def versions(self, strategy_type: str) -> tuple[str, ...]:
        """Return the registered versions of ``strategy_type``, lexically sorted (torghut's order)."""
        return tuple(sorted(v for t, v in self._plugins if t == strategy_type))

    def keys(self) -> tuple[str, ...]:
        """Return every registered ``type@version``, sorted."""
        return tuple(f"{t}@{v}" for t, v in sorted(self._plugins))

    def __iter__(self) -> Iterator[PluginInfo]:
        return (self._plugins[key] for key in sorted(self._plugins))

    def __len__(self) -> int:
        return len(self._plugins)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and tuple(key.split("@", 1)) in self._plugins


def _instantiate(plugin_cls: object, name: str) -> AnyPlugin:
    def fail(problem: str) -> PluginRegistrationError:
        return PluginRegistrationError(f"strategy plugin {name}: {problem}")

    if not (isinstance(plugin_cls, type) and issubclass(plugin_cls, StrategyPlugin)):
        msg = f"expected a StrategyPlugin subclass, found {plugin_cls!r}"
        raise fail(msg)
    if inspect.isabstract(plugin_cls):
        msg = f"abstract methods not implemented: {', '.join(sorted(plugin_cls.__abstractmethods__))}"
        raise fail(msg)
    if getattr(plugin_cls, "api_version", None) != PLUGIN_API_VERSION:
        msg = f"plugin api_version {getattr(plugin_cls, 'api_version', None)!r} is not {PLUGIN_API_VERSION}"
        raise fail(msg)
    for problem in _interface_problems(plugin_cls):
        raise fail(problem)
    try:
        plugin: AnyPlugin = plugin_cls()
    except Exception as exc:
        msg = f"could not be instantiated: {type(exc).__name__}: {exc}"
        raise fail(msg) from exc
    return plugin


def _interface_problems(cls: type[AnyPlugin]) -> Iterable[str]:
    strategy_type = getattr(cls, "strategy_type", None)
    if not isinstance(strategy_type, str) or not _TYPE_NAME.match(strategy_type):
        yield f"strategy_type must be a name like 'my_strategy', found {strategy_type!r}"
    version = getattr(cls, "version", None)
    if not isinstance(version, str) or not SEMVER.match(version):
        yield f"version must be a semantic version like '1.0.0', found {version!r}"
    model = getattr(cls, "params_model", None)
    if not (isinstance(model, type) and issubclass(model, StrategyParams)):
        yield f"params_model must be a StrategyParams subclass, found {model!r}"
    elif model.model_config.get("frozen") is not True or model.model_config.get("extra") != "forbid":
        yield f"params_model {model.__name__} must be frozen with extra='forbid'"
    features = getattr(cls, "required_features", None)
    if not isinstance(features, tuple) or not all(isinstance(f, str) for f in features):
        yield f"required_features must be a tuple of feature names, found {features!r}"
    else:
        unknown = sorted(set(features) - VALUE_FIELD_SET_V3)
        if unknown:
            yield (
                f"required_features {unknown} are not FeatureVectorV3 value fields "
                f"(known: {', '.join(sorted(VALUE_FIELD_SET_V3))})"
            )
        if len(set(features)) != len(features):
            yield f"required_features has duplicates: {features!r}"
    warmup = getattr(cls, "warmup_bars", None)
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        yield f"warmup_bars must be an int >= 0, found {warmup!r}"


def _entry_point_label(ep: EntryPoint) -> tuple[str, str, str]:
    dist = ep.dist
    dist_name = dist.metadata["Name"] if dist is not None else "unknown-distribution"
    dist_version = dist.version if dist is not None else "unknown"
    return f"entry point {ep.name!r} ({ep.value}) from {dist_name} {dist_version}", dist_name, dist_version


def discover_entry_points(
    registry: StrategyRegistry, *, group: str = "torghut.strategies", blocked: Iterable[str] = ()
) -> tuple[PluginInfo, ...]:
    """Load and register every plugin of the entry-point ``group``, skipping ``blocked`` ones.

    Raises:
        PluginRegistrationError: an entry point fails to load or its class breaks the interface; the
            message names the entry point and its distribution.
    """
    block = frozenset(blocked)
    found: list[PluginInfo] = []
    seen: set[tuple[str, str, str]] = set()
    for ep in sorted(entry_points(group=group), key=lambda e: (e.name, e.value)):
        label, dist_name, dist_version = _entry_point_label(ep)
        if (ep.name, ep.value, dist_name) in seen:
            continue
        seen.add((ep.name, ep.value, dist_name))
        if block & {ep.name, ep.value, dist_name}:
            registry.skipped.append(label)
            continue
        try:
            plugin_cls = ep.load()
        except Exception as exc:
            msg = f"strategy plugin {label}: failed to load: {type(exc).__name__}: {exc}"
            raise PluginRegistrationError(msg) from exc
        key = f"{getattr(plugin_cls, 'strategy_type', '?')}@{getattr(plugin_cls, 'version', '?')}"
        if key in block:
            registry.skipped.append(label)
            continue
        found.append(
            registry.register(
                plugin_cls, source=dist_name, source_version=dist_version, entry_point=ep.name, label=label
            )
        )
    return tuple(found)


def default_registry(config: RegistryConfig | None = None) -> StrategyRegistry:
    """Return a registry with the built-ins and, unless disabled, the entry-point plugins."""
    config = config or RegistryConfig()
    registry = StrategyRegistry()
    for plugin_cls in BUILTIN_PLUGINS:
        key = f"{plugin_cls.strategy_type}@{plugin_cls.version}"
        if key in config.blocked:
            registry.skipped.append(f"builtin {key}")
            continue
        registry.register(plugin_cls)
    if config.entry_points:
        discover_entry_points(registry, group=config.group, blocked=config.blocked)
    return registry


def _params_summary(model: type[StrategyParams]) -> tuple[str, ...]:
    rows = []
    for name, field in model.model_fields.items():
        if name in StrategyParams.model_fields:
            continue
        annotation = field.annotation
        type_name = getattr(annotation, "__name__", None) or str(annotation)
        rows.append(f"{name}: {type_name} = {field.default}")
    return tuple(rows)


def plugin_rows(registry: StrategyRegistry) -> list[PluginRow]:
    """Return the data of ``torghut strategies list``: one row per installed plugin, sorted by key."""
    return [
        PluginRow(
            strategy_type=info.plugin.strategy_type,
            version=info.plugin.version,
            source=info.source,
            source_version=info.source_version,
            required_features=info.plugin.required_features,
            warmup_bars=info.plugin.warmup_bars,
            params=_params_summary(info.plugin.params_model),
        )
        for info in registry
    ]

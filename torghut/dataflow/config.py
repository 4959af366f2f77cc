"""The one configuration tree: built once from a file and the environment, passed down as arguments.

Each subsystem owns its small frozen config model; :class:`EngineConfig` composes them. Values come from
(lowest to highest precedence) the models' defaults, an optional YAML/JSON file with one section per
subsystem, and torghut's environment variables. ``EngineConfig.fingerprint()`` is the config hash
recorded with every decision.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from torghut.contracts.hashing import sha256_hex
from torghut.operators.portfolio_config import AccountConfig, AggregationConfig, AllocationConfig
from torghut.operators.trading_config import TradingConfig
from torghut.strategies.config import RuntimeConfig

_RUNTIME_ENV = {
    "TRADING_STRATEGY_RUNTIME_CIRCUIT_ERRORS": "circuit_errors",
    "TRADING_STRATEGY_RUNTIME_CIRCUIT_COOLDOWN_SECONDS": "circuit_cooldown_s",
}


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file, the key and the problem."""


# The engine runs the plugin runtime by default; torghut's own default (``legacy``, with fallback to the
# legacy rule whenever the runtime is silent) is one environment variable away.
ENGINE_TRADING_DEFAULTS: dict[str, Any] = {
    "trading_strategy_runtime_mode": "plugin_v3",
    "trading_strategy_runtime_fallback_legacy": False,
}


def _default_trading() -> TradingConfig:
    return TradingConfig.model_validate(ENGINE_TRADING_DEFAULTS)


class EngineConfig(BaseModel):
    """Every setting of the engine, one section per subsystem."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    aggregation: AggregationConfig = Field(default_factory=AggregationConfig)
    allocation: AllocationConfig = Field(default_factory=AllocationConfig)
    account: AccountConfig = Field(default_factory=AccountConfig)
    trading: TradingConfig = Field(default_factory=_default_trading)

    def fingerprint(self) -> str:
        """Return the sha256 of this configuration's canonical JSON (the config hash on decisions)."""
        return sha256_hex(self.model_dump(mode="json"))


def _section_from_env(environ: Mapping[str, str], names: Mapping[str, str]) -> dict[str, str]:
    return {field: environ[env] for env, field in names.items() if env in environ}


def load_engine_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> EngineConfig:
    """Build the configuration tree from an optional file and the environment.

    Raises:
        ConfigError: the file is unreadable or a value is invalid; the message says which.
    """
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            msg = f"cannot read engine configuration {path}: {exc}"
            raise ConfigError(msg) from exc
        if loaded is not None and not isinstance(loaded, dict):
            msg = f"{path}: expected a mapping of sections, found {type(loaded).__name__}"
            raise ConfigError(msg)
        data = dict(loaded or {})
    return engine_config_from_data(data, env, where=f" in {path}" if path is not None else "")


def engine_config_from_data(
    data: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, where: str = ""
) -> EngineConfig:
    """Build the configuration tree from already-loaded sections and the environment.

    Args:
        data: One mapping per subsystem section (``runtime``, ``trading``, ...).
        environ: The environment (``os.environ`` when None); torghut's variables override ``data``.
        where: Appended to error messages, e.g. ``" in service.yaml"``.

    Raises:
        ConfigError: a value is invalid; the message says which.
    """
    env = os.environ if environ is None else environ
    try:
        runtime = {**(data.get("runtime") or {}), **_section_from_env(env, _RUNTIME_ENV)}
        trading = {
            **ENGINE_TRADING_DEFAULTS,
            **(data.get("trading") or {}),
            **TradingConfig.from_env(env).model_dump(exclude_unset=True),
        }
        allocation = {
            **(data.get("allocation") or {}),
            **AllocationConfig.from_env(env).model_dump(exclude_unset=True),
        }
        return EngineConfig.model_validate(
            {**data, "runtime": runtime, "trading": trading, "allocation": allocation}
        )
    except (ValidationError, ValueError) as exc:
        msg = f"invalid engine configuration{where}:\n{exc}"
        raise ConfigError(msg) from exc

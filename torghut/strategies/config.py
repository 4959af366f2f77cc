"""Configuration of the strategy registry and runtime (frozen, unknown keys rejected)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RuntimeConfig(BaseModel):
    """Circuit breaker settings: torghut's ``TRADING_STRATEGY_RUNTIME_CIRCUIT_*``.

    ``circuit_errors`` consecutive plugin failures degrade a strategy for ``circuit_cooldown_s`` seconds of
    event time.

    Attributes:
        circuit_errors: Consecutive plugin failures of one strategy (per symbol) that open its circuit
            breaker; a successful evaluation resets the count.
        circuit_cooldown_s: Seconds of event time a degraded strategy is skipped, each skipped event
            reported as a ``strategy_degraded`` error.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    circuit_errors: int = Field(default=3, ge=1)
    circuit_cooldown_s: int = Field(default=300, ge=1)


class RegistryConfig(BaseModel):
    """Which plugins the registry loads.

    ``blocked`` lists entry point names, distribution names or ``type@version`` keys to skip.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    entry_points: bool = True
    group: str = "torghut.strategies"
    blocked: tuple[str, ...] = ()

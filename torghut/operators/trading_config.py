"""Trading controls: torghut's ``TRADING_*`` keys and defaults, plus the engine's own controls.

Every field is named after its environment variable in lower case (``trading_mode`` is ``TRADING_MODE``), so
:meth:`TradingConfig.from_env` needs no alias table.

Defaults that differ from torghut, chosen for the engine's default paper replay and documented here:

- ``TRADING_ENABLED`` defaults to true: the default mode is paper with the paper adapter, so nothing leaves
  the process unless the three live switches below are set.
- ``TRADING_KILL_SWITCH_ENABLED`` is tri-state. Unset means *engaged in live mode, released in paper mode*
  (torghut's default is plainly true). An explicit value always wins, in either mode, and the firewall
  honours it (:attr:`TradingConfig.kill_switch_engaged`). A live deployment therefore needs
  ``TRADING_MODE=live``, ``TRADING_LIVE_ENABLED=true`` and ``TRADING_KILL_SWITCH_ENABLED=false``.

These are the static switches, fixed for a run. A running service also honours runtime switches that can
only make trading stricter (``torghut control``, see :mod:`torghut.operators.control`).

>>> cfg = TradingConfig.from_env({"TRADING_MODE": "live", "TRADING_COOLDOWN_SECONDS": "30", "HOME": "/x"})
>>> cfg.trading_mode, cfg.trading_cooldown_seconds, cfg.kill_switch_engaged
('live', 30, True)
>>> TradingConfig().kill_switch_engaged
False
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from torghut.contracts.hashing import sha256_hex

RISK_GATE_NAMES: tuple[str, ...] = (
    "trading_state",
    "trading_enabled",
    "live_trading",
    "strategy_enabled",
    "symbol_allowed",
    "price_present",
    "max_notional",
    "buying_power",
    "max_position_pct",
    "shorts",
    "cooldown",
    "order_rate",
    "daily_loss",
    "max_open_orders",
    "price_collar",
)
"""Every risk gate, in the default chain order (torghut's reasons first, then the engine's)."""

TradingMode = Literal["paper", "live"]
RuntimeMode = Literal["legacy", "plugin_v3", "scheduler_v3"]
TradingState = Literal["active", "halted", "reducing_only"]
AdapterName = Literal["paper", "alpaca", "dry_run"]


class TradingConfig(BaseModel):
    """Frozen trading configuration; unknown fields are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # torghut's keys
    trading_enabled: bool = True
    trading_mode: TradingMode = "paper"
    trading_live_enabled: bool = False
    trading_kill_switch_enabled: bool | None = None
    trading_account_label: str | None = None
    trading_allow_shorts: bool = False
    trading_max_notional_per_trade: Decimal | None = None
    trading_max_position_pct_equity: Decimal | None = None
    trading_cooldown_seconds: int = 0
    trading_default_qty: int = 1
    trading_min_notional_per_trade: Decimal | None = None
    trading_execution_prefer_limit: bool = True
    trading_max_participation_rate: Decimal = Decimal("0.1")
    trading_execution_max_retries: int = 0
    trading_execution_backoff_base_seconds: float = 0.25
    trading_execution_backoff_multiplier: float = 2.0
    trading_execution_backoff_max_seconds: float = 2.0
    trading_strategy_runtime_mode: RuntimeMode = "legacy"
    trading_strategy_scheduler_enabled: bool = False
    trading_strategy_runtime_fallback_legacy: bool = True
    trading_daily_loss_stop_pct_equity: Decimal | None = Decimal("0.01")

    # the engine's controls
    trading_execution_adapter: AdapterName = "paper"
    trading_risk_gates: tuple[str, ...] = RISK_GATE_NAMES
    trading_risk_clip_enabled: bool = True
    trading_order_rate_limit_per_minute: int | None = None
    trading_max_open_orders: int | None = None
    trading_price_collar_bps: Decimal | None = Decimal(100)
    trading_state: TradingState = "active"
    trading_paper_slippage_bps: Decimal = Decimal(1)
    trading_paper_fee_per_share: Decimal = Decimal(0)
    trading_paper_fee_bps: Decimal = Decimal(0)

    @field_validator("trading_risk_gates", mode="before")
    @classmethod
    def _split_gates(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("trading_risk_gates")
    @classmethod
    def _known_gates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in RISK_GATE_NAMES]
        if unknown:
            msg = (
                f"TRADING_RISK_GATES: unknown gate(s) {unknown}; expected names from {list(RISK_GATE_NAMES)}"
            )
            raise ValueError(msg)
        if len(set(value)) != len(value):
            msg = f"TRADING_RISK_GATES: a gate is listed twice in {list(value)}"
            raise ValueError(msg)
        return value

    @property
    def kill_switch_engaged(self) -> bool:
        """Whether the static kill switch blocks submissions (explicit value, else engaged only in live mode).

        The firewall also honours the runtime control's kill switch (:mod:`torghut.operators.control`).
        """
        if self.trading_kill_switch_enabled is not None:
            return self.trading_kill_switch_enabled
        return self.trading_mode == "live"

    @property
    def account_label(self) -> str:
        """``TRADING_ACCOUNT_LABEL``, defaulting to the mode as torghut does."""
        return self.trading_account_label or self.trading_mode

    def config_hash(self) -> str:
        """Return the sha256 of this configuration's canonical JSON (recorded in decision provenance)."""
        return sha256_hex(self.model_dump(mode="json"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TradingConfig:
        """Build a configuration from the ``TRADING_*`` variables in ``environ``.

        Variables that are not fields (torghut has many more) are ignored; an empty value means unset.
        """
        values = {
            name: environ[name.upper()]
            for name in cls.model_fields
            if environ.get(name.upper(), "").strip() != ""
        }
        return cls.model_validate(values)

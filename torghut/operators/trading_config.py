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
    """Frozen trading configuration; unknown fields are refused.

    Attributes:
        trading_enabled: While false, the ``trading_enabled`` risk gate rejects every order with
            ``trading_disabled``.
        trading_mode: ``paper`` or ``live``. Live orders also need ``trading_live_enabled`` and, since
            the kill switch is engaged by default in live mode, ``trading_kill_switch_enabled=false``.
        trading_live_enabled: The second live switch: in live mode, without it the ``live_trading`` gate
            and the firewall reject every order with ``live_trading_disabled``.
        trading_kill_switch_enabled: The static kill switch: the firewall rejects every order with
            ``kill_switch_enabled`` while it is engaged. Unset: engaged in live mode, released in paper
            mode; an explicit value wins in either mode.
        trading_account_label: The account label on legacy-path decisions (and on their orders); unset
            means the trading mode. With the ``alpaca`` adapter, ``torghut run`` also labels the account
            stage with it.
        trading_allow_shorts: Allow short-increasing sells (a sell while flat or short, or larger than
            the long position); otherwise the policy and the ``shorts`` gate reject them with
            ``shorts_not_allowed``.
        trading_max_notional_per_trade: Global cap on an order's notional when its strategy sets no
            ``max_notional_per_trade``: the policy rejects a larger order on either side, the
            ``max_notional`` gate an exposure-increasing one (``max_notional_exceeded``); the legacy
            path also sizes from it when the strategy has neither limit. Unset: no cap.
        trading_max_position_pct_equity: Global cap on a position's value as a fraction of equity
            (0.05 is 5%) when the strategy sets none: the ``max_position_pct`` gate rejects (or clips)
            an order whose projected position exceeds it, unless it reduces the exposure. Unset: no cap.
        trading_cooldown_seconds: After a symbol's last non-rejected decision, the ``cooldown`` gate
            rejects its orders for this many seconds of event time (``cooldown_active``); 0 disables it.
        trading_default_qty: Legacy path: the quantity of a decision that has no price or no notional
            budget to size from.
        trading_min_notional_per_trade: The policy rejects an order whose notional is below this
            (``min_notional_not_met``). Unset: no minimum.
        trading_execution_prefer_limit: Turn a market order into a limit order at the reference price
            ± half the spread (+ for a buy), tick-rounded, whenever a price is known.
        trading_max_participation_rate: Largest order notional as a fraction of the average daily
            dollar volume, when a decision carries one (``adv`` and similar params); above it the policy
            rejects with ``participation_exceeds_max``. A value ≤ 0 means 0.1; above 1 means 1.
        trading_execution_max_retries: Number of broker retries the execution policy plans for a
            retryable error; the delays are recorded in the order's ``execution_policy.retry_delays``.
        trading_execution_backoff_base_seconds: The first retry delay (≤ 0 means 0.1).
        trading_execution_backoff_multiplier: Each retry delay is the previous one times this (< 1
            means 1).
        trading_execution_backoff_max_seconds: The longest retry delay (never below the base).
        trading_strategy_runtime_mode: ``plugin_v3``: the catalog's strategy plugins, aggregation and
            allocation decide; ``scheduler_v3``: the same, but only with
            ``trading_strategy_scheduler_enabled``; ``legacy``: torghut's legacy MACD/RSI rule decides
            for every enabled strategy. The engine's default is ``plugin_v3`` (torghut's is ``legacy``).
        trading_strategy_scheduler_enabled: Turns the plugin path on in ``scheduler_v3`` mode; ignored
            in the other modes.
        trading_strategy_runtime_fallback_legacy: On the plugin path, an event for which no strategy
            emits an intent takes the legacy rule's decisions instead. The engine's default is false
            (torghut's is true).
        trading_daily_loss_stop_pct_equity: The ``daily_loss`` gate rejects every order that is not a
            pure reduction once equity has fallen this fraction below the UTC day's starting equity
            (``daily_loss_stop:<ratio>``). Unset or ≤ 0 disables it.
        trading_execution_adapter: Where ``torghut run`` sends orders when the service's ``adapter.kind``
            is unset: ``paper`` (simulated fills), ``alpaca`` or ``dry_run``. A replay always uses paper.
        trading_risk_gates: The risk gates to run, in order (comma-separated in the environment); the
            firewall also requires a verdict from each of them before an order reaches the adapter.
        trading_risk_clip_enabled: Let the ``max_position_pct`` gate clip an order to the largest whole
            quantity that fits (at least 1) instead of rejecting it.
        trading_order_rate_limit_per_minute: The ``order_rate`` gate rejects an order when this many
            orders were approved in the minute of event time before it (``order_rate_limited``). Unset
            or 0: no limit.
        trading_max_open_orders: The ``max_open_orders`` gate rejects an order while the account has
            this many orders not yet final (``max_open_orders_exceeded``). Unset: no limit.
        trading_price_collar_bps: The ``price_collar`` gate rejects a limit order priced more than this
            many basis points from the reference price (``price_collar_breached``). Unset: no collar.
        trading_state: ``active``; ``halted`` rejects every order (``trading_halted``);
            ``reducing_only`` rejects any order that is not a pure reduction of a position
            (``reducing_only``).
        trading_paper_slippage_bps: Paper adapter: a fill is this many basis points worse than the
            order's limit price, else the reference price (a buy pays more, a sell receives less).
        trading_paper_fee_per_share: Paper adapter: fee per filled share.
        trading_paper_fee_bps: Paper adapter: fee in basis points of the filled notional.
    """

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

"""Frozen configuration of the aggregate and allocate stages (torghut's ``TRADING_ALLOCATOR_*`` keys).

>>> AllocationConfig().enabled, AllocationConfig().default_regime, AllocationConfig().max_multiplier
(False, 'neutral', Decimal('2'))
>>> cfg = AllocationConfig.from_env({"TRADING_ALLOCATOR_ENABLED": "true",
...                                  "TRADING_ALLOCATOR_SYMBOL_NOTIONAL_CAPS": '{" aapl ": 1500.5}'})
>>> cfg.enabled, dict(cfg.symbol_notional_caps)
(True, {'AAPL': Decimal('1500.5')})
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from torghut.contracts.hashing import sha256_hex

AggregationPolicyName = Literal["torghut", "priority", "veto"]

DEFAULT_STRATEGY_PRIORITY = 100
"""A strategy missing from the priority map ranks as torghut's catalog default priority."""

_ENV_PREFIX = "TRADING_ALLOCATOR_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def config_hash(self) -> str:
        """Return the sha256 of this configuration's canonical JSON (its fingerprint in provenance)."""
        return sha256_hex(self.model_dump(mode="json"))


class AggregationConfig(_Frozen):
    """How strategy intents become symbol intents.

    Attributes:
        policy: ``torghut`` (confidence-weighted net direction, torghut's tie-break), ``priority``
            (the lowest catalog priority number decides the direction) or ``veto`` (any conflict drops
            the whole group).
        window_s: Tumbling event-time window length in seconds (1: one event with 1-second bars).
        allowed_lateness_s: How long, in event time past its end, a window stays open for
            out-of-order intents; an intent for a window already closed is dropped as ``late``.
        strategy_priorities: ``strategy_id -> priority`` for the ``priority`` policy; a strategy not
            listed has priority 100 (torghut's catalog default).
    """

    policy: AggregationPolicyName = "torghut"
    window_s: int = Field(default=1, gt=0)
    allowed_lateness_s: int = Field(default=0, ge=0)
    strategy_priorities: dict[str, int] = Field(default_factory=dict)


def _upper(key: str) -> str:
    return key.strip().upper()


def _lower(key: str) -> str:
    return key.strip().lower()


def _decimal_map(value: Any, normalize: Any) -> dict[str, Decimal]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        msg = f"expected a JSON object of name -> number, found {type(value).__name__}"
        raise TypeError(msg)
    result: dict[str, Decimal] = {}
    for key in sorted(value, key=str):
        name = normalize(str(key))
        if name:
            result[name] = Decimal(str(value[key]))
    return result


class AllocationConfig(_Frozen):
    """Torghut's ``AllocationConfig`` (V3+alloc), field for field, with its defaults.

    Map keys are normalized as torghut does: symbols upper case, correlation groups, regimes and
    strategy ids lower case (the allocator looks strategy ids up lower-cased, so matching is
    case-insensitive). A cap that is ``None`` is not applied. Budgets are used up within one
    aggregation window and start again with the next.

    Attributes:
        enabled: Apply the multipliers and caps below; when false the requested quantity
            (``floor(target_notional / price)``) passes through approved, with metadata only.
        default_regime: The regime of an intent that carries no regime label.
        default_budget_multiplier: Budget multiplier of a regime missing from
            ``regime_budget_multipliers`` (and from its ``default`` key); it scales every cap.
        default_capacity_multiplier: Capacity multiplier of a regime missing from
            ``regime_capacity_multipliers`` (and from its ``default`` key); it scales the symbol cap.
        min_multiplier: Lower clamp of both multipliers.
        max_multiplier: Upper clamp of both multipliers; must not be below ``min_multiplier``.
        max_symbol_pct_equity: Symbol capacity as a fraction of equity: with ``max_symbol_notional``
            (the smaller of the two), times both multipliers, it caps one symbol intent's notional
            (``allocator_clip_symbol_capacity``, ``allocator_reject_symbol_capacity``).
        max_symbol_notional: Symbol capacity in notional (see ``max_symbol_pct_equity``).
        max_gross_exposure: Cap on gross exposure, times the budget multiplier: an intent may add
            what is left after the other symbols' positions and the notional already approved in the
            window (``allocator_*_gross_exposure``).
        strategy_notional_caps: ``strategy_id -> notional`` budget per window, times the budget
            multiplier; each contributing strategy is charged an equal share of the intent
            (``allocator_*_strategy_budget``).
        symbol_notional_caps: ``symbol -> notional`` budget per window, times the budget multiplier
            (``allocator_*_symbol_budget``).
        correlation_group_caps: ``group -> notional`` budget per window shared by the symbols of a
            correlation group, times the budget multiplier (``allocator_*_correlation_capacity``).
        symbol_correlation_groups: ``symbol -> group`` for ``correlation_group_caps``.
        regime_budget_multipliers: ``regime -> budget multiplier``; the key ``default`` applies to
            regimes not listed.
        regime_capacity_multipliers: ``regime -> capacity multiplier``; the key ``default`` applies to
            regimes not listed.
    """

    enabled: bool = False
    default_regime: str = "neutral"
    default_budget_multiplier: Decimal = Decimal(1)
    default_capacity_multiplier: Decimal = Decimal(1)
    min_multiplier: Decimal = Decimal(0)
    max_multiplier: Decimal = Decimal(2)
    max_symbol_pct_equity: Decimal | None = None
    max_symbol_notional: Decimal | None = None
    max_gross_exposure: Decimal | None = None
    strategy_notional_caps: dict[str, Decimal] = Field(default_factory=dict)
    symbol_notional_caps: dict[str, Decimal] = Field(default_factory=dict)
    correlation_group_caps: dict[str, Decimal] = Field(default_factory=dict)
    symbol_correlation_groups: dict[str, str] = Field(default_factory=dict)
    regime_budget_multipliers: dict[str, Decimal] = Field(default_factory=dict)
    regime_capacity_multipliers: dict[str, Decimal] = Field(default_factory=dict)

    @field_validator("default_regime")
    @classmethod
    def _regime(cls, value: str) -> str:
        return _lower(value) or "neutral"

    @field_validator("symbol_notional_caps")
    @classmethod
    def _symbol_keys(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        return {_upper(k): v for k, v in value.items() if _upper(k)}

    @field_validator(
        "strategy_notional_caps",
        "correlation_group_caps",
        "regime_budget_multipliers",
        "regime_capacity_multipliers",
    )
    @classmethod
    def _lower_keys(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        return {_lower(k): v for k, v in value.items() if _lower(k)}

    @field_validator("symbol_correlation_groups")
    @classmethod
    def _groups(cls, value: dict[str, str]) -> dict[str, str]:
        return {_upper(k): _lower(v) for k, v in value.items() if _upper(k) and _lower(v)}

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min_multiplier > self.max_multiplier:
            msg = (
                f"allocator min_multiplier ({self.min_multiplier}) must not exceed "
                f"max_multiplier ({self.max_multiplier})"
            )
            raise ValueError(msg)
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AllocationConfig:
        """Build the configuration from torghut's ``TRADING_ALLOCATOR_*`` variables.

        Maps are JSON objects (numbers are read exactly, as decimals). ``CORRELATION_GROUP_CAPS``
        also answers to ``CORRELATION_GROUP_NOTIONAL_CAPS`` and ``SYMBOL_CORRELATION_GROUPS`` to
        ``CORRELATION_SYMBOL_GROUPS``; the first name wins when both are set. Unset or empty
        variables keep the defaults.

        Args:
            env: The environment to read; ``os.environ`` when omitted.

        Raises:
            ValueError: A variable holds something that is not its expected shape; the message names
                the variable.
        """
        source = os.environ if env is None else env
        values: dict[str, Any] = {}

        def raw(*names: str) -> tuple[str, str] | None:
            for name in names:
                text = source.get(_ENV_PREFIX + name, "").strip()
                if text:
                    return _ENV_PREFIX + name, text
            return None

        def read_json(name: str, text: str) -> Any:
            try:
                return json.loads(text, parse_float=Decimal, parse_int=Decimal)
            except json.JSONDecodeError as exc:
                msg = f"{name} must be a JSON object, found {text!r}: {exc}"
                raise ValueError(msg) from exc

        found = raw("ENABLED")
        if found is not None:
            name, text = found
            if text.lower() not in _TRUE | _FALSE:
                msg = f"{name} must be true or false, found {text!r}"
                raise ValueError(msg)
            values["enabled"] = text.lower() in _TRUE
        found = raw("DEFAULT_REGIME")
        if found is not None:
            values["default_regime"] = found[1]
        for field, var in (
            ("default_budget_multiplier", "DEFAULT_BUDGET_MULTIPLIER"),
            ("default_capacity_multiplier", "DEFAULT_CAPACITY_MULTIPLIER"),
            ("min_multiplier", "MIN_MULTIPLIER"),
            ("max_multiplier", "MAX_MULTIPLIER"),
            ("max_symbol_pct_equity", "MAX_SYMBOL_PCT_EQUITY"),
            ("max_symbol_notional", "MAX_SYMBOL_NOTIONAL"),
            ("max_gross_exposure", "MAX_GROSS_EXPOSURE"),
        ):
            found = raw(var)
            if found is not None:
                values[field] = found[1]
        for field, names, normalize in (
            ("strategy_notional_caps", ("STRATEGY_NOTIONAL_CAPS",), _lower),
            ("symbol_notional_caps", ("SYMBOL_NOTIONAL_CAPS",), _upper),
            ("correlation_group_caps", ("CORRELATION_GROUP_CAPS", "CORRELATION_GROUP_NOTIONAL_CAPS"), _lower),
            ("regime_budget_multipliers", ("REGIME_BUDGET_MULTIPLIERS",), _lower),
            ("regime_capacity_multipliers", ("REGIME_CAPACITY_MULTIPLIERS",), _lower),
        ):
            found = raw(*names)
            if found is not None:
                try:
                    values[field] = _decimal_map(read_json(*found), normalize)
                except (TypeError, ArithmeticError) as exc:
                    msg = f"{found[0]}: {exc}"
                    raise ValueError(msg) from exc
        found = raw("SYMBOL_CORRELATION_GROUPS", "CORRELATION_SYMBOL_GROUPS")
        if found is not None:
            groups = read_json(*found)
            if not isinstance(groups, Mapping):
                msg = f"{found[0]} must be a JSON object of symbol -> group, found {found[1]!r}"
                raise ValueError(msg)
            values["symbol_correlation_groups"] = {str(k): str(v) for k, v in groups.items()}
        return cls(**values)


class AccountConfig(BaseModel):
    """The account stage: which account, its starting equity, and when buffered intents are released.

    ``release_lateness_s`` bounds how long the account stage waits for intents from other symbol
    partitions before it processes a window in canonical order. ``None`` (the replay default) holds
    everything until the end of input, which makes the output independent of arrival order exactly; a
    live engine sets a few seconds of event time. A replay whose input is split into several shards
    (several processes, or ``--shards``) knows every symbol up front and, with ``None``, releases by
    frontier instead: an input is processed once every symbol's aggregation has promised nothing earlier
    is still to come, so the account stage works while the input is read and the outputs stay exactly
    those of holding everything to the end.

    Attributes:
        account: The account stage's account label: on its account view and on portfolio intents and
            their orders; ``torghut run`` reads this account's ``trading_control`` row, and with the
            ``alpaca`` adapter replaces the label with Alpaca's (``TRADING_ACCOUNT_LABEL``, else the mode).
        starting_equity: Cash of the paper account at the start of a run (no positions).
        release_lateness_s: An input is processed, in canonical order, once it is this many seconds of
            event time older than the newest input seen; unset: everything waits for the end of input
            (``torghut run`` defaults to 2).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str = "paper"
    starting_equity: Decimal = Field(default=Decimal(100_000), gt=0)
    release_lateness_s: int | None = Field(default=None, ge=0)

"""Alpaca connection settings, read once from torghut's environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

TradingMode = Literal["paper", "live"]

_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"", "0", "false", "f", "no", "n", "off"})


class AlpacaConfig(BaseModel):
    """How to reach Alpaca and for which account; the keys are redacted in ``repr`` and ``str``.

    Attributes:
        api_key_id: ``APCA_API_KEY_ID``.
        api_secret_key: ``APCA_API_SECRET_KEY``.
        base_url: ``APCA_API_BASE_URL`` without a trailing ``/v2`` (alpaca-py adds it); None means
            Alpaca's own paper or live URL for the mode.
        trading_mode: ``TRADING_MODE``: ``paper`` or ``live``.
        live_enabled: ``TRADING_LIVE_ENABLED``; live orders are refused unless it is true.
        account_label: ``TRADING_ACCOUNT_LABEL``, defaulting to the mode.
        request_timeout_s: Connect and read timeout of every broker call
            (``ALPACA_REQUEST_TIMEOUT_S``, an engine addition; alpaca-py itself has none).

    >>> cfg = AlpacaConfig.from_env({"APCA_API_KEY_ID": "AK", "APCA_API_SECRET_KEY": "s3cr3t",
    ...                              "APCA_API_BASE_URL": "http://127.0.0.1:8711/v2/"})
    >>> cfg.base_url, cfg.account_label, cfg.paper
    ('http://127.0.0.1:8711', 'paper', True)
    >>> "s3cr3t" in repr(cfg)
    False
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key_id: SecretStr
    api_secret_key: SecretStr
    base_url: str | None = None
    trading_mode: TradingMode = "paper"
    live_enabled: bool = False
    account_label: str = ""
    request_timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("api_key_id", "api_secret_key")
    @classmethod
    def _non_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            msg = "must not be empty: set APCA_API_KEY_ID and APCA_API_SECRET_KEY"
            raise ValueError(msg)
        return value

    @field_validator("base_url")
    @classmethod
    def _strip_version(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = value.strip().rstrip("/")
        return url.removesuffix("/v2").rstrip("/")

    @model_validator(mode="after")
    def _default_label(self) -> AlpacaConfig:
        if not self.account_label:
            object.__setattr__(self, "account_label", self.trading_mode)
        return self

    @property
    def paper(self) -> bool:
        """Whether alpaca-py should target paper trading (every mode but ``live``)."""
        return self.trading_mode != "live"

    @property
    def live_blocked(self) -> bool:
        """True in live mode while ``TRADING_LIVE_ENABLED`` is false: no order may be sent."""
        return self.trading_mode == "live" and not self.live_enabled

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AlpacaConfig:
        """Read torghut's variables from ``env`` (default: ``os.environ``).

        Raises:
            ValueError: A key is missing or empty, ``TRADING_MODE`` is neither ``paper`` nor ``live``, or
                a boolean or number does not parse; the message names the variable.
        """
        source = os.environ if env is None else env
        mode = source.get("TRADING_MODE", "paper").strip().lower() or "paper"
        if mode not in {"paper", "live"}:
            msg = f"TRADING_MODE must be 'paper' or 'live', got {mode!r}"
            raise ValueError(msg)
        timeout = source.get("ALPACA_REQUEST_TIMEOUT_S", "").strip()
        try:
            timeout_s = float(timeout) if timeout else 10.0
        except ValueError:
            msg = f"ALPACA_REQUEST_TIMEOUT_S must be a number of seconds, got {timeout!r}"
            raise ValueError(msg) from None
        return cls(
            api_key_id=SecretStr(source.get("APCA_API_KEY_ID", "")),
            api_secret_key=SecretStr(source.get("APCA_API_SECRET_KEY", "")),
            base_url=source.get("APCA_API_BASE_URL"),
            trading_mode="live" if mode == "live" else "paper",
            live_enabled=_env_bool(source, "TRADING_LIVE_ENABLED"),
            account_label=source.get("TRADING_ACCOUNT_LABEL", "").strip(),
            request_timeout_s=timeout_s,
        )


def _env_bool(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    msg = f"{name} must be true or false, got {value!r}"
    raise ValueError(msg)

"""AlpacaConfig from torghut's environment variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from torghut.connectors.alpaca import AlpacaConfig

SECRET = "very-secret-value"
BASE = {"APCA_API_KEY_ID": "AKID", "APCA_API_SECRET_KEY": SECRET}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://paper-api.alpaca.markets/v2", "https://paper-api.alpaca.markets"),
        ("https://paper-api.alpaca.markets/v2/", "https://paper-api.alpaca.markets"),
        ("http://127.0.0.1:8711", "http://127.0.0.1:8711"),
        ("", None),
    ],
)
def test_base_url_loses_a_trailing_v2(url: str, expected: str | None) -> None:
    assert AlpacaConfig.from_env({**BASE, "APCA_API_BASE_URL": url}).base_url == expected


def test_defaults_are_paper_with_the_mode_as_label() -> None:
    cfg = AlpacaConfig.from_env(BASE)
    assert (cfg.trading_mode, cfg.paper, cfg.live_enabled, cfg.account_label) == (
        "paper",
        True,
        False,
        "paper",
    )
    assert cfg.request_timeout_s == 10.0
    assert not cfg.live_blocked


def test_live_mode() -> None:
    env = {
        **BASE,
        "TRADING_MODE": "LIVE",
        "TRADING_ACCOUNT_LABEL": "acct-1",
        "ALPACA_REQUEST_TIMEOUT_S": "2.5",
    }
    cfg = AlpacaConfig.from_env(env)
    assert (cfg.paper, cfg.account_label, cfg.request_timeout_s) == (False, "acct-1", 2.5)
    assert cfg.live_blocked
    assert not AlpacaConfig.from_env({**env, "TRADING_LIVE_ENABLED": "true"}).live_blocked


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"APCA_API_KEY_ID": "AKID"}, "APCA_API_SECRET_KEY"),
        ({**BASE, "APCA_API_KEY_ID": "  "}, "APCA_API_KEY_ID"),
        ({**BASE, "TRADING_MODE": "sandbox"}, "TRADING_MODE must be 'paper' or 'live', got 'sandbox'"),
        ({**BASE, "TRADING_LIVE_ENABLED": "maybe"}, "TRADING_LIVE_ENABLED must be true or false"),
        ({**BASE, "ALPACA_REQUEST_TIMEOUT_S": "soon"}, "ALPACA_REQUEST_TIMEOUT_S must be a number"),
        ({**BASE, "ALPACA_REQUEST_TIMEOUT_S": "0"}, "greater than 0"),
    ],
)
def test_bad_environment_fails_with_the_variable_named(env: dict[str, str], message: str) -> None:
    with pytest.raises((ValueError, ValidationError)) as info:
        AlpacaConfig.from_env(env)
    assert message in str(info.value)
    assert SECRET not in str(info.value)


def test_secrets_are_redacted_and_config_is_frozen() -> None:
    cfg = AlpacaConfig.from_env(BASE)
    for text in (repr(cfg), str(cfg), cfg.model_dump_json(), repr(cfg.model_dump())):
        assert SECRET not in text
        assert "AKID" not in text
    assert cfg.api_secret_key.get_secret_value() == SECRET
    with pytest.raises(ValidationError):
        cfg.trading_mode = "live"
    with pytest.raises(ValidationError):
        AlpacaConfig(api_key_id="a", api_secret_key="b", unknown=1)  # type: ignore[arg-type, call-arg]


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in BASE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TRADING_ACCOUNT_LABEL", "from-env")
    assert AlpacaConfig.from_env().account_label == "from-env"

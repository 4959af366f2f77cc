"""A throw-away third-party distribution with ``torghut.strategies`` entry points, made at test time."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

EXPLODING_SOURCE = '''
from decimal import Decimal

from torghut.strategies.base import IntentDraft, StrategyParams, StrategyPlugin


class Exploding(StrategyPlugin[StrategyParams, int]):
    """Raises on vectors flagged "boom"; otherwise sells and counts its bars."""

    strategy_type = "exploding"
    version = "0.1.0"
    params_model = StrategyParams
    required_features = ("price", "signal_quality_flag")
    warmup_bars = 0

    def initial_state(self, params):
        return 0

    def evaluate(self, params, features, state):
        if features.get("signal_quality_flag") == "boom":
            raise RuntimeError("boom")
        return (IntentDraft("sell", Decimal("0.5"), Decimal(10), ("exploding_ok",)),), state + 1


class NotAPlugin:
    pass
'''


def install_fake_distribution(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    entry_points: dict[str, str],
    *,
    dist: str = "torghut-fake-plugins",
    source: str = EXPLODING_SOURCE,
) -> str:
    """Write ``<dist>-0.1.dist-info`` and a module, put them on ``sys.path``; return the module name.

    ``entry_points`` maps entry point names to attributes of the module (``"Exploding"``), or to a full
    ``module:attr`` value when it contains a colon.
    """
    module = f"torghut_fake_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{module}.py").write_text(source)
    info = tmp_path / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = [
        f"{name} = {value if ':' in value else f'{module}:{value}'}" for name, value in entry_points.items()
    ]
    (info / "entry_points.txt").write_text("[torghut.strategies]\n" + "\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return module

"""The fuzz budget recorder: how many inputs each fuzz test tried, written to ``fuzz_budget.json``.

Every hypothesis fuzz test has a fixed, derandomized budget. Its body calls ``TALLY.tick(name)``; the
outer pytest test runs it through :meth:`FuzzReport.run`, which asserts the budget was actually spent
(a strategy that filtered everything away would otherwise pass vacuously) and records the count and
the rate in ``<pytest basetemp>/fuzz_budget.json``, also shown in the terminal summary.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings

# Budgets are explicit so CI is deterministic and bounded.
TALLY: Counter[str] = Counter()
_RECORDS: dict[str, dict[str, Any]] = {}


def fuzz_settings(max_examples: int, *, shrink: bool = True) -> settings:
    """Deterministic, bounded hypothesis settings for one fuzz test."""
    phases = [Phase.explicit, Phase.generate, *([Phase.shrink] if shrink else [])]
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


class FuzzReport:
    """Runs counted hypothesis tests and records their budgets."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def run(self, name: str, test: Callable[[], None], budget: int, **extra: Any) -> int:
        """Run ``test`` (a ``@given`` function ticking ``name``); assert it tried ``budget`` inputs."""
        prefix = f"{name}."
        for key in [key for key in TALLY if key == name or key.startswith(prefix)]:
            del TALLY[key]
        started = time.perf_counter()
        test()
        elapsed = time.perf_counter() - started
        tried = TALLY[name]
        # Sub-tallies such as "<name>.known_..." count inputs that hit a known, separately tested defect.
        extra.update({key.removeprefix(prefix): n for key, n in TALLY.items() if key.startswith(prefix)})
        self.record(name, tried=tried, budget=budget, elapsed_s=elapsed, **extra)
        assert tried >= budget, f"{name}: only {tried} of {budget} inputs were tried"
        return tried

    def record(self, name: str, *, tried: int, elapsed_s: float, **extra: Any) -> None:
        """Record one fuzz run (also used for non-hypothesis runs such as the replay)."""
        _RECORDS[name] = {
            "tried": tried,
            "elapsed_s": round(elapsed_s, 3),
            "per_s": round(tried / elapsed_s, 1) if elapsed_s > 0 else None,
            **extra,
        }
        self.path.write_text(json.dumps(_RECORDS, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def fuzz_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzReport]:
    """The session's fuzz report, written to ``<basetemp>/fuzz_budget.json``."""
    yield FuzzReport(tmp_path_factory.getbasetemp() / "fuzz_budget.json")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how many inputs each fuzz test tried."""
    if not _RECORDS:
        return
    terminalreporter.section("fuzz budgets (inputs tried)")
    for name, record in sorted(_RECORDS.items()):
        details = ", ".join(f"{k}={v}" for k, v in record.items() if k != "tried")
        terminalreporter.write_line(f"{name}: {record['tried']} ({details})")

"""Per-call cost of the engine's metrics: pre-bound children against ``.labels(...)`` on every call.

Run: ``.venv/bin/python -m benchmarks.bench_metrics [--calls 1000000]``. Prints nanoseconds per call for
``Counter.inc`` and ``Histogram.observe`` through a child bound once (what :mod:`torghut.metrics` hands the
hot path), through ``StrategyMetrics.for_strategy`` on every call (a cached dict lookup), and through
``.labels(strategy_id)`` on every call. Uses a private registry, so nothing it counts is exported.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from torghut.metrics import EngineMetrics


def per_call_ns(fn: Callable[[], object], calls: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1_000_000)
    args = parser.parse_args()

    metrics = EngineMetrics(CollectorRegistry())
    family = metrics.strategies
    bound = family.for_strategy("bench")
    # The lambdas are deliberate: the lookup itself is what is being measured on every call.
    cases: dict[str, Callable[[], object]] = {
        "counter pre-bound .inc()": bound.events.inc,
        "counter for_strategy(id).events.inc()": lambda: family.for_strategy("bench").events.inc(),  # noqa: PLW0108
        "counter .labels(id).inc()": lambda: family.events.labels("bench").inc(),
        "histogram pre-bound .observe()": lambda: bound.latency.observe(0.42),
        "histogram .labels(id).observe()": lambda: family.latency.labels("bench").observe(0.42),
        "dead_letter(stage, reason).inc()": lambda: metrics.dead_letter("parse", "invalid_json: x").inc(),
    }
    width = max(map(len, cases))
    for name, fn in cases.items():
        per_call_ns(fn, min(args.calls, 10_000))  # warm up
        print(f"{name:<{width}}  {per_call_ns(fn, args.calls):8.1f} ns/call")


if __name__ == "__main__":
    main()

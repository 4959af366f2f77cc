"""Run raw records through the engine's own decoding step (``strategies_stage``, no strategy enabled)."""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, cluster_main

from torghut.contracts.features import FeatureVectorV3
from torghut.contracts.signal import DeadLetter, InputPosition
from torghut.dataflow.build import group_by_symbol
from torghut.operators.strategies import StrategyRuntime, strategies_stage
from torghut.strategies.registry import default_registry


def decode_in_flow(
    items: list[tuple[object, InputPosition]], *, workers: int, batch_size: int
) -> tuple[list[FeatureVectorV3], list[DeadLetter]]:
    """Return the feature vectors and the dead letters the flow's decoding step makes of ``items``."""
    flow = Dataflow("decode_flow_test")
    raw = op.input("in", flow, TestingSource(items, batch_size=batch_size))
    keyed = op.flat_map_batch("group", raw, group_by_symbol)
    out = strategies_stage("strategies", keyed, StrategyRuntime((), default_registry()), emit_features=True)
    features: list[FeatureVectorV3] = []
    letters: list[DeadLetter] = []
    op.output("features", out.features, TestingSink(features))
    op.output("dead_letters", out.dead_letters, TestingSink(letters))
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return features, letters

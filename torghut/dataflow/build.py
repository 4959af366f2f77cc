"""Builds the engine's bytewax flow from one specification: the only place that wires steps.

The replay flow (strategy half of the graph)::

    source ─ parse ─ normalize ─ key(symbol) ─ strategies ─▶ intents, strategy errors
               └──────────┴──── dead letters

Every stream ends in a part-file sink; :mod:`torghut.dataflow.replay` merges them canonically.
"""

from __future__ import annotations

from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from pydantic import BaseModel, ConfigDict

from torghut.connectors.part_files import CountSink, PartFileSink
from torghut.connectors.replay_file import ProgressCallback, ReplayFileSource
from torghut.contracts.features import FeatureVectorV3
from torghut.dataflow.config import EngineConfig
from torghut.operators.normalize import normalize_stage
from torghut.operators.parse import parse_stage
from torghut.operators.strategies import StrategyRuntime, strategies_stage
from torghut.recovery.replay_digest import encode_dead_letter, encode_event_record, encode_feature
from torghut.strategies.catalog import load_catalog
from torghut.strategies.registry import default_registry

FLOW_ID = "torghut_replay"


class FlowSpec(BaseModel):
    """Everything a worker process needs to build the same flow as every other worker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    signals: Path
    catalog: Path
    parts_dir: Path
    batch_size: int = 1000
    shards: int = 8
    emit_features: bool = False
    engine: EngineConfig = EngineConfig()


def _symbol(fv: FeatureVectorV3) -> str:
    return fv.symbol


def build_replay_flow(spec: FlowSpec, progress: ProgressCallback | None = None) -> Dataflow:
    """Wire source, parse, normalize, strategies and the output sinks for a replay."""
    registry = default_registry()
    catalog = load_catalog(spec.catalog, registry)
    runtime = StrategyRuntime(catalog.definitions, registry, spec.engine.runtime)
    parts = spec.parts_dir

    flow = Dataflow(FLOW_ID)
    source = ReplayFileSource(spec.signals, shards=spec.shards, batch_size=spec.batch_size, progress=progress)
    raw = op.input("source", flow, source)
    parsed = parse_stage("parse", raw)
    normalized = normalize_stage("normalize", parsed.envelopes)
    keyed = op.key_on("key_symbol", normalized.features, _symbol)
    strategies = strategies_stage("strategies", keyed, runtime)
    dead_letters = op.merge("dead_letters", parsed.dead_letters, normalized.dead_letters)

    op.output("out_intents", strategies.intents, PartFileSink(parts, "intents", encode_event_record))
    op.output(
        "out_strategy_errors", strategies.errors, PartFileSink(parts, "strategy_errors", encode_event_record)
    )
    op.output("out_dead_letters", dead_letters, PartFileSink(parts, "dead_letters", encode_dead_letter))
    op.output("count_features", normalized.features, CountSink(parts, "features"))
    if spec.emit_features:
        op.output("out_features", normalized.features, PartFileSink(parts, "features", encode_feature))
    return flow

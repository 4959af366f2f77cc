"""Builds the engine's bytewax flow from one specification: the only place that wires steps.

The graph (``architecture.md``)::

    source ─ key(symbol) ─ [parse · normalize · strategies] ─ aggregate ─ key(account) ─ account ─▶ records
                                      └──── dead letters                (allocate · policy · risk ·
                                                                          firewall · execute)

Each source batch is grouped by routing symbol (:func:`~torghut.operators.decode.routing_symbol`, the
symbol the parser reads, found without decoding): one keyed item per symbol and batch moves to the
symbol's worker as bytes (bytewax's per-item costs, crossing processes above all, are paid per group);
there one stateful step (``strategies.evaluate``) decodes them (parse and normalize, fused in
:func:`~torghut.operators.decode.decode_record`) and evaluates the strategies per symbol batch. Fusing
the stages saves four bytewax steps per event, which cost more than the stages' own work.

In legacy mode (``TRADING_STRATEGY_RUNTIME_MODE=legacy``) no strategy runs: every event takes torghut's
legacy MACD/RSI decisions, which go straight to the account stage. :func:`wire_engine` wires
everything between a raw-record stream and the output records, so the replay and the service share it;
:func:`build_replay_flow` adds the replay file source and the part-file sinks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeGuard

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from pydantic import BaseModel, ConfigDict

from torghut.connectors.broker import ExecutionAdapter
from torghut.connectors.part_files import CountSink, Route, RoutedPartFileSink
from torghut.connectors.replay_file import (
    REPLAY_BATCH_SIZE,
    ProgressCallback,
    ReplayFileSource,
    load_symbol_keys,
    read_json_array,
)
from torghut.contracts.account import AccountView
from torghut.contracts.decision import Rejection, TradeDecision
from torghut.contracts.execution import ExecutionReport
from torghut.contracts.features import FeatureVectorV3
from torghut.contracts.portfolio import DroppedIntents, OrderIntent, PortfolioIntent, SymbolIntent
from torghut.contracts.signal import DeadLetter, RawRecord
from torghut.contracts.strategy import StrategyDefinition, StrategyError, StrategyIntent
from torghut.dataflow.config import EngineConfig
from torghut.dataflow.observe import observe_record
from torghut.operators.account import AccountBatch, AccountFeed, AccountPipeline, IngestMark, account_stage
from torghut.operators.aggregate import (
    AggregateStageOutput,
    SymbolWindowAggregator,
    aggregate_stage,
    window_end_for,
)
from torghut.operators.control import ControlSource
from torghut.operators.decode import routing_symbol
from torghut.operators.legacy import legacy_decisions, runtime_enabled
from torghut.operators.strategies import StrategyRuntime, strategies_stage
from torghut.operators.trading_config import TradingConfig
from torghut.recovery.replay_digest import encode_dead_letter, encode_event_record, encode_feature
from torghut.strategies.catalog import Catalog, load_catalog
from torghut.strategies.registry import StrategyRegistry, default_registry

FLOW_ID = "torghut_replay"

#: Output streams and the record type each holds, in the order summaries list them.
STREAM_TYPES: dict[str, type] = {
    "intents": StrategyIntent,
    "strategy_errors": StrategyError,
    "dead_letters": DeadLetter,
    "symbol_intents": SymbolIntent,
    "dropped_intents": DroppedIntents,
    "portfolio_intents": PortfolioIntent,
    "decisions": TradeDecision,
    "orders": OrderIntent,
    "rejections": Rejection,
    "executions": ExecutionReport,
    "account": AccountView,
}


def output_routes(*, emit_features: bool) -> dict[type, Route]:
    """Map each output record type to its stream name and canonical encoder."""
    routes: dict[type, Route] = {
        record_type: (stream, encode_event_record) for stream, record_type in STREAM_TYPES.items()
    }
    routes[DeadLetter] = ("dead_letters", encode_dead_letter)
    if emit_features:
        routes[FeatureVectorV3] = ("features", encode_feature)
    return routes


class FlowSpec(BaseModel):
    """Everything a worker process needs to build the same flow as every other worker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    signals: Path
    catalog: Path
    parts_dir: Path
    batch_size: int = REPLAY_BATCH_SIZE
    #: Symbol shards of the input; ``None`` means one per process. Outputs do not depend on it (every
    #: symbol stays in one shard, in file order), but a recovery store must be resumed with the same value.
    shards: int | None = None
    emit_features: bool = False
    engine: EngineConfig = EngineConfig()
    #: bytewax recovery: snapshot every ``snapshot_interval_s`` seconds into this directory and resume
    #: from it; ``None`` runs without recovery.
    recovery_dir: Path | None = None
    snapshot_interval_s: float = 1.0


@dataclass(frozen=True)
class EngineStreams:
    """What :func:`wire_engine` returns: every output record, and the normalized vectors or their count."""

    #: The feature vectors, only when wired with ``emit_features``.
    features: Stream[FeatureVectorV3]
    #: How many vectors each symbol batch normalized.
    normalized: Stream[int]
    records: Stream[Any]


class LegacyDecider:
    """Torghut's legacy decisions for one feature vector (legacy mode and the runtime's fallback).

    Sizing uses the account's starting equity: a replay's decisions depend on the input and configuration
    alone. In live mode the account stage sizes them again against the broker's account, as torghut sizes
    with the account snapshot it took last (:func:`~torghut.operators.legacy.resize_legacy_decision`).
    """

    def __init__(
        self, definitions: Sequence[StrategyDefinition], equity: Decimal, trading: TradingConfig
    ) -> None:
        self._definitions = tuple(d for d in definitions if d.enabled)
        self._equity = equity
        self._trading = trading

    def __call__(self, fv: FeatureVectorV3) -> list[TradeDecision]:
        """Return the legacy decisions for ``fv`` (possibly none)."""
        return legacy_decisions(fv, self._definitions, self._equity, self._trading)


def raw_symbol(item: RawRecord) -> str:
    """The symbol a raw ``(record, position)`` item is routed by (:func:`routing_symbol`)."""
    return routing_symbol(item[0])


def group_by_symbol(batch: list[RawRecord]) -> list[tuple[str, list[RawRecord]]]:
    """Group a source batch by routing symbol: one keyed item per symbol, its records in batch order.

    bytewax's per-item costs (the key step, and pickling and sending every item that crosses to another
    process) are paid once per symbol and batch instead of once per record.

    >>> from torghut.contracts.signal import InputPosition
    >>> batch = [(b'{"symbol":"A"}', InputPosition("doc", "line", n)) for n in range(2)]
    >>> batch.insert(1, (b'{"symbol":"B"}', InputPosition("doc", "line", 9)))
    >>> [(symbol, [p.offset for _, p in group]) for symbol, group in group_by_symbol(batch)]
    [('A', [0, 1]), ('B', [9])]
    """
    groups: dict[str, list[RawRecord]] = {}
    for item in batch:
        symbol = routing_symbol(item[0])
        group = groups.get(symbol)
        if group is None:
            groups[symbol] = [item]
        else:
            group.append(item)
    return list(groups.items())


class GroupByKey:
    """:func:`group_by_symbol`, each group keyed by its symbol's state key (the symbol when it has none).

    A split replay input places symbols on workers by choosing their keys
    (:func:`~torghut.connectors.replay_file.load_symbol_keys`); the key only places state.

    >>> from torghut.contracts.signal import InputPosition
    >>> batch = [(b'{"symbol":"A"}', InputPosition("d", "l", 0)), (b"{}", InputPosition("d", "l", 1))]
    >>> [key for key, _ in GroupByKey({"A": "A#1"})(batch)]
    ['A#1', '']
    """

    def __init__(self, keys: Mapping[str, str]) -> None:
        self._keys = dict(keys)

    def __call__(self, batch: list[RawRecord]) -> list[tuple[str, list[RawRecord]]]:
        """Group ``batch`` as :func:`group_by_symbol` does and key each group by its symbol's key."""
        keys = self._keys
        return [(keys.get(symbol, symbol), group) for symbol, group in group_by_symbol(batch)]


def _is_symbol_output(item: object) -> TypeGuard[SymbolIntent | DroppedIntents]:
    return isinstance(item, SymbolIntent | DroppedIntents)


def account_batch(batch: list[AggregateStageOutput]) -> list[AccountBatch]:
    """The account stage's records among a batch of aggregation outputs, as one :class:`AccountBatch`."""
    one = AccountBatch.of(batch)
    return [] if one is None else [one]


class IngestMarker:
    """Turns a batch of normalized features into one :class:`IngestMark`: its last row in cursor order."""

    def __init__(self, source: str, window_s: int, allowed_lateness_s: int) -> None:
        self._source = source
        self._window_s = window_s
        self._lateness = timedelta(seconds=allowed_lateness_s)

    def __call__(self, batch: list[FeatureVectorV3]) -> list[IngestMark]:
        """Return the batch's greatest ``(event_ts, symbol, seq)`` as a mark (none for an empty batch)."""
        if not batch:
            return []
        last = max(batch, key=lambda fv: (fv.event_ts, fv.symbol, -1 if fv.seq is None else fv.seq))
        due = window_end_for(last.event_ts, self._window_s) + self._lateness
        return [IngestMark(self._source, last.event_ts, last.symbol, last.seq, due)]


def wire_engine(
    raw: Stream[RawRecord],
    catalog: Catalog,
    registry: StrategyRegistry,
    engine: EngineConfig,
    *,
    cursor_source: str | None = None,
    adapter: ExecutionAdapter | None = None,
    control: ControlSource | None = None,
    emit_features: bool = False,
    symbol_keys: Mapping[str, str] | None = None,
    account_feed: AccountFeed | None = None,
) -> EngineStreams:
    """Wire parse, normalize, the decision path and the account stage after ``raw``.

    Args:
        raw: ``(raw_row, InputPosition)`` records from any source.
        catalog: The strategy catalog.
        registry: The installed strategy plugins.
        engine: The configuration tree.
        cursor_source: When set, the account stage also receives ingest marks and emits
            :class:`~torghut.operators.account.IngestCheckpoint` records for this cursor source (the
            service commits them to ``trade_cursor``); the replay leaves it unset.
        adapter: The execution adapter orders go to; None keeps the account stage's paper adapter.
        control: The runtime trading control the account stage reads before every order (the service's
            ``trading_control`` table); None keeps the static configuration alone (the replay).
        emit_features: Also return every normalized feature vector in ``features``.
        symbol_keys: Every symbol of the input with its state key, when known up front (a split replay
            input). Symbols are keyed by it; on the plugin path without the legacy fallback, the account
            stage then also releases its inputs by frontier while the input is read (outputs unchanged).
        account_feed: The broker's account, read by the account stage at the start of every release (the
            service in live mode); None keeps the stage's own ledger alone (the replay).
    """
    trading = engine.trading
    account = engine.account.account
    legacy = LegacyDecider(catalog.definitions, engine.account.starting_equity, trading)
    marker = None
    if cursor_source is not None:
        aggregation = engine.aggregation
        marker = IngestMarker(cursor_source, aggregation.window_s, aggregation.allowed_lateness_s)
    # Raw records go to their symbol's worker before decoding (bytes cross between processes, not
    # feature vectors); one keyed step then decodes, normalizes and evaluates them.
    grouping = group_by_symbol if symbol_keys is None else GroupByKey(symbol_keys)
    keyed_raw = op.flat_map_batch("group_by_symbol", raw, grouping)
    plugin_mode = runtime_enabled(
        trading.trading_strategy_runtime_mode, trading.trading_strategy_scheduler_enabled
    )
    if plugin_mode:
        runtime = StrategyRuntime(catalog.definitions, registry, engine.runtime)
        fallback = legacy if trading.trading_strategy_runtime_fallback_legacy else None
    else:  # legacy mode: no strategy runs, so every event takes torghut's legacy decisions
        runtime = StrategyRuntime((), registry, engine.runtime)
        fallback = legacy
    strategies = strategies_stage(
        "strategies", keyed_raw, runtime, fallback=fallback, emit_features=emit_features, marker=marker
    )
    outputs: list[Stream[Any]] = [strategies.dead_letters, strategies.errors]
    # Release by frontier needs every symbol up front and account inputs that all come from windows (a
    # legacy decision can be of any event time), and it replaces the release lateness.
    frontier = (
        symbol_keys is not None
        and plugin_mode
        and fallback is None
        and marker is None
        and engine.account.release_lateness_s is None
    )
    if plugin_mode:
        aggregated = aggregate_stage(
            "aggregate", strategies.ticks, SymbolWindowAggregator(engine.aggregation), progress=frontier
        )
        outputs += [strategies.intents, op.filter("symbol_outputs", aggregated, _is_symbol_output)]
        to_account: Stream[Any] = op.flat_map_batch("to_account", aggregated, account_batch)
    else:
        to_account = strategies.decisions
    if marker is not None:
        to_account = op.merge("to_account_with_marks", to_account, strategies.marks)

    pipeline = AccountPipeline(
        definitions=catalog.definitions,
        trading=trading,
        allocation=engine.allocation,
        account=engine.account,
        config_hash=engine.fingerprint(),
        adapter=adapter,
        control=control,
        symbols=[s for s in symbol_keys if s] if frontier and symbol_keys is not None else None,
        account_feed=account_feed,
    )
    keyed_account = op.key_on("key_account", to_account, lambda _: account)
    outputs.append(account_stage("account", keyed_account, pipeline))
    records = op.merge("records", *outputs)
    op.inspect("observe", records, observe_record)
    return EngineStreams(strategies.features, strategies.normalized, records)


def input_split_dir(spec: FlowSpec) -> Path | None:
    """Where the input's per-shard files are (``split_shards``), for a JSONL input of several shards."""
    if (spec.shards or 1) > 1 and read_json_array(spec.signals) is None:
        return spec.parts_dir / "input-shards"
    return None


def build_replay_flow(spec: FlowSpec, progress: ProgressCallback | None = None) -> Dataflow:
    """Wire the replay file source, the engine and the part-file sinks."""
    registry = default_registry()
    catalog = load_catalog(spec.catalog, registry)
    flow = Dataflow(FLOW_ID)
    split_dir = input_split_dir(spec)
    source = ReplayFileSource(
        spec.signals,
        shards=spec.shards or 1,
        batch_size=spec.batch_size,
        progress=progress,
        split_dir=split_dir,
        account=spec.engine.account.account,
    )
    streams = wire_engine(
        op.input("source", flow, source),
        catalog,
        registry,
        spec.engine,
        emit_features=spec.emit_features,
        symbol_keys=None if split_dir is None else load_symbol_keys(split_dir),
    )
    records = streams.records
    if spec.emit_features:
        records = op.merge("records_and_features", records, streams.features)
    op.output(
        "out", records, RoutedPartFileSink(spec.parts_dir, output_routes(emit_features=spec.emit_features))
    )
    # One keyed total per batch goes to the count's one partition (not one count per symbol batch).
    counts = op.flat_map_batch("sum_count_features", streams.normalized, _batch_total)
    op.output("count_features", counts, CountSink(spec.parts_dir, "features"))
    return flow


def _batch_total(counts: list[int]) -> list[tuple[str, int]]:
    return [("features", sum(counts))]

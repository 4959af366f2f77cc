"""The account stage: allocation, execution policy, risk chain, firewall and execution, in canonical order.

Symbol intents (plugin path), legacy decisions and account events from every symbol partition meet here,
keyed by account. They are buffered and processed in canonical order (event-time window, symbol,
sequence), never in arrival order, so the decisions do not depend on how many workers produced them.
Each symbol intent is allocated against the account, becomes a torghut ``TradeDecision`` (its hash is the
client order id), is shaped by the execution policy, judged by the risk gate chain, and passes the order
firewall, the only path to the execution adapter. Every step's verdict is kept on the decision; a blocked
decision becomes a :class:`~torghut.contracts.decision.Rejection` with the whole trace.

The stage's state is plain immutable data (:class:`AccountState`) that bytewax snapshots.

Orders go to the paper adapter the stage owns (its book is part of the state) unless an
:class:`~torghut.connectors.broker.ExecutionAdapter` is injected (the service's Alpaca adapter). The
paper adapter's fills move the stage's ledger; with an :class:`AccountFeed` (the service in live mode,
:class:`~torghut.dataflow.account_feed.BrokerAccountFeed`) the broker's snapshot, read at the start of a
release, replaces it, and legacy decisions (sized upstream against ``account.starting_equity``) are sized
again against its equity (:func:`~torghut.operators.legacy.resize_legacy_decision`).

Runtime control: when a :class:`~torghut.operators.control.ControlSource` is injected (the service's
``trading_control`` table), it is read at the start of every release and again just before the firewall
evaluates each order, so a kill switch flipped between two events applies to the very next order. Without
one (replays) the firewall sees :data:`~torghut.operators.control.STATIC_CONTROL` and nothing outside the
inputs and the configuration affects a decision.

Ingest checkpoints: when the flow also feeds :class:`IngestMark` records (one per normalized input batch,
see :func:`torghut.dataflow.build.wire_engine`), each release that includes marks ends with one
:class:`IngestCheckpoint`: the greatest ``(event_ts, symbol, seq)`` released. A mark sorts at the end of
its row's aggregation window (``due_ts``), after every account input that row can produce, so the
checkpoint is emitted in the same output batch as, or after, the decisions of every row it covers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from torghut.connectors.broker import ExecutionAdapter
from torghut.connectors.paper import PaperAdapter, PaperBook, PaperCosts
from torghut.contracts.account import AccountSnapshot, AccountView, Fill
from torghut.contracts.decision import DecisionStatus, GateVerdict, Rejection, RejectionStage, TradeDecision
from torghut.contracts.features import optional_decimal
from torghut.contracts.frozen import EMPTY as EMPTY_MAP
from torghut.contracts.frozen import FrozenMap, freeze
from torghut.contracts.portfolio import PortfolioIntent, SymbolIntent, symbol_intent_key
from torghut.contracts.signal import SymbolProgress
from torghut.contracts.strategy import StrategyDefinition
from torghut.metrics import METRICS
from torghut.operators.allocate import AccountLedger, Allocator, AllocatorUsage
from torghut.operators.control import STATIC_CONTROL, ControlSource, ControlState, effective_kill_switch
from torghut.operators.firewall import OrderFirewall
from torghut.operators.legacy import resize_legacy_decision
from torghut.operators.policy import PolicyResult, policy_for_decision, policy_for_intent
from torghut.operators.portfolio_config import AccountConfig, AllocationConfig
from torghut.operators.risk import (
    RiskContext,
    RiskState,
    StrategyLimits,
    record_decision,
    record_order,
    record_order_closed,
    roll_session,
    run_risk_chain,
)
from torghut.operators.trading_config import TradingConfig


@dataclass(frozen=True, slots=True)
class IngestMark:
    """Ingest progress: the input row ``(event_ts, symbol, seq)`` of ``source`` has been normalized.

    Attributes:
        source: The cursor's source name (``clickhouse``).
        event_ts: The row's event time.
        symbol: The row's symbol.
        seq: The row's sequence number, when it has one.
        due_ts: When, in account-stage order, the mark is processed: the end of the row's aggregation
            window plus the aggregation's allowed lateness, so after every symbol intent the row feeds.
    """

    source: str
    event_ts: datetime
    symbol: str
    seq: int | None
    due_ts: datetime

    def cursor_key(self) -> tuple[datetime, str, int]:
        """The order of torghut's ingest cursor: event time, symbol, sequence."""
        return (self.event_ts, self.symbol, -1 if self.seq is None else self.seq)


@dataclass(frozen=True, slots=True)
class IngestCheckpoint:
    """Every input up to ``(cursor_at, cursor_symbol, cursor_seq)`` has been released by the account stage."""

    source: str
    cursor_at: datetime
    cursor_seq: int | None
    cursor_symbol: str


class AccountFeed(Protocol):
    """The broker's account, read by the account stage at the start of a release (live mode)."""

    def read(self) -> AccountSnapshot | None:
        """A new snapshot of the broker's account, or None when none is due (or the read failed)."""
        ...


AccountInput = SymbolIntent | TradeDecision | Fill | AccountSnapshot | IngestMark | SymbolProgress
AccountOutput = tuple[str, Any]


@dataclass(frozen=True, slots=True)
class AccountBatch:
    """One batch of aggregation outputs bound for the account stage, as one record.

    A worker whose symbols' account lives on another process sends it one record per batch instead of one
    per intent and per symbol's progress: each record that crosses between processes is pickled (twice, by
    timely) and unpickled, and one pickle of many intents shares their classes and costs far less.
    :func:`unbatch` restores the records: the inputs in order, then each symbol's progress bound.
    """

    inputs: tuple[SymbolIntent | TradeDecision, ...]
    #: The batch's :class:`SymbolProgress` bounds, by symbol (the greatest of each symbol's).
    bounds: FrozenMap[str, datetime] = EMPTY_MAP

    @classmethod
    def of(cls, batch: Iterable[object]) -> AccountBatch | None:
        """The account's records among ``batch`` (intents, decisions, progress) as one; None without any.

        Progress goes after every intent of the batch: a bound that arrives later than before only releases
        later, and the release is exact whenever it happens.
        """
        inputs: list[SymbolIntent | TradeDecision] = []
        bounds: dict[str, datetime] = {}
        for item in batch:
            if type(item) is SymbolProgress:
                known = bounds.get(item.symbol)
                if known is None or item.through > known:
                    bounds[item.symbol] = item.through
            elif type(item) is SymbolIntent or type(item) is TradeDecision:
                inputs.append(item)
        if not inputs and not bounds:
            return None
        return cls(tuple(inputs), FrozenMap(bounds) if bounds else EMPTY_MAP)


def unbatch(items: Iterable[AccountInput | AccountBatch]) -> list[AccountInput]:
    """``items`` with every :class:`AccountBatch` replaced by its records, in order."""
    out: list[AccountInput] = []
    for item in items:
        if type(item) is AccountBatch:
            out.extend(item.inputs)
            out.extend(SymbolProgress(symbol, through) for symbol, through in item.bounds.items())
        else:
            out.append(item)  # type: ignore[arg-type]
    return out


PORTFOLIO_INTENTS = "portfolio_intents"
DECISIONS = "decisions"
ORDERS = "orders"
REJECTIONS = "rejections"
EXECUTIONS = "executions"
ACCOUNT = "account"
ACCOUNT_SNAPSHOTS = "account_snapshots"
CHECKPOINTS = "checkpoints"
ACCOUNT_STREAMS = (PORTFOLIO_INTENTS, DECISIONS, ORDERS, REJECTIONS, EXECUTIONS, ACCOUNT)

STATE_VERSION = 2  # 2: the frontier
_NO_USAGE = AllocatorUsage()


@dataclass(frozen=True, slots=True)
class AccountState:
    """The account stage's snapshot: ledger view, risk counters, paper book, sent ids, pending inputs."""

    view: AccountView
    risk: RiskState
    book: PaperBook | None
    sent_ids: tuple[str, ...]
    pending: tuple[AccountInput, ...] = ()
    usage: AllocatorUsage = _NO_USAGE
    usage_window: datetime | None = None
    released_through: datetime | None = None
    #: Each symbol's latest :class:`SymbolProgress` bound (release by frontier only).
    frontier: FrozenMap[str, datetime] = EMPTY_MAP
    version: int = STATE_VERSION


def canonical_key(item: AccountInput) -> tuple[datetime, str, int, int, str]:
    """The order the account stage processes inputs in: time, symbol, sequence, kind, id."""
    if isinstance(item, SymbolIntent):
        return (item.window_end, item.symbol, item.seq, 1, f"{item.horizon}|{item.direction}")
    if isinstance(item, TradeDecision):
        return (item.event_ts, item.symbol, 0, 2, f"{item.strategy_id}|{item.decision_hash}")
    if isinstance(item, Fill):
        return (item.event_ts, item.symbol, 0, 0, item.client_order_id)
    if isinstance(item, IngestMark):
        return (item.due_ts, item.symbol, -1 if item.seq is None else item.seq, 3, item.source)
    if isinstance(item, SymbolProgress):
        return (item.through, item.symbol, -1, 4, "")
    return (item.event_ts, "", 0, 0, "")


class _Work:
    """The mutable working copy of :class:`AccountState` while one batch is processed."""

    __slots__ = (
        "adapter",
        "checkpoint",
        "firewall",
        "paper",
        "released_through",
        "risk",
        "usage",
        "usage_window",
        "view",
    )

    def __init__(
        self,
        state: AccountState,
        trading: TradingConfig,
        costs: PaperCosts,
        adapter: ExecutionAdapter | None = None,
    ) -> None:
        self.view = state.view
        self.risk = state.risk
        self.usage = state.usage
        self.usage_window = state.usage_window
        self.released_through = state.released_through
        self.checkpoint: IngestMark | None = None
        self.paper: PaperAdapter | None = None
        if adapter is None:
            book = state.book or PaperBook.open(state.view.account, state.view.cash, _EPOCH)
            self.paper = PaperAdapter(book, costs)
            adapter = self.paper
        self.adapter: ExecutionAdapter = adapter
        self.firewall = OrderFirewall(trading, adapter, state.sent_ids)

    @property
    def book(self) -> PaperBook | None:
        """The paper book after this batch (None when an injected adapter executes the orders)."""
        return None if self.paper is None else self.paper.book

    @property
    def fill_count(self) -> int:
        """How many fills the paper adapter produced so far in this batch."""
        return 0 if self.paper is None else len(self.paper.fills)


_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


class AccountPipeline:
    """Processes one account's inputs in canonical order; pure apart from its adapter and control source.

    Args:
        definitions: the catalog, for each strategy's limits and universe.
        trading: torghut's trading switches, limits and gate chain.
        allocation: the allocator's caps and multipliers.
        account: the account label, starting equity and release policy.
        config_hash: recorded in every decision's provenance.
        adapter: the execution adapter the firewall submits to; None (the default) uses the stage's own
            paper adapter, whose book is part of the snapshot.
        control: the runtime trading control, read before every order the firewall evaluates; None (the
            default) means the static configuration alone (replays stay deterministic).
        symbols: every symbol the input holds, when known up front (a split replay input). Inputs are
            then released by frontier: in canonical order, as soon as every symbol's
            :class:`~torghut.contracts.signal.SymbolProgress` bound has passed them (the outputs are
            those of holding everything to the end of input, produced while the input is still read).
            ``release_lateness_s`` must then be unset.
        account_feed: the broker's account (live mode), read at the start of every release: a snapshot
            it returns replaces the ledger's equity, cash, buying power and positions (and the risk
            state's open order count) before the release's inputs are processed, and is emitted (the
            service writes it to ``position_snapshots``). None (the default): the ledger alone, moved by
            the paper adapter's fills.
    """

    def __init__(
        self,
        *,
        definitions: Iterable[StrategyDefinition],
        trading: TradingConfig,
        allocation: AllocationConfig,
        account: AccountConfig,
        config_hash: str,
        adapter: ExecutionAdapter | None = None,
        control: ControlSource | None = None,
        symbols: Iterable[str] | None = None,
        account_feed: AccountFeed | None = None,
    ) -> None:
        self._symbols = None if symbols is None else frozenset(symbols)
        self._account_feed = account_feed
        self._adapter = adapter
        self._control = control
        self._definitions: dict[str, StrategyDefinition] = {d.strategy_id: d for d in definitions}
        self._trading = trading
        self._account = account
        self._allocator = Allocator(allocation)
        self._costs = PaperCosts.from_config(trading)
        self._config_hash = config_hash

    @property
    def holds_until_eof(self) -> bool:
        """Whether every input waits for the end of input (no release lateness, no known symbols)."""
        return self._account.release_lateness_s is None and self._symbols is None

    def initial_state(self) -> AccountState:
        """A flat account holding ``starting_equity`` in cash."""
        equity = self._account.starting_equity
        view = AccountView(self._account.account, equity, equity, equity, session_start_equity=equity)
        return AccountState(view=view, risk=RiskState(), book=None, sent_ids=())

    def on_items(
        self, state: AccountState, items: Sequence[AccountInput]
    ) -> tuple[AccountState, list[AccountOutput]]:
        """Buffer ``items`` and process whatever the release policy allows, in canonical order."""
        if self._symbols is not None:
            return self._release_by_frontier(state, items, self._symbols)
        pending = (*state.pending, *items)
        lateness = self._account.release_lateness_s
        if lateness is None or not pending:
            return dataclasses.replace(state, pending=pending), []
        latest = max(canonical_key(i)[0] for i in pending)
        threshold = latest.timestamp() - lateness
        ready = [i for i in pending if canonical_key(i)[0].timestamp() <= threshold]
        held = tuple(i for i in pending if canonical_key(i)[0].timestamp() > threshold)
        return self._release(dataclasses.replace(state, pending=held), ready, final=False)

    def _release_by_frontier(
        self, state: AccountState, items: Sequence[AccountInput], symbols: frozenset[str]
    ) -> tuple[AccountState, list[AccountOutput]]:
        frontier, released = state.frontier, state.released_through
        inputs: list[AccountInput] = []
        moved: dict[str, datetime] = {}
        for item in items:
            if type(item) is SymbolProgress:
                if item.symbol not in symbols:
                    msg = f"progress of symbol {item.symbol!r}, which the input's symbol list does not hold"
                    raise RuntimeError(msg)
                known = moved.get(item.symbol) or frontier.get(item.symbol)
                if known is None or item.through > known:
                    moved[item.symbol] = item.through
                continue
            at = canonical_key(item)[0]
            if released is not None and at <= released:
                msg = (
                    f"account input of {at.isoformat()} arrived after inputs up to {released.isoformat()} "
                    f"were released: {type(item).__name__} {getattr(item, 'symbol', '')!r} came after its "
                    "symbol's progress bound, so the release order would depend on timing"
                )
                raise RuntimeError(msg)
            inputs.append(item)
        if moved:
            frontier = FrozenMap({**frontier, **moved})
        pending = (*state.pending, *inputs)
        state = dataclasses.replace(state, pending=pending, frontier=frontier)
        if not pending or len(frontier) < len(symbols) or not moved:
            return state, []
        through = min(frontier.values())
        ready: list[AccountInput] = []
        held: list[AccountInput] = []
        for item in pending:
            (ready if canonical_key(item)[0] < through else held).append(item)
        if not ready:
            return state, []
        return self._release(dataclasses.replace(state, pending=tuple(held)), ready, final=False)

    def flush(self, state: AccountState) -> tuple[AccountState, list[AccountOutput]]:
        """Process everything still pending (end of input) and emit the final account view."""
        return self._release(dataclasses.replace(state, pending=()), list(state.pending), final=True)

    def _release(
        self, state: AccountState, ready: list[AccountInput], *, final: bool
    ) -> tuple[AccountState, list[AccountOutput]]:
        self._read_control()  # once per release (torghut's cycle): keeps the gauge and any hook current
        work = _Work(state, self._trading, self._costs, self._adapter)
        outputs: list[AccountOutput] = []
        if self._account_feed is not None:
            snapshot = self._account_feed.read()
            if snapshot is not None:
                work.view = AccountLedger.apply(work.view, snapshot)
                if snapshot.open_orders is not None:
                    work.risk = dataclasses.replace(work.risk, open_orders=snapshot.open_orders)
                outputs.append((ACCOUNT_SNAPSHOTS, snapshot))
        for item in sorted(ready, key=canonical_key):
            outputs.extend(self._process(work, item))
            work.released_through = max(canonical_key(item)[0], work.released_through or _EPOCH)
        if work.checkpoint is not None:
            mark = work.checkpoint
            checkpoint = IngestCheckpoint(mark.source, mark.event_ts, mark.seq, mark.symbol)
            outputs.append((CHECKPOINTS, checkpoint))
        if final:
            outputs.append((ACCOUNT, work.view))
        new_state = AccountState(
            view=work.view,
            risk=work.risk,
            book=work.book,
            sent_ids=work.firewall.snapshot(),
            pending=state.pending,
            usage=work.usage,
            usage_window=work.usage_window,
            released_through=work.released_through,
            frontier=state.frontier,
        )
        return new_state, outputs

    def _process(self, work: _Work, item: AccountInput) -> list[AccountOutput]:
        if isinstance(item, SymbolIntent):
            return self._on_symbol_intent(work, item)
        if isinstance(item, TradeDecision):
            return self._on_decision(work, item)
        if isinstance(item, SymbolProgress):
            return []  # only the frontier release reads progress
        if isinstance(item, IngestMark):
            if work.checkpoint is None or item.cursor_key() > work.checkpoint.cursor_key():
                work.checkpoint = item
            return []
        work.view = AccountLedger.apply(work.view, item)
        return []

    def _on_symbol_intent(self, work: _Work, intent: SymbolIntent) -> list[AccountOutput]:
        self._mark(work, intent.symbol, intent.price, intent.event_ts)
        if work.usage_window != intent.window_end:
            work.usage, work.usage_window = AllocatorUsage(), intent.window_end
        portfolio, work.usage = self._allocator.allocate(work.view, intent, work.usage)
        outputs: list[AccountOutput] = [(PORTFOLIO_INTENTS, portfolio)]
        lead = self._lead(portfolio.source_strategy_ids)
        approved = portfolio.status != "rejected"
        decision = TradeDecision.create(
            strategy_id=lead.strategy_id if lead else (portfolio.source_strategy_ids or ("unknown",))[0],
            symbol=intent.symbol,
            event_ts=intent.event_ts,
            timeframe=intent.horizon,
            action=portfolio.direction,
            qty=portfolio.approved_qty if approved else portfolio.requested_qty,
            rationale=",".join(intent.explain),
            params=_decision_params(intent, portfolio),
            account=portfolio.account,
            provenance=self._provenance(intent),
        )
        verdict = _allocator_verdict(portfolio)
        if verdict.blocks:
            return outputs + _rejected(decision, "allocator", (verdict,))
        policy = policy_for_intent(
            portfolio,
            client_order_id=decision.decision_hash,
            config=self._trading,
            position_qty=work.view.position(intent.symbol),
            strategy_max_notional=lead.max_notional_per_trade if lead else None,
            intent_key=symbol_intent_key(portfolio.account, intent),
        )
        return outputs + self._execute(work, decision, policy, lead, intent.price, (verdict,))

    def _on_decision(self, work: _Work, decision: TradeDecision) -> list[AccountOutput]:
        price = optional_decimal(decision.params.get("price"))
        self._mark(work, decision.symbol, price, decision.event_ts)
        lead = self._definitions.get(decision.strategy_id)
        # The intent is the decision as planned (sized against the starting equity, so it depends on the
        # input and configuration alone); in live mode it is sized against the broker's account.
        intent_key = decision.decision_hash
        if self._account_feed is not None and lead is not None:
            decision = resize_legacy_decision(decision, lead, equity=work.view.equity, config=self._trading)
        policy = policy_for_decision(
            decision,
            config=self._trading,
            position_qty=work.view.position(decision.symbol),
            strategy_max_notional=lead.max_notional_per_trade if lead else None,
            intent_key=intent_key,
        )
        return self._execute(work, decision, policy, lead, price, ())

    def _execute(
        self,
        work: _Work,
        decision: TradeDecision,
        policy: PolicyResult,
        lead: StrategyDefinition | None,
        reference_price: Decimal | None,
        upstream: tuple[GateVerdict, ...],
    ) -> list[AccountOutput]:
        trace = (*upstream, *policy.verdicts)
        order = policy.order
        if order is None:
            return _rejected(decision, "policy", trace)
        context = RiskContext(
            account=work.view,
            config=self._trading,
            strategy=StrategyLimits.from_definition(lead) if lead else None,
            allowlist=_allowlist(lead, decision.symbol),
            reference_price=reference_price,
            state=work.risk,
        )
        outcome = run_risk_chain(order, context)
        trace = (*trace, *outcome.trace)
        work.risk = record_decision(
            work.risk, decision.symbol, decision.event_ts, was_rejected=outcome.approved is None
        )
        if outcome.approved is None:
            return _rejected(decision, "risk", trace)
        fills_before = work.fill_count
        result = work.firewall.submit(outcome.approved, trace, self._read_control())
        if result.report is None:
            return _rejected(decision, "firewall", result.trace)
        work.risk = record_order(work.risk, decision.event_ts)
        if result.report.is_final:
            work.risk = record_order_closed(work.risk)
        if work.paper is not None:
            for fill in work.paper.fills[fills_before:]:
                work.view = AccountLedger.apply(work.view, fill)
        status: DecisionStatus = "filled" if result.report.status == "filled" else "submitted"
        done = dataclasses.replace(decision, status=status, gate_trace=result.trace)
        return [(DECISIONS, done), (ORDERS, outcome.approved), (EXECUTIONS, result.report)]

    def _read_control(self) -> ControlState:
        control = STATIC_CONTROL if self._control is None else self._control.read()
        engaged = effective_kill_switch(self._trading.kill_switch_engaged, control)
        METRICS.kill_switch_engaged.set(1 if engaged else 0)
        return control

    def _mark(self, work: _Work, symbol: str, price: Decimal | None, event_ts: datetime) -> None:
        if price is not None and price > 0:
            work.view = AccountLedger.mark(work.view, symbol, price)
        work.risk = roll_session(work.risk, event_ts, work.view.equity)

    def _lead(self, strategy_ids: Sequence[str]) -> StrategyDefinition | None:
        return self._definitions.get(strategy_ids[0]) if strategy_ids else None

    def _provenance(self, intent: SymbolIntent) -> dict[str, Any]:
        return {
            "strategy_versions": dict(intent.strategy_versions),
            "parameter_hashes": dict(intent.parameter_hashes),
            "feature_hashes": list(intent.feature_snapshot_hashes),
            "config_hash": self._config_hash,
            "input_position": intent.position.label() if intent.position is not None else None,
            "aggregation_policy": intent.policy,
        }


def _allowlist(lead: StrategyDefinition | None, symbol: str) -> frozenset[str]:
    # torghut intersects the strategy's universe with the global one; the engine's universe is the
    # catalog's, so a strategy without symbols may trade any symbol it produced an intent for.
    if lead is not None and lead.universe_symbols:
        return frozenset(lead.universe_symbols)
    return frozenset({symbol})


def _allocator_verdict(portfolio: PortfolioIntent) -> GateVerdict:
    inputs = freeze(
        {
            "requested_qty": portfolio.requested_qty,
            "approved_qty": portfolio.approved_qty,
            "status": portfolio.status,
            "reason_codes": list(portfolio.reason_codes),
        }
    )
    reason = ";".join(portfolio.reason_codes) or None
    if portfolio.status == "rejected":
        return GateVerdict("allocator", "reject", reason or "allocator_rejected", inputs)
    if portfolio.approved_qty < portfolio.requested_qty:
        return GateVerdict("allocator", "clip", reason or "allocator_clipped", inputs, portfolio.approved_qty)
    return GateVerdict("allocator", "pass", None, inputs)


def _decision_params(intent: SymbolIntent, portfolio: PortfolioIntent) -> dict[str, Any]:
    # The hashed params: torghut's runtime metadata (contracts 4.6) plus the allocator's record (4.7).
    return {
        "price": intent.price,
        "strategy_runtime": {
            "mode": "plugin_v3",
            "aggregated": True,
            "policy": intent.policy,
            "source_strategy_ids": list(intent.source_strategy_ids),
            "feature_snapshot_hashes": list(intent.feature_snapshot_hashes),
            "intent_conflicts_total": 1 if intent.conflict else 0,
        },
        "allocator": {
            "enabled": portfolio.enabled,
            "regime_label": portfolio.regime_label,
            "budget_multiplier": portfolio.budget_multiplier,
            "capacity_multiplier": portfolio.capacity_multiplier,
            "requested_qty": portfolio.requested_qty,
            "approved_qty": portfolio.approved_qty,
            "requested_notional": portfolio.requested_notional,
            "approved_notional": portfolio.approved_notional,
            "status": portfolio.status,
            "clipped": portfolio.clipped,
            "reason_codes": sorted(portfolio.reason_codes),
            "correlation_group": portfolio.correlation_group,
        },
    }


def _rejected(
    decision: TradeDecision, stage: RejectionStage, trace: tuple[GateVerdict, ...]
) -> list[AccountOutput]:
    reasons = tuple(v.reason for v in trace if v.blocks and v.reason) or (f"{stage}_rejected",)
    rejection = Rejection(
        decision_hash=decision.decision_hash,
        symbol=decision.symbol,
        event_ts=decision.event_ts,
        stage=stage,
        reasons=reasons,
        gate_trace=trace,
    )
    done = dataclasses.replace(decision, status="rejected", gate_trace=trace)
    return [(DECISIONS, done), (REJECTIONS, rejection)]


class AccountLogic(StatefulBatchLogic[AccountInput | AccountBatch, Any, AccountState]):
    """One account's pipeline state; everything pending is processed at the end of input."""

    def __init__(self, pipeline: AccountPipeline, resume_state: AccountState | None) -> None:
        # Held inputs accumulate in a list (appending to the state's tuple per batch would be quadratic);
        # the snapshot carries them as a tuple.
        self._held: list[AccountInput] = []
        found = getattr(resume_state, "version", "older")  # an older layout may not even unpickle it
        if resume_state is not None and found != STATE_VERSION:
            msg = (
                f"account snapshot version {found} is not supported (expected "
                f"{STATE_VERSION}); resume with the engine version that wrote it, or start a new "
                "recovery store"
            )
            raise ValueError(msg)
        self._pipeline = pipeline
        self._state = resume_state if resume_state is not None else pipeline.initial_state()

    def on_batch(self, values: list[AccountInput | AccountBatch]) -> tuple[Iterable[Any], bool]:
        """Buffer the inputs and emit the records of whatever the release policy lets through."""
        inputs = unbatch(values)
        if self._pipeline.holds_until_eof:
            self._held.extend(inputs)
            return [], StatefulBatchLogic.RETAIN
        self._state, outputs = self._pipeline.on_items(self._state, inputs)
        return [record for _, record in outputs], StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        """Process everything still pending and emit the final account view."""
        self._state, outputs = self._pipeline.flush(self.snapshot())
        self._held = []
        return [record for _, record in outputs], StatefulBatchLogic.RETAIN

    def snapshot(self) -> AccountState:
        """Return the immutable account state, held inputs included; bytewax pickles it."""
        if not self._held:
            return self._state
        return dataclasses.replace(self._state, pending=(*self._state.pending, *self._held))


@operator
def account_stage(
    step_id: str, up: KeyedStream[AccountInput | AccountBatch], pipeline: AccountPipeline
) -> Stream[Any]:
    """Run ``pipeline`` per account over symbol intents, legacy decisions and account events.

    An :class:`AccountBatch` counts as its records, in order.

    The state lives in the inner step ``pipeline`` (persisted by recovery as ``<step_id>.pipeline``).
    """
    processed = op.stateful_batch("pipeline", up, lambda resume: AccountLogic(pipeline, resume))
    return op.key_rm("unkey", processed)

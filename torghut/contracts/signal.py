"""Signals as they enter the engine, and the dead letters of those that cannot be used."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from torghut.contracts.frozen import FrozenMap

DeadLetterStage = Literal["parse", "normalize", "strategy", "source"]


@dataclass(frozen=True, slots=True)
class InputPosition:
    """Where a record came from: the source name and a position that orders records within it.

    ``offset`` is the line or row index for files, the cursor for ClickHouse and the offset for Kafka;
    ``partition`` names the source partition (symbol shard, topic partition).
    """

    source: str
    partition: str
    offset: int

    def label(self) -> str:
        """Return ``source:partition:offset``, the form persisted with decisions."""
        return f"{self.source}:{self.partition}:{self.offset}"

    def __reduce__(self) -> tuple[type[InputPosition], tuple[str, str, int]]:
        # Every raw record crossing between worker processes carries one: pickle the three values, not
        # the dataclass state machinery (``fields()`` on every item).
        return (InputPosition, (self.source, self.partition, self.offset))


#: A source's item: the raw record (bytes, text or an already-decoded dict) and where it came from.
RawRecord = tuple[object, InputPosition]


@dataclass(frozen=True, slots=True)
class SignalEnvelope:
    """One TA signal: torghut's ``SignalEnvelope`` with tz-aware UTC timestamps.

    ``payload`` is torghut's payload: the nested envelope shape, or the dict built from a flat
    ``ta_signals`` row.
    """

    event_ts: datetime
    symbol: str
    payload: FrozenMap[str, Any]
    timeframe: str | None = None
    ingest_ts: datetime | None = None
    seq: int | None = None
    source: str | None = None
    position: InputPosition | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record the engine could not use, with the reason and the original input, never dropped."""

    stage: DeadLetterStage
    reason: str
    raw: Any
    position: InputPosition | None
    symbol: str | None = None
    event_ts: datetime | None = None


@dataclass(frozen=True, slots=True)
class SymbolWatermark:
    """Every event of ``symbol`` up to ``event_ts`` has been evaluated: windows ending by then can close.

    The strategies stage emits one after each per-symbol batch, in the same ordered stream as the intents,
    so the aggregation closes windows in event time, independently of batch sizes.
    """

    symbol: str
    event_ts: datetime
    #: How many feature vectors the batch it closes held (for run summaries).
    normalized: int = 0


@dataclass(frozen=True, slots=True)
class SymbolProgress:
    """Every account input ``symbol`` will still produce sorts at or after ``through`` (its canonical time).

    The aggregation emits one after a symbol batch that moved the bound, in the same ordered stream as the
    symbol's intents; an account stage that knows every symbol of the input processes, in canonical order,
    whatever sorts before the least bound, while the rest of the input is still being evaluated.
    """

    symbol: str
    through: datetime

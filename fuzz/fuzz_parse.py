"""Coverage-guided fuzzing of parse -> normalize with atheris: ``python fuzz/fuzz_parse.py -runs=N``.

Each input is either fed to ``parse_record`` as raw bytes, or used to build a row (dict or JSON) from the
hostile pools in ``tests/fuzz/hostile.py``. The invariant is ``check_outcome``: a finite feature vector or
a dead letter with a reason whose raw input orjson writes and whose canonical line orjson reads back,
never an exception.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import atheris  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["torghut"]):
    from tests.fuzz.hostile import (
        FIELD_NAMES,
        HOSTILE_NUMBERS,
        HOSTILE_STRINGS,
        HOSTILE_SYMBOLS,
        HOSTILE_TIMESTAMPS,
        NESTED_BLOCKS,
        VALID_SYMBOLS,
        check_outcome,
        pick,
        run_chain,
    )


_VALUES: tuple[Callable[[atheris.FuzzedDataProvider], Any], ...] = (
    lambda fdp: pick(HOSTILE_NUMBERS, fdp.ConsumeIntInRange(0, 255)),
    lambda fdp: pick(HOSTILE_STRINGS, fdp.ConsumeIntInRange(0, 255)),
    lambda fdp: fdp.ConsumeRegularFloat(),
    lambda fdp: fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 70)),
    lambda fdp: fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 24)),
    lambda fdp: [fdp.ConsumeInt(4) for _ in range(fdp.ConsumeIntInRange(0, 3))],
    lambda fdp: None,
)


def _value(fdp: atheris.FuzzedDataProvider) -> Any:
    return _VALUES[fdp.ConsumeIntInRange(0, len(_VALUES) - 1)](fdp)


def _row(fdp: atheris.FuzzedDataProvider) -> dict[str, Any]:
    row: dict[str, Any] = {
        "symbol": pick((*VALID_SYMBOLS, *HOSTILE_SYMBOLS), fdp.ConsumeIntInRange(0, 255)),
        "event_ts": pick(("2026-02-19 14:30:05.000", *HOSTILE_TIMESTAMPS), fdp.ConsumeIntInRange(0, 255)),
    }
    for _ in range(fdp.ConsumeIntInRange(0, 10)):
        row[pick(FIELD_NAMES, fdp.ConsumeIntInRange(0, 255))] = _value(fdp)
    if fdp.ConsumeBool():
        block = pick(sorted(NESTED_BLOCKS), fdp.ConsumeIntInRange(0, 255))
        row[block] = {pick(NESTED_BLOCKS[block], fdp.ConsumeIntInRange(0, 7)): _value(fdp)}
    return row


def test_one_input(data: bytes) -> None:
    """Run one fuzz input through the chain and check the invariant."""
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 2)
    if mode == 0:
        raw: object = fdp.ConsumeBytes(fdp.remaining_bytes())
    elif mode == 1:
        raw = _row(fdp)
    else:
        raw = json.dumps(_row(fdp)).encode()
    check_outcome(run_chain(raw))


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()

"""The replay flow end to end: determinism across runs, batch sizes and process counts; no loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests.conftest import MALFORMED_ROWS, Replay
from torghut.dataflow.replay import ReplayResult


def _digests(result: ReplayResult) -> dict[str, str]:
    return {name: s.sha256 for name, s in result.streams.items()}


def test_repeated_runs_give_identical_digests(
    replay: Replay, mixed_signals: Path, example_catalog: Path
) -> None:
    first = replay(mixed_signals, example_catalog)
    second = replay(mixed_signals, example_catalog)
    assert first.streams["intents"].count > 0
    assert _digests(first) == _digests(second)
    assert (first.out_dir / "intents.jsonl").read_bytes() == (second.out_dir / "intents.jsonl").read_bytes()


def test_batch_size_one_and_thousand_give_identical_digests(
    replay: Replay, mixed_signals: Path, example_catalog: Path
) -> None:
    large = replay(mixed_signals, example_catalog, batch_size=1000, emit_features=True)
    small = replay(mixed_signals, example_catalog, batch_size=1, emit_features=True)
    assert _digests(large) == _digests(small)


def test_one_and_two_processes_give_identical_digests(
    replay: Replay, mixed_signals: Path, example_catalog: Path
) -> None:
    single = replay(mixed_signals, example_catalog, processes=1, emit_features=True)
    double = replay(mixed_signals, example_catalog, processes=2, batch_size=97, emit_features=True)
    assert single.streams["intents"].count > 0
    assert _digests(single) == _digests(double)
    assert double.summary["processes"] == 2


def test_every_event_is_normalized_or_dead_lettered(
    replay: Replay, clean_signals: Path, mixed_signals: Path, example_catalog: Path
) -> None:
    clean = replay(clean_signals, example_catalog, emit_features=True)
    result = replay(mixed_signals, example_catalog, emit_features=True)
    features = result.streams["features"].count
    dead = result.streams["dead_letters"].count
    assert result.events_in == features + dead
    assert result.events_normalized == features
    # The malformed rows add exactly one dead letter each; the clean rows normalize as before.
    assert dead == clean.streams["dead_letters"].count + len(MALFORMED_ROWS)
    assert features == clean.streams["features"].count


# Each malformed row's dead letter: (stage, exact reason). The normalize reasons are torghut's own
# (torghut-contracts.md, section 2 "Features"): a schema major other than 3 raises
# ``incompatible_feature_schema:<v>`` ("Normalization", step 1); a required field that is None raises
# ``missing_required_features:<sorted|joined>`` (step 3). A non-numeric indicator is such a None: "Values
# are converted with ``Decimal(str(x))``; failures become None" ("Value mapping rules"), so ``"macd":"abc"``
# gives ``missing_required_features:macd``. The parse reasons are the engine's own.
MALFORMED_DEAD_LETTERS: dict[str, tuple[str, str]] = {
    "missing_symbol": ("parse", "missing_symbol"),
    "invalid_event_ts": ("parse", "invalid_event_ts:not-a-time"),
    "non_numeric_indicator": ("normalize", "missing_required_features:macd"),
    "wrong_schema_major": ("normalize", "incompatible_feature_schema:2.0.0"),
    "missing_required_feature": ("normalize", "missing_required_features:rsi14"),
    "garbage_json": ("parse", "invalid_json"),
}


def test_each_malformed_row_becomes_a_dead_letter_with_its_reason(
    replay: Replay, mixed_signals: Path, example_catalog: Path
) -> None:
    assert set(MALFORMED_DEAD_LETTERS) == set(MALFORMED_ROWS)
    result = replay(mixed_signals, example_catalog)
    letters = [
        orjson.loads(line) for line in (result.out_dir / "dead_letters.jsonl").read_bytes().splitlines()
    ]
    assert all(letter["position"] is not None for letter in letters)
    assert all(letter["raw"] is not None for letter in letters)
    at: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for letter in letters:
        position = letter["position"]
        at.setdefault((position["source"], position["partition"], position["offset"]), []).append(letter)
    # The clean rows' own dead letters (rows without rsi14, say) are elsewhere: a malformed row is found by
    # its line in the input (a position's offset is the 1-based line number), and must be there alone.
    lines = mixed_signals.read_bytes().splitlines()
    for name, row in MALFORMED_ROWS.items():
        numbers = [number for number, line in enumerate(lines, 1) if line == row]
        assert len(numbers) == 1, (name, numbers)
        found = at.get((mixed_signals.name, "line", numbers[0]), [])
        assert len(found) == 1, (name, numbers[0], found)
        letter = found[0]
        assert (letter["stage"], letter["reason"]) == MALFORMED_DEAD_LETTERS[name], (name, letter)
        # The dead letter carries the row itself: as read (parse stage), or its envelope (normalize stage).
        if name == "garbage_json":
            assert letter["raw"] == row.decode()
        elif letter["stage"] == "parse":
            assert letter["raw"] == orjson.loads(row)
        else:
            parsed = orjson.loads(row)
            assert letter["raw"]["symbol"] == parsed["symbol"] == letter["symbol"], (name, letter)
            assert letter["raw"]["position"] == letter["position"]


def test_summary_records_counts_and_digests(
    replay: Replay, mixed_signals: Path, example_catalog: Path
) -> None:
    result = replay(mixed_signals, example_catalog)
    summary = orjson.loads((result.out_dir / "summary.json").read_bytes())
    assert summary["input"]["events_in"] == result.events_in
    assert summary["streams"]["intents"]["sha256"] == result.streams["intents"].sha256
    assert summary["streams"]["intents"]["count"] == result.streams["intents"].count
    assert len(summary["digest"]) == 64
    assert len(summary["config_hash"]) == 64


def test_the_number_of_input_shards_does_not_change_outputs(
    replay: Replay, mixed_signals: Path, example_catalog: Path
) -> None:
    one = replay(mixed_signals, example_catalog, shards=1, emit_features=True)
    five = replay(mixed_signals, example_catalog, shards=5, emit_features=True)
    assert _digests(one) == _digests(five)

"""The replay flow end to end: determinism across runs, batch sizes and process counts; no loss."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.conftest import MALFORMED_ROWS, Replay


def _digests(result: object) -> dict[str, str]:
    return {name: s.sha256 for name, s in result.streams.items()}  # type: ignore[attr-defined]


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


def test_each_malformed_row_becomes_a_dead_letter_with_its_reason(
    replay: Replay, mixed_signals: Path, example_catalog: Path
) -> None:
    result = replay(mixed_signals, example_catalog)
    letters = [
        orjson.loads(line) for line in (result.out_dir / "dead_letters.jsonl").read_bytes().splitlines()
    ]
    reasons = sorted(letter["reason"] for letter in letters)
    assert all(letter["position"] is not None for letter in letters)
    assert all(letter["raw"] is not None for letter in letters)
    expected_prefixes = {
        "missing_symbol": "missing_symbol",
        "invalid_event_ts": "invalid_event_ts",
        "non_numeric_indicator": "missing_required_features:macd",
        "wrong_schema_major": "incompatible_feature_schema:2.0.0",
        "missing_required_feature": "missing_required_features:rsi14",
        "garbage_json": "invalid_json",
    }
    for prefix in expected_prefixes.values():
        assert any(reason.startswith(prefix) for reason in reasons), (prefix, reasons)


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

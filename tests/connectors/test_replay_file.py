"""Replay files: a JSON array only when the whole file is one, JSONL otherwise, counted the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from torghut.connectors.replay_file import read_json_array
from torghut.dataflow.replay import count_input_events


@pytest.mark.parametrize(
    ("content", "items", "events"),
    [
        (b'[{"symbol": "A"}, {"symbol": "B"}]', [{"symbol": "A"}, {"symbol": "B"}], 2),
        (b'\n  [\n  {"symbol": "A"},\n  2\n]\n\n', [{"symbol": "A"}, 2], 2),
        (b"[]", [], 0),
        (b'[1]\n{"symbol": "A"}\n', None, 2),
        (b'[1]\n{"symbol": "A"}\n[2]\n', None, 3),
        (b'{"symbol": "A"}\n\n{"symbol": "B"}\n', None, 2),
        (b'[{"price": NaN}]', None, 1),
        (b"[" * 5000 + b"]" * 5000, None, 1),
        (b"[1,", None, 1),
        (b"", None, 0),
    ],
)
def test_a_file_is_an_array_only_when_it_all_parses_as_one(
    tmp_path: Path, content: bytes, items: list[object] | None, events: int
) -> None:
    path = tmp_path / "signals.jsonl"
    path.write_bytes(content)
    assert read_json_array(path) == items
    assert count_input_events(path) == events


def test_the_cli_replay_default_batch_size_is_the_sources() -> None:
    import inspect

    from torghut import cli
    from torghut.connectors.replay_file import REPLAY_BATCH_SIZE

    assert inspect.signature(cli.replay).parameters["batch_size"].default == REPLAY_BATCH_SIZE


def _shard_lines(path: Path, shards: int) -> dict[int, list[bytes]]:
    from torghut.connectors.replay_file import ReplayFileSource

    source = ReplayFileSource(path, shards=shards, batch_size=100)
    out: dict[int, list[bytes]] = {}
    for shard, part_name in enumerate(source.list_parts()):
        part = source.build_part("in", part_name, None)
        lines: list[bytes] = []
        try:
            while True:
                lines += [raw for raw, _ in part.next_batch()]  # type: ignore[misc]
        except StopIteration:
            pass
        out[shard] = lines
    return out


def test_every_row_of_a_symbol_is_in_its_routing_symbols_shard(tmp_path: Path) -> None:
    from torghut.connectors.replay_file import symbol_shard

    shards = 7
    first, last = (
        "AAPL",
        next(s for s in ("MSFT", "NVDA", "AMD", "TSLA") if symbol_shard(s, 7) != symbol_shard("AAPL", 7)),
    )
    rows = [
        f'{{"symbol":"{last}","seq":1}}',
        f'{{"symbol":"{first}","seq":2,"symbol":"{last}"}}',  # the parser reads the last key
        f'{{"\\u0073ymbol":"{last}","seq":3}}',
        f'{{"symbol":"{last}","seq":4}}',
    ]
    path = tmp_path / "signals.jsonl"
    path.write_text("\n".join(rows) + "\n")
    by_shard = _shard_lines(path, shards)
    assert by_shard[symbol_shard(last, shards)] == [r.encode() for r in rows]
    assert sum(len(lines) for lines in by_shard.values()) == len(rows)

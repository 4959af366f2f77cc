"""Replay files: a JSON array only when the whole file is one, JSONL otherwise, counted the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
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


def _read_all(source: Any, part_name: str, resume: Any = None) -> tuple[list[Any], Any]:
    part = source.build_part("in", part_name, resume)
    items: list[Any] = []
    try:
        while True:
            items += part.next_batch()
    except StopIteration:
        pass
    return items, part.snapshot()


def test_split_shards_give_each_partition_exactly_its_symbols_rows_in_file_order(tmp_path: Path) -> None:
    from torghut.connectors.key_placement import worker_of
    from torghut.connectors.replay_file import ReplayFileSource, load_symbol_keys, split_shards
    from torghut.operators.decode import routing_symbol

    rows = [f'{{"symbol":"S{i % 13}","seq":{i}}}' for i in range(200)]
    rows[7] = ""  # blank lines keep their line numbers
    rows[9] = "{not json"
    path = tmp_path / "signals.jsonl"
    path.write_text("\n".join(rows) + "\n")
    split_dir = split_shards(path, 3, tmp_path / "split", account="paper")
    keys = load_symbol_keys(split_dir)
    # In order of first appearance; rows without a symbol (blank, not JSON) have no key.
    assert list(keys) == list(dict.fromkeys(s for row in rows if (s := routing_symbol(row.encode()))))
    assert len(keys) == 13
    every_row, _ = _read_all(ReplayFileSource(path, shards=1, batch_size=17), "shard-000")
    split = ReplayFileSource(path, shards=3, batch_size=17, split_dir=split_dir, account="paper")
    seen = []
    for shard, part_name in enumerate(split.list_parts()):
        got, _ = _read_all(split, part_name)
        symbol_of = [routing_symbol(raw) for raw, _ in got]
        # Each shard holds its symbols' rows in file order; a symbol's key places it on the shard's worker.
        assert got == [item for item in every_row if routing_symbol(item[0]) in set(symbol_of)]
        assert all(worker_of(keys.get(s, s), 3) == shard for s in symbol_of)
        seen += got
    assert sorted(seen, key=lambda item: item[1].offset) == every_row  # nothing lost, nothing twice
    # The account's shard takes fewer symbols: the account stage runs on its worker too.
    per_shard = [sum(worker_of(key, 3) == shard for key in keys.values()) for shard in range(3)]
    assert per_shard[worker_of("paper", 3)] < min(
        n for i, n in enumerate(per_shard) if i != worker_of("paper", 3)
    )
    # A resumed partition continues after its snapshot, in its own shard file.
    first = split.build_part("in", "shard-001", None)
    head = first.next_batch()
    rest, _ = _read_all(split, "shard-001", first.snapshot())
    assert head + rest == _read_all(split, "shard-001")[0]


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_split_routes_rows_that_only_look_like_the_common_shape_as_routing_symbol_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    # The split finds a common row's shard from the bytes after {"symbol":" once those bytes were routed:
    # a row that starts the same way but holds another "symbol", an escape or no closing quote must not.
    from torghut.connectors import replay_file
    from torghut.connectors.key_placement import worker_of
    from torghut.connectors.replay_file import ReplayFileSource, load_symbol_keys, split_shards
    from torghut.operators.decode import routing_symbol

    monkeypatch.setattr(replay_file, "_SPLIT_MIN_JOB_BYTES", 64)
    rows = [f'{{"symbol":"S{i}","seq":{i}}}' for i in range(12)] * 3
    rows += [
        '{"symbol":"S1","symbol":"S2"}',  # the last key wins
        '{"symbol":"S3","\\u0073ymbol":"S4"}',  # an escaped "symbol" key
        '{"symbol":"S5',  # no closing quote: not JSON
        '{"symbol":"S6"',
        '{"symbol":"S7" , "seq":1}',
        '{"symbol":"' + "L" * 65 + '"}',  # longer than the bytes routing_symbol reads without decoding
        '{"symbol":"S\u00c4"}',  # not ASCII: no routing symbol
        '{"symbol":"","seq":2}',
        '  {"symbol":"S8","seq":3}\r',
    ]
    rows += [f'{{"symbol":"S{i}","seq":{i}}}' for i in range(12)]
    path = tmp_path / "signals.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert routing_symbol(rows[36].encode()) == "S2"
    assert routing_symbol(rows[37].encode()) == "S4"
    split_dir = split_shards(path, 3, tmp_path / "split", account="paper", jobs=jobs)
    keys = load_symbol_keys(split_dir)
    every_row, _ = _read_all(ReplayFileSource(path, shards=1, batch_size=17), "shard-000")
    split = ReplayFileSource(path, shards=3, batch_size=17, split_dir=split_dir, account="paper")
    seen = []
    for shard, part_name in enumerate(split.list_parts()):
        got, _ = _read_all(split, part_name)
        assert all(worker_of(keys.get(s, s), 3) == shard for s in (routing_symbol(raw) for raw, _ in got))
        seen += got
    assert sorted(seen, key=lambda item: item[1].offset) == every_row


def test_a_missing_or_stale_split_is_refused_with_the_fix(tmp_path: Path) -> None:
    from torghut.connectors.replay_file import ReplayFileSource, split_shards

    path = tmp_path / "signals.jsonl"
    path.write_text('{"symbol":"A"}\n{"symbol":"B"}\n')
    source = ReplayFileSource(path, shards=2, split_dir=tmp_path / "split")
    with pytest.raises(FileNotFoundError, match="run split_shards first"):
        source.build_part("in", "shard-000", None)
    split_shards(path, 2, tmp_path / "split", account="paper")
    source.build_part("in", "shard-000", None).close()
    path.write_text('{"symbol":"A"}\n{"symbol":"B"}\n{"symbol":"C"}\n')  # the input changed
    with pytest.raises(FileNotFoundError, match="no complete split"):
        source.build_part("in", "shard-000", None)


def _shard_rows(path: Path, split_dir: Path, shards: int) -> list[list[Any]]:
    from torghut.connectors.replay_file import ReplayFileSource

    source = ReplayFileSource(path, shards=shards, batch_size=7, split_dir=split_dir, account="paper")
    return [_read_all(source, part)[0] for part in source.list_parts()]


def _placement(split_dir: Path) -> dict[str, Any]:
    placement: dict[str, Any] = orjson.loads((split_dir / "placement.json").read_bytes())
    return placement


@pytest.mark.parametrize(("jobs", "fork"), [(2, True), (3, True), (2, False)])
def test_a_parallel_split_gives_every_shard_the_rows_of_a_serial_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int, fork: bool
) -> None:
    from torghut import forking
    from torghut.connectors import replay_file
    from torghut.connectors.replay_file import load_symbol_keys, split_event_count, split_shards

    monkeypatch.setattr(replay_file, "_SPLIT_MIN_JOB_BYTES", 64)  # so this small file is cut in ranges
    monkeypatch.setattr(forking, "can_fork", lambda: fork)  # forked processes, or new interpreters
    rows = [f'{{"symbol":"S{i % 11}","seq":{i}}}' for i in range(300)]
    rows[40] = ""  # blank lines keep their numbers, wherever a range starts
    rows[150] = "   "
    rows[151] = '{"symbol":"S3","note":"with a carriage return"}\r'
    rows[220] = "{not json"
    path = tmp_path / "signals.jsonl"
    path.write_text("\n".join(rows))  # no newline after the last row
    serial = split_shards(path, 3, tmp_path / "serial", account="paper")
    parallel = split_shards(path, 3, tmp_path / "parallel", account="paper", jobs=jobs)
    assert _placement(serial)["jobs"] == 1
    assert _placement(parallel)["jobs"] == jobs  # every range's symbols are in the head: no fallback
    assert list(load_symbol_keys(parallel).items()) == list(load_symbol_keys(serial).items())
    assert split_event_count(parallel) == split_event_count(serial) == 298
    assert _shard_rows(path, parallel, 3) == _shard_rows(path, serial, 3)
    # A partition resumed from any snapshot, across its range files, continues where it stopped.
    source = replay_file.ReplayFileSource(path, shards=3, batch_size=7, split_dir=parallel, account="paper")
    for part in source.list_parts():
        whole, _ = _read_all(source, part)
        first = source.build_part("in", part, None)
        head = first.next_batch() + first.next_batch() + first.next_batch()
        first.close()
        rest, _ = _read_all(source, part, first.snapshot())
        assert head + rest == whole


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "new-interpreters"])
def test_a_symbol_the_head_does_not_place_makes_the_split_serial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork: bool
) -> None:
    from torghut import forking
    from torghut.connectors import replay_file
    from torghut.connectors.replay_file import load_symbol_keys, split_shards

    monkeypatch.setattr(forking, "can_fork", lambda: fork)
    monkeypatch.setattr(replay_file, "_SPLIT_MIN_JOB_BYTES", 64)
    monkeypatch.setattr(replay_file, "_SPLIT_HEAD_BYTES", 200)
    rows = [f'{{"symbol":"S{i % 5}","seq":{i}}}' for i in range(200)]
    rows[180] = '{"symbol":"LATE","seq":180}'  # first appears in the last range, past the head
    path = tmp_path / "signals.jsonl"
    path.write_text("\n".join(rows) + "\n")
    serial = split_shards(path, 2, tmp_path / "serial", account="paper")
    parallel = split_shards(path, 2, tmp_path / "parallel", account="paper", jobs=2)
    assert _placement(parallel)["jobs"] == 1  # split again in one process
    assert sorted(p.name for p in parallel.glob("shard-*")) == ["shard-000-000.jsonl", "shard-001-000.jsonl"]
    assert list(load_symbol_keys(parallel)) == ["S0", "S1", "S2", "S3", "S4", "LATE"]
    assert _shard_rows(path, parallel, 2) == _shard_rows(path, serial, 2)

"""The ``torghut`` commands of README.md, run as a user runs them: ``python -m torghut.cli ...`` in a subprocess.

Each test asserts the exit code and what the command prints or writes. Messages meant to be read or grepped
(errors naming a catalog entry and its field, the first differing record of ``torghut diff``) are checked
at 80 columns, the width of a default terminal and of rich's output when it is piped; tables at 200.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import yaml

from tests.conftest import EXAMPLES
from tests.connectors.postgres.conftest import dsn, empty_dsn, pg_server, template_db
from tests.connectors.postgres.support import TABLES
from tests.connectors.postgres.test_schema import ENGINE_TABLES
from tests.integration.support import counts, dump_tables
from torghut.connectors.postgres import load_migrations
from torghut.connectors.synthetic.generator import TA_SIGNAL_COLUMNS, symbol_names
from torghut.dataflow.service_config import load_service_config
from torghut.strategies.catalog import load_catalog

__all__ = ["dsn", "empty_dsn", "pg_server", "template_db"]  # the PostgreSQL fixtures, reused as they are

GOOD_CATALOG = EXAMPLES / "strategies.yaml"

# Every plugin torghut-engine ships, as `strategies list` names them (type@version).
BUILTIN_PLUGINS = (
    "bollinger_reversion@1.0.0",
    "intraday_tsmom@1.1.0",
    "legacy_macd_rsi@1.0.0",
    "vwap_deviation@1.0.0",
    "vwap_deviation@2.0.0",
)

# Environment variables that would silently replace what a test passes on the command line or in a file.
_OVERRIDES = ("TORGHUT_DATABASE_URL", "TRADING_STRATEGY_CONFIG_PATH", "TORGHUT_METRICS_ADDRESS")


def torghut(
    *args: str | Path | int, cwd: Path | None = None, columns: int = 80, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m torghut.cli ARGS`` (the console script's module) and capture its output."""
    environ = {k: v for k, v in os.environ.items() if k not in _OVERRIDES}
    environ.update({"COLUMNS": str(columns), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "torghut.cli", *map(str, args)],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _with_entry(tmp_path: Path, name: str, index: int, **changes: Any) -> Path:
    """The example catalog with entry ``index`` changed (``params__x=1`` sets ``params.x``)."""
    data = yaml.safe_load(GOOD_CATALOG.read_text(encoding="utf-8"))
    entry = data["strategies"][index]
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            entry.setdefault(section, {})[field] = value
        else:
            entry[section] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def bad_catalog(tmp_path: Path) -> Path:
    """The example catalog with one bad field: ``bollinger-reversion``'s ``confirm_bars`` is not an int."""
    return _with_entry(tmp_path, "bad.yaml", 1, params__confirm_bars="three")


# The bad catalog's error, on one line: the entry (index and id) and the field.
BAD_ENTRY = "strategies[1] (strategy_id='bollinger-reversion'): field 'params.confirm_bars'"


def _says_bad_entry(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "error: invalid strategy catalog:" in done.stderr
    assert any(BAD_ENTRY in line for line in done.stderr.splitlines()), done.stderr  # on one line
    assert "found 'three'" in done.stderr
    assert "Traceback" not in done.stderr


# -- torghut strategies validate / list -------------------------------------------------------------------


def test_strategies_validate_accepts_the_example_catalog_and_lists_its_entries() -> None:
    done = torghut("strategies", "validate", GOOD_CATALOG, columns=200)

    assert done.returncode == 0, done.stderr
    digest = hashlib.sha256(GOOD_CATALOG.read_bytes()).hexdigest()  # the catalog's digest: its bytes' sha256
    assert f"{GOOD_CATALOG}: valid (digest {digest[:16]})" in done.stdout
    for strategy_id in ("intraday_tsmom_v1@paper", "bollinger-reversion", "vwap-deviation-rollback"):
        assert f"│ {strategy_id} " in done.stdout
    assert "vwap_deviation@2.0.0" in done.stdout and "vwap_deviation@1.0.0" in done.stdout


def test_strategies_validate_names_the_bad_entry_and_its_field(bad_catalog: Path) -> None:
    _says_bad_entry(torghut("strategies", "validate", bad_catalog))


def test_strategies_validate_names_an_entry_whose_id_and_value_look_like_markup(tmp_path: Path) -> None:
    # Entry ids and the values shown are the catalog author's text, square brackets included: the
    # message must show them as written (not as terminal markup) and still name the entry and the field.
    catalog = _with_entry(
        tmp_path, "brackets.yaml", 2, strategy_id="vwap[/fast]", max_notional_per_trade="[bold]lots"
    )

    done = torghut("strategies", "validate", catalog)

    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if "strategies[2]" in line]
    assert "strategies[2] (strategy_id='vwap[/fast]'): field 'max_notional_per_trade': expected " in line
    assert line.endswith(", found '[bold]lots'"), line


def test_strategies_list_shows_every_builtin_plugin() -> None:
    done = torghut("strategies", "list", columns=200)

    assert done.returncode == 0, done.stderr
    listed = [line for line in done.stdout.splitlines() if "│ torghut-engine " in line]
    assert sorted(line.split("│")[1].strip() for line in listed) == sorted(BUILTIN_PLUGINS)
    assert "confirm_bars: int = 2" in done.stdout  # a plugin's parameters, with type and default


def test_tables_fold_long_values_on_a_narrow_terminal_and_show_brackets_as_written(tmp_path: Path) -> None:
    # At 60 columns a cell is folded over lines, never cut with an ellipsis, and a valid strategy id with
    # square brackets is shown as written (a table cell is not terminal markup).
    catalog = _with_entry(tmp_path, "brackets.yaml", 2, strategy_id="vwap[bold]-fast")
    narrow_list = torghut("strategies", "list", columns=60)
    narrow_validate = torghut("strategies", "validate", catalog, columns=60)

    for done in (narrow_list, narrow_validate):
        assert done.returncode == 0, done.stderr
        assert "…" not in done.stdout
    cells = "".join(line.split("│")[1].strip() for line in narrow_list.stdout.splitlines() if "│" in line)
    for plugin in BUILTIN_PLUGINS:
        assert plugin in cells, plugin  # every type@version in full, folded over the first column's lines
    ids = "".join(line.split("│")[1].strip() for line in narrow_validate.stdout.splitlines() if "│" in line)
    assert "vwap[bold]-fast" in ids


# -- a bad catalog stops replay and run before they do anything --------------------------------------------


def _signals(directory: Path, *, symbols: int = 3, minutes: int = 2, seed: int = 3) -> Path:
    path = directory / "signals.jsonl"
    done = torghut(
        "sample-signals", "--out", path, "--symbols", symbols, "--minutes", minutes, "--seed", seed
    )
    assert done.returncode == 0, done.stderr
    return path


def test_replay_with_a_bad_catalog_stops_before_writing_anything(tmp_path: Path, bad_catalog: Path) -> None:
    signals = _signals(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    out = tmp_path / "replay"

    done = torghut("replay", "--signals", signals, "--catalog", bad_catalog, "--out", out, cwd=tmp_path)

    _says_bad_entry(done)
    assert not out.exists()
    assert sorted(tmp_path.rglob("*")) == before  # no part files, no split input, nothing anywhere
    assert done.stdout == ""


@pytest.mark.integration
def test_run_with_a_bad_catalog_stops_before_touching_postgres(
    tmp_path: Path, dsn: str, bad_catalog: Path
) -> None:
    # The service tests' configuration (tests/integration/support.py), as a file: file source, the test
    # database, no metrics endpoint, a short retry cap.
    signals = _signals(tmp_path)
    config: dict[str, Any] = {
        "source": {"kind": "file", "path": str(signals)},
        "postgres": {"dsn": dsn, "backoff_max_s": 0.5},
        "catalog": str(bad_catalog),
        "metrics_address": None,
    }
    bad = tmp_path / "bad-service.yaml"
    bad.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert load_service_config(bad, {}).catalog == bad_catalog  # the file itself is valid: only the entry
    with psycopg.connect(dsn) as conn:
        migrations = conn.execute("SELECT version, checksum, xmin::text FROM schema_migrations").fetchall()
    tables = dump_tables(dsn)
    assert all(rows == [] for rows in tables.values())

    done = torghut("run", "--config", bad, "--once", cwd=tmp_path)

    _says_bad_entry(done)
    assert "run finished" not in done.stdout
    assert dump_tables(dsn) == tables  # not even the catalog's strategies
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT version, checksum, xmin::text FROM schema_migrations").fetchall() == (
            migrations
        )

    # The same file with the good catalog writes to that database: the check above could see a write.
    good = tmp_path / "good-service.yaml"
    good.write_text(yaml.safe_dump({**config, "catalog": str(GOOD_CATALOG)}), encoding="utf-8")
    assert torghut("run", "--config", good, "--once", cwd=tmp_path).returncode == 0
    written = counts(dsn)
    assert written["strategies"] == len(load_catalog(GOOD_CATALOG).definitions)
    assert written["trade_decisions"] > 0


# -- torghut sample-signals ---------------------------------------------------------------------------------


def test_sample_signals_writes_symbols_times_minutes_rows_the_same_for_the_same_seed(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("first", 5), ("again", 5), ("other", 6)):
        path = tmp_path / name / "signals.jsonl"  # the parent directory is created
        done = torghut("sample-signals", "--out", path, "--symbols", 3, "--minutes", 2, "--seed", seed)
        assert done.returncode == 0, done.stderr
        assert f"wrote 360 rows for 3 symbols x 2 min (seed {seed})" in done.stdout
        runs[name] = path.read_bytes()

    rows = [orjson.loads(line) for line in runs["first"].splitlines()]
    assert len(rows) == 3 * 2 * 60
    assert all(list(row) == list(TA_SIGNAL_COLUMNS) for row in rows)
    assert Counter(row["symbol"] for row in rows) == dict.fromkeys(symbol_names(3), 120)
    stamps = sorted({row["event_ts"] for row in rows})
    assert (len(stamps), stamps[0], stamps[-1]) == (120, "2026-02-19 14:30:00.000", "2026-02-19 14:31:59.000")

    assert runs["again"] == runs["first"]
    assert runs["other"] != runs["first"]
    other = [orjson.loads(line) for line in runs["other"].splitlines()]
    assert [(r["symbol"], r["event_ts"]) for r in other] == [(r["symbol"], r["event_ts"]) for r in rows]
    assert sum(a["ema12"] != b["ema12"] for a, b in zip(rows, other, strict=True)) > 300  # other prices


# -- torghut diff -------------------------------------------------------------------------------------------

# One input row replaced by a malformed one, the same in both inputs but for one word: the replays differ
# in exactly that dead letter (its raw text). The text has square brackets, as raw input may.
_MALFORMED = '{"symbol": "AAPL", "event_ts": "[/{word}] [bold] not a json row'


@pytest.fixture(scope="module")
def replays(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three small replays (3 symbols x 2 minutes): ``a1`` and ``a2`` of one input, ``b`` of the other."""
    root = tmp_path_factory.mktemp("diff")
    lines = _signals(root).read_text(encoding="utf-8").splitlines()
    outputs = {}
    for name, word in (("a1", "first"), ("a2", "first"), ("b", "second")):
        directory = root / name
        directory.mkdir()
        changed = [*lines[:100], _MALFORMED.replace("{word}", word), *lines[101:]]
        signals = directory / "signals.jsonl"  # same name: records carry it in their input position
        signals.write_text("\n".join(changed) + "\n", encoding="utf-8")
        out = directory / "out"
        done = torghut(
            "replay", "--signals", signals, "--catalog", GOOD_CATALOG, "--out", out, "--quiet", cwd=directory
        )
        assert done.returncode == 0, done.stderr
        outputs[name] = out
    return outputs


def _streams(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob("*.jsonl"))


def test_diff_of_two_replays_of_the_same_input_is_identical(replays: dict[str, Path]) -> None:
    done = torghut("diff", replays["a1"], replays["a2"])

    assert done.returncode == 0, done.stdout + done.stderr
    streams = _streams(replays["a1"])
    assert "decisions.jsonl" in streams and "dead_letters.jsonl" in streams
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == streams
    assert all(": identical (" in line for line in done.stdout.splitlines())
    decisions = (replays["a1"] / "decisions.jsonl").read_text(encoding="utf-8").splitlines()
    assert decisions  # the comparison covered real records
    assert f"decisions.jsonl: identical ({len(decisions)} records, " in done.stdout


def test_diff_exits_1_and_prints_the_first_differing_record(replays: dict[str, Path]) -> None:
    a = (replays["a1"] / "dead_letters.jsonl").read_text(encoding="utf-8").splitlines()
    b = (replays["b"] / "dead_letters.jsonl").read_text(encoding="utf-8").splitlines()
    differing = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    assert len(differing) == 1, differing  # the two replays differ in one record
    number = differing[0] + 1

    done = torghut("diff", replays["a1"], replays["b"])

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert f"dead_letters.jsonl: differs ({len(a)} vs {len(b)} records)" in done.stdout
    # Where: the dead letter's raw input text (one word differs). Then the records themselves, each on one
    # line exactly as it is in the files (copyable, greppable).
    first = f"  first difference at record {number}, field raw:\n  - {a[number - 1]}\n  + {b[number - 1]}\n"
    assert first in done.stdout, done.stdout
    verdicts = [line for line in done.stdout.splitlines() if not line.startswith(" ")]
    assert [line.split(":")[0] for line in verdicts] == _streams(replays["a1"])
    assert [line for line in verdicts if ": identical (" not in line] == [
        f"dead_letters.jsonl: differs ({len(a)} vs {len(b)} records)"
    ]


def test_diff_counts_a_stream_only_one_side_has_and_refuses_what_is_no_replay_output(
    replays: dict[str, Path], tmp_path: Path
) -> None:
    partial = tmp_path / "partial"
    partial.mkdir()
    for stream in replays["a1"].glob("*.jsonl"):
        if stream.name != "decisions.jsonl":
            shutil.copy(stream, partial / stream.name)

    for left, right in ((replays["a1"], partial), (partial, replays["a1"])):
        done = torghut("diff", left, right)
        assert done.returncode == 1, (left, right, done.stdout, done.stderr)
        assert f"decisions.jsonl: missing in {partial}" in done.stdout.splitlines()
        assert (
            sum(": identical (" in line for line in done.stdout.splitlines())
            == len(_streams(replays["a1"])) - 1
        )

    # A mistyped directory is an error (exit 2), not "identical"; so is a directory without streams.
    missing = tmp_path / "no-such-replay"
    for left, right in ((missing, replays["a1"]), (replays["a1"], missing)):
        done = torghut("diff", left, right)
        assert done.returncode == 2, (left, right, done.stdout, done.stderr)
        assert f"error: not a replay output directory: {missing}" in done.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    done = torghut("diff", empty, tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"error: no replay streams (*.jsonl) in {empty} or {tmp_path}" in done.stderr


# -- torghut db migrate -------------------------------------------------------------------------------------


def _schema(target: str) -> dict[str, list[tuple[str, ...]]]:
    """The public tables (name, oid, xmin of their catalog row) and schema_migrations' rows with xmin."""
    with psycopg.connect(target) as conn:
        tables = conn.execute(
            "SELECT c.relname::text, c.oid::text, c.xmin::text FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY 1"
        ).fetchall()
        applied = conn.execute(
            "SELECT version::text, name::text, checksum::text, xmin::text FROM schema_migrations ORDER BY 1"
        ).fetchall()
    return {
        "relations": [tuple(map(str, r)) for r in tables],
        "migrations": [tuple(map(str, r)) for r in applied],
    }


@pytest.mark.integration
def test_db_migrate_creates_the_tables_then_changes_nothing(empty_dsn: str) -> None:
    migrations = [f"{m.version:04d}_{m.name}" for m in load_migrations()]
    assert len(migrations) >= 3

    first = torghut("db", "migrate", "--dsn", empty_dsn)

    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [*(f"applied {m}" for m in migrations), f"schema at {migrations[-1]}"]
    with psycopg.connect(empty_dsn) as conn:
        tables = {
            str(r[0]) for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    assert tables == ENGINE_TABLES
    assert set(TABLES) <= tables
    schema = _schema(empty_dsn)
    assert len(schema["migrations"]) == len(migrations)

    # Again, with the DSN from the command line and then from TORGHUT_DATABASE_URL: nothing to do.
    for again in (
        torghut("db", "migrate", "--dsn", empty_dsn),
        torghut("db", "migrate", env={"TORGHUT_DATABASE_URL": empty_dsn}),
    ):
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines() == [
            "schema up to date: nothing applied",
            f"schema at {migrations[-1]}",
        ]
        assert _schema(empty_dsn) == schema  # no table created, dropped or altered; no migration recorded


def test_a_replay_with_the_default_equity_spelled_out_or_features_dropped_is_the_same_replay(
    replays: dict[str, Path],
) -> None:
    # Written into a2's directory, which already holds a replay: the streams are replaced, not mixed.
    source = replays["a2"].parent
    (replays["a2"] / "features.jsonl").write_text("left over from an earlier --emit-features replay\n")
    done = torghut(
        "replay", "--signals", source / "signals.jsonl", "--catalog", GOOD_CATALOG, "--out", replays["a2"],
        "--starting-equity", "100000", "--quiet", cwd=source,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not (replays["a2"] / "features.jsonl").exists()
    compared = torghut("diff", replays["a1"], replays["a2"])
    assert compared.returncode == 0, compared.stdout  # 100000 is the default: byte-identical outputs


@pytest.mark.parametrize("equity", ["0", "-5", "lots", "nan"])
def test_a_bad_starting_equity_is_refused_in_one_line(tmp_path: Path, equity: str) -> None:
    done = torghut(
        "replay", "--signals", _signals(tmp_path), "--catalog", GOOD_CATALOG, "--out", tmp_path / "out",
        "--starting-equity", equity,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"--starting-equity must be a positive decimal number, got '{equity}'" in done.stderr
    assert "Traceback" not in done.stderr


def test_replay_refuses_an_output_path_that_is_a_file_in_one_line(tmp_path: Path) -> None:
    taken = tmp_path / "afile"
    taken.write_text("mine")
    done = torghut("replay", "--signals", _signals(tmp_path), "--catalog", GOOD_CATALOG, "--out", taken)
    assert done.returncode == 2
    assert f"--out {taken} exists and is not a directory" in done.stderr
    assert "Traceback" not in done.stderr and taken.read_text() == "mine"


def test_a_replay_of_nothing_usable_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json\n{also not\n")
    nothing = torghut("replay", "--signals", empty, "--catalog", GOOD_CATALOG, "--out", tmp_path / "a", "-q")
    useless = torghut(
        "replay", "--signals", garbage, "--catalog", GOOD_CATALOG, "--out", tmp_path / "b", "-q"
    )
    assert nothing.returncode == useless.returncode == 0  # valid runs, with their outputs and digests
    assert f"warning: {empty} holds no events" in nothing.stderr
    assert f"warning: every event of {garbage} was dead-lettered" in useless.stderr
    assert "paper account (plugin_v3): 0 decisions · 0 orders · 0 fills · equity 100,000.00 · P&L 0.00" in (
        nothing.stdout
    )


def test_run_refuses_a_bad_metrics_address_before_starting_anything(tmp_path: Path) -> None:
    done = torghut("run", "--once", "--workdir", tmp_path, "--metrics-address", "127.0.0.1:notaport")
    assert done.returncode == 2
    assert "metrics address '127.0.0.1:notaport': expected HOST:PORT" in done.stderr
    assert not (tmp_path / "var").exists()  # neither chdb nor PostgreSQL was started

"""Crash-and-resume harness: ``kill -9`` a recoverable replay at random moments, resume, compare digests.

Run in full as its own command (``scripts/crash-test``, defaults: 100,000 events, 20 kills, one process;
``--processes 2`` kills and resumes a two-process replay); the test suite runs reduced forms. The replay runs
as a real subprocess (``torghut replay --recovery-dir``) in its own process group; every kill is SIGKILL to
the whole group (the replay and any worker processes it started), so nothing gets to clean up. After the
last resume, each output stream's digest must equal an uninterrupted run's: no decision, order or dead
letter missing, none duplicated.

Every cycle that was killed is also checked for having really resumed (:class:`ResumeCheckError`
otherwise): its completing run reports ``resumed`` in ``summary.json``, every run after a kill keeps the
part files the killed runs wrote (it only appends to them; a fresh start would delete them), and no run
writes more records to a stream than the uninterrupted run holds. How much a resume wrote again is recorded
(:attr:`CycleReport.rewritten`), not checked: with random kill times a kill may land before any snapshot was
committed, and then starting over from the beginning is the correct resume.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tests.procs import alive, stat_fields
from torghut.connectors.part_files import PART_SUFFIX
from torghut.recovery.store import META_FILE

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "benchmarks" / "catalog.yaml"


class ResumeCheckError(AssertionError):
    """A killed replay completed without really resuming (see the module docstring)."""


@dataclass
class CycleReport:
    """One cycle: a replay killed ``kills`` times, then run until it completed."""

    kills: int
    #: ``summary.json``'s ``resumed`` of the run that completed the cycle.
    resumed: bool
    #: Records the completing run wrote, per stream (the uninterrupted run's ``counts`` when it redid all).
    rewritten: dict[str, int]
    #: Bytes of part files written before the completing run and found unchanged after it.
    kept_bytes: int
    #: Part files left ending in a torn (partial) line by the cycle's kills.
    torn_tails: int = 0
    #: ``summary.json``'s ``resumed_from_epoch`` of the completing run (None: no epoch was committed yet).
    resumed_from_epoch: int | None = None


@dataclass
class CrashReport:
    """What the harness did and found: one entry in ``resumed`` and ``cycles`` per replay (cycle)."""

    events: int
    kills: int
    kill_times_s: list[float] = field(default_factory=list)
    runs: int = 0
    reference: dict[str, str] = field(default_factory=dict)
    #: Each cycle's digests, stream by stream.
    resumed: list[dict[str, str]] = field(default_factory=list)
    cycles: list[CycleReport] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    #: Kills that landed before the replay had created its recovery store: not counted in ``kills``.
    kills_before_store: int = 0

    @property
    def identical(self) -> bool:
        """Whether every cycle's digests equal the uninterrupted run's, stream by stream."""
        return bool(self.reference) and bool(self.resumed) and all(r == self.reference for r in self.resumed)


def _command(signals: Path, out: Path, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torghut.cli",
        "replay",
        "--signals",
        str(signals),
        "--catalog",
        str(CATALOG),
        "--out",
        str(out),
        "-q",
        *extra,
    ]


def _summary(out: Path) -> dict[str, Any]:
    summary: dict[str, Any] = orjson.loads((out / "summary.json").read_bytes())
    return summary


def _digests(out: Path) -> tuple[dict[str, str], dict[str, int]]:
    """Each stream's digest, plus the summary's input counts (exact after a resume too), and the counts."""
    summary = _summary(out)
    streams = summary["streams"]
    digests = {k: v["sha256"] for k, v in streams.items()}
    digests["summary:events_in"] = str(summary["input"]["events_in"])
    digests["summary:events_normalized"] = str(summary["events_normalized"])
    return digests, {k: v["count"] for k, v in streams.items()}


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in process group ``pgid`` (Linux ``/proc``)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False
    for entry in entries:
        fields = stat_fields(entry) if entry.isdigit() else None  # state, ppid, pgrp, ...
        if fields is not None and len(fields) > 2 and int(fields[2]) == pgid and alive(entry):
            return True
    return False


def _kill_group(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGKILL every process of ``proc``'s group (it leads one) and wait until none is left."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    deadline = time.monotonic() + timeout_s
    while _group_alive(proc.pid):
        if time.monotonic() > deadline:
            msg = f"processes of group {proc.pid} still run {timeout_s} s after SIGKILL"
            raise RuntimeError(msg)
        time.sleep(0.01)


def start_maybe_killed(
    cmd: list[str], *, env: dict[str, str], stderr: Any, delay_s: float | None, group: bool = False
) -> tuple[subprocess.Popen[bytes], bool]:
    """Start ``cmd``; with ``delay_s``, SIGKILL it if it still runs then. Return it and whether it was killed.

    With ``group``, ``cmd`` runs in a new process group and the kill is SIGKILL to the whole group, waited
    for: a multi-process replay's workers die with it (killing only the parent would leave them running).
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, env=env, start_new_session=group)
    if delay_s is not None:
        try:
            proc.wait(timeout=delay_s)
        except subprocess.TimeoutExpired:
            if group:
                _kill_group(proc)
            else:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            return proc, True
    return proc, False


def crash_parser(description: str | None, default_work: Path) -> argparse.ArgumentParser:
    """The crash harnesses' shared command line (input size, kills, seed, work directory)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--minutes", type=int, default=17, help="100 symbols x 17 min = 102,000 events")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=default_work)
    return parser


def crash_arguments(description: str | None, default_work: Path) -> argparse.Namespace:
    """Parse the crash harnesses' shared command line (input size, kills, seed, work directory)."""
    return crash_parser(description, default_work).parse_args()


PartState = dict[Path, tuple[int, str]]


def _part_state(parts_dir: Path) -> PartState:
    """Size and sha256 of the whole lines of every part file in ``parts_dir``.

    A torn last line (a kill mid-write) is not kept: the resumed sink cuts it off and writes it again.
    """
    if not parts_dir.is_dir():
        return {}
    return {
        part: (len(whole), hashlib.sha256(whole).hexdigest())
        for part in sorted(parts_dir.glob(f"*{PART_SUFFIX}"))
        for data in (part.read_bytes(),)
        for whole in (data[: data.rfind(b"\n") + 1],)
    }


def _check_kept(before: PartState, cycle: int) -> int:
    """Raise unless every part file of ``before`` still starts with the lines it had; return their size."""
    for part, (size, digest) in before.items():
        try:
            with part.open("rb") as handle:
                head = handle.read(size)
        except FileNotFoundError:
            head = b""
        if len(head) != size or hashlib.sha256(head).hexdigest() != digest:
            msg = (
                f"cycle {cycle}: a run after a kill did not keep {part.name} as the killed run left it "
                f"({size} bytes): a resume appends to the part files, only a fresh start removes them"
            )
            raise ResumeCheckError(msg)
    return sum(size for size, _ in before.values())


def _appended_records(before: PartState, parts_dir: Path) -> dict[str, int]:
    """Records (lines) each stream's part files gained since ``before``."""
    appended: dict[str, int] = {}
    for part in sorted(parts_dir.glob(f"*{PART_SUFFIX}")):
        stream = part.name.rsplit("-w", 1)[0]
        size = before.get(part, (0, ""))[0]
        with part.open("rb") as handle:
            handle.seek(size)
            appended[stream] = appended.get(stream, 0) + handle.read().count(b"\n")
    return appended


def _torn_tails(parts_dir: Path) -> int:
    """Part files whose last line is incomplete (a kill interrupted a write)."""
    torn = 0
    for part in parts_dir.glob(f"*{PART_SUFFIX}"):
        size = part.stat().st_size
        if size:
            with part.open("rb") as handle:
                handle.seek(size - 1)
                torn += handle.read(1) != b"\n"
    return torn


def _run(cmd: list[str], timeout_s: float) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=timeout_s, env=dict(os.environ))


def _timed(cmd: list[str], timeout_s: float) -> float:
    """Run ``cmd`` to completion; return how long it took, in seconds."""
    started = time.monotonic()
    _run(cmd, timeout_s)
    return time.monotonic() - started


def run_crash_test(
    signals: Path,
    work: Path,
    *,
    kills: int,
    seed: int = 1,
    snapshot_interval_s: float = 0.2,
    timeout_s: float = 600.0,
    replay_args: tuple[str, ...] = (),
) -> CrashReport:
    """Replay ``signals`` once uninterrupted, then again killing it ``kills`` times; compare the digests.

    ``replay_args`` (``--shards 3``, ``--processes 2``, say) go to the killed replays (and the start-up
    timing run) only: the uninterrupted reference is a plain run, whose outputs they must not change.

    Raises:
        ResumeCheckError: a killed cycle completed without resuming, or a resume did not keep what the
            killed runs wrote, or wrote more records than the uninterrupted run.
    """
    rng = random.Random(seed)
    with signals.open("rb") as handle:
        report = CrashReport(events=sum(1 for line in handle if line.strip()), kills=0)
    # Start-up (interpreter, imports, catalog) is timed on a one-line input, so kills land while events
    # are being processed rather than during imports.
    tiny = work / "one-line.jsonl"
    with signals.open("rb") as handle:
        tiny.write_bytes(handle.readline())
    startup = plain_startup = _timed(_command(tiny, work / "startup", []), timeout_s)
    if replay_args:  # the killed replays' start-up (worker processes, an input split) may differ
        startup = _timed(_command(tiny, work / "startup-args", list(replay_args)), timeout_s)
    reference_out = work / "reference"
    duration = _timed(_command(signals, reference_out, []), timeout_s)
    report.reference, report.counts = _digests(reference_out)
    # Kills land between the killed replays' start-up and the end of the uninterrupted run's processing.
    latest = startup + max(duration - plain_startup, 0.1)

    # Each cycle is one replay, killed while it runs (a kill only counts when the process was still
    # running) and resumed until it completes; cycles repeat until ``kills`` kills have happened.
    while report.kills < kills or not report.resumed:
        cycle = len(report.resumed)
        out, recovery = work / f"crashed-{cycle}", work / f"recovery-{cycle}"
        extra = [
            "--recovery-dir",
            str(recovery),
            "--snapshot-interval",
            str(snapshot_interval_s),
            *replay_args,
        ]
        cmd = _command(signals, out, extra)
        cycle_kills = torn = kept = 0
        before: PartState = {}  # the part files as the last kill left them (none before the first kill)
        while True:
            report.runs += 1
            delay = rng.uniform(startup, latest) if report.kills < kills else None
            proc, killed = start_maybe_killed(
                cmd, env=dict(os.environ), stderr=subprocess.PIPE, delay_s=delay, group=True
            )
            if killed and delay is not None:
                if proc.stderr is not None:
                    proc.stderr.close()
                if cycle_kills:  # every run after a kill, killed again or not, only appends to part files
                    kept = _check_kept(before, cycle)
                if not (recovery / META_FILE).is_file():
                    # Killed before it created its recovery store: the next run starts afresh, as it should.
                    report.kills_before_store += 1
                    continue
                report.kills += 1
                cycle_kills += 1
                report.kill_times_s.append(round(delay, 3))
                before = _part_state(out / ".parts")
                torn += _torn_tails(out / ".parts")
                continue
            _, stderr = proc.communicate(timeout=timeout_s)
            if proc.returncode != 0:
                msg = f"resumed replay failed (exit {proc.returncode}):\n{stderr.decode(errors='replace')[-3000:]}"
                raise RuntimeError(msg)
            if cycle_kills:
                kept = _check_kept(before, cycle)
            break
        report.resumed.append(_digests(out)[0])
        report.cycles.append(_check_cycle(cycle, cycle_kills, out, before, report.counts, kept, torn))
    return report


def _check_cycle(
    cycle: int, kills: int, out: Path, before: PartState, counts: dict[str, int], kept: int, torn: int
) -> CycleReport:
    """Check that a killed cycle's completing run resumed and wrote no more than a whole run; describe it.

    ``before`` is the part files as the last kill left them, ``kept`` their size (checked unchanged).
    """
    summary = _summary(out)
    resumed = summary["resumed"] is True
    if kills and not resumed:
        msg = f"cycle {cycle} was killed {kills} time(s), but its completing run did not resume"
        raise ResumeCheckError(msg)
    rewritten = _appended_records(before, out / ".parts")
    more = {s: (n, counts.get(s, 0)) for s, n in rewritten.items() if n > counts.get(s, 0)}
    if more:
        msg = (
            f"cycle {cycle}: the completing run wrote more records than the uninterrupted run holds "
            f"(stream: (written, uninterrupted)): {more}"
        )
        raise ResumeCheckError(msg)
    return CycleReport(kills, resumed, rewritten, kept, torn, summary.get("resumed_from_epoch"))


def main() -> None:
    """Command line: generate an input, run the crash test, print the figures."""
    parser = crash_parser(__doc__, Path("out/crash-test"))
    parser.add_argument("--processes", type=int, default=1, help="processes of each killed replay")
    args = parser.parse_args()
    from torghut.connectors.synthetic.generator import write_sample_signals

    args.work.mkdir(parents=True, exist_ok=True)
    for target in args.work.iterdir():
        if target.name not in {"signals.jsonl", "one-line.jsonl"}:
            subprocess.run(["rm", "-rf", str(target)], check=True)
    signals = args.work / "signals.jsonl"
    write_sample_signals(signals, args.symbols, args.minutes, args.seed)
    replay_args = ("--processes", str(args.processes)) if args.processes != 1 else ()
    report = run_crash_test(signals, args.work, kills=args.kills, seed=args.seed, replay_args=replay_args)
    print(
        f"events {report.events:,} · kills {report.kills} · crashed replays {len(report.resumed)} · runs {report.runs}"
        f" · processes {args.processes}"
    )
    print(f"kill times (s): {report.kill_times_s}")
    total = sum(report.counts.values())
    for number, cycle in enumerate(report.cycles):
        rewritten = sum(cycle.rewritten.values())
        print(
            f"  cycle {number}: {cycle.kills} kill(s) · resumed {cycle.resumed} (epoch {cycle.resumed_from_epoch})"
            " · kept "
            f"{cycle.kept_bytes:,} bytes of part files · completing run wrote {rewritten:,} of {total:,} records"
            f" · torn part-file tails {cycle.torn_tails}"
        )
    for stream, digest in sorted(report.reference.items()):
        same = sum(1 for r in report.resumed if r.get(stream) == digest)
        mark = "ok" if same == len(report.resumed) else "DIFFERS"
        count = report.counts.get(stream)  # None for the summary's input counts (the value is the digest)
        shown = f"{count:>9,}  {digest[:16]}" if count is not None else f"{digest:>9}  {'':16}"
        print(f"  {stream:<26}{shown}  {same}/{len(report.resumed)} {mark}")
    print(
        "identical to the uninterrupted run" if report.identical else "DIFFERENT from the uninterrupted run"
    )
    raise SystemExit(0 if report.identical else 1)


if __name__ == "__main__":
    main()

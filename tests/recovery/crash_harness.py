"""Crash-and-resume harness: ``kill -9`` a recoverable replay at random moments, resume, compare digests.

Run in full as its own command (``scripts/crash-test``, defaults: 100,000 events, 20 kills); the test suite
runs a reduced form. The replay runs as a real subprocess (``torghut replay --recovery-dir``); every kill is
SIGKILL, so nothing gets to clean up. After the last resume, each output stream's digest must equal an
uninterrupted run's: no decision, order or dead letter missing, none duplicated.
"""

from __future__ import annotations

import argparse
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

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "benchmarks" / "catalog.yaml"


@dataclass
class CrashReport:
    """What the harness did and found: one entry in ``resumed`` per crashed-and-resumed replay (cycle)."""

    events: int
    kills: int
    kill_times_s: list[float] = field(default_factory=list)
    runs: int = 0
    reference: dict[str, str] = field(default_factory=dict)
    resumed: list[dict[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

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


def _digests(out: Path) -> tuple[dict[str, str], dict[str, int]]:
    summary = orjson.loads((out / "summary.json").read_bytes())
    streams = summary["streams"]
    return {k: v["sha256"] for k, v in streams.items()}, {k: v["count"] for k, v in streams.items()}


def start_maybe_killed(
    cmd: list[str], *, env: dict[str, str], stderr: Any, delay_s: float | None
) -> tuple[subprocess.Popen[bytes], bool]:
    """Start ``cmd``; with ``delay_s``, SIGKILL it if it still runs then. Return it and whether it was killed."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    if delay_s is not None:
        try:
            proc.wait(timeout=delay_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return proc, True
    return proc, False


def crash_arguments(description: str | None, default_work: Path) -> argparse.Namespace:
    """Parse the crash harnesses' shared command line (input size, kills, seed, work directory)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--minutes", type=int, default=17, help="100 symbols x 17 min = 102,000 events")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=default_work)
    return parser.parse_args()


def _run(cmd: list[str], timeout_s: float) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=timeout_s, env=dict(os.environ))


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

    ``replay_args`` (``--shards 3``, say) go to the killed replays only: the uninterrupted reference is a
    plain run, whose outputs they must not change.
    """
    rng = random.Random(seed)
    with signals.open("rb") as handle:
        report = CrashReport(events=sum(1 for line in handle if line.strip()), kills=0)
    # Start-up (interpreter, imports, catalog) is timed on a one-line input, so kills land while events
    # are being processed rather than during imports.
    tiny = work / "one-line.jsonl"
    with signals.open("rb") as handle:
        tiny.write_bytes(handle.readline())
    started = time.monotonic()
    _run(_command(tiny, work / "startup", []), timeout_s)
    startup = time.monotonic() - started
    reference_out = work / "reference"
    started = time.monotonic()
    _run(_command(signals, reference_out, []), timeout_s)
    duration = time.monotonic() - started
    report.reference, report.counts = _digests(reference_out)

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
        while True:
            report.runs += 1
            delay = rng.uniform(startup, max(duration, startup + 0.1)) if report.kills < kills else None
            proc, killed = start_maybe_killed(
                cmd, env=dict(os.environ), stderr=subprocess.PIPE, delay_s=delay
            )
            if killed and delay is not None:
                report.kills += 1
                report.kill_times_s.append(round(delay, 3))
                continue
            _, stderr = proc.communicate(timeout=timeout_s)
            if proc.returncode != 0:
                msg = f"resumed replay failed (exit {proc.returncode}):\n{stderr.decode(errors='replace')[-3000:]}"
                raise RuntimeError(msg)
            break
        report.resumed.append(_digests(out)[0])
    return report


def main() -> None:
    """Command line: generate an input, run the crash test, print the figures."""
    args = crash_arguments(__doc__, Path("out/crash-test"))
    from torghut.connectors.synthetic.generator import write_sample_signals

    args.work.mkdir(parents=True, exist_ok=True)
    for target in args.work.iterdir():
        if target.name not in {"signals.jsonl", "one-line.jsonl"}:
            subprocess.run(["rm", "-rf", str(target)], check=True)
    signals = args.work / "signals.jsonl"
    write_sample_signals(signals, args.symbols, args.minutes, args.seed)
    report = run_crash_test(signals, args.work, kills=args.kills, seed=args.seed)
    print(
        f"events {report.events:,} · kills {report.kills} · crashed replays {len(report.resumed)} · runs {report.runs}"
    )
    print(f"kill times (s): {report.kill_times_s}")
    for stream, digest in sorted(report.reference.items()):
        same = sum(1 for r in report.resumed if r.get(stream) == digest)
        mark = "ok" if same == len(report.resumed) else "DIFFERS"
        print(
            f"  {stream:<18}{report.counts[stream]:>9,}  {digest[:16]}  {same}/{len(report.resumed)} {mark}"
        )
    print(
        "identical to the uninterrupted run" if report.identical else "DIFFERENT from the uninterrupted run"
    )
    raise SystemExit(0 if report.identical else 1)


if __name__ == "__main__":
    main()

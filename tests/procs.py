"""Processes as Linux ``/proc`` shows them, for tests that check what a run leaves running."""

from __future__ import annotations

import select
from pathlib import Path
from typing import IO, Any


def stat_fields(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state, ppid, pgrp, ...); None when gone.

    The name is bracketed and may hold spaces, so the fields start after its closing bracket.
    """
    try:
        stat = Path("/proc", str(pid), "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def alive(pid: int | str) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] not in {"Z", "X"}


def first_line(stream: IO[Any], timeout_s: float, what: str) -> str:
    """The first line a child writes to ``stream`` (a pipe), waiting at most ``timeout_s``.

    Raises:
        TimeoutError: No whole line within ``timeout_s`` (names ``what``), instead of blocking the test.
    """
    ready, _, _ = select.select([stream], [], [], timeout_s)
    if not ready:
        msg = f"{what} wrote no line within {timeout_s:g} s"
        raise TimeoutError(msg)
    line = stream.readline()
    return (line.decode() if isinstance(line, bytes) else line).strip()

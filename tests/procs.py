"""Processes as Linux ``/proc`` shows them, for tests that check what a run leaves running."""

from __future__ import annotations

from pathlib import Path


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

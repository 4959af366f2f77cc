"""The network guard: no socket may connect, resolve or send while a strategy is being evaluated.

:func:`install_network_guard` wraps ``socket.socket.connect``/``connect_ex``/``sendto``,
``socket.create_connection`` and ``socket.getaddrinfo`` once per process (idempotently). The wrappers
only act while the calling thread's *evaluating* flag is set (:func:`begin_evaluation` /
:func:`end_evaluation`, or :func:`blocking_network`), so the rest of the engine (ClickHouse, Kafka,
PostgreSQL, Alpaca) is untouched. A blocked attempt raises :class:`NetworkAccessBlocked` and is also
remembered, so a plugin that swallows the exception is still reported as failing.
"""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_MARKER = "__torghut_network_guard__"
_LOCK = threading.Lock()
_local = threading.local()


class NetworkAccessBlocked(RuntimeError):
    """A strategy tried to use the network during evaluation."""


def _guard(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "active", False):
            exc = NetworkAccessBlocked(f"network access blocked during strategy evaluation: socket {name}")
            _local.violation = exc
            raise exc
        return fn(*args, **kwargs)

    setattr(guarded, _MARKER, True)
    return guarded


def install_network_guard() -> None:
    """Patch the socket entry points once; later calls do nothing."""
    with _LOCK:
        if getattr(socket.getaddrinfo, _MARKER, False):
            return
        for method in ("connect", "connect_ex", "sendto"):
            setattr(socket.socket, method, _guard(getattr(socket.socket, method), method))
        socket.create_connection = _guard(socket.create_connection, "create_connection")
        socket.getaddrinfo = _guard(socket.getaddrinfo, "getaddrinfo")


def network_guard_installed() -> bool:
    """Return whether :func:`install_network_guard` has patched this process."""
    return bool(getattr(socket.getaddrinfo, _MARKER, False))


def begin_evaluation() -> None:
    """Set this thread's evaluating flag and clear any earlier violation."""
    _local.violation = None
    _local.active = True


def take_violation() -> NetworkAccessBlocked | None:
    """Return and clear the violation seen since the last call (the flag stays set), for per-event checks."""
    violation: NetworkAccessBlocked | None = getattr(_local, "violation", None)
    if violation is not None:
        _local.violation = None
    return violation


def end_evaluation() -> NetworkAccessBlocked | None:
    """Clear this thread's evaluating flag; return the violation seen since :func:`begin_evaluation`."""
    _local.active = False
    violation: NetworkAccessBlocked | None = getattr(_local, "violation", None)
    _local.violation = None
    return violation


@contextmanager
def blocking_network() -> Iterator[None]:
    """Block the network for this thread inside the ``with`` block (installs the guard if needed)."""
    install_network_guard()
    begin_evaluation()
    try:
        yield
    finally:
        end_evaluation()

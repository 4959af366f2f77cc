"""Runtime trading control: the kill switch and trading switch an operator flips on a running service.

The static configuration (``TRADING_KILL_SWITCH_ENABLED``, ``TRADING_ENABLED``) is fixed for a run. A
control source adds runtime switches on top of it, read before every order the firewall evaluates, so a
flip applies to the very next order. The control can only make trading stricter:

- the effective kill switch is the static one **or** the control's;
- trading disabled by the control rejects every order (``trading_disabled``), whatever ``TRADING_ENABLED``;
- a control that cannot be read fails closed: every order is rejected (``trading_control_unavailable``).

The firewall takes the control as data (:class:`ControlState`); the I/O lives in a :class:`ControlSource`
(the service reads PostgreSQL's ``trading_control`` table, see :mod:`torghut.connectors.postgres.control`).
Replays and paper runs have no source: the control is :data:`STATIC_CONTROL` and decisions depend on the
configuration alone, so replays stay deterministic.

>>> effective_kill_switch(False, STATIC_CONTROL), effective_kill_switch(False, UNAVAILABLE_CONTROL)
(False, True)
>>> ControlState(kill_switch=True, source="postgres", revision="*@3").gate_inputs()["control_revision"]
'*@3'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

KILL_SWITCH_ENABLED = "kill_switch_enabled"
"""torghut's rejection reason for an engaged kill switch (contracts 5.4, 5.5)."""
TRADING_DISABLED = "trading_disabled"
"""torghut's rejection reason for ``TRADING_ENABLED=false`` (contracts 5.2), also used by the control."""
CONTROL_UNAVAILABLE = "trading_control_unavailable"
"""The engine's rejection reason when a configured control source cannot be read (fail closed)."""


@dataclass(frozen=True, slots=True)
class ControlState:
    """The runtime control as read at one instant.

    Attributes:
        kill_switch: The control engages the kill switch (added to the static one).
        trading_enabled: False when the control disables trading.
        available: False when the source could not be read: the firewall then rejects every order.
        source: Where the state came from (``postgres``); None for the static configuration alone.
        revision: The control rows that applied, as ``label@version`` joined by ``,`` (empty: no row).
        reason: The operator's reasons of those rows, or the read error when unavailable.
    """

    kill_switch: bool = False
    trading_enabled: bool = True
    available: bool = True
    source: str | None = None
    revision: str = ""
    reason: str | None = None

    def gate_inputs(self) -> dict[str, Any]:
        """The control as recorded in the firewall verdict's inputs (nothing for the static control)."""
        if self.source is None:
            return {}
        return {
            "control_source": self.source,
            "control_available": self.available,
            "control_kill_switch": self.kill_switch,
            "control_trading_enabled": self.trading_enabled,
            "control_revision": self.revision,
            "control_reason": self.reason,
        }


STATIC_CONTROL = ControlState()
"""No runtime control: the static configuration alone decides (replays, paper runs)."""

UNAVAILABLE_CONTROL = ControlState(available=False, source="unavailable")
"""A control that could not be read; sources return their own, with the error as ``reason``."""


class ControlSource(Protocol):
    """Where the runtime control is read from, once per order the firewall evaluates.

    ``read`` must not raise on an I/O failure: it returns a state with ``available=False`` instead, so
    the firewall fails closed and the flow keeps running.
    """

    def read(self) -> ControlState:
        """Return the current control state."""
        ...


def effective_kill_switch(static_engaged: bool, control: ControlState) -> bool:
    """Whether every order is blocked by a kill switch: static, the control's, or an unreadable control."""
    return static_engaged or control.kill_switch or not control.available

"""Broker errors: torghut's rejection strings and the retryable-or-final classification.

Retryable means the broker did not (or may not) have acted and the same order, under the same
``client_order_id``, may be sent again: HTTP 408, 429 and 5xx, timeouts, connection errors, unreadable
responses. Final means the broker answered and refused (any other 4xx).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests
from alpaca.common.exceptions import APIError

_REASON_TEXT_MAX = 500
_RETRYABLE_STATUSES = frozenset({408, 429})


class AlpacaError(Exception):
    """A broker call that failed; ``str()`` is the torghut-format reason, never a credential.

    Attributes:
        failure: The classified failure.
    """

    def __init__(self, failure: BrokerFailure) -> None:
        super().__init__(failure.reason)
        self.failure = failure

    @property
    def retryable(self) -> bool:
        """Whether the same call may be made again."""
        return self.failure.retryable

    @property
    def reason(self) -> str:
        """Torghut's rejection string."""
        return self.failure.reason


class OrderFirewallBoundaryViolation(AlpacaError):
    """A broker mutation was attempted without the order firewall's token."""

    def __init__(self, operation: str) -> None:
        super().__init__(
            BrokerFailure(reason=f"order_firewall_boundary_violation operation={operation}", retryable=False)
        )


@dataclass(frozen=True, slots=True)
class BrokerFailure:
    """Why a broker call failed.

    Attributes:
        reason: ``alpaca_order_rejected code=… reason=… existing_order_id=…`` for a JSON error body
            (each part only when present, like torghut), else ``alpaca_order_submit_failed <Exc>: <msg>``.
        retryable: See the module docstring.
        status_code: HTTP status, when the broker answered.
        code: Alpaca's error code from a JSON body.
        message: Alpaca's ``message`` from a JSON body.
        existing_order_id: The order Alpaca says conflicts with this one (torghut cancels it).
    """

    reason: str
    retryable: bool
    status_code: int | None = None
    code: int | None = None
    message: str | None = None
    existing_order_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the failure as JSON-safe data for a report's ``raw`` map."""
        return {
            "reason": self.reason,
            "retryable": self.retryable,
            "status_code": self.status_code,
            "code": self.code,
            "message": self.message,
            "existing_order_id": self.existing_order_id,
        }


def json_error_payload(error: BaseException) -> dict[str, Any] | None:
    """Return the JSON object an ``APIError`` carries as its text, or None (torghut's rule).

    >>> json_error_payload(APIError('{"code": 40010001, "message": "x"}'))
    {'code': 40010001, 'message': 'x'}
    >>> json_error_payload(APIError("<html>bad gateway</html>")) is None
    True
    """
    raw = str(error).strip()
    if not raw.startswith("{"):
        return None
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def rejection_reason(error: BaseException) -> str:
    """Format ``error`` as torghut's order rejection reason.

    >>> body = '{"code": 40310000, "reject_reason": "wash trade", "existing_order_id": "e1"}'
    >>> rejection_reason(APIError(body))
    'alpaca_order_rejected code=40310000 reason=wash trade existing_order_id=e1'
    >>> rejection_reason(APIError("Service Unavailable"))
    'alpaca_order_submit_failed APIError: Service Unavailable'
    """
    payload = json_error_payload(error)
    if payload:
        parts = ["alpaca_order_rejected"]
        if payload.get("code") is not None:
            parts.append(f"code={payload['code']}")
        if payload.get("reject_reason"):
            parts.append(f"reason={payload['reject_reason']}")
        if payload.get("existing_order_id"):
            parts.append(f"existing_order_id={payload['existing_order_id']}")
        return " ".join(parts)
    text = str(error).strip()
    if len(text) > _REASON_TEXT_MAX:
        text = text[:_REASON_TEXT_MAX] + "..."
    return f"alpaca_order_submit_failed {type(error).__name__}: {text}"


def status_code_of(error: BaseException) -> int | None:
    """Return the HTTP status of an ``APIError`` (None for transport errors)."""
    if isinstance(error, APIError):
        status = error.status_code
        return status if isinstance(status, int) else None
    return None


def is_retryable(error: BaseException) -> bool:
    """Classify ``error``: True for 408/429/5xx, timeouts, connection and unreadable-response errors."""
    status = status_code_of(error)
    if status is not None:
        return status in _RETRYABLE_STATUSES or status >= 500
    if isinstance(error, APIError):
        return True  # an HTTP error without a status: the broker's answer was not seen
    return isinstance(error, requests.RequestException | ValueError)


def classify(error: BaseException) -> BrokerFailure:
    """Turn an exception from alpaca-py or requests into a :class:`BrokerFailure`."""
    payload = json_error_payload(error) or {}
    code = payload.get("code")
    message = payload.get("message")
    existing = payload.get("existing_order_id")
    return BrokerFailure(
        reason=rejection_reason(error),
        retryable=is_retryable(error),
        status_code=status_code_of(error),
        code=code if isinstance(code, int) else None,
        message=message if isinstance(message, str) else None,
        existing_order_id=str(existing) if existing else None,
    )

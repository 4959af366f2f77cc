"""Error classification and torghut's rejection strings, without a server."""

from __future__ import annotations

from unittest.mock import Mock

import pytest
import requests
from alpaca.common.exceptions import APIError

from torghut.connectors.alpaca import classify, is_retryable, rejection_reason


def api_error(status: int, body: str) -> APIError:
    response = Mock(status_code=status)
    return APIError(body, Mock(response=response))  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        *[(400, False), (401, False), (403, False), (404, False), (422, False)],
        *[(408, True), (429, True), (500, True), (502, True), (503, True), (504, True)],
    ],
)
def test_status_classification(status: int, retryable: bool) -> None:
    assert is_retryable(api_error(status, "{}")) is retryable


@pytest.mark.parametrize(
    "error",
    [requests.ReadTimeout("read timed out"), requests.ConnectionError("refused"), ValueError("bad json")],
)
def test_transport_and_unreadable_answers_are_retryable(error: Exception) -> None:
    assert is_retryable(error)


def test_reason_formats_like_torghut() -> None:
    body = '{"code":40310000,"message":"m","reject_reason":"r","existing_order_id":"e"}'
    assert (
        rejection_reason(api_error(403, body))
        == "alpaca_order_rejected code=40310000 reason=r existing_order_id=e"
    )
    assert rejection_reason(api_error(422, '{"message":"only"}')) == "alpaca_order_rejected"
    assert rejection_reason(api_error(422, "[1, 2]")) == "alpaca_order_submit_failed APIError: [1, 2]"
    assert rejection_reason(api_error(503, "{not json")) == "alpaca_order_submit_failed APIError: {not json"
    assert rejection_reason(requests.ReadTimeout("t")) == "alpaca_order_submit_failed ReadTimeout: t"
    long = rejection_reason(api_error(502, "x" * 5000))
    assert len(long) < 600
    assert long.endswith("...")


def test_classify_keeps_the_json_fields() -> None:
    failure = classify(api_error(403, '{"code":40310000,"message":"m","existing_order_id":"e"}'))
    assert (failure.status_code, failure.code, failure.message, failure.existing_order_id) == (
        403,
        40310000,
        "m",
        "e",
    )
    assert failure.to_json()["reason"] == "alpaca_order_rejected code=40310000 existing_order_id=e"
    assert classify(requests.ConnectTimeout("c")).status_code is None

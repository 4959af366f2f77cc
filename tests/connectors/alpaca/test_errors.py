"""Error classification and torghut's rejection strings, without a server."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
import requests
from alpaca.common.exceptions import APIError

from torghut.connectors.alpaca import classify, is_retryable, rejection_reason


def api_error(status: int, body: str) -> APIError:
    """The error alpaca-py raises for an error answer, built as its ``RESTClient._one_request`` builds it."""
    response = requests.Response()
    response.status_code = status
    response.reason = HTTPStatus(status).phrase
    response.url = "http://127.0.0.1:8711/v2/orders"
    response._content = body.encode()
    response.headers["Content-Type"] = _content_type(body)
    try:
        response.raise_for_status()
    except requests.HTTPError as http_error:
        return APIError(response.text, http_error)  # type: ignore[no-untyped-call]
    msg = f"status {status} is not an error answer"
    raise AssertionError(msg)


def _content_type(body: str) -> str:
    try:
        json.loads(body)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json"


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

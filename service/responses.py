"""JSON answers and errors in Voucherify's shape, for every route of the service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.responses import Response

from service.config import Settings

REQUEST_ID_HEADER = "x-request-id"

_json = msgspec.json.Encoder()


def json_bytes(body: Any) -> bytes:
    return _json.encode(body)


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(_json.encode(body), status, headers, media_type="application/json")


def error_body(status: int, key: str, message: str, **extra: Any) -> dict[str, Any]:
    """An error as Voucherify writes one: code, key, message[, details, request_id, ...]."""
    return {"code": status, "key": key, "message": message, **extra}


def error_response(
    status: int,
    key: str,
    message: str,
    *,
    details: str | None = None,
    request_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = error_body(status, key, message, **extra)
    if details:
        body["details"] = details
    all_headers = dict(headers or {})
    if request_id:
        body["request_id"] = request_id
        all_headers[REQUEST_ID_HEADER] = request_id
    return json_response(body, status, all_headers)


def unavailable(settings: Settings, request_id: str | None = None) -> Response:
    """503 with Retry-After: Postgres does not answer in time, or the writer is full."""
    return error_response(
        503,
        "service_unavailable",
        "the event store is unavailable; retry later",
        request_id=request_id,
        headers={"Retry-After": str(settings.retry_after_seconds)},
    )

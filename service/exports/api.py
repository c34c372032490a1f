"""The Voucherify-compatible exports API: /v1/exports (contract section 3).

Request and response bodies follow Voucherify's exports.json, so Voucherify's SDKs work
against this service by changing only their host.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from service import auth
from service.db import UNAVAILABLE, Connection, Pool
from service.exports import jobs
from service.exports.query import InvalidExport
from service.responses import error_response, json_response, unavailable

# Pages beyond this would overflow the OFFSET (schemathesis found a 500 at page=1e20).
MAX_PAGE = 100_000


def _state(request: Request) -> Any:
    return request.app.state.service


def _not_found(export_id: str) -> Response:
    return error_response(404, "not_found", "Resource not found",
                          details=f"Cannot find export with id {export_id}",
                          resource_id=export_id, resource_type="export")  # fmt: skip


def _unauthorized() -> Response:
    return error_response(401, "unauthorized", "Unauthorized")


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def export_body(row: asyncpg.Record, base_url: str) -> dict[str, Any]:
    """An export object as Voucherify returns it; result.url once the file is ready."""
    result = None
    if row["status"] == "DONE":
        result = {"url": f"{base_url}/v1/exports/{row['id']}?token={row['token']}"}
    return {
        "id": row["id"],
        "object": "export",
        "created_at": _time(row["created_at"]),
        "status": row["status"],
        "channel": row["channel"],
        "exported_object": row["exported_object"],
        "parameters": row["parameters"],
        "result": result,
        "user_id": None,
    }


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _app_id(request: Request) -> str | None:
    return auth.authenticate(_state(request).settings.api_keys, request.headers)


def _pool(request: Request) -> Pool:
    pool: Pool | None = _state(request).pool
    if pool is None:
        raise ConnectionError("no database pool")
    return pool


def _ttl(request: Request) -> timedelta:
    return timedelta(seconds=_state(request).settings.export_token_ttl_seconds)


async def create_export(request: Request) -> Response:
    """POST /v1/exports: validate and schedule; 200 with status SCHEDULED."""
    app_id = _app_id(request)
    if app_id is None:
        return _unauthorized()
    try:
        body = msgspec.json.decode(await request.body())
    except msgspec.DecodeError as exc:
        return error_response(
            400, "invalid_payload", "Invalid payload", details=f"Body is not JSON: {exc}"
        )
    if not isinstance(body, dict):
        return error_response(
            400, "invalid_payload", "Invalid payload", details="Body should be an object"
        )
    try:
        async with _pool(request).acquire() as conn:
            row = await jobs.create(
                conn, body.get("exported_object"), body.get("parameters") or {},
                channel="API", app_id=app_id, token_ttl=_ttl(request),
            )  # fmt: skip
    except InvalidExport as exc:
        return error_response(400, exc.key, exc.message, details=exc.details)
    except UNAVAILABLE:
        return unavailable(_state(request).settings)
    runner = _state(request).exports
    if runner is not None:
        runner.wake()
    return json_response(export_body(row, _base_url(request)))


async def list_exports(request: Request) -> Response:
    """GET /v1/exports?limit=&page=&order=."""
    if _app_id(request) is None:
        return _unauthorized()
    query = request.query_params
    try:
        limit = int(query.get("limit", "10"))
        page = int(query.get("page", "1"))
    except ValueError:
        return error_response(
            400, "invalid_payload", "Invalid payload", details="limit and page are integers"
        )
    order = query.get("order", "-created_at")
    if not 1 <= limit <= 100 or not 1 <= page <= MAX_PAGE or order not in jobs.LIST_ORDERS:
        allowed = ", ".join(jobs.LIST_ORDERS)
        details = f"limit is 1..100, page is 1..{MAX_PAGE}, order is one of {allowed}"
        return error_response(400, "invalid_payload", "Invalid payload", details=details)
    sql = jobs.LIST_EXPORTS.format(order=jobs.LIST_ORDERS[order])
    try:
        async with _pool(request).acquire() as conn:
            rows = await conn.fetch(sql, limit, (page - 1) * limit)
            total = (
                rows[0]["total"] if rows else await conn.fetchval("SELECT count(*) FROM exports")
            )
            rows = [await _with_live_link(conn, r, _ttl(request)) for r in rows]
    except UNAVAILABLE:
        return unavailable(_state(request).settings)
    base = _base_url(request)
    return json_response({
        "object": "list",
        "data_ref": "exports",
        "exports": [export_body(r, base) for r in rows],
        "total": total,
    })  # fmt: skip


async def get_export(request: Request) -> Response:
    """GET /v1/exports/{id}: the export; with ?token= the CSV file itself."""
    export_id = request.path_params["export_id"]
    token = request.query_params.get("token")
    if token is None and _app_id(request) is None:
        return _unauthorized()
    try:
        async with _pool(request).acquire() as conn:
            row = await conn.fetchrow(jobs.SELECT_EXPORT, export_id)
            if row is not None and token is None:
                row = await _with_live_link(conn, row, _ttl(request))
    except UNAVAILABLE:
        return unavailable(_state(request).settings)
    if row is None:
        return _not_found(export_id) if token is None else _unauthorized()
    if token is None:
        return json_response(export_body(row, _base_url(request)))
    return _download(request, row, token)


async def _with_live_link(conn: Connection, row: asyncpg.Record, ttl: timedelta) -> Any:
    """The export, its download token renewed when less than half the TTL is left
    (`jobs.RENEW_TOKEN`): the link in result.url (of one export or of the list) works for
    at least half a TTL from when it is read, and a link read before keeps working until
    then too. Another request may renew it first: its token is then read back."""
    if row["token_expires_at"] - datetime.now(UTC) >= ttl / 2:
        return row
    renewed = await conn.fetchrow(jobs.RENEW_TOKEN, row["id"], jobs.new_token(), ttl)
    return renewed or await conn.fetchrow(jobs.SELECT_EXPORT, row["id"]) or row


def _download(request: Request, row: asyncpg.Record, token: str) -> Response:
    valid = hmac.compare_digest(row["token"].encode(), token.encode())
    if not valid or row["token_expires_at"] <= datetime.now(UTC):
        return _unauthorized()
    if row["status"] != "DONE":
        details = f"Export {row['id']} is {row['status']}"
        return error_response(409, "export_not_ready", "Export not ready", details=details)
    filename = f"{row['exported_object']}_{row['id']}.csv"
    return StreamingResponse(
        jobs.chunks(_pool(request), row["id"]),
        media_type="text/plain; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


async def delete_export(request: Request) -> Response:
    """DELETE /v1/exports/{id}: the job and its file; 204."""
    if _app_id(request) is None:
        return _unauthorized()
    export_id = request.path_params["export_id"]
    try:
        async with _pool(request).acquire() as conn:
            deleted = await conn.fetchval(jobs.DELETE_EXPORT, export_id)
    except UNAVAILABLE:
        return unavailable(_state(request).settings)
    if deleted is None:
        return _not_found(export_id)
    return Response(status_code=204)


routes = [
    Route("/v1/exports", create_export, methods=["POST"]),
    Route("/v1/exports", list_exports, methods=["GET"]),
    Route("/v1/exports/{export_id}", get_export, methods=["GET"]),
    Route("/v1/exports/{export_id}", delete_export, methods=["DELETE"]),
]

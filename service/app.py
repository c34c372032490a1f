"""The HTTP surface: the webhook receiver, probes and metrics (contract section 2)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import itertools
import multiprocessing
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from service import db, partitions, signing
from service.config import Settings
from service.exports import api as exports_api
from service.exports.jobs import ExportRunner
from service.intake import Rejected, parse
from service.metrics import CONTENT_TYPE_LATEST, Metrics
from service.migrate import head_revision, older_revisions
from service.openapi import SPEC
from service.protocol import BODY_RECEIVED, HEAD_REFUSALS
from service.responses import REQUEST_ID_HEADER, error_response, json_response, unavailable
from service.writer import Outcome, Saturated, Writer

log = structlog.get_logger("service.webhooks")


@dataclass
class State:
    """Shared resources, created once in the lifespan and handed to every request."""

    settings: Settings
    metrics: Metrics
    schema_head: str
    pool: db.Pool | None = None
    writer: Writer | None = None
    exports: ExportRunner | None = None


# Ids for requests that bring none: 32 hex digits like a uuid4's, from a random prefix
# per process and a counter (uuid4 per request was ~2% of the process' CPU).
_REQUEST_ID_PREFIX = secrets.token_hex(8)
_request_numbers = itertools.count()


def new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_request_numbers):016x}"


async def receive_webhook(request: Request) -> Response:
    """POST /webhooks/voucherify: verify, decode, store, then answer."""
    state: State = request.app.state.service
    settings = state.settings
    started = time.perf_counter()
    request_id = request.headers.get(REQUEST_ID_HEADER) or new_request_id()
    # delivery_id: an envelope's send-out id (whs_...), what Voucherify's dashboard shows.
    summary: dict[str, Any] = {"event_id": None, "type": None, "family": None, "delivery_id": None}

    def finish(response: Response, outcome: str, **extra: Any) -> Response:
        elapsed = time.perf_counter() - started
        state.metrics.observe(summary["family"] or "none", outcome, elapsed)
        # A quarantined event is a 202 that still needs someone: warning, like a refusal.
        level = "info" if response.status_code < 400 and outcome != "quarantined" else "warning"
        if outcome == "error":
            level = "error"
        log.log(
            _LEVELS[level],
            "webhook",
            **summary,
            outcome=outcome,
            status=response.status_code,
            duration_ms=round(elapsed * 1000, 2),
            request_id=request_id,
            **extra,
        )
        return response

    # A refusal sent before the body is all in (the checks below, a 413 or 408 on the
    # body) closes the connection: our HTTP protocol says so in its head and closes it.
    def refuse(status: int, key: str, message: str) -> Response:
        response = error_response(status, key, message, request_id=request_id)
        state.metrics.refusals.labels(reason=key).inc()
        return finish(response, "refused", reason=key)

    refusal = _precheck(request, settings)
    if refusal is not None:
        return refuse(*refusal)
    # A body already in (`BODY_RECEIVED`, set by our HTTP protocol) cannot trickle.
    in_already = BODY_RECEIVED in request.scope
    waiting = _NO_TIMER if in_already else asyncio.timeout(settings.body_timeout_seconds)
    try:
        async with waiting:
            body = await _read_body(request, settings.max_body_bytes)
    except _BodyTooLargeError:
        return refuse(413, "payload_too_large", f"body over {settings.max_body_bytes} bytes")
    except ClientDisconnect:  # nobody to answer; the log line and metrics still say so
        return refuse(400, "client_disconnected", "the connection closed before the body came")
    except TimeoutError:
        message = f"body not received within {settings.body_timeout_seconds} s"
        return refuse(408, "request_timeout", message)

    if settings.webhook_secrets and not signing.verify(
        settings.webhook_secrets, body, request.headers.get(signing.SIGNATURE_HEADER)
    ):
        return refuse(401, "invalid_signature", "missing or wrong x-voucherify-signature")

    try:
        incoming = parse(body)
    except Rejected as exc:
        return refuse(exc.status, exc.key, exc.message)
    summary.update(event_id=incoming.event_id, type=incoming.type, family=incoming.family,
                   delivery_id=incoming.delivery_id)  # fmt: skip
    if settings.max_event_age_seconds and _too_old(incoming.created_at, settings):
        return refuse(422, "event_too_old", "created_at is older than MAX_EVENT_AGE_SECONDS")

    if state.writer is None:
        return finish(unavailable(settings, request_id), "error", reason="not started")
    try:
        written = await state.writer.write(incoming)  # TimeoutError after the deadline
    except Saturated:
        return finish(unavailable(settings, request_id), "error", reason="queue full")
    except db.NOT_THE_EVENTS_FAULT as exc:
        return finish(
            unavailable(settings, request_id), "error", reason=f"{type(exc).__name__}: {exc}"
        )
    except db.REJECTED_VALUES as exc:
        # Valid JSON that Postgres' jsonb cannot hold (e.g. a \u0000 in a string).
        message = f"payload cannot be stored: {exc}"
        return refuse(400, "unstorable_payload", message)
    except Exception as exc:  # never a 500: Voucherify retries a 503
        log.exception("webhook write failed", event_id=incoming.event_id, request_id=request_id)
        return finish(
            unavailable(settings, request_id), "error", reason=f"{type(exc).__name__}: {exc}"
        )

    status = 200 if written.outcome is Outcome.DUPLICATE else 202
    body_out = {"event_id": incoming.event_id, "outcome": written.outcome.value}
    extra = {"error": written.error} if written.error else {}
    response = json_response(body_out, status, {REQUEST_ID_HEADER: request_id})
    return finish(response, written.outcome.value, **extra)


def _precheck(request: Request, settings: Settings) -> tuple[int, str, str] | None:
    """What refuses a delivery before its body is read: source, header size, content type."""
    if settings.allowed_networks and not _allowed(request, settings):
        return 403, "forbidden_source", "deliveries are not accepted from this address"
    header_bytes = sum(len(k) + len(v) for k, v in request.scope["headers"])
    if header_bytes > settings.max_header_bytes:
        return 431, "headers_too_large", f"headers over {settings.max_header_bytes} bytes"
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        return 415, "unsupported_media_type", "send the event as application/json"
    return None


def _allowed(request: Request, settings: Settings) -> bool:
    host = request.client.host if request.client else ""
    try:
        address = ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in settings.allowed_networks)


def _too_old(created_at: datetime | None, settings: Settings) -> bool:
    """An event without a readable created_at cannot prove its age: refused too."""
    if created_at is None:
        return True
    age = datetime.now(UTC) - created_at
    return age.total_seconds() > settings.max_event_age_seconds


class _BodyTooLargeError(Exception):
    pass


_NO_TIMER = contextlib.nullcontext()  # stateless: one serves every request


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


_HTTP_ERROR_KEYS = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such path, a method the path does not take) in the
    same JSON shape as every other error."""
    if not isinstance(exc, HTTPException):  # registered for HTTPException only
        raise exc
    key = _HTTP_ERROR_KEYS.get(exc.status_code, "http_error")
    return error_response(exc.status_code, key, exc.detail, headers=exc.headers)


async def healthz(request: Request) -> Response:
    """GET /healthz: the process is alive and serving."""
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """GET /readyz: 200 only when Postgres answers, lets this session store events, and
    the schema is at this release's latest migration or past it. Past it is ready: the
    next release's migration runs before its rollout, and the pods still serving must
    stay in service (and a rollback must become ready)."""
    state: State = request.app.state.service
    if state.pool is None:
        return json_response({"status": "unavailable", "reason": "no pool"}, 503)
    try:
        async with asyncio.timeout(2), state.pool.acquire() as conn:
            revision = await db.schema_revision(conn)
            writable = revision is not None and await db.can_write(conn)
    except db.REFUSED_OR_UNAVAILABLE as exc:  # down, or refusing us (no such database, login)
        reason = f"database unreachable: {type(exc).__name__}: {exc}"
        return json_response({"status": "unavailable", "reason": reason}, 503)
    if revision is None or revision in older_revisions():
        reason = f"schema at {revision}, expected {state.schema_head}; run migrate"
        return json_response({"status": "unavailable", "reason": reason}, 503)
    if not writable:
        reason = "database cannot store events: a standby, read-only, or no INSERT on events"
        return json_response({"status": "unavailable", "reason": reason}, 503)
    return json_response({"status": "ready", "schema": revision})


async def openapi(request: Request) -> Response:
    """GET /openapi.json: this service's own HTTP surface."""
    return json_response(SPEC)


async def metrics(request: Request) -> Response:
    """GET /metrics: Prometheus text format."""
    state: State = request.app.state.service
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


WEBHOOK_PATH = "/webhooks/voucherify"

routes = [
    Route(WEBHOOK_PATH, receive_webhook, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    *exports_api.routes,
]

_LEVELS = {"info": 20, "warning": 30, "error": 40}


def create_app(settings: Settings, database_url: str) -> Starlette:
    """The ASGI app; the pool is opened in the lifespan and closed on shutdown."""
    state = State(
        settings=settings,
        metrics=Metrics(),
        schema_head=head_revision(),
    )
    state.metrics.watch_head_refusals(HEAD_REFUSALS)
    state.metrics.watch_stored_after_answer(
        lambda: state.writer.stored_after_answer if state.writer else 0
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.pool = await db.create_pool(database_url, max_size=settings.db_pool_size)
        state.writer = Writer(
            state.pool,
            max_batch=settings.writer_max_batch,
            queue_limit=settings.writer_queue_limit,
            concurrency=settings.writer_concurrency,
            on_batch=state.metrics.observe_batch,
            redact_deleted=settings.redact_deleted_customers,
            deadline_seconds=settings.write_timeout_seconds,
        )
        state.writer.start()
        state.metrics.watch_queue(lambda: state.writer.depth if state.writer else 0)
        maintenance = asyncio.create_task(partitions.keep_ready(state.pool), name="partitions")
        worker = None
        if settings.export_worker:
            state.exports = ExportRunner(state.pool)
            worker = asyncio.create_task(state.exports.run_forever(), name="export-runner")
        try:
            yield
        finally:
            for task in (worker, maintenance):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            writer, state.writer = state.writer, None
            await writer.stop()
            pool, state.pool = state.pool, None
            await pool.close()

    app = ServiceApp(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error}
    )
    app.state.service = state
    return app


class ServiceApp(Starlette):
    """Starlette, with deliveries taken straight to their endpoint: every other request
    goes through the router and middleware, but a webhook POST, nearly all the traffic,
    skips matching the route table and the two exception middlewares
    (`receive_webhook` answers every failure itself; anything that still escapes is
    answered 500 by uvicorn and logged, as ServerErrorMiddleware would). So no middleware
    may be added: deliveries would pass it by. Measured: ~8 us
    less per request in process, of the ~100-200 us a delivery costs the process."""

    def add_middleware(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("deliveries would skip it (ServiceApp): wrap the app instead")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == WEBHOOK_PATH
            and scope["method"] == "POST"
            and not scope.get("root_path")
        ):
            scope["app"] = self
            response = await receive_webhook(Request(scope, receive))
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def from_env() -> Starlette:
    """App factory for `serve --workers N`: each worker process builds its own app (and its
    own pool, writer and export runner) from the environment the parent prepared."""
    from service import log as service_log  # noqa: PLC0415

    exit_with_parent()
    settings = Settings.from_env()  # checked by `serve` (require_signing, require_pool)
    service_log.configure(settings.log_level, settings.log_format)
    if not settings.database_url:
        raise RuntimeError("serve sets DATABASE_URL for its workers")
    app = create_app(settings, settings.database_url)
    settle_heap()
    return app


def exit_with_parent() -> None:
    """A worker of `serve --workers N` is sent SIGTERM (a graceful stop) when its
    supervisor dies, even by SIGKILL (OOM killer, kill -9): otherwise it would go on
    serving the inherited socket unsupervised, and a restarted service could not bind its
    port. Linux only (prctl PR_SET_PDEATHSIG); elsewhere a process manager must stop the
    whole group."""
    supervisor = multiprocessing.parent_process()  # as spawned, whatever happened since
    if supervisor is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("cannot ask to stop with the supervisor", errno=ctypes.get_errno())
        return
    if os.getppid() != supervisor.pid:  # it died while this worker was starting
        os.kill(os.getpid(), signal.SIGTERM)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


# CPython starts a generation-0 collection once 700 more container objects were allocated
# than freed: sized for scripts. With a few thousand objects in flight this process
# crossed that 150-300 times a second under load, and no collection found anything to
# free (a request's objects die by reference counting): ~6% of its CPU, and pauses of
# 28-52 ms once a backlog formed, since survivors are walked again and again. Cyclic
# garbage stays bounded: a collection still runs after 10,000 net allocations.
GC_THRESHOLDS = (10_000, 10, 10)


def settle_heap() -> None:
    """Exempt what start-up built (modules, the decoder, alembic's imports: hundreds of
    thousands of objects that live for ever) from the garbage collector, once, in a
    serving process, and collect less often (GC_THRESHOLDS). Otherwise every full
    collection walks them all: 50-70 ms pauses under load, measured, which were most of
    the p99 tail."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)

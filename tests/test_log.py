"""The process' log lines: one JSON object per line, whatever logs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Logs a traceback through the standard library, as uvicorn's "Exception in ASGI
# application" and asyncpg do, and a structlog line carrying a value JSON has no form for.
SCRIPT = """
import logging, structlog
from service import log
log.configure("INFO", "json")
try:
    raise ZeroDivisionError("boom")
except ZeroDivisionError:
    logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
structlog.get_logger("service.test").warning("odd value", value=ZeroDivisionError)
"""


def test_tracebacks_and_odd_values_are_json_lines_not_lost() -> None:
    """A standard-library record with a traceback once failed to encode: the line went
    missing from the JSON log and a 'Logging error' went to stderr instead."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Logging error" not in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["event"] for line in lines] == ["Exception in ASGI application", "odd value"]
    traceback, odd = lines
    assert traceback["level"] == "error"
    assert traceback["logger"] == "uvicorn.error"
    assert "ZeroDivisionError: boom" in traceback["exception"]
    assert odd["value"] == "<class 'ZeroDivisionError'>"

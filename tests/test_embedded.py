"""The embedded Postgres `make run` uses on a machine without one."""

from __future__ import annotations

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

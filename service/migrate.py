"""Alembic, driven from code: `python -m service migrate` and the readiness check."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

# Beside the package in a checkout; MIGRATIONS_DIR where the package is installed (images).
MIGRATIONS = Path(
    os.environ.get("MIGRATIONS_DIR") or Path(__file__).resolve().parent.parent / "migrations"
)


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


@cache
def head_revision() -> str:
    """This release's latest revision: a ready database is at it or past it."""
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS}")
    return head


@cache
def older_revisions() -> frozenset[str]:
    """This release's revisions before its head: a database at one of them is behind.
    A revision this release does not know is a later release's (migrations run before a
    rollout and stay compatible with the running release, docs/operations.md)."""
    scripts = ScriptDirectory.from_config(alembic_config(""))
    return frozenset(s.revision for s in scripts.walk_revisions()) - {head_revision()}

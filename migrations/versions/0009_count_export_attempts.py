"""Export jobs count their attempts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

A job whose worker stopped (killed, or Postgres restarted under it) is taken up again
once its lease runs out. One that stops its worker every time (a query that gets its
backend killed) was taken up for ever; with a count, it fails after its last allowed
attempt (service/exports/jobs.py: MAX_ATTEMPTS).
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE exports ADD COLUMN attempts integer NOT NULL DEFAULT 0")
    op.execute(
        "COMMENT ON COLUMN exports.attempts IS 'Times a worker has taken the job up; one "
        "whose lease ran out after its last allowed attempt fails (ERROR) instead of running "
        "again.'"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE exports DROP COLUMN attempts")

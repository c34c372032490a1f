"""Export jobs name the worker's claim on them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

A worker whose lease ran out (a slow first query, a stalled process) went on producing a
job another worker had taken over: both wrote chunks, the second's deletion of the first's
chunks raced the first's writes, and either could mark the job DONE or ERROR last, so a
DONE file could mix chunks of two runs. `claim` names the attempt that holds the job; a
worker writes chunks, renews, finishes or fails a job only while its claim is the one
stored (service/exports/jobs.py).
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE exports ADD COLUMN claim text")
    op.execute(
        "COMMENT ON COLUMN exports.claim IS 'The attempt that holds the job (set when a worker "
        "claims it): only that worker may write its file, renew its lease or end it.'"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE exports DROP COLUMN claim")

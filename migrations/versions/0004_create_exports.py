"""Create export jobs and the CSV files they produce.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

Exports are asynchronous jobs (SCHEDULED -> IN_PROGRESS -> DONE or ERROR) as in
Voucherify's API. Jobs and their CSV files live in Postgres, not on a pod's disk, so any
replica can serve a download and nothing is lost when the service restarts; a job whose
worker died is taken up again once its lease runs out.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE exports (
            id               text        PRIMARY KEY,
            exported_object  text        NOT NULL,
            parameters       jsonb       NOT NULL,
            status           text        NOT NULL DEFAULT 'SCHEDULED'
                             CHECK (status IN ('SCHEDULED', 'IN_PROGRESS', 'DONE', 'ERROR')),
            channel          text        NOT NULL,
            app_id           text,
            created_at       timestamptz NOT NULL DEFAULT now(),
            started_at       timestamptz,
            finished_at      timestamptz,
            lease_until      timestamptz,
            error            text,
            row_count        bigint,
            byte_count       bigint,
            token            text        NOT NULL,
            token_expires_at timestamptz NOT NULL
        )
    """)
    op.execute("CREATE INDEX exports_pending_idx ON exports (created_at) "
               "WHERE status IN ('SCHEDULED', 'IN_PROGRESS')")  # fmt: skip
    op.execute("""
        CREATE TABLE export_chunks (
            export_id text    NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
            seq       integer NOT NULL,
            data      bytea   NOT NULL,
            PRIMARY KEY (export_id, seq)
        )
    """)
    comments = {
        "TABLE exports": "Export jobs of the Voucherify-compatible /v1/exports API and CLI.",
        "COLUMN exports.id": "Export id (exp_...).",
        "COLUMN exports.exported_object": "order, voucher, publication, redemption, customer, "
        "points_expiration or voucher_transactions.",
        "COLUMN exports.parameters": "fields, filters and order as requested.",
        "COLUMN exports.status": "SCHEDULED, IN_PROGRESS, DONE or ERROR.",
        "COLUMN exports.channel": "API or CLI.",
        "COLUMN exports.app_id": "X-App-Id of the API key that asked for it.",
        "COLUMN exports.created_at": "When the export was scheduled.",
        "COLUMN exports.started_at": "When a worker started producing the file.",
        "COLUMN exports.finished_at": "When the file was complete (or the job failed).",
        "COLUMN exports.lease_until": "A worker holds the job until then; after it, another "
        "worker may take it over.",
        "COLUMN exports.error": "Why the export failed (status ERROR).",
        "COLUMN exports.row_count": "Data rows in the CSV.",
        "COLUMN exports.byte_count": "Size of the CSV in bytes.",
        "COLUMN exports.token": "Download token carried by result.url.",
        "COLUMN exports.token_expires_at": "When the download token stops working.",
        "TABLE export_chunks": "The CSV file of each export, in ordered chunks.",
        "COLUMN export_chunks.export_id": "The export (exports.id).",
        "COLUMN export_chunks.seq": "Position of the chunk in the file, from 0.",
        "COLUMN export_chunks.data": "Bytes of the chunk.",
    }
    for target, comment in comments.items():
        op.execute(f"COMMENT ON {target} IS '{comment.replace(chr(39), chr(39) * 2)}'")


def downgrade() -> None:
    op.execute("DROP TABLE export_chunks")
    op.execute("DROP TABLE exports")

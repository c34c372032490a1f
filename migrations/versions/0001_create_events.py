"""Create the event log: every accepted webhook, stored once by event id.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

`events` is the source of truth: normalized tables are derived from it and can be rebuilt
by `python -m service replay`. The primary key on the event id is what makes retries,
both wire shapes and concurrent deliveries of one event collapse to a single row.
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE events (
            id           text        PRIMARY KEY,
            type         text        NOT NULL,
            family       text        NOT NULL,
            status       text        NOT NULL CHECK (status IN ('processed', 'quarantined')),
            error        text,
            payload      jsonb       NOT NULL,
            created_at   timestamptz,
            received_at  timestamptz NOT NULL DEFAULT now(),
            group_id     text,
            customer_id  text,
            delivery_id  text,
            project_id   text
        )
    """)
    op.execute("CREATE INDEX events_family_created_at_idx ON events (family, created_at)")
    op.execute("CREATE INDEX events_customer_id_idx ON events (customer_id)")
    op.execute(
        "CREATE INDEX events_quarantined_idx ON events (received_at) WHERE status = 'quarantined'"
    )
    comments = {
        "": "Every webhook event accepted from Voucherify, stored once per event id. "
        "The source of truth the normalized tables are derived from.",
        "id": "Voucherify's customer-activity event id (evcus_...): event.id of a "
        "v2024-01-01 envelope, else the top-level id.",
        "type": "Event type, e.g. customer.order.paid.",
        "family": "Event family the type belongs to (order, redemption, loyalty_tier, "
        "distribution, ...), or unknown for a type Voucherify had not documented.",
        "status": "processed: normalized into the analyst tables; quarantined: stored raw "
        "because it could not be decoded or normalized (see error); replay retries it.",
        "error": "Why the event is quarantined; null when processed.",
        "payload": "The event exactly as delivered (whitespace aside).",
        "created_at": "When the activity happened, according to Voucherify.",
        "received_at": "When this service first stored the event.",
        "group_id": "Voucherify's id of the request that caused the event; events of one "
        "request share it.",
        "customer_id": "The customer the event is about (data.customer.id), when known.",
        "delivery_id": "Send-out id (whs_...) of the v2024-01-01 envelope that first "
        "delivered the event; null for the Customer Activity shape.",
        "project_id": "Voucherify project that sent the event (v2024-01-01 envelope only).",
    }
    for column, comment in comments.items():
        target = "TABLE events" if not column else f"COLUMN events.{column}"
        op.execute(f"COMMENT ON {target} IS '{comment.replace(chr(39), chr(39) * 2)}'")


def downgrade() -> None:
    op.execute("DROP TABLE events")

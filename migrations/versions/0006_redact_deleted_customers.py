"""Redaction of deleted customers' personal data, with an audit row.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

With REDACT_DELETED_CUSTOMERS=1, customer.deleted clears the customer's personal fields
in `customers` (and the names copied into `redemptions` and `publications`) and removes
them from the stored raw payloads of that customer's events; `customer_redactions` keeps
what was done, when, and by which event. `redact_customer_payload` is the one definition
of "personal" for payloads.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PERSONAL_KEYS = ("name", "email", "phone", "address", "birthdate", "birthday", "description",
                 "metadata", "source_id")  # fmt: skip


def _comment(target: str, text: str) -> None:
    op.execute(f"COMMENT ON {target} IS '{text.replace(chr(39), chr(39) * 2)}'")


def upgrade() -> None:
    keys = ", ".join(f"'{k}'" for k in PERSONAL_KEYS)
    op.execute(f"""
        CREATE FUNCTION redact_customer_payload(payload jsonb) RETURNS jsonb
        LANGUAGE sql IMMUTABLE AS $$
            SELECT CASE
                WHEN jsonb_typeof(payload #> '{{data,customer}}') = 'object'
                THEN jsonb_set(payload, '{{data,customer}}',
                               (payload #> '{{data,customer}}') - ARRAY[{keys}]::text[])
                ELSE payload
            END
        $$
    """)
    _comment("FUNCTION redact_customer_payload(jsonb)",
             "The payload without data.customer's personal fields.")  # fmt: skip
    op.execute("ALTER TABLE customers ADD COLUMN redacted_at timestamptz")
    _comment(
        "COLUMN customers.redacted_at",
        "When the customer's personal fields were cleared "
        "after customer.deleted (REDACT_DELETED_CUSTOMERS); later events never refill them.",
    )
    op.execute("""
        CREATE TABLE customer_redactions (
            customer_id      text        PRIMARY KEY,
            event_id         text        NOT NULL,
            redacted_at      timestamptz NOT NULL DEFAULT now(),
            events_redacted  integer     NOT NULL
        )
    """)
    comments = {
        "TABLE customer_redactions": "Audit of personal data removed after customer.deleted.",
        "COLUMN customer_redactions.customer_id": "The deleted customer.",
        "COLUMN customer_redactions.event_id": "The customer.deleted event that caused it.",
        "COLUMN customer_redactions.redacted_at": "When the data was removed.",
        "COLUMN customer_redactions.events_redacted": "Stored raw events whose payload was "
        "redacted (later ones are redacted as they arrive and counted here too).",
    }
    for target, text in comments.items():
        _comment(target, text)
    op.execute("""
        DO $$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'voucherify_analyst') THEN
                GRANT SELECT ON customer_redactions TO voucherify_analyst;
            END IF;
        END $$
    """)


def downgrade() -> None:
    op.execute("DROP TABLE customer_redactions")
    op.execute("ALTER TABLE customers DROP COLUMN redacted_at")
    op.execute("DROP FUNCTION redact_customer_payload(jsonb)")

"""Say what partial copies, missing customers and deleted owners leave in the tables; an
index for a voucher's holders.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

Comments only (docs/schema.md is generated from them), and an index on
`voucher_holders (voucher_id)`: a holder event now clears the voucher's owner when that
owner's assignment is deleted, and looks for the voucher's other live owner assignments.
The table holds one row per assignment; building the index blocks its writes (holder
events) only while it is built.
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COMMENTS = {
    "vouchers.customer_id": "Holder the voucher was published to (customers.id); null "
    "again once that owner's assignment is deleted.",
    "loyalty_tier_changes.customer_id": "Customer whose tier changed (from the tier's "
    "expiration when the event names no customer; null when nothing does).",
    "referrals.customer_id": "The referred customer (else the one whose redemption or "
    "custom event converted the referral; null when nothing names one).",
    "publications.result": "SUCCESS or FAILURE, from the event type "
    "(customer.publication.succeeded / failed).",
}
BEFORE = {
    "vouchers.customer_id": "Holder the voucher was published to (customers.id).",
    "loyalty_tier_changes.customer_id": "Customer whose tier changed.",
    "referrals.customer_id": "The referred customer.",
    "publications.result": "SUCCESS or FAILURE.",
}


def _comment(comments: dict[str, str]) -> None:
    for column, text in comments.items():
        quoted = text.replace("'", "''")
        op.execute(f"COMMENT ON COLUMN {column} IS '{quoted}'")


def upgrade() -> None:
    _comment(COMMENTS)
    op.execute(
        "CREATE INDEX IF NOT EXISTS voucher_holders_voucher_id_idx ON voucher_holders (voucher_id)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS voucher_holders_voucher_id_idx")
    _comment(BEFORE)

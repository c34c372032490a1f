"""Vouchers keep their discount's effect, whatever its type.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

`discount_unit_effect` is the export's UNIT discount effect only, so the effect of an
amount, percent or fixed discount (APPLY_TO_ORDER, APPLY_TO_ITEMS, ...) had no column, and
the voucher export's `discount_effect` field was always empty. A nullable column without
a default: added without rewriting the table, beside a live service.
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE vouchers ADD COLUMN discount_effect text")
    op.execute(
        "COMMENT ON COLUMN vouchers.discount_effect IS 'How the discount applies "
        "(APPLY_TO_ORDER, APPLY_TO_ITEMS, ...; for UNIT discounts also discount_unit_effect).'"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE vouchers DROP COLUMN discount_effect")

"""Record what export files brought to vouchers and redemptions, so a full replay keeps it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08

A webhook copy of a voucher or redemption keeps every stored value it leaves out, also
the values only an export file had (QR code, validity, counts; a redemption's tracking id).
Once a newer webhook owned such a row, a full replay, which keeps only the rows an import
still owns, lost them. `imported_rows` keeps each imported key's values as the files gave
them; `replay` applies them again after the events. Rows imported before this revision
are recorded from the table (those an import still owns: what replay kept until now).
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

RECORDED = ("vouchers", "redemptions")


def _comment(target: str, text: str) -> None:
    op.execute(f"COMMENT ON {target} IS '{text.replace(chr(39), chr(39) * 2)}'")


def upgrade() -> None:
    op.execute("""
        CREATE TABLE imported_rows (
            table_name  text  NOT NULL,
            id          text  NOT NULL,
            row         jsonb NOT NULL,
            PRIMARY KEY (table_name, id)
        )
    """)
    # Customer redaction finds a deleted customer's imported redemptions by their customer.
    op.execute(
        "CREATE INDEX imported_rows_customer_id_idx ON imported_rows ((row ->> 'customer_id'))"
    )
    comments = {
        "TABLE imported_rows": "What export files (`python -m service import`) gave rows "
        "of vouchers and redemptions, whose webhook copies keep what they leave out: a "
        "full replay applies it again after the events.",
        "COLUMN imported_rows.table_name": "vouchers or redemptions.",
        "COLUMN imported_rows.id": "The row's id in that table.",
        "COLUMN imported_rows.row": "The columns the files gave, as the newest file wrote "
        "them (an empty cell as null) and older files filled; last_event_at/last_event_id "
        "of the newest.",
    }
    for target, text in comments.items():
        _comment(target, text)
    for table in RECORDED:
        op.execute(f"""
            INSERT INTO imported_rows (table_name, id, row)
            SELECT '{table}', t.id, jsonb_strip_nulls(to_jsonb(t)) FROM {table} t
            WHERE t.last_event_id LIKE 'import:%'
        """)  # noqa: S608 - our own table names
    op.execute("""
        DO $$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'voucherify_analyst') THEN
                GRANT SELECT ON imported_rows TO voucherify_analyst;
            END IF;
        END $$
    """)


def downgrade() -> None:
    op.execute("DROP TABLE imported_rows")

"""jsonb values are compressed with lz4 where the server has it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

Postgres compresses a value once its row passes ~2 KB: half of Voucherify's bodies in
`events.payload`, and large customer metadata. With the default, pglz, that compression
was 7-9% of the writer's Postgres time; lz4 stores the same payloads 2% larger and took
7-15% less Postgres CPU per event (docs/performance.md). Only values written from now
on use it; both kinds read the same.

Set per column, so `\\d+` shows it and pg_dump keeps it: on every jsonb column of our
tables, and on `events` and each of its partitions (a partition made later with
`PARTITION OF events` takes the parent's setting; ALTER on the parent does not reach the
existing ones). A server built without lz4 (the embedded one, some managed services)
keeps pglz: the migration then changes nothing and says so.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Our tables' jsonb columns, partitions included; views have none of their own.
JSONB_COLUMNS = """
SELECT a.attrelid::regclass AS tbl, a.attname AS col
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
  AND a.atttypid = 'jsonb'::regtype AND a.attnum > 0 AND NOT a.attisdropped
"""


def _set_compression(method: str, *, only_if_available: bool) -> None:
    check = (
        """
        IF NOT EXISTS (SELECT FROM pg_settings WHERE name = 'default_toast_compression'
                       AND 'lz4' = ANY (enumvals)) THEN
            RAISE NOTICE 'this server has no lz4: jsonb values stay compressed with pglz';
            RETURN;
        END IF;"""
        if only_if_available
        else ""
    )
    op.execute(f"""
        DO $$
        DECLARE r record;
        BEGIN{check}
            FOR r IN {JSONB_COLUMNS} LOOP
                EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET COMPRESSION {method}',
                               r.tbl, r.col);
            END LOOP;
        END
        $$
    """)


def upgrade() -> None:
    _set_compression("lz4", only_if_available=True)


def downgrade() -> None:
    _set_compression("DEFAULT", only_if_available=False)

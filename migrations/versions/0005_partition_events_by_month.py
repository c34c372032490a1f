"""Partition the event log by month; keep "stored once" in a small event_ids table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

`events` grows with every delivery. Partitioned by `received_at` month, old months are
archived and dropped whole (`python -m service retention`), without a DELETE or a long
vacuum. Postgres requires the partition key in every unique index, so the guarantee that
an event id is stored once moves to `event_ids` (id primary key, a few dozen bytes a row),
which the writer inserts into first; it outlives retention, so a late retry of an archived
event is still recognised as a duplicate.
"""

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = """
    id           text        NOT NULL,
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
"""

# Keeps monthly partitions ready: creates the current month and `months_ahead` more, and
# moves anything that landed in the default partition (a month nobody created in time)
# into its own month. `migrate` runs it, and every `serve` process runs it hourly.
MAINTAIN_PARTITIONS = """
CREATE FUNCTION maintain_event_partitions(months_ahead integer DEFAULT 3) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    month date := date_trunc('month', now())::date;
    last date := (date_trunc('month', now()) + make_interval(months => months_ahead))::date;
    earliest date;
    strays integer;
BEGIN
    SELECT count(*), min(date_trunc('month', received_at))::date INTO strays, earliest
    FROM events_default;
    IF strays > 0 THEN
        CREATE TEMP TABLE _stray_events ON COMMIT DROP AS SELECT * FROM events_default;
        DELETE FROM events_default;
        month := least(month, earliest);
        last := greatest(last, (SELECT max(date_trunc('month', received_at))::date
                                FROM _stray_events));
    END IF;
    WHILE month <= last LOOP
        IF to_regclass(format('events_%s', to_char(month, 'YYYY_MM'))) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                           format('events_%s', to_char(month, 'YYYY_MM')),
                           month, (month + interval '1 month')::date);
        END IF;
        month := (month + interval '1 month')::date;
    END LOOP;
    IF strays > 0 THEN
        INSERT INTO events SELECT * FROM _stray_events;
        DROP TABLE _stray_events;
    END IF;
END
$$
"""

COMMENTS = {
    "TABLE events": "Every webhook event accepted from Voucherify, stored once per event id "
    "(see event_ids), partitioned by received_at month. The source of truth the normalized "
    "tables are derived from.",
    "COLUMN events.id": "Voucherify's customer-activity event id (evcus_...): event.id of a "
    "v2024-01-01 envelope, else the top-level id.",
    "COLUMN events.type": "Event type, e.g. customer.order.paid.",
    "COLUMN events.family": "Event family the type belongs to (order, redemption, loyalty_tier, "
    "distribution, ...), or unknown for a type Voucherify had not documented.",
    "COLUMN events.status": "processed: normalized into the analyst tables; quarantined: stored "
    "raw because it could not be decoded or normalized (see error); replay retries it.",
    "COLUMN events.error": "Why the event is quarantined; null when processed.",
    "COLUMN events.payload": "The event exactly as delivered (whitespace aside).",
    "COLUMN events.created_at": "When the activity happened, according to Voucherify.",
    "COLUMN events.received_at": "When this service first stored the event (partition key).",
    "COLUMN events.group_id": "Voucherify's id of the request that caused the event; events "
    "of one request share it.",
    "COLUMN events.customer_id": "The customer the event is about (data.customer.id), when known.",
    "COLUMN events.delivery_id": "Send-out id (whs_...) of the v2024-01-01 envelope that first "
    "delivered the event; null for the Customer Activity shape.",
    "COLUMN events.project_id": "Voucherify project that sent the event (v2024-01-01 envelope "
    "only).",
    "TABLE event_ids": "Every event id ever stored, with when: what makes a retry a duplicate, "
    "also after its month of events was archived.",
    "COLUMN event_ids.id": "Event id (events.id).",
    "COLUMN event_ids.received_at": "When it was first stored (its events partition).",
}


def _views() -> ModuleType:
    """Revision 0003, whose view over `events` must be dropped and made again."""
    path = Path(__file__).with_name("0003_create_analyst_views_and_role.py")
    spec = importlib.util.spec_from_file_location("revision_0003", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _recreate_freshness_view() -> None:
    comment, query, columns = _views().VIEWS["ingestion_freshness"]
    op.execute(f"CREATE VIEW ingestion_freshness AS {query}")
    _comment("VIEW ingestion_freshness", comment)
    for column, text in columns.items():
        _comment(f"COLUMN ingestion_freshness.{column}", text)


def _comment(target: str, text: str) -> None:
    op.execute(f"COMMENT ON {target} IS '{text.replace(chr(39), chr(39) * 2)}'")


def upgrade() -> None:
    op.execute("DROP VIEW ingestion_freshness")
    op.execute("CREATE TABLE event_ids (id text PRIMARY KEY, received_at timestamptz NOT NULL)")
    op.execute("INSERT INTO event_ids SELECT id, received_at FROM events")
    op.execute("ALTER TABLE events RENAME TO events_unpartitioned")
    op.execute(f"CREATE TABLE events ({COLUMNS}, PRIMARY KEY (id, received_at)) "
               "PARTITION BY RANGE (received_at)")  # fmt: skip
    op.execute("CREATE TABLE events_default PARTITION OF events DEFAULT")
    op.execute("INSERT INTO events SELECT * FROM events_unpartitioned")
    op.execute("DROP TABLE events_unpartitioned")
    op.execute(MAINTAIN_PARTITIONS)
    op.execute("SELECT maintain_event_partitions()")
    op.execute("CREATE INDEX events_family_created_at_idx ON events (family, created_at)")
    op.execute("CREATE INDEX events_customer_id_idx ON events (customer_id)")
    op.execute("CREATE INDEX events_received_at_id_idx ON events (received_at, id)")
    op.execute(
        "CREATE INDEX events_quarantined_idx ON events (received_at) WHERE status = 'quarantined'"
    )
    for target, text in COMMENTS.items():
        _comment(target, text)
    _recreate_freshness_view()
    # Analysts read the new tables too (when the role exists).
    op.execute("""
        DO $$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'voucherify_analyst') THEN
                GRANT SELECT ON events, event_ids, ingestion_freshness TO voucherify_analyst;
            END IF;
        END $$
    """)


def downgrade() -> None:
    op.execute("DROP VIEW ingestion_freshness")
    op.execute("ALTER TABLE events RENAME TO events_partitioned")
    op.execute(f"CREATE TABLE events ({COLUMNS}, PRIMARY KEY (id))")
    op.execute("INSERT INTO events SELECT * FROM events_partitioned ON CONFLICT DO NOTHING")
    op.execute("DROP TABLE events_partitioned")
    op.execute("DROP FUNCTION maintain_event_partitions(integer)")
    op.execute("DROP TABLE event_ids")
    op.execute("CREATE INDEX events_family_created_at_idx ON events (family, created_at)")
    op.execute("CREATE INDEX events_customer_id_idx ON events (customer_id)")
    op.execute(
        "CREATE INDEX events_quarantined_idx ON events (received_at) WHERE status = 'quarantined'"
    )
    for target, text in COMMENTS.items():
        if "event_ids" not in target:
            _comment(target, text.replace(" (see event_ids), partitioned by received_at month", ""))
    _recreate_freshness_view()

"""Partition maintenance moves stray events under a lock, in one statement.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

`maintain_event_partitions()` (0005) copied the default partition's rows into a temporary
table, then deleted them, in two statements with two snapshots and no lock between: an
event committed into the default partition in between (a month without its partition yet,
the case the function exists for) was deleted without being copied. Its raw row was lost,
and its id, kept in `event_ids`, answered every retry as a duplicate. Now the function
locks `events` before it moves anything, in the mode creating a partition needs anyway
(ACCESS EXCLUSIVE, taken once: a weaker lock upgraded later could close a cycle with a
replay that read `events` and then updates it), the parent first as every insert takes
it, and moves the rows with one DELETE ... RETURNING. Live batches wait while strays
move, as they already waited for a partition's creation.

It also waits at most 2 s for its locks (`lock_timeout`): a lock request waiting behind a
long reader of `events` (an analyst's query, an export) holds up every insert queued
behind it, so live deliveries would wait as long as that query runs. It fails instead
(logged); the next hourly run tries again, and partitions are made three months ahead.
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MAINTAIN_PARTITIONS = """
CREATE OR REPLACE FUNCTION maintain_event_partitions(months_ahead integer DEFAULT 3)
RETURNS void LANGUAGE plpgsql SET lock_timeout = '2s' AS $$
DECLARE
    month date := date_trunc('month', now())::date;
    last date := (date_trunc('month', now()) + make_interval(months => months_ahead))::date;
    strays boolean;
BEGIN
    -- Unlocked and cheap: most hours there is nothing to move.
    SELECT EXISTS (SELECT FROM events_default) INTO strays;
    IF strays THEN
        -- No insert can land in the default partition while its rows move back out.
        LOCK TABLE events IN ACCESS EXCLUSIVE MODE;
        CREATE TEMP TABLE _stray_events (LIKE events) ON COMMIT DROP;
        WITH moved AS (DELETE FROM events_default RETURNING *)
        INSERT INTO _stray_events SELECT * FROM moved;
        month := least(month, (SELECT min(date_trunc('month', received_at))::date
                               FROM _stray_events));
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
    IF strays THEN
        INSERT INTO events SELECT * FROM _stray_events;
        DROP TABLE _stray_events;
    END IF;
END
$$
"""


def upgrade() -> None:
    op.execute(MAINTAIN_PARTITIONS)


def downgrade() -> None:
    path = Path(__file__).with_name("0005_partition_events_by_month.py")
    spec = importlib.util.spec_from_file_location("revision_0005", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    op.execute(module.MAINTAIN_PARTITIONS.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))

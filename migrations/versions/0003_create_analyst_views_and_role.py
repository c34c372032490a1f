"""Views for the obvious questions, and a read-only role for analysts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

The views answer what analysts ask first (current loyalty tier, daily redemptions,
current segment members, how fresh each family's data is) so nobody re-derives them.
`voucherify_analyst` is a NOLOGIN role with SELECT on every table and view; grant it to a
login role to give someone read access (docs/schema.md). Creating it needs CREATEROLE;
without it the migration skips the role and says so.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

VIEWS = {
    "current_loyalty_tiers": (
        "The tier each customer holds now in each loyalty campaign: the latest tier change.",
        """
        SELECT DISTINCT ON (customer_id, campaign_id)
               customer_id,
               campaign_id,
               CASE WHEN change = 'left' THEN NULL ELSE tier_id END AS tier_id,
               change     AS last_change,
               expiration_date,
               created_at AS changed_at,
               event_id
        FROM loyalty_tier_changes
        ORDER BY customer_id, campaign_id, created_at DESC, event_id DESC
        """,
        {
            "customer_id": "Customer.",
            "campaign_id": "Loyalty campaign.",
            "tier_id": "Tier held now; null after the customer left the tier.",
            "last_change": "The latest change (joined, upgraded, left, ...).",
            "expiration_date": "When the tier expires, if known.",
            "changed_at": "When the latest change happened.",
            "event_id": "Event of the latest change.",
        },
    ),
    "daily_redemptions": (
        "Redemptions and rollbacks per UTC day, campaign and result.",
        """
        SELECT (date AT TIME ZONE 'UTC')::date AS day,
               campaign_id,
               campaign,
               object,
               result,
               count(*)                        AS redemptions,
               count(DISTINCT customer_id)     AS customers,
               sum(order_amount)               AS order_amount,
               sum(gift_amount)                AS gift_amount,
               sum(loyalty_points)             AS loyalty_points
        FROM redemptions
        GROUP BY 1, 2, 3, 4, 5
        """,
        {
            "day": "UTC day of the redemption.",
            "campaign_id": "Campaign id.",
            "campaign": "Campaign name.",
            "object": "redemption or redemption_rollback.",
            "result": "SUCCESS or FAILURE.",
            "redemptions": "Number of redemptions.",
            "customers": "Distinct customers redeeming.",
            "order_amount": "Sum of order amounts before discounts.",
            "gift_amount": "Sum of gift credits used.",
            "loyalty_points": "Sum of loyalty points used.",
        },
    ),
    "current_segment_members": (
        "Customers in each segment now: entered, and not left since.",
        """
        SELECT customer_id, segment_id, segment_name, entered_at
        FROM segment_memberships
        WHERE entered_at IS NOT NULL AND (left_at IS NULL OR left_at < entered_at)
        """,
        {
            "customer_id": "Customer.",
            "segment_id": "Segment.",
            "segment_name": "Segment name.",
            "entered_at": "When the customer (last) entered.",
        },
    ),
    "ingestion_freshness": (
        "How fresh each event family's data is: last event, delivery lag, quarantine.",
        """
        SELECT family,
               count(*)                                        AS events,
               max(created_at)                                 AS last_event_at,
               max(received_at)                                AS last_received_at,
               now() - max(received_at)                        AS since_last_received,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY received_at - created_at)
                   FILTER (WHERE received_at > now() - interval '1 hour')
                                                               AS median_lag_last_hour,
               count(*) FILTER (WHERE status = 'quarantined')  AS quarantined
        FROM events
        GROUP BY family
        """,
        {
            "family": "Event family.",
            "events": "Events stored.",
            "last_event_at": "Newest activity time (Voucherify's created_at).",
            "last_received_at": "When the newest event was received.",
            "since_last_received": "Time since the last event of this family arrived.",
            "median_lag_last_hour": "Median delay from activity to receipt, last hour.",
            "quarantined": "Events waiting in quarantine (see events.error; replay).",
        },
    ),
}

ROLE = "voucherify_analyst"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def upgrade() -> None:
    for name, (comment, query, columns) in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {query}")
        op.execute(f"COMMENT ON VIEW {name} IS {_quote(comment)}")
        for column, column_comment in columns.items():
            op.execute(f"COMMENT ON COLUMN {name}.{column} IS {_quote(column_comment)}")
    op.execute(f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                BEGIN
                    CREATE ROLE {ROLE} NOLOGIN;
                EXCEPTION WHEN insufficient_privilege THEN
                    RAISE NOTICE 'no CREATEROLE: skipping role {ROLE}';
                    RETURN;
                END;
            END IF;
            EXECUTE format('GRANT USAGE ON SCHEMA %I TO {ROLE}', current_schema());
            EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO {ROLE}', current_schema());
            EXECUTE format(
                'ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO {ROLE}',
                current_schema());
        END
        $$
    """)


def downgrade() -> None:
    op.execute(f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                EXECUTE format(
                    'ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE SELECT ON TABLES FROM {ROLE}',
                    current_schema());
                EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM {ROLE}',
                               current_schema());
                EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM {ROLE}', current_schema());
            END IF;
        END
        $$
    """)  # noqa: S608 - ROLE is a constant of this migration
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW {name}")

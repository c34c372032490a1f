"""Segment family: customer.segment.{entered,left} -> `segment_memberships`."""

from __future__ import annotations

from service.events.segments import SegmentActivity, SegmentEntered
from service.handlers import Meta, Writes, _entities, require
from service.handlers._sql import NEWER, Bulk

# Entry and exit times only ever move forward, so any arrival order gives the same row;
# the name and last event follow the newest event. A batch's rows for one membership are
# merged the same way first (one statement cannot update a row twice).
NEWEST_FIRST = "ORDER BY r.last_event_at DESC, r.last_event_id DESC"
UPSERT_MEMBERSHIP = Bulk(
    "segment_memberships_upsert",
    (("customer_id", "text"), ("segment_id", "text"), ("segment_name", "text"),
     ("entered_at", "timestamptz"), ("left_at", "timestamptz"),
     ("last_event_at", "timestamptz"), ("last_event_id", "text")),
    f"""
    INSERT INTO segment_memberships AS t (customer_id, segment_id, segment_name,
                                          entered_at, left_at, last_event_at, last_event_id)
    SELECT r.customer_id, r.segment_id, (array_agg(r.segment_name {NEWEST_FIRST}))[1],
           max(r.entered_at), max(r.left_at), max(r.last_event_at),
           (array_agg(r.last_event_id {NEWEST_FIRST}))[1]
    FROM {{rows}}
    GROUP BY r.customer_id, r.segment_id
    ORDER BY r.customer_id, r.segment_id  -- see LOCK_ORDER in handlers/_sql.py
    ON CONFLICT (customer_id, segment_id) DO UPDATE SET
        entered_at    = GREATEST(t.entered_at, EXCLUDED.entered_at),
        left_at       = GREATEST(t.left_at, EXCLUDED.left_at),
        segment_name  = CASE WHEN {NEWER} THEN EXCLUDED.segment_name ELSE t.segment_name END,
        last_event_id = CASE WHEN {NEWER} THEN EXCLUDED.last_event_id ELSE t.last_event_id END,
        last_event_at = GREATEST(t.last_event_at, EXCLUDED.last_event_at)
    """,  # noqa: S608 - constants only; the rows arrive as json
)  # fmt: skip


def handle(w: Writes, meta: Meta, event: SegmentActivity) -> None:
    customer = require(event.data.customer, "data.customer")
    customer_id = require(customer.id, "data.customer.id")
    segment = require(event.data.segment, "data.segment")
    segment_id = require(segment.id, "data.segment.id")
    # Segment events carry the full customer, summary included.
    _entities.full_customer(w, meta, customer, customer_id)
    entered = isinstance(event, SegmentEntered)
    w.add(
        UPSERT_MEMBERSHIP,
        customer_id,
        segment_id,
        segment.name,
        meta.at if entered else None,
        None if entered else meta.at,
        meta.at,
        meta.event_id,
    )

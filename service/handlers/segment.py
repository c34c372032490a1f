"""Segment family: customer.segment.{entered,left} -> `segment_memberships`."""

from __future__ import annotations

from service.db import Connection
from service.events.segments import SegmentActivity
from service.handlers import require


async def handle(conn: Connection, event: SegmentActivity) -> None:
    """Check what the normalized rows are keyed on; the rows themselves come with issue 3."""
    require(event.data.customer and event.data.customer.id, "data.customer.id")
    require(event.data.segment and event.data.segment.id, "data.segment.id")

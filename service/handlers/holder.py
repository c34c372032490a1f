"""Holder family: customer.holder.assignment.{created,deleted} -> voucher holders."""

from __future__ import annotations

from service.db import Connection
from service.events.holders import HolderActivity
from service.handlers import require


async def handle(conn: Connection, event: HolderActivity) -> None:
    """Check what the normalized rows are keyed on; the rows themselves come with issue 3."""
    require(event.data.holder and event.data.holder.id, "data.holder.id")

"""Loyalty tier family: customer.loyalty.tier.*, customer.loyalty.updated -> tier changes."""

from __future__ import annotations

from service.db import Connection
from service.events.loyalty import LoyaltyTierActivity
from service.handlers import require


async def handle(conn: Connection, event: LoyaltyTierActivity) -> None:
    """Check what the normalized rows are keyed on; the rows themselves come with issue 3."""
    require(event.data.customer and event.data.customer.id, "data.customer.id")

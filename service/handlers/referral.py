"""Referral family: customer.referred -> the referred customer and their referrer."""

from __future__ import annotations

from service.db import Connection
from service.events.referrals import Referred
from service.handlers import require


async def handle(conn: Connection, event: Referred) -> None:
    """Check what the normalized rows are keyed on; the rows themselves come with issue 3."""
    require(event.data.customer and event.data.customer.id, "data.customer.id")

"""Redemption family: redemptions and rollbacks -> `redemptions`."""

from __future__ import annotations

from service.db import Connection
from service.events.redemptions import RedemptionActivity
from service.handlers import require


async def handle(conn: Connection, event: RedemptionActivity) -> None:
    """Check what the normalized rows are keyed on; the rows themselves come with issue 3."""
    require(event.data.redemption and event.data.redemption.id, "data.redemption.id")
    if event.type.startswith("customer.redemption.rollback."):
        rollback = event.data.redemption_rollback
        require(rollback and rollback.id, "data.redemption_rollback.id")

"""Distribution family: customer.<channel>.{sent,recovered,failed} -> `distributions`."""

from __future__ import annotations

from service.db import Connection
from service.events.distributions import DistributionActivity


async def handle(conn: Connection, event: DistributionActivity) -> None:
    """Distribution rows need nothing beyond the type (channel, outcome) and the event id."""

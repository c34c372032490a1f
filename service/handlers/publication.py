"""Publication family: customer.publication.{succeeded,failed} -> `publications`."""

from __future__ import annotations

from service.db import Connection
from service.events.publications import PublicationActivity
from service.handlers import require


async def handle(conn: Connection, event: PublicationActivity) -> None:
    """Check what the normalized rows are keyed on; the rows themselves come with issue 3."""
    require(event.data.publication and event.data.publication.id, "data.publication.id")

"""Validation family: customer.validation.{succeeded,failed} -> validation rows."""

from __future__ import annotations

from service.db import Connection
from service.events.validations import ValidationActivity
from service.handlers import require


async def handle(conn: Connection, event: ValidationActivity) -> None:
    """Check what the normalized rows are keyed on; the rows themselves come with issue 3."""
    require(event.data.validation and event.data.validation.id, "data.validation.id")

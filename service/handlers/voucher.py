"""Voucher family: balances, points, pending points, deletion -> `vouchers` and history."""

from __future__ import annotations

from service.db import Connection
from service.events.vouchers import VoucherActivity
from service.handlers import require


async def handle(conn: Connection, event: VoucherActivity) -> None:
    """Check what the normalized rows are keyed on; the rows themselves come with issue 3."""
    require(event.data.voucher and event.data.voucher.id, "data.voucher.id")

"""Voucher family: gift credits, loyalty points, pending points, voucher deleted.

Writes the voucher with its balances to `vouchers`, the movement to
`voucher_transactions`, expired buckets to `points_expirations`, and pending points to
`loyalty_pending_points`.
"""

from __future__ import annotations

from service.events.times import parse_date, parse_time
from service.events.vouchers import VoucherActivity, VoucherDeleted, VoucherEvent
from service.handlers import Meta, Writes, _entities, require
from service.handlers._sql import upsert

UPSERT_BUCKET = upsert(
    "points_expirations",
    ("id", "campaign_id", "voucher_id", "status", "expires_at", "points",
     "last_event_at", "last_event_id"),
)  # fmt: skip
UPSERT_PENDING = upsert(
    "loyalty_pending_points",
    ("id", "status", "voucher_id", "campaign_id", "customer_id", "order_id", "points",
     "activates_at", "last_event_at", "last_event_id"),
)  # fmt: skip


def handle(w: Writes, meta: Meta, event: VoucherActivity) -> None:
    data = event.data
    voucher = require(data.voucher, "data.voucher")
    voucher_id = require(voucher.id, "data.voucher.id")
    customer_id = _entities.customer_stub(w, meta, data.customer)
    _entities.voucher(
        w, meta, voucher, holder_id=customer_id, balance=_balance_of(data, voucher_id)
    )
    _entities.voucher(w, meta, data.source_voucher)
    _entities.voucher(w, meta, data.destination_voucher)
    _entities.transaction(w, meta, data.transaction)
    if isinstance(event, VoucherDeleted):
        _entities.mark_voucher_deleted(w, meta, voucher_id)

    for bucket in data.buckets or []:
        if not bucket.id:
            continue
        w.add(
            UPSERT_BUCKET,
            bucket.id,
            bucket.campaign_id,
            bucket.voucher_id or voucher_id,
            bucket.status,
            parse_date(bucket.expires_at),
            bucket.bucket.total_points if bucket.bucket else None,
            meta.at,
            meta.event_id,
        )

    pending = data.pending_points
    if pending is not None and pending.id:
        order_id = _entities.order(w, meta, data.order, full=False, customer_id=customer_id)
        w.add(
            UPSERT_PENDING,
            pending.id,
            # customer.voucher.loyalty_card.pending_points.<status>
            meta.type.rsplit(".", 1)[1],
            pending.voucher_id or voucher_id,
            pending.campaign_id,
            pending.customer_id or customer_id,
            pending.order_id or order_id,
            pending.points,
            parse_time(pending.activates_at),
            meta.at,
            meta.event_id,
        )


def _balance_of(data: VoucherEvent, voucher_id: str) -> int | None:
    """The card's balance after the event: `data.balance`, else its transaction's
    (points_expired carries no `data.balance`), either only where it is this card's."""
    after = _entities.balance_after(data.balance, voucher_id)
    if after is None:
        after = _entities.transaction_balance_after(data.transaction, voucher_id)
    return after

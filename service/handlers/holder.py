"""Holder family: customer.holder.assignment.{created,deleted} -> `voucher_holders`."""

from __future__ import annotations

from service.events.holders import HolderActivity, HolderAssignmentDeleted
from service.events.times import parse_time
from service.handlers import Meta, Writes, _entities, require
from service.handlers._sql import upsert

UPSERT_HOLDER = upsert(
    "voucher_holders",
    ("id", "voucher_id", "customer_id", "holder_role", "campaign_id", "publication_id",
     "created_at", "deleted_at", "last_event_at", "last_event_id"),
)  # fmt: skip


def handle(w: Writes, meta: Meta, event: HolderActivity) -> None:
    data = event.data
    holder = require(data.holder, "data.holder")
    holder_id = require(holder.id, "data.holder.id")
    customer_id = _entities.customer_stub(w, meta, data.customer)
    deleted = isinstance(event, HolderAssignmentDeleted)
    # An owner's assignment names the voucher's holder (vouchers.customer_id).
    owner = holder.customer_id if holder.holder_role == "OWNER" and not deleted else None
    voucher_id = _entities.voucher(w, meta, data.voucher, holder_id=owner)
    w.add(
        UPSERT_HOLDER,
        holder_id,
        holder.redeemable_id or voucher_id,
        holder.customer_id or customer_id,
        holder.holder_role,
        holder.campaign_id or (data.campaign.id if data.campaign else None),
        holder.publication_id,
        parse_time(holder.created_at),
        meta.at if deleted else None,
        meta.at,
        meta.event_id,
    )

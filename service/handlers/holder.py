"""Holder family: customer.holder.assignment.{created,deleted} -> `voucher_holders`, and
the voucher's owner (`vouchers.customer_id`)."""

from __future__ import annotations

from service.events.holders import HolderActivity, HolderAssignmentDeleted
from service.events.times import parse_time
from service.handlers import Meta, Writes, _entities, require
from service.handlers._sql import Bulk, upsert

UPSERT_HOLDER = upsert(
    "voucher_holders",
    ("id", "voucher_id", "customer_id", "holder_role", "campaign_id", "publication_id",
     "created_at", "deleted_at", "last_event_at", "last_event_id"),
)  # fmt: skip
# `vouchers.customer_id` is the owner the voucher was published to: an owner's deleted
# assignment takes the voucher from them, unless another live owner assignment of the
# voucher names them too. Run after both upserts (statements run in definition order)
# for every holder event, created or deleted: `voucher_holders` then knows whether the
# assignment's newest event is its deletion, whichever arrived first, so a creation older
# than the deletion, arriving after it, cannot fill the owner back in (its voucher copy
# does, as an older copy fills a column left empty; this undoes it). It touches only
# the voucher the event's own copy wrote, which that upsert has locked (LOCK_ORDER).
CLEAR_DELETED_OWNER = Bulk(
    "vouchers_clear_deleted_owner",
    (("holder_id", "text"), ("voucher_id", "text")),
    """
    UPDATE vouchers v SET customer_id = NULL
    FROM {rows}, voucher_holders h
    WHERE h.id = r.holder_id AND v.id = r.voucher_id
      AND h.holder_role = 'OWNER' AND h.deleted_at IS NOT NULL
      AND v.customer_id = h.customer_id
      AND NOT EXISTS (
          SELECT FROM voucher_holders o
          WHERE o.voucher_id = h.voucher_id AND o.customer_id = h.customer_id
            AND o.holder_role = 'OWNER' AND o.deleted_at IS NULL
      )
    """,
)


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
    if voucher_id is not None:
        w.add(CLEAR_DELETED_OWNER, holder_id, voucher_id)

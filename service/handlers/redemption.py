"""Redemption family: redemptions and rollbacks -> `redemptions` (+ embedded objects)."""

from __future__ import annotations

from service.events._blocks import Redemption, Voucher
from service.events.redemptions import (
    RedemptionActivity,
    RedemptionEvent,
    RedemptionRollbackFailed,
    RedemptionRollbackSucceeded,
)
from service.events.times import parse_time, whole
from service.handlers import Meta, Writes, _entities, require
from service.handlers._sql import upsert

REDEMPTION_COLUMNS = (
    "id", "object", "date", "voucher_code", "voucher_id", "campaign", "campaign_id",
    "promotion_tier_id", "customer_id", "customer_source_id", "customer_name", "tracking_id",
    "order_id", "order_amount", "gift_amount", "loyalty_points", "result", "status", "amount",
    "failure_code", "failure_message", "reason", "parent_redemption_id", "metadata",
    "last_event_at", "last_event_id",
)  # fmt: skip
UPSERT_REDEMPTION = upsert("redemptions", REDEMPTION_COLUMNS)


def handle(w: Writes, meta: Meta, event: RedemptionActivity) -> None:
    data = event.data
    redemption = require(data.redemption, "data.redemption")
    require(redemption.id, "data.redemption.id")
    rollback = None
    if isinstance(event, RedemptionRollbackSucceeded | RedemptionRollbackFailed):
        rollback = require(data.redemption_rollback, "data.redemption_rollback")
        require(rollback.id, "data.redemption_rollback.id")

    customer_id = _entities.customer_stub(w, meta, data.customer)
    holder_id = _entities.customer_stub(w, meta, data.holder)
    _entities.voucher(w, meta, data.voucher or redemption.voucher, holder_id=holder_id)
    order = data.order or redemption.order
    order_id = _entities.order(w, meta, order, full=False, customer_id=customer_id)

    ids = {"customer_id": customer_id, "order_id": order_id}
    _write(w, meta, data, redemption, object_="redemption", parent_id=None, **ids)
    if rollback is not None:
        parent = rollback.redemption or redemption.id
        _write(w, meta, data, rollback, object_="redemption_rollback", parent_id=parent, **ids)


def _write(
    w: Writes,
    meta: Meta,
    data: RedemptionEvent,
    r: Redemption,
    *,
    object_: str,
    customer_id: str | None,
    order_id: str | None,
    parent_id: str | None,
) -> None:
    """One row of `redemptions`: the redemption, or its rollback (object_ says which)."""
    voucher = data.voucher or r.voucher
    campaign = data.campaign
    customer = data.customer
    order = data.order or r.order
    tier = data.promotion_tier or r.promotion_tier
    credits, points = _credits_and_points(r, voucher)
    w.add(
        UPSERT_REDEMPTION,
        r.id,
        object_,
        parse_time(r.date or r.created_at) or meta.at,
        voucher.code if voucher else None,
        voucher.id if voucher else None,
        (campaign.name if campaign else None) or (voucher.campaign if voucher else None),
        (campaign.id if campaign else None) or (voucher.campaign_id if voucher else None),
        tier.id if tier else None,
        r.customer_id or customer_id,
        customer.source_id if customer else None,
        customer.name if customer else None,
        r.tracking_id,
        order_id,
        order.amount if order else None,
        credits,
        points,
        r.result,
        r.status,
        r.amount,
        r.failure_code,
        r.failure_message,
        r.reason,
        parent_id or r.parent_redemption_id,
        r.metadata,
        meta.at,
        meta.event_id,
    )


def _credits_and_points(r: Redemption, voucher: Voucher | None) -> tuple[int | None, int | None]:
    """(gift credits, loyalty points) the redemption used: as `gift` and `loyalty_card`
    name them, else its `amount`, credits for a gift card and points for a loyalty card
    (negative in a rollback)."""
    credits = whole(r.gift.amount) if r.gift else None
    points = r.loyalty_card.points if r.loyalty_card else None
    kind = voucher.type if voucher else None
    if credits is None and kind == "GIFT_VOUCHER":
        credits = r.amount
    if points is None and kind == "LOYALTY_CARD":
        points = r.amount
    return credits, points

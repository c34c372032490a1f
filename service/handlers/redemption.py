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
from service.handlers._sql import Bulk, upsert

REDEMPTION_COLUMNS = (
    "id", "object", "date", "voucher_code", "voucher_id", "campaign", "campaign_id",
    "promotion_tier_id", "customer_id", "customer_source_id", "customer_name", "tracking_id",
    "order_id", "order_amount", "gift_amount", "loyalty_points", "result", "status", "amount",
    "failure_code", "failure_message", "reason", "parent_redemption_id", "metadata",
    "last_event_at", "last_event_id",
)  # fmt: skip
# A rollback event carries its parent redemption as a Simple Redemption, which may hold
# little more than its id, date and new status: a row without a value keeps the one the
# redemption's own event brought, before or after it (see `upsert`, and its limit).
UPSERT_REDEMPTION = upsert(
    "redemptions",
    REDEMPTION_COLUMNS,
    kept_if_null=tuple(
        c for c in REDEMPTION_COLUMNS if c not in ("id", "object", "last_event_at", "last_event_id")
    ),
)
# REDACT_DELETED_CUSTOMERS: an older event fills the names a newer row lacks without
# becoming the row's event (`last_event_id`), so the redaction after each batch, which
# looks only at rows of the batch's events, would miss them: cleared here instead.
_NAMED = "t.customer_id IN (SELECT customer_id FROM customer_redactions)"
KEEP_REDACTED = Bulk(
    "redemptions_keep_redacted",
    (("id", "text"),),
    f"""
    UPDATE redemptions t SET {_entities.set_null("redemptions")}
    FROM {{rows}}
    WHERE t.id = r.id AND ({_entities.any_set("redemptions", "t.")}) AND {_NAMED}
    """,  # noqa: S608 - our own names
)
# The same for what kept export files hold of such a row when it names the redeemer but
# not their id: a late event gives the row the redacted customer, so the files' copies
# lose the names too.
_REDACTED_ROW = f"EXISTS (SELECT FROM redemptions t WHERE t.id = r.id AND {_NAMED})"
LINES_KEEP_REDACTED = Bulk(
    "import_lines_keep_redacted",
    (("id", "text"),),
    _entities.redact_lines(
        f"l.customer_id IS NULL AND l.row_id = r.id AND {_REDACTED_ROW}", also_from=", {rows}"
    ),
)
BEFORE_0012_KEEP_REDACTED = Bulk(
    "imported_before_0012_keep_redacted",
    (("id", "text"),),
    _entities.redact_before_0012(
        "table_name = 'redemptions' AND row ->> 'customer_id' IS NULL "
        f"AND row ->> 'id' = r.id AND {_REDACTED_ROW}",
        also_from=" FROM {rows}",
    ),
)


# The OpenAPI enum of a Simple Redemption's status spells "ROLLED BACK"; the API and the
# exports spell ROLLED_BACK: one spelling in the table, so a filter on it finds them all.
STATUS_SPELLING = {"ROLLED BACK": "ROLLED_BACK"}


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

    if rollback is None:
        _write(
            w,
            meta,
            data,
            redemption,
            object_="redemption",
            parent_id=None,
            customer_id=customer_id,
            order_id=order_id,
        )
        return
    # The event is about the rollback: its customer, order and voucher go with the
    # rollback's row. The parent redemption is a copy (a Simple Redemption: often little
    # more than its id, date and new status): only what the copy carries changes its row.
    _write(w, meta, data, redemption, object_="redemption", parent_id=None, copy=True)
    parent = rollback.redemption or redemption.id
    _write(
        w,
        meta,
        data,
        rollback,
        object_="redemption_rollback",
        parent_id=parent,
        customer_id=customer_id,
        order_id=order_id,
    )


def _write(
    w: Writes,
    meta: Meta,
    data: RedemptionEvent,
    r: Redemption,
    *,
    object_: str,
    parent_id: str | None,
    customer_id: str | None = None,
    order_id: str | None = None,
    copy: bool = False,
) -> None:
    """One row of `redemptions`: the redemption, or its rollback (object_ says which),
    with what the event says about it besides; a `copy` (the parent redemption in a
    rollback event) only with what it carries itself: the rest (NULL) is kept."""
    own = None if copy else data
    voucher = (own.voucher if own else None) or r.voucher
    campaign = own.campaign if own else None
    customer = own.customer if own else None
    order = (own.order if own else None) or r.order
    tier = (own.promotion_tier if own else None) or r.promotion_tier
    # The redeemed card's type tells credits from points (a copy's too: the same card).
    credits, points = _credits_and_points(r, data.voucher or r.voucher)
    w.add(
        UPSERT_REDEMPTION,
        r.id,
        object_,
        parse_time(r.date or r.created_at) or (None if copy else meta.at),
        voucher.code if voucher else None,
        voucher.id if voucher else None,
        (campaign.name if campaign else None) or (voucher.campaign if voucher else None),
        (campaign.id if campaign else None) or (voucher.campaign_id if voucher else None),
        tier.id if tier else None,
        r.customer_id or customer_id,
        customer.source_id if customer else None,
        customer.name if customer else None,
        r.tracking_id,
        order_id or (order.id if order else None),
        order.amount if order else None,
        credits,
        points,
        r.result,
        STATUS_SPELLING.get(r.status, r.status) if r.status else None,
        r.amount,
        r.failure_code,
        r.failure_message,
        r.reason,
        parent_id or r.parent_redemption_id,
        r.metadata,
        meta.at,
        meta.event_id,
    )
    if meta.redact_deleted:
        # Also when this event names nobody: it may give a file's row its customer.
        w.add(KEEP_REDACTED, r.id)
        w.add(LINES_KEEP_REDACTED, r.id)
        w.add(BEFORE_0012_KEEP_REDACTED, r.id)


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

"""Referral family: customer.referred -> `referrals`."""

from __future__ import annotations

from service.events.referrals import Referred
from service.handlers import Meta, Writes, _entities, require
from service.handlers._sql import append

INSERT_REFERRAL = append(
    "referrals",
    ("event_id", "customer_id", "referrer_id", "campaign_id", "voucher_id", "voucher_code",
     "custom_event_id", "redemption_id", "occurred_at"),
)  # fmt: skip


def handle(w: Writes, meta: Meta, event: Referred) -> None:
    data = event.data
    require(data.customer and data.customer.id, "data.customer.id")
    customer_id = _entities.customer_stub(w, meta, data.customer)
    referrer_id = _entities.customer_stub(w, meta, data.referrer)
    voucher_id = _entities.voucher(w, meta, data.voucher, holder_id=referrer_id)
    w.add(
        INSERT_REFERRAL,
        meta.event_id,
        customer_id,
        referrer_id,
        data.campaign.id if data.campaign else None,
        voucher_id,
        data.voucher.code if data.voucher else None,
        data.custom_event.id if data.custom_event else None,
        data.redemption.id if data.redemption else None,
        meta.at,
    )

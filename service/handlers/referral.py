"""Referral family: customer.referred -> `referrals`."""

from __future__ import annotations

from service.events.referrals import Referred
from service.handlers import Meta, Writes, _entities
from service.handlers._sql import append

INSERT_REFERRAL = append(
    "referrals",
    ("event_id", "customer_id", "referrer_id", "campaign_id", "voucher_id", "voucher_code",
     "custom_event_id", "redemption_id", "occurred_at"),
)  # fmt: skip


def handle(w: Writes, meta: Meta, event: Referred) -> None:
    data = event.data
    # `customer` is optional in EventCustomerReferred: the referred customer is then the
    # one who redeemed the referral code, if a redemption converted the referral; else
    # the row is kept without one (NULL).
    redemption = data.redemption
    custom_event = data.custom_event
    customer_id = (
        _entities.customer_stub(w, meta, data.customer)
        or (redemption.customer_id if redemption else None)
        or (custom_event.customer.id if custom_event and custom_event.customer else None)
    )
    w.customer_id = customer_id
    referral = custom_event.referral if custom_event else None
    referrer_id = _entities.customer_stub(w, meta, data.referrer) or (
        referral.referrer_id if referral else None
    )
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
        redemption.id if redemption else None,
        meta.at,
    )

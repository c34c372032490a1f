"""customer.referred: a customer joined through another customer's referral code."""

from __future__ import annotations

from service.events._base import Activity, EventData
from service.events._blocks import Campaign, Customer, CustomEvent, Redemption, Voucher


class ReferralEvent(EventData):
    referrer: Customer | None = None
    campaign: Campaign | None = None
    voucher: Voucher | None = None
    custom_event: CustomEvent | None = None
    redemption: Redemption | None = None


class Referred(Activity, tag="customer.referred"):
    data: ReferralEvent


EVENTS = (Referred,)

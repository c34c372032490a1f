"""customer.custom_event: an event the project defined and sent for a customer."""

from __future__ import annotations

from service.events._base import Activity, EventData
from service.events._blocks import Block, Campaign, Customer, CustomEvent, Voucher


class EventSchema(Block):
    id: str | None = None
    name: str | None = None


class ReferralContext(Block):
    referrer: Customer | None = None
    voucher: Voucher | None = None
    campaign: Campaign | None = None


class LoyaltyContext(Block):
    voucher: Voucher | None = None
    campaign: Campaign | None = None


class CustomEventEvent(EventData):
    event: CustomEvent | None = None
    event_schema: EventSchema | None = None
    referral: ReferralContext | None = None
    loyalty: LoyaltyContext | None = None


class CustomEventSent(Activity, tag="customer.custom_event"):
    data: CustomEventEvent


EVENTS = (CustomEventSent,)

"""Which family each event type belongs to, and which handler writes each family.

Two explicit tables, no registration by import side effect: a reader who knows an event
type finds its family here, its Struct in `service/events/`, and its handler in
`service/handlers/<family>.py`. `tests/test_routing.py` proves every type of Voucherify's
OpenAPI enum has exactly one route.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from service.events import Activity
from service.handlers import (
    Meta,
    Writes,
    custom_event,
    customer,
    distribution,
    holder,
    loyalty_tier,
    order,
    publication,
    redemption,
    referral,
    reward,
    segment,
    validation,
    voucher,
)

# Each handler takes its own family's Activity subclass; routing guarantees the match.
Handler = Callable[[Writes, Meta, Any], None]

UNKNOWN: Final = "unknown"

FAMILY_BY_TYPE: Final[Mapping[str, str]] = MappingProxyType(
    {
        # The customer profile itself.
        "customer.confirmed": "customer",
        "customer.created": "customer",
        "customer.updated": "customer",
        "customer.deleted": "customer",
        # Referral program: a customer joined with someone's referral code.
        "customer.referred": "referral",
        # A project-defined event tracked for a customer.
        "customer.custom_event": "custom_event",
        # Segment membership.
        "customer.segment.entered": "segment",
        "customer.segment.left": "segment",
        # Messages through the nine distribution channels: customer.<channel>.<outcome>.
        "customer.sms.sent": "distribution",
        "customer.sms.recovered": "distribution",
        "customer.sms.failed": "distribution",
        "customer.email.sent": "distribution",
        "customer.email.recovered": "distribution",
        "customer.email.failed": "distribution",
        "customer.activecampaign.sent": "distribution",
        "customer.activecampaign.recovered": "distribution",
        "customer.activecampaign.failed": "distribution",
        "customer.braze.sent": "distribution",
        "customer.braze.recovered": "distribution",
        "customer.braze.failed": "distribution",
        "customer.mailchimp.sent": "distribution",
        "customer.mailchimp.recovered": "distribution",
        "customer.mailchimp.failed": "distribution",
        "customer.intercom.sent": "distribution",
        "customer.intercom.recovered": "distribution",
        "customer.intercom.failed": "distribution",
        "customer.shopify.sent": "distribution",
        "customer.shopify.recovered": "distribution",
        "customer.shopify.failed": "distribution",
        "customer.klaviyo.sent": "distribution",
        "customer.klaviyo.recovered": "distribution",
        "customer.klaviyo.failed": "distribution",
        "customer.batch.sent": "distribution",
        "customer.batch.recovered": "distribution",
        "customer.batch.failed": "distribution",
        # Rewards earned, and rewards redeemed for points.
        "customer.rewarded": "reward",
        "customer.rewarded.loyalty_points": "reward",
        "customer.reward_redemptions.created": "reward",
        "customer.reward_redemptions.pending": "reward",
        "customer.reward_redemptions.completed": "reward",
        "customer.reward_redemptions.rolledback": "reward",
        # Voucher balances: gift credits, loyalty points, pending points; voucher deleted.
        "customer.voucher.gift.balance_added": "voucher",
        "customer.voucher.loyalty_card.pending_points.activated": "voucher",
        "customer.voucher.loyalty_card.pending_points.added": "voucher",
        "customer.voucher.loyalty_card.pending_points.canceled": "voucher",
        "customer.voucher.loyalty_card.pending_points.updated": "voucher",
        "customer.voucher.loyalty_card.points_activated": "voucher",
        "customer.voucher.loyalty_card.points_added": "voucher",
        "customer.voucher.loyalty_card.points_transferred": "voucher",
        "customer.voucher.loyalty_card.points_expired": "voucher",
        "customer.voucher.deleted": "voucher",
        # A voucher published (assigned) to a customer.
        "customer.publication.succeeded": "publication",
        "customer.publication.failed": "publication",
        # Vouchers or promotions validated for a customer.
        "customer.validation.succeeded": "validation",
        "customer.validation.failed": "validation",
        # Redemptions and their rollbacks.
        "customer.redemption.succeeded": "redemption",
        "customer.redemption.failed": "redemption",
        "customer.redemption.rollback.succeeded": "redemption",
        "customer.redemption.rollback.failed": "redemption",
        # Order lifecycle.
        "customer.order.created": "order",
        "customer.order.updated": "order",
        "customer.order.processing": "order",
        "customer.order.paid": "order",
        "customer.order.fulfilled": "order",
        "customer.order.canceled": "order",
        # Loyalty tier membership, and the loyalty summary that moves with it.
        "customer.loyalty.updated": "loyalty_tier",
        "customer.loyalty.tier.joined": "loyalty_tier",
        "customer.loyalty.tier.left": "loyalty_tier",
        "customer.loyalty.tier.upgraded": "loyalty_tier",
        "customer.loyalty.tier.downgraded": "loyalty_tier",
        "customer.loyalty.tier.prolonged": "loyalty_tier",
        "customer.loyalty.tier.expiration.changed": "loyalty_tier",
        # Voucher holders: owner and other roles assigned or removed.
        "customer.holder.assignment.created": "holder",
        "customer.holder.assignment.deleted": "holder",
    }
)

HANDLER_BY_FAMILY: Final[Mapping[str, Handler]] = MappingProxyType(
    {
        "customer": customer.handle,
        "referral": referral.handle,
        "custom_event": custom_event.handle,
        "segment": segment.handle,
        "distribution": distribution.handle,
        "reward": reward.handle,
        "voucher": voucher.handle,
        "publication": publication.handle,
        "validation": validation.handle,
        "redemption": redemption.handle,
        "order": order.handle,
        "loyalty_tier": loyalty_tier.handle,
        "holder": holder.handle,
    }
)


def family_of(event_type: str) -> str:
    """The family of a type, or 'unknown' for a type outside Voucherify's 74."""
    return FAMILY_BY_TYPE.get(event_type, UNKNOWN)


def normalize(w: Writes, meta: Meta, family: str, event: Activity) -> None:
    """Collect the normalized rows of one decoded event: live ingestion and replay alike."""
    HANDLER_BY_FAMILY[family](w, meta, event)

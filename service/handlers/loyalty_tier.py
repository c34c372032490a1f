"""Loyalty tier family: customer.loyalty.tier.* -> `loyalty_tier_changes`.

customer.loyalty.updated carries an undocumented `loyalty` object and no tier change: it
refreshes the customer only; the raw event keeps the rest.
"""

from __future__ import annotations

from service.events.loyalty import LoyaltyTierActivity, LoyaltyUpdated, TierLeft
from service.events.times import parse_time
from service.handlers import Meta, Writes, _entities
from service.handlers._sql import append

INSERT_TIER_CHANGE = append(
    "loyalty_tier_changes",
    ("event_id", "customer_id", "campaign_id", "change", "tier_from_id", "tier_to_id",
     "tier_id", "expiration_date", "created_at"),
)  # fmt: skip

# customer.loyalty.tier.<change>
CHANGE_BY_TYPE = {
    "customer.loyalty.tier.joined": "joined",
    "customer.loyalty.tier.left": "left",
    "customer.loyalty.tier.upgraded": "upgraded",
    "customer.loyalty.tier.downgraded": "downgraded",
    "customer.loyalty.tier.prolonged": "prolonged",
    "customer.loyalty.tier.expiration.changed": "expiration_changed",
}


def handle(w: Writes, meta: Meta, event: LoyaltyTierActivity) -> None:
    data = event.data
    # `customer` is optional in every tier event's schema: a change without one is kept,
    # its customer_id NULL (the raw event keeps the rest).
    customer_id = _entities.customer_stub(w, meta, data.customer)
    if isinstance(event, LoyaltyUpdated):
        return
    tiers = (data.loyalty_tier, data.loyalty_tier_to, data.loyalty_tier_from)
    # Without `customer`, a tier's expiration names whose hold it is.
    customer_id = customer_id or next(
        (t.expiration.customer_id for t in tiers
         if t is not None and t.expiration and t.expiration.customer_id),
        None,
    )  # fmt: skip
    w.customer_id = customer_id
    tier_from = data.loyalty_tier_from.id if data.loyalty_tier_from else None
    tier_to = data.loyalty_tier_to.id if data.loyalty_tier_to else None
    tier = tier_to or (data.loyalty_tier.id if data.loyalty_tier else None)
    # expiration.changed sends the date beside the tier; the others inside the tier held
    # after the change (none after left).
    held = None if isinstance(event, TierLeft) else data.loyalty_tier_to or data.loyalty_tier
    expires = held.expiration.expiration_date if held and held.expiration else None
    campaign_id = (data.campaign.id if data.campaign else None) or next(
        (t.campaign_id for t in tiers if t is not None and t.campaign_id),
        None,
    )  # fmt: skip
    w.add(
        INSERT_TIER_CHANGE,
        meta.event_id,
        customer_id,
        campaign_id,
        CHANGE_BY_TYPE[meta.type],
        tier_from,
        tier_to,
        tier or tier_from,
        parse_time(data.expiration_date or expires),
        parse_time(data.created_at) or meta.at,
    )

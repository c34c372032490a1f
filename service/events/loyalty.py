"""customer.loyalty.updated and customer.loyalty.tier.*: loyalty tier membership."""

from __future__ import annotations

from typing import Any

from service.events._base import Activity, EventData
from service.events._blocks import Campaign, LoyaltyTier


class LoyaltyTierEvent(EventData):
    campaign: Campaign | None = None
    # upgraded/downgraded name both ends; joined/left/prolonged/expiration.changed name one.
    loyalty_tier_from: LoyaltyTier | None = None
    loyalty_tier_to: LoyaltyTier | None = None
    loyalty_tier: LoyaltyTier | None = None
    expiration_date: str | None = None
    created_at: str | None = None
    # customer.loyalty.updated: an object the docs leave undescribed, kept as-is.
    loyalty: dict[str, Any] | None = None


class LoyaltyTierActivity(Activity):
    data: LoyaltyTierEvent


class LoyaltyUpdated(LoyaltyTierActivity, tag="customer.loyalty.updated"): ...


class TierJoined(LoyaltyTierActivity, tag="customer.loyalty.tier.joined"): ...


class TierLeft(LoyaltyTierActivity, tag="customer.loyalty.tier.left"): ...


class TierUpgraded(LoyaltyTierActivity, tag="customer.loyalty.tier.upgraded"): ...


class TierDowngraded(LoyaltyTierActivity, tag="customer.loyalty.tier.downgraded"): ...


class TierProlonged(LoyaltyTierActivity, tag="customer.loyalty.tier.prolonged"): ...


class TierExpirationChanged(
    LoyaltyTierActivity, tag="customer.loyalty.tier.expiration.changed"
): ...


EVENTS = (
    LoyaltyUpdated,
    TierJoined,
    TierLeft,
    TierUpgraded,
    TierDowngraded,
    TierProlonged,
    TierExpirationChanged,
)

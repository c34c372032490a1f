"""customer.rewarded, customer.rewarded.loyalty_points, customer.reward_redemptions.*."""

from __future__ import annotations

from typing import Any

from service.events._base import Activity, EventData
from service.events._blocks import (
    Campaign,
    Customer,
    CustomEvent,
    LoyaltyTier,
    Order,
    Redemption,
    Reward,
    Voucher,
    VoucherBalance,
)


class RewardEvent(EventData):
    holder: Customer | None = None
    voucher: Voucher | None = None
    campaign: Campaign | None = None
    reward: Reward | None = None
    # customer.rewarded: the referral or custom event that earned the reward.
    redemption: Redemption | None = None
    custom_event: CustomEvent | None = None
    # customer.rewarded.loyalty_points
    loyalty_tier: LoyaltyTier | None = None
    order: Order | None = None
    # An object ({amount, points} or a voucher balance) or a bare integer, by event type.
    balance: VoucherBalance | int | None = None
    # customer.reward_redemptions.*: objects the docs leave undescribed, kept as-is.
    reward_redemption: dict[str, Any] | None = None
    reward_assignment: dict[str, Any] | None = None
    source: str | None = None


class RewardActivity(Activity):
    data: RewardEvent


class Rewarded(RewardActivity, tag="customer.rewarded"): ...


class RewardedLoyaltyPoints(RewardActivity, tag="customer.rewarded.loyalty_points"): ...


class RewardRedemptionCreated(RewardActivity, tag="customer.reward_redemptions.created"): ...


class RewardRedemptionPending(RewardActivity, tag="customer.reward_redemptions.pending"): ...


class RewardRedemptionCompleted(RewardActivity, tag="customer.reward_redemptions.completed"): ...


class RewardRedemptionRolledBack(RewardActivity, tag="customer.reward_redemptions.rolledback"): ...


EVENTS = (
    Rewarded,
    RewardedLoyaltyPoints,
    RewardRedemptionCreated,
    RewardRedemptionPending,
    RewardRedemptionCompleted,
    RewardRedemptionRolledBack,
)

"""Reward family: rewards granted (`customer_rewards`) and bought (`reward_redemptions`)."""

from __future__ import annotations

from service.events._blocks import VoucherBalance
from service.events.rewards import (
    RewardActivity,
    Rewarded,
    RewardedLoyaltyPoints,
    RewardEvent,
)
from service.handlers import Meta, Writes, _entities, require
from service.handlers._sql import append, upsert

INSERT_REWARD = append(
    "customer_rewards",
    ("event_id", "kind", "customer_id", "holder_id", "campaign_id", "voucher_id", "reward_id",
     "reward_type", "amount", "points", "order_id", "occurred_at"),
)  # fmt: skip
UPSERT_REWARD_REDEMPTION = upsert(
    "reward_redemptions",
    ("id", "status", "customer_id", "reward_id", "reward_name", "reward_type", "voucher_id",
     "campaign_id", "points", "source", "last_event_at", "last_event_id"),
)  # fmt: skip


def handle(w: Writes, meta: Meta, event: RewardActivity) -> None:
    data = event.data
    customer_id = _entities.customer_stub(w, meta, data.customer)
    holder_id = _entities.customer_stub(w, meta, data.holder)
    voucher_id = _entities.voucher(
        w, meta, data.voucher, holder_id=holder_id, balance=_balance_of(data)
    )
    campaign_id = data.campaign.id if data.campaign else None
    reward = data.reward
    amount, points = _amount_and_points(data.balance)

    if isinstance(event, Rewarded | RewardedLoyaltyPoints):
        order_id = _entities.order(w, meta, data.order, full=False, customer_id=customer_id)
        w.add(
            INSERT_REWARD,
            meta.event_id,
            "rewarded" if isinstance(event, Rewarded) else "loyalty_points",
            customer_id,
            holder_id,
            campaign_id,
            voucher_id,
            reward.id if reward else None,
            reward.type if reward else None,
            amount,
            points,
            order_id,
            meta.at,
        )
        return

    redemption = require(data.reward_redemption, "data.reward_redemption")
    redemption_id = require(redemption.get("id"), "data.reward_redemption.id")
    w.add(
        UPSERT_REWARD_REDEMPTION,
        str(redemption_id),
        meta.type.rsplit(".", 1)[1],  # customer.reward_redemptions.<status>
        customer_id,
        reward.id if reward else None,
        reward.name if reward else None,
        reward.type if reward else None,
        voucher_id,
        campaign_id,
        points if points is not None else amount,
        data.source,
        meta.at,
        meta.event_id,
    )


def _balance_of(data: RewardEvent) -> int | None:
    """The card's balance after the event, where `balance` is a Voucher Balance of this
    card (customer.rewarded.loyalty_points). A bare integer is not: here it counts the
    points granted or spent."""
    balance = data.balance
    if not isinstance(balance, VoucherBalance) or data.voucher is None or not data.voucher.id:
        return None
    return _entities.balance_after(balance, data.voucher.id)


def _amount_and_points(balance: object) -> tuple[int | None, int | None]:
    """Credits and points from `balance`: an object, or a bare integer of points."""
    if isinstance(balance, int):
        return None, balance
    amount = getattr(balance, "amount", None)
    points = getattr(balance, "points", None)
    return amount, points

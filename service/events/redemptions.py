"""customer.redemption.{succeeded,failed} and their rollbacks."""

from __future__ import annotations

from service.events._base import Activity, EventData
from service.events._blocks import Campaign, Customer, Order, PromotionTier, Redemption, Voucher


class RedemptionEvent(EventData):
    redemption: Redemption | None = None
    # Present on rollback events only: the rollback itself; `redemption` is its parent.
    redemption_rollback: Redemption | None = None
    order: Order | None = None
    voucher: Voucher | None = None
    campaign: Campaign | None = None
    holder: Customer | None = None
    promotion_tier: PromotionTier | None = None


class RedemptionActivity(Activity):
    data: RedemptionEvent


class RedemptionSucceeded(RedemptionActivity, tag="customer.redemption.succeeded"): ...


class RedemptionFailed(RedemptionActivity, tag="customer.redemption.failed"): ...


class RedemptionRollbackSucceeded(
    RedemptionActivity, tag="customer.redemption.rollback.succeeded"
): ...


class RedemptionRollbackFailed(RedemptionActivity, tag="customer.redemption.rollback.failed"): ...


EVENTS = (
    RedemptionSucceeded,
    RedemptionFailed,
    RedemptionRollbackSucceeded,
    RedemptionRollbackFailed,
)

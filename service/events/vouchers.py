"""customer.voucher.*: gift balance, loyalty points and pending points, voucher deleted."""

from __future__ import annotations

from service.events._base import Activity, EventData
from service.events._blocks import (
    Campaign,
    Order,
    PendingPoints,
    PointsBucket,
    Voucher,
    VoucherBalance,
    VoucherTransaction,
)


class VoucherEvent(EventData):
    voucher: Voucher | None = None
    campaign: Campaign | None = None
    transaction: VoucherTransaction | None = None
    # Balance after the change: an object in the OpenAPI file, a bare integer in the
    # Customer Activity docs; both are accepted. Pending-points events name it differently.
    balance: VoucherBalance | int | None = None
    voucher_pending_points_balance: VoucherBalance | None = None
    # points_transferred
    source_voucher: Voucher | None = None
    destination_voucher: Voucher | None = None
    # points_expired
    points: int | None = None
    buckets: list[PointsBucket] | None = None
    # pending_points.*
    order: Order | None = None
    pending_points: PendingPoints | None = None


class VoucherActivity(Activity):
    data: VoucherEvent


class GiftBalanceAdded(VoucherActivity, tag="customer.voucher.gift.balance_added"): ...


class PointsAdded(VoucherActivity, tag="customer.voucher.loyalty_card.points_added"): ...


class PointsActivated(VoucherActivity, tag="customer.voucher.loyalty_card.points_activated"): ...


class PointsTransferred(
    VoucherActivity, tag="customer.voucher.loyalty_card.points_transferred"
): ...


class PointsExpired(VoucherActivity, tag="customer.voucher.loyalty_card.points_expired"): ...


class PendingPointsAdded(
    VoucherActivity, tag="customer.voucher.loyalty_card.pending_points.added"
): ...


class PendingPointsUpdated(
    VoucherActivity, tag="customer.voucher.loyalty_card.pending_points.updated"
): ...


class PendingPointsActivated(
    VoucherActivity, tag="customer.voucher.loyalty_card.pending_points.activated"
): ...


class PendingPointsCanceled(
    VoucherActivity, tag="customer.voucher.loyalty_card.pending_points.canceled"
): ...


class VoucherDeleted(VoucherActivity, tag="customer.voucher.deleted"): ...


EVENTS = (
    GiftBalanceAdded,
    PointsAdded,
    PointsActivated,
    PointsTransferred,
    PointsExpired,
    PendingPointsAdded,
    PendingPointsUpdated,
    PendingPointsActivated,
    PendingPointsCanceled,
    VoucherDeleted,
)

"""Building blocks shared by many events: written once, embedded everywhere.

Each Struct declares only what the service reads (the fields Voucherify's exports name);
unknown keys pass through untouched and stay in the stored raw payload. Every field has a
default because real payloads drop fields and send nulls the docs do not show. Times stay
strings here (Voucherify mixes dates and timestamps); `service.events.times` parses them.
"""

from __future__ import annotations

from typing import Any

import msgspec

Metadata = dict[str, Any]


class Block(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of every embedded object: lenient, keyword-only."""


class Address(Block):
    city: str | None = None
    state: str | None = None
    line_1: str | None = None
    line_2: str | None = None
    country: str | None = None
    postal_code: str | None = None


class RedemptionsSummary(Block):
    total_redeemed: int | None = None
    total_failed: int | None = None
    total_succeeded: int | None = None
    total_rolled_back: int | None = None
    total_rollback_failed: int | None = None
    total_rollback_succeeded: int | None = None


class OrdersSummary(Block):
    total_amount: int | None = None
    total_count: int | None = None
    average_amount: int | None = None
    last_order_amount: int | None = None
    last_order_date: str | None = None


class CustomerSummary(Block):
    redemptions: RedemptionsSummary | None = None
    orders: OrdersSummary | None = None


class CustomerLoyalty(Block):
    points: int | None = None
    referred_customers: int | None = None


class Customer(Block):
    """Simple Customer and Customer With Summary Loyalty Referrals, in one shape."""

    id: str | None = None
    source_id: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    description: str | None = None
    birthdate: str | None = None
    birthday: str | None = None
    address: Address | None = None
    metadata: Metadata | None = None
    summary: CustomerSummary | None = None
    loyalty: CustomerLoyalty | None = None
    created_at: str | None = None
    updated_at: str | None = None


class Campaign(Block):
    id: str | None = None
    name: str | None = None
    campaign_type: str | None = None
    type: str | None = None
    category: str | None = None
    metadata: Metadata | None = None


class Gift(Block):
    # Typed `number` in the OpenAPI file though amounts are in the smallest currency unit.
    amount: int | float | None = None
    balance: int | float | None = None


class LoyaltyCard(Block):
    points: int | None = None
    balance: int | None = None
    pending_points: int | None = None
    expired_points: int | None = None


class VoucherRedemptionCounts(Block):
    quantity: int | None = None
    redeemed_quantity: int | None = None


class ValidityTimeframe(Block):
    interval: str | None = None
    duration: str | None = None


class Category(Block):
    id: str | None = None
    name: str | None = None


class Voucher(Block):
    """Simple Voucher; balances live in `gift` and `loyalty_card`."""

    id: str | None = None
    code: str | None = None
    type: str | None = None
    campaign: str | None = None
    campaign_id: str | None = None
    # A name in the full Voucher; Simple Voucher sends `categories` instead.
    category: str | None = None
    categories: list[Category] | None = None
    active: bool | None = None
    is_referral_code: bool | None = None
    start_date: str | None = None
    expiration_date: str | None = None
    gift: Gift | None = None
    loyalty_card: LoyaltyCard | None = None
    discount: Discount | None = None
    redemption: VoucherRedemptionCounts | None = None
    assets: VoucherAssets | None = None
    validity_timeframe: ValidityTimeframe | None = None
    validity_day_of_week: list[int] | None = None
    additional_info: str | None = None
    holder_id: str | None = None
    referrer_id: str | None = None
    metadata: Metadata | None = None
    created_at: str | None = None
    updated_at: str | None = None


class OrderItem(Block):
    id: str | None = None
    source_id: str | None = None
    product_id: str | None = None
    sku_id: str | None = None
    related_object: str | None = None
    quantity: int | None = None
    amount: int | None = None
    discount_amount: int | None = None
    subtotal_amount: int | None = None
    price: int | float | None = None
    metadata: Metadata | None = None


class ObjectRef(Block):
    """An embedded object read for its ids only (the rest is skipped unparsed)."""

    id: str | None = None
    source_id: str | None = None


class Order(Block):
    """Simple Order, Order Calculated and the order inside a redemption."""

    id: str | None = None
    source_id: str | None = None
    status: str | None = None
    amount: int | None = None
    discount_amount: int | None = None
    items_discount_amount: int | None = None
    total_discount_amount: int | None = None
    total_amount: int | None = None
    customer_id: str | None = None
    referrer_id: str | None = None
    # Order Calculated may carry these objects instead of (or beside) the two ids.
    customer: ObjectRef | None = None
    referrer: ObjectRef | None = None
    items: list[OrderItem] | None = None
    metadata: Metadata | None = None
    created_at: str | None = None
    updated_at: str | None = None


class PromotionTier(Block):
    id: str | None = None
    name: str | None = None


class Reward(Block):
    """Simple Redemption Reward Result."""

    id: str | None = None
    name: str | None = None
    type: str | None = None
    assignment_id: str | None = None
    loyalty_tier_id: str | None = None
    parameters: Metadata | None = None
    metadata: Metadata | None = None


class RedemptionChannel(Block):
    channel_id: str | None = None
    channel_type: str | None = None


class VoucherAsset(Block):
    url: str | None = None


class VoucherAssets(Block):
    qr: VoucherAsset | None = None
    barcode: VoucherAsset | None = None


class Discount(Block):
    """One shape for every discount kind; each kind fills its own fields."""

    type: str | None = None
    amount_off: int | float | None = None
    percent_off: int | float | None = None
    unit_off: int | float | None = None
    fixed_amount: int | float | None = None
    amount_limit: int | float | None = None
    unit_type: str | None = None
    effect: str | None = None


class Redemption(Block):
    """Simple Redemption and Redemption Internal; rollbacks share the shape."""

    id: str | None = None
    object: str | None = None
    date: str | None = None
    created_at: str | None = None
    customer_id: str | None = None
    tracking_id: str | None = None
    amount: int | None = None
    result: str | None = None
    status: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    reason: str | None = None
    # `redemption` is the parent redemption id on a rollback.
    redemption: str | None = None
    parent_redemption_id: str | None = None
    order: Order | None = None
    voucher: Voucher | None = None
    promotion_tier: PromotionTier | None = None
    reward: Reward | None = None
    channel: RedemptionChannel | None = None
    # Credits and points the redemption used, where a payload names them: Simple
    # Redemption has only `amount` (see `redemption._credits_and_points`).
    gift: Gift | None = None
    loyalty_card: LoyaltyCard | None = None
    metadata: Metadata | None = None


class TierPoints(Block):
    from_: int | None = msgspec.field(default=None, name="from")
    to: int | None = None


class LoyaltyTierExpiration(Block):
    customer_id: str | None = None  # whose hold on the tier this is
    start_date: str | None = None
    expiration_date: str | None = None


class LoyaltyTier(Block):
    id: str | None = None
    name: str | None = None
    campaign_id: str | None = None
    points: TierPoints | None = None
    # When the customer's hold on the tier began and ends.
    expiration: LoyaltyTierExpiration | None = None
    metadata: Metadata | None = None
    created_at: str | None = None


class RelatedObject(Block):
    id: str | None = None
    type: str | None = None


class VoucherBalance(Block):
    type: str | None = None
    total: int | None = None
    amount: int | None = None
    points: int | None = None
    balance: int | None = None
    operation_type: str | None = None
    related_object: RelatedObject | None = None


class TransactionDetails(Block):
    balance: VoucherBalance | None = None


class VoucherTransaction(Block):
    id: str | None = None
    type: str | None = None
    source_id: str | None = None
    voucher_id: str | None = None
    campaign_id: str | None = None
    source: str | None = None
    reason: str | None = None
    related_transaction_id: str | None = None
    # Kept as raw JSON for the `details` column; `balance` is read from it on demand.
    details: msgspec.Raw = msgspec.Raw()
    created_at: str | None = None

    def balance(self) -> VoucherBalance | None:
        raw = bytes(self.details)
        if not raw or raw == b"null":
            return None
        return _DETAILS.decode(raw).balance


class BucketPoints(Block):
    total_points: int | None = None


class PointsBucket(Block):
    id: str | None = None
    voucher_id: str | None = None
    campaign_id: str | None = None
    bucket: BucketPoints | None = None
    status: str | None = None
    expires_at: str | None = None
    created_at: str | None = None


class PendingPoints(Block):
    id: str | None = None
    voucher_id: str | None = None
    campaign_id: str | None = None
    customer_id: str | None = None
    order_id: str | None = None
    points: int | None = None
    activates_at: str | None = None
    created_at: str | None = None


class Segment(Block):
    id: str | None = None
    name: str | None = None


class CustomEventReferral(Block):
    code: str | None = None
    referrer_id: str | None = None


class CustomEventLoyalty(Block):
    code: str | None = None


class CustomEvent(Block):
    id: str | None = None
    type: str | None = None
    customer: ObjectRef | None = None
    referral: CustomEventReferral | None = None
    loyalty: CustomEventLoyalty | None = None
    metadata: Metadata | None = None
    created_at: str | None = None


class PublicationVoucher(Block):
    id: str | None = None
    code: str | None = None
    campaign: str | None = None
    is_referral_code: bool | None = None


class Publication(Block):
    id: str | None = None
    campaign: str | None = None
    created_at: str | None = None
    customer_id: str | None = None
    customer: ObjectRef | None = None
    tracking_id: str | None = None
    channel: str | None = None
    source_id: str | None = None
    result: str | None = None
    voucher: PublicationVoucher | None = None
    vouchers_id: list[str] | None = None
    metadata: Metadata | None = None


class Validation(Block):
    id: str | None = None
    session_id: str | None = None
    status: str | None = None
    customer_id: str | None = None
    created_at: str | None = None


class Holder(Block):
    """Simple Redeemable Holder: who holds which voucher, and in which role."""

    id: str | None = None
    created_at: str | None = None
    redeemable_id: str | None = None
    redeemable_object: str | None = None
    campaign_id: str | None = None
    campaign_type: str | None = None
    voucher_type: str | None = None
    publication_id: str | None = None
    customer_id: str | None = None
    holder_role: str | None = None


_DETAILS = msgspec.json.Decoder(TransactionDetails)

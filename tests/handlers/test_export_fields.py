"""One assertion per Voucherify export field (seed 000) that events carry.

Each case delivers a fixture over HTTP and checks that the value at a path of the event
lands in the column named after the export field, converted the way analysts expect
(times as timestamptz, dates as date, amounts as bigint, metadata as jsonb).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from service import db
from tests.conftest import WEBHOOK, compact_json, load_fixture, signed

Convert = Callable[[Any], Any]


def same(value: Any) -> Any:
    return value


# Read here without the handlers' own parse_time/parse_date, so a bug in those (a time
# zone, a date cut from the wrong end) cannot pass on both sides.
def time(value: Any) -> Any:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def date(value: Any) -> Any:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).date()


# (export object, export field, fixture type, voucher type, table, key path, value path,
# conversion)
CASES: list[tuple[str, str, str, str | None, str, str, str, Convert]] = []


def fields(
    export: str,
    event_type: str,
    table: str,
    key: str,
    mapping: dict[str, tuple[str, Convert]],
    *,
    voucher_type: str | None = None,
) -> None:
    for field, (path, convert) in mapping.items():
        CASES.append((export, field, event_type, voucher_type, table, key, path, convert))


CUST = "data.customer"
fields("customer", "customer.created", "customers", f"{CUST}.id", {
    "id": (f"{CUST}.id", same),
    "name": (f"{CUST}.name", same),
    "description": (f"{CUST}.description", same),
    "email": (f"{CUST}.email", same),
    "source_id": (f"{CUST}.source_id", same),
    "created_at": (f"{CUST}.created_at", time),
    "updated_at": (f"{CUST}.updated_at", time),
    "address_city": (f"{CUST}.address.city", same),
    "address_state": (f"{CUST}.address.state", same),
    "address_line_1": (f"{CUST}.address.line_1", same),
    "address_line_2": (f"{CUST}.address.line_2", same),
    "address_country": (f"{CUST}.address.country", same),
    "address_postal_code": (f"{CUST}.address.postal_code", same),
    "redemptions_total_redeemed": (f"{CUST}.summary.redemptions.total_redeemed", same),
    "redemptions_total_failed": (f"{CUST}.summary.redemptions.total_failed", same),
    "redemptions_total_succeeded": (f"{CUST}.summary.redemptions.total_succeeded", same),
    "redemptions_total_rolled_back": (f"{CUST}.summary.redemptions.total_rolled_back", same),
    "redemptions_total_rollback_failed": (
        f"{CUST}.summary.redemptions.total_rollback_failed", same),
    "redemptions_total_rollback_succeeded": (
        f"{CUST}.summary.redemptions.total_rollback_succeeded", same),
    "orders_total_amount": (f"{CUST}.summary.orders.total_amount", same),
    "orders_total_count": (f"{CUST}.summary.orders.total_count", same),
    "orders_average_amount": (f"{CUST}.summary.orders.average_amount", same),
    "orders_last_order_amount": (f"{CUST}.summary.orders.last_order_amount", same),
    "orders_last_order_date": (f"{CUST}.summary.orders.last_order_date", time),
    "loyalty_points": (f"{CUST}.loyalty.points", same),
    "loyalty_referred_customers": (f"{CUST}.loyalty.referred_customers", same),
    "phone": (f"{CUST}.phone", same),
    "birthday": (f"{CUST}.birthday", date),
    "birthdate": (f"{CUST}.birthdate", date),
    "metadata": (f"{CUST}.metadata", same),
})  # fmt: skip

ORD = "data.order"
fields("order", "customer.order.paid", "orders", f"{ORD}.id", {
    "id": (f"{ORD}.id", same),
    "source_id": (f"{ORD}.source_id", same),
    "created_at": (f"{ORD}.created_at", time),
    "updated_at": (f"{ORD}.updated_at", time),
    "status": (f"{ORD}.status", same),
    "amount": (f"{ORD}.amount", same),
    "discount_amount": (f"{ORD}.discount_amount", same),
    "items_discount_amount": (f"{ORD}.items_discount_amount", same),
    "total_discount_amount": (f"{ORD}.total_discount_amount", same),
    "total_amount": (f"{ORD}.total_amount", same),
    "customer_id": (f"{ORD}.customer_id", same),
    "referrer_id": (f"{ORD}.referrer_id", same),
    "metadata": (f"{ORD}.metadata", same),
})  # fmt: skip

VOUCHER = "data.voucher"
fields("voucher", "customer.voucher.loyalty_card.points_added", "vouchers", f"{VOUCHER}.id", {
    "id": (f"{VOUCHER}.id", same),
    "code": (f"{VOUCHER}.code", same),
    "voucher_type": (f"{VOUCHER}.type", same),
    "value": (f"{VOUCHER}.loyalty_card.balance", same),
    "discount_type": (f"{VOUCHER}.discount.type", same),
    "campaign": (f"{VOUCHER}.campaign", same),
    "campaign_id": (f"{VOUCHER}.campaign_id", same),
    "category": (f"{VOUCHER}.categories.0.name", same),
    "start_date": (f"{VOUCHER}.start_date", time),
    "expiration_date": (f"{VOUCHER}.expiration_date", time),
    "gift_balance": (f"{VOUCHER}.gift.balance", same),
    "loyalty_balance": (f"{VOUCHER}.loyalty_card.balance", same),
    "redemption_quantity": (f"{VOUCHER}.redemption.quantity", same),
    "redemption_count": (f"{VOUCHER}.redemption.redeemed_quantity", same),
    "active": (f"{VOUCHER}.active", same),
    "qr_code": (f"{VOUCHER}.assets.qr.url", same),
    "bar_code": (f"{VOUCHER}.assets.barcode.url", same),
    "metadata": (f"{VOUCHER}.metadata", same),
    "is_referral_code": (f"{VOUCHER}.is_referral_code", same),
    "created_at": (f"{VOUCHER}.created_at", time),
    "updated_at": (f"{VOUCHER}.updated_at", time),
    "validity_timeframe_interval": (f"{VOUCHER}.validity_timeframe.interval", same),
    "validity_timeframe_duration": (f"{VOUCHER}.validity_timeframe.duration", same),
    "validity_day_of_week": (f"{VOUCHER}.validity_day_of_week", same),
    "discount_amount_limit": (f"{VOUCHER}.discount.amount_limit", same),
    "additional_info": (f"{VOUCHER}.additional_info", same),
    "customer_id": (f"{VOUCHER}.holder_id", same),
    "discount_unit_type": (f"{VOUCHER}.discount.unit_type", same),
    "discount_unit_effect": (f"{VOUCHER}.discount.effect", same),
    "discount_effect": (f"{VOUCHER}.discount.effect", same),
})  # fmt: skip

PUB = "data.publication"
fields("publication", "customer.publication.succeeded", "publications", f"{PUB}.id", {
    "voucher_code": (f"{PUB}.voucher.code", same),
    "customer_id": (f"{PUB}.customer_id", same),
    "customer_source_id": (f"{CUST}.source_id", same),
    "date": (f"{PUB}.created_at", time),
    "channel": (f"{PUB}.channel", same),
    "campaign": ("data.campaign.name", same),
    "metadata": (f"{PUB}.metadata", same),
})  # fmt: skip

RED = "data.redemption"


def redemption_object(_: Any) -> str:
    return "redemption"  # by role: the rollback of a rollback event is 'redemption_rollback'


fields("redemption", "customer.redemption.succeeded", "redemptions", f"{RED}.id", {
    "id": (f"{RED}.id", same),
    "object": (f"{RED}.id", redemption_object),
    "date": (f"{RED}.date", time),
    "voucher_code": (f"{VOUCHER}.code", same),
    "campaign": ("data.campaign.name", same),
    "promotion_tier_id": ("data.promotion_tier.id", same),
    "customer_id": (f"{RED}.customer_id", same),
    "customer_source_id": (f"{CUST}.source_id", same),
    "customer_name": (f"{CUST}.name", same),
    "tracking_id": (f"{RED}.tracking_id", same),
    "order_amount": (f"{ORD}.amount", same),
    "result": (f"{RED}.result", same),
    "failure_code": (f"{RED}.failure_code", same),
    "failure_message": (f"{RED}.failure_message", same),
    "metadata": (f"{RED}.metadata", same),
})  # fmt: skip
# Simple Redemption's `amount`: credits of a gift card, points of a loyalty card.
for column, kind in (("gift_amount", "GIFT_VOUCHER"), ("loyalty_points", "LOYALTY_CARD")):
    fields("redemption", "customer.redemption.succeeded", "redemptions", f"{RED}.id",
           {column: (f"{RED}.amount", same)}, voucher_type=kind)  # fmt: skip

BUCKET = "data.buckets.0"
fields("points_expiration", "customer.voucher.loyalty_card.points_expired",
       "points_expirations", f"{BUCKET}.id", {
    "id": (f"{BUCKET}.id", same),
    "campaign_id": (f"{BUCKET}.campaign_id", same),
    "voucher_id": (f"{BUCKET}.voucher_id", same),
    "status": (f"{BUCKET}.status", same),
    "expires_at": (f"{BUCKET}.expires_at", date),
    "points": (f"{BUCKET}.bucket.total_points", same),
})  # fmt: skip

TX = "data.transaction"
fields("voucher_transactions", "customer.voucher.loyalty_card.points_added",
       "voucher_transactions", f"{TX}.id", {
    "id": (f"{TX}.id", same),
    "type": (f"{TX}.type", same),
    "source_id": (f"{TX}.source_id", same),
    "reason": (f"{TX}.reason", same),
    "balance": (f"{TX}.details.balance.balance", same),
    "amount": (f"{TX}.details.balance.amount", same),
    "created_at": (f"{TX}.created_at", time),
    "voucher_id": (f"{TX}.voucher_id", same),
    "campaign_id": (f"{TX}.campaign_id", same),
    "source": (f"{TX}.source", same),
    "details": (f"{TX}.details", same),
    "related_transaction_id": (f"{TX}.related_transaction_id", same),
})  # fmt: skip


def realistic(event_type: str, voucher_type: str | None = None) -> dict[str, Any]:
    """The fixture, with the few values the generator cannot make realistic filled in."""
    activity = load_fixture(event_type)
    data = activity["data"]
    if "customer" in data:
        data["customer"].update(birthday="1990-04-01", birthdate="1990-04-01")
    if "voucher" in data:
        if voucher_type is None:
            voucher_type = "LOYALTY_CARD" if "loyalty_card" in event_type else None
        data["voucher"].update(
            type=voucher_type or data["voucher"]["type"],
            additional_info="Printed on the receipt",
            validity_timeframe={"interval": "P2D", "duration": "PT1H"},
            validity_day_of_week=[1, 2, 3],
            assets={"qr": {"url": "https://q/1"}, "barcode": {"url": "https://b/1"}},
            gift={"amount": 5000, "balance": 4200},
        )
        # A UNIT discount: the one kind with a unit type and a unit effect.
        data["voucher"]["discount"].update(
            type="UNIT", effect="ADD_MISSING_ITEMS", amount_limit=5000, unit_type="prod_5h1pp1ng"
        )
    if "redemption" in data:
        data["redemption"].update(result="SUCCESS", failure_code="none", failure_message="none")
    if "transaction" in data:
        data["transaction"]["type"] = "POINTS_ACCRUAL"
    if "campaign" in data:
        data["campaign"]["name"] = "Summer Discounts 20% off"
    if "promotion_tier" in data:
        data["promotion_tier"]["id"] = "promo_Mwy9XpA0TLctSGriM5kum0qp"
    return activity


def at(payload: Any, path: str) -> Any:
    for part in path.split("."):
        payload = payload[int(part)] if isinstance(payload, list) else payload[part]
    return payload


@pytest.mark.parametrize(
    ("export", "field", "event_type", "voucher_type", "table", "key", "path", "convert"),
    CASES,
    ids=[f"{c[0]}.{c[1]}" for c in CASES],
)
async def test_export_field_lands_in_its_column(
    client: httpx.AsyncClient,
    conn: db.Connection,
    export: str,
    field: str,
    event_type: str,
    voucher_type: str | None,
    table: str,
    key: str,
    path: str,
    convert: Convert,
) -> None:
    activity = realistic(event_type, voucher_type)
    body = compact_json(activity)
    response = await client.post(WEBHOOK, content=body, headers=signed(body))
    assert response.json()["outcome"] == "processed"

    expected = convert(at(activity, path))
    assert expected is not None, f"fixture has no value at {path}"
    stored = await conn.fetchval(
        f"SELECT {field} FROM {table} WHERE id = $1",  # noqa: S608 - names from the table above
        at(activity, key),
    )
    assert stored == expected

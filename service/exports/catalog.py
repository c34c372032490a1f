"""What each exported object offers: its table, fields, default fields, orders and filters.

Field and filter names are Voucherify's (seed 000, exports.json); each maps to a column
or expression of our tables and a kind that says how it is written to CSV and which filter
operators apply to it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


class Kind(enum.Enum):
    TEXT = "text"
    NUMBER = "number"
    TIME = "time"  # timestamptz, written as 2022-03-09T09:16:32.521Z
    DATE = "date"  # date, written as 2022-06-30
    BOOL = "bool"
    JSON = "json"
    ARRAY = "array"  # integer[], written as 1,2,3


@dataclass(frozen=True, slots=True)
class Column:
    sql: str  # an expression over the object's row alias `x`
    kind: Kind


@dataclass(frozen=True, slots=True)
class ExportObject:
    name: str
    source: str  # FROM clause; the exported row is aliased `x`
    fields: dict[str, Column]
    defaults: tuple[str, ...]
    orders: dict[str, str]  # "created_at" -> column sql; "-created_at" sorts descending
    filters: dict[str, Column]
    # Filter keys may also be "metadata.<key>" when the object has metadata.
    metadata: str | None = "x.metadata"
    # Rows that exist but are not exported (deleted customers and vouchers).
    where: str = "true"


def _cols(kind: Kind, *names: str) -> dict[str, Column]:
    return {name: Column(f"x.{name}", kind) for name in names}


T, N, TM, D, B, J, A = (
    Kind.TEXT,
    Kind.NUMBER,
    Kind.TIME,
    Kind.DATE,
    Kind.BOOL,
    Kind.JSON,
    Kind.ARRAY,
)

ORDER = ExportObject(
    name="order",
    source="orders x",
    fields={
        **_cols(T, "id", "source_id"),
        **_cols(TM, "created_at", "updated_at"),
        **_cols(T, "status"),
        **_cols(N, "amount", "discount_amount", "items_discount_amount",
                "total_discount_amount", "total_amount"),
        **_cols(T, "customer_id", "referrer_id"),
        "metadata": Column("x.metadata", J),
    },
    defaults=("id", "source_id", "status"),
    orders={"created_at": "x.created_at", "updated_at": "x.updated_at", "status": "x.status"},
    filters={
        **_cols(TM, "created_at", "updated_at"),
        **_cols(T, "status", "source_id", "id", "customer_id"),
        **_cols(N, "amount", "total_amount", "discount_amount", "total_discount_amount",
                "items_discount_amount"),
    },
)  # fmt: skip

VOUCHER = ExportObject(
    name="voucher",
    source="vouchers x LEFT JOIN customers c ON c.id = x.customer_id",
    fields={
        **_cols(T, "code", "voucher_type"),
        "value": Column("x.value", N),
        "formula": Column("NULL::text", T),
        **_cols(T, "discount_type", "campaign", "category"),
        **_cols(TM, "start_date", "expiration_date"),
        **_cols(N, "gift_balance", "loyalty_balance", "redemption_quantity", "redemption_count"),
        "active": Column("x.active", B),
        **_cols(T, "qr_code", "bar_code"),
        "metadata": Column("x.metadata", J),
        "id": Column("x.id", T),
        "is_referral_code": Column("x.is_referral_code", B),
        **_cols(TM, "created_at", "updated_at"),
        **_cols(T, "validity_timeframe_interval", "validity_timeframe_duration"),
        "validity_day_of_week": Column("x.validity_day_of_week", A),
        "discount_amount_limit": Column("x.discount_amount_limit", N),
        **_cols(T, "campaign_id", "additional_info", "customer_id"),
        "discount_effect": Column("x.discount_effect", T),
        **_cols(T, "discount_unit_type", "discount_unit_effect"),
        "validation_rules_id": Column("NULL::text", T),
        "customer_source_id": Column("c.source_id", T),
    },
    defaults=("code", "voucher_type", "value", "discount_type"),
    orders={"created_at": "x.created_at", "updated_at": "x.updated_at", "code": "x.code"},
    filters={
        **_cols(TM, "created_at", "updated_at", "start_date", "expiration_date"),
        "created_date": Column("x.created_at", TM),
        **_cols(B, "active", "is_referral_code"),
        "validity_day_of_week": Column("x.validity_day_of_week", A),
        "code": Column("x.code", T),
        "vouchers": Column("x.id", T),
        "holder_id": Column("x.customer_id", T),
        "published_for_customer_id": Column("x.customer_id", T),
        "categories": Column("x.category", T),
        "campaign_id": Column("x.campaign_id", T),
        "voucher_type": Column("x.voucher_type", T),
    },
    where="x.deleted_at IS NULL",
)  # fmt: skip

PUBLICATION = ExportObject(
    name="publication",
    source="publications x",
    fields={
        "voucher_code": Column("x.voucher_code", T),
        **_cols(T, "customer_id", "customer_source_id"),
        "date": Column("x.date", TM),
        **_cols(T, "channel", "campaign"),
        "is_winner": Column("x.is_winner", B),
        "metadata": Column("x.metadata", J),
    },
    defaults=("voucher_code", "customer_id", "date", "channel"),
    orders={"id": "x.id", "voucher_code": "x.voucher_code", "tracking_id": "x.tracking_id",
            "customer_id": "x.customer_id", "created_at": "x.date", "channel": "x.channel"},
    filters={
        "created_at": Column("x.date", TM),
        "campaign": Column("x.campaign", T),
        "campaign_name": Column("x.campaign", T),
        "customer": Column("x.customer_id", T),
        "customer_id": Column("x.customer_id", T),
        "voucher": Column("x.voucher_code", T),
        "result": Column("x.result", T),
        "source_id": Column("x.source_id", T),
    },
)  # fmt: skip

REDEMPTION = ExportObject(
    name="redemption",
    source="redemptions x",
    fields={
        **_cols(T, "id", "object"),
        "date": Column("x.date", TM),
        **_cols(T, "voucher_code", "campaign", "promotion_tier_id", "customer_id",
                "customer_source_id", "customer_name", "tracking_id", "order_id"),
        **_cols(N, "order_amount", "gift_amount", "loyalty_points"),
        **_cols(T, "result", "failure_code", "failure_message"),
        "metadata": Column("x.metadata", J),
    },
    defaults=("id", "object", "voucher_code", "customer_id", "date", "result"),
    orders={"id": "x.id", "voucher_code": "x.voucher_code", "tracking_id": "x.tracking_id",
            "customer_id": "x.customer_id", "created_at": "x.date"},
    filters={
        "created_at": Column("x.date", TM),
        **_cols(T, "voucher_code", "parent_redemption_id", "failure_code", "result", "object",
                "customer_id", "status"),
        "campaign": Column("x.campaign_id", T),
        "campaign_name": Column("x.campaign", T),
        "customer": Column("x.customer_id", T),
        "voucher": Column("x.voucher_code", T),
    },
)  # fmt: skip

CUSTOMER = ExportObject(
    name="customer",
    source="customers x",
    fields={
        **_cols(T, "name", "id", "description", "email", "source_id"),
        "created_at": Column("x.created_at", TM),
        **_cols(T, "address_city", "address_state", "address_line_1", "address_line_2",
                "address_country", "address_postal_code"),
        **_cols(N, "redemptions_total_redeemed", "redemptions_total_failed",
                "redemptions_total_succeeded", "redemptions_total_rolled_back",
                "redemptions_total_rollback_failed", "redemptions_total_rollback_succeeded",
                "orders_total_amount", "orders_total_count", "orders_average_amount",
                "orders_last_order_amount"),
        "orders_last_order_date": Column("x.orders_last_order_date", TM),
        **_cols(N, "loyalty_points", "loyalty_referred_customers"),
        "updated_at": Column("x.updated_at", TM),
        "phone": Column("x.phone", T),
        "birthday": Column("x.birthday", D),
        "metadata": Column("x.metadata", J),
        "birthdate": Column("x.birthdate", D),
    },
    defaults=("name", "source_id"),
    orders={"name": "x.name", "id": "x.id", "email": "x.email", "source_id": "x.source_id",
            "created_at": "x.created_at", "updated_at": "x.updated_at"},
    filters={
        **_cols(TM, "created_at", "updated_at"),
        **_cols(T, "email", "name", "phone", "source_id", "id"),
        "birthday": Column("x.birthday", D),
        "city": Column("x.address_city", T),
        "address.city": Column("x.address_city", T),
        "address.state": Column("x.address_state", T),
        "address.country": Column("x.address_country", T),
        "address.postal_code": Column("x.address_postal_code", T),
        "loyalty_points": Column("x.loyalty_points", N),
    },
    where="x.deleted_at IS NULL",
)  # fmt: skip

POINTS_EXPIRATION = ExportObject(
    name="points_expiration",
    source="points_expirations x",
    fields={
        **_cols(T, "id", "campaign_id", "voucher_id"),
        "points": Column("x.points", N),
        "status": Column("x.status", T),
        "expires_at": Column("x.expires_at", D),
    },
    defaults=("id", "campaign_id", "voucher_id", "status", "expires_at", "points"),
    orders={"expires_at": "x.expires_at"},
    filters={**_cols(T, "campaign_id", "voucher_id", "status"), "expires_at": Column(
        "x.expires_at", D)},
    metadata=None,
)  # fmt: skip

VOUCHER_TRANSACTIONS = ExportObject(
    name="voucher_transactions",
    source="voucher_transactions x",
    fields={
        **_cols(T, "id", "campaign_id", "voucher_id", "type", "source_id", "reason", "source"),
        **_cols(N, "balance", "amount"),
        "related_transaction_id": Column("x.related_transaction_id", T),
        "created_at": Column("x.created_at", TM),
        "details": Column("x.details", J),
    },
    # Seed 000 also lists `status`, which no transaction carries and exports.json omits.
    defaults=("id", "type", "source_id", "reason", "source", "balance", "amount", "created_at"),
    orders={"created_at": "x.created_at"},
    filters={"created_at": Column("x.created_at", TM), **_cols(T, "voucher_id", "campaign_id",
                                                               "type")},
    metadata=None,
)  # fmt: skip

OBJECTS: Final = MappingProxyType({
    o.name: o
    for o in (ORDER, VOUCHER, PUBLICATION, REDEMPTION, CUSTOMER, POINTS_EXPIRATION,
              VOUCHER_TRANSACTIONS)
})  # fmt: skip

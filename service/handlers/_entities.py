"""Rows for objects many families embed: customers, orders, vouchers, transactions.

Written once, called by every handler whose event carries such an object, so a customer
seen in an order event and in a tier event lands in `customers` by the same rule.

Customers and orders arrive in two sizes: the full object from their own family's events,
and smaller copies embedded elsewhere. A copy only fills a row no full object has written
yet (`is_stub`); the first full object replaces it, whatever the arrival order. Among rows
of the same size the newest event wins.
"""

from __future__ import annotations

import msgspec

from service.events._blocks import (
    Customer,
    Order,
    Voucher,
    VoucherBalance,
    VoucherTransaction,
)
from service.events.times import parse_date, parse_time, whole
from service.handlers import Meta, Writes
from service.handlers._sql import NEWER, Bulk, upsert

# -- customers ----------------------------------------------------------------------------

CUSTOMER_COLUMNS = (
    "id", "source_id", "name", "email", "phone", "description", "birthdate", "birthday",
    "address_city", "address_state", "address_line_1", "address_line_2", "address_country",
    "address_postal_code", "metadata", "created_at", "updated_at",
    "redemptions_total_redeemed", "redemptions_total_failed", "redemptions_total_succeeded",
    "redemptions_total_rolled_back", "redemptions_total_rollback_failed",
    "redemptions_total_rollback_succeeded", "orders_total_amount", "orders_total_count",
    "orders_average_amount", "orders_last_order_amount", "orders_last_order_date",
    "loyalty_points", "loyalty_referred_customers", "is_stub", "last_event_at", "last_event_id",
)  # fmt: skip
CUSTOMER_STUB_COLUMNS = (
    "id", "source_id", "name", "email", "metadata", "is_stub", "last_event_at", "last_event_id",
)  # fmt: skip

# A full customer replaces a stub, or an older full customer; a redacted one stays empty.
# A copy embedded in another event only refreshes a row that is still a stub, and only
# the columns a copy carries. (One statement for both: see LOCK_ORDER in _sql.py.)
UPSERT_CUSTOMER = upsert(
    "customers",
    CUSTOMER_COLUMNS,
    when=f"(t.is_stub OR {NEWER}) AND t.redacted_at IS NULL",
    copy_when=f"t.is_stub AND {NEWER} AND t.redacted_at IS NULL",
    copy_columns=CUSTOMER_STUB_COLUMNS,
)
# Deletion sticks: the earliest customer.deleted time, whatever arrives after it.
# A customer redacted once (customer_redactions) is redacted from the deletion that did
# it on, also in a replay run without REDACT_DELETED_CUSTOMERS: later files load around
# them. ($3: this deletion event.)
MARK_CUSTOMER_DELETED = """
UPDATE customers SET deleted_at = LEAST(deleted_at, $2),
       redacted_at = CASE WHEN EXISTS (SELECT FROM customer_redactions r
                                       WHERE r.customer_id = $1 AND r.event_id = $3)
                          THEN coalesce(redacted_at, $2) ELSE redacted_at END
WHERE id = $1
"""


def full_customer(w: Writes, meta: Meta, customer: Customer, customer_id: str) -> None:
    summary = customer.summary
    redemptions = summary.redemptions if summary else None
    orders = summary.orders if summary else None
    address = customer.address
    loyalty = customer.loyalty
    w.add(
        UPSERT_CUSTOMER,
        customer_id,
        customer.source_id,
        customer.name,
        customer.email,
        customer.phone,
        customer.description,
        parse_date(customer.birthdate),
        parse_date(customer.birthday),
        address.city if address else None,
        address.state if address else None,
        address.line_1 if address else None,
        address.line_2 if address else None,
        address.country if address else None,
        address.postal_code if address else None,
        customer.metadata,
        parse_time(customer.created_at),
        parse_time(customer.updated_at),
        redemptions.total_redeemed if redemptions else None,
        redemptions.total_failed if redemptions else None,
        redemptions.total_succeeded if redemptions else None,
        redemptions.total_rolled_back if redemptions else None,
        redemptions.total_rollback_failed if redemptions else None,
        redemptions.total_rollback_succeeded if redemptions else None,
        orders.total_amount if orders else None,
        orders.total_count if orders else None,
        orders.average_amount if orders else None,
        orders.last_order_amount if orders else None,
        parse_time(orders.last_order_date) if orders else None,
        loyalty.points if loyalty else None,
        loyalty.referred_customers if loyalty else None,
        False,
        meta.at,
        meta.event_id,
    )


def customer_stub(w: Writes, meta: Meta, customer: Customer | None) -> str | None:
    """Record an embedded customer copy; returns its id (None when it has none)."""
    if customer is None or not customer.id:
        return None
    copy = UPSERT_CUSTOMER.copy_row(
        customer.id,
        customer.source_id,
        customer.name,
        customer.email,
        customer.metadata,
        True,
        meta.at,
        meta.event_id,
    )
    w.add(UPSERT_CUSTOMER, *copy)
    return customer.id


def mark_customer_deleted(w: Writes, meta: Meta, customer_id: str) -> None:
    w.add(MARK_CUSTOMER_DELETED, customer_id, meta.at, meta.event_id)


# A customer's personal data, by the table holding it: what REDACT_DELETED_CUSTOMERS
# clears after customer.deleted (in the tables, in kept export files, in what replay
# kept of files imported before files were kept).
PERSONAL_FIELDS = {
    "customers": ("source_id", "name", "email", "phone", "description", "birthdate",
                  "birthday", "address_city", "address_state", "address_line_1",
                  "address_line_2", "address_country", "address_postal_code", "metadata"),
    "redemptions": ("customer_name", "customer_source_id"),
    "publications": ("customer_source_id",),
}  # fmt: skip


def set_null(table: str) -> str:
    """`col = NULL, ...` for `table`'s personal fields."""
    return ", ".join(f"{c} = NULL" for c in PERSONAL_FIELDS[table])


def any_set(table: str, alias: str = "") -> str:
    """`col IS NOT NULL OR ...` for `table`'s personal fields."""
    return " OR ".join(f"{alias}{c} IS NOT NULL" for c in PERSONAL_FIELDS[table])


# Personal data of a deleted customer, and the audit row.
REDACT_CUSTOMER = f"""
UPDATE customers SET {set_null("customers")}, redacted_at = coalesce(redacted_at, $2)
WHERE id = $1
"""  # noqa: S608 - our own names
# Lines of kept export files (`import_lines`, exports/importer.py) lose their personal
# cells (`imports.personal_cells`), and the rows replay kept of files imported before
# files were kept (`imported_before_0012`) their personal fields, so no replay brings
# them back: those naming the customer, and those naming none whose row an event gave
# the customer (a redemption or publication naming the person but not their id). Each
# statement an index lookup.
CLEARED_CELLS = """(
    SELECT array_agg(CASE WHEN u.n = ANY(i.personal_cells) THEN '' ELSE u.cell END ORDER BY u.n)
    FROM unnest(l.cells) WITH ORDINALITY AS u (cell, n)
)"""


def redact_lines(where: str, *, also_from: str = "") -> str:
    """Clear the personal cells of the kept lines `where` selects (alias `l`)."""
    return f"""
UPDATE import_lines l SET cells = {CLEARED_CELLS}
FROM imports i{also_from}
WHERE i.id = l.import_id AND cardinality(i.personal_cells) > 0
  AND l.cells <> {CLEARED_CELLS}
  AND {where}"""  # noqa: S608 - our own SQL


_NULLS = {t: msgspec.json.encode(dict.fromkeys(f)).decode() for t, f in PERSONAL_FIELDS.items()}
BEFORE_0012_CLEARED = (
    "(row || CASE table_name "
    + " ".join(f"WHEN '{t}' THEN '{nulls}'::jsonb" for t, nulls in _NULLS.items())
    + " END)"
)


def redact_before_0012(where: str, *, also_from: str = "") -> str:
    """Clear the personal fields of the rows kept of files imported before 0012 that
    `where` selects."""
    return f"""
UPDATE imported_before_0012 SET row = {BEFORE_0012_CLEARED}{also_from}
WHERE table_name IN ({", ".join(f"'{t}'" for t in PERSONAL_FIELDS)})
  AND row <> {BEFORE_0012_CLEARED}
  AND {where}"""  # noqa: S608 - our own SQL


_ROWS_OF = """SELECT id FROM redemptions WHERE customer_id IN ({customers})
    UNION ALL SELECT id FROM publications WHERE customer_id IN ({customers})"""
_REDACTED = "SELECT customer_id FROM customer_redactions"


def _redact_imported(customers: str) -> list[str]:
    """`customers`: $1, or a query of customer ids (our own SQL, never a value)."""
    rows = _ROWS_OF.format(customers=customers)
    return [
        redact_lines(f"l.customer_id IN ({customers})"),
        redact_lines(f"l.customer_id IS NULL AND l.row_id IN ({rows})"),
        redact_before_0012(
            "(CASE table_name WHEN 'customers' THEN row ->> 'id' "
            f"ELSE row ->> 'customer_id' END) IN ({customers})"
        ),
        redact_before_0012(f"row ->> 'customer_id' IS NULL AND row ->> 'id' IN ({rows})"),
    ]


REDACT_COPIES = [
    *(
        f"UPDATE {t} SET {set_null(t)} WHERE customer_id = $1"  # noqa: S608 - our names
        for t in ("redemptions", "publications")
    ),
    *_redact_imported("$1"),
]
# The names copies of a redacted customer brought back, in rows of the events whose ids
# are $1 (NULL: every row, at the end of a replay, or of an import: its rows come from
# no event).
REDACT_STORED_COPIES = [
    f"""
    UPDATE {t} SET {set_null(t)}
    WHERE customer_id IN ({_REDACTED}) AND ({any_set(t)})
      AND ($1::text[] IS NULL OR last_event_id = ANY($1::text[]))
    """  # noqa: S608 - our own names
    for t in ("redemptions", "publications")
]
# Every redacted customer's personal data in kept files: at the end of a redacting replay.
REDACT_IMPORTED = _redact_imported(_REDACTED)
# As the import $1 loads: its lines about redacted customers, and the lines and pre-0012
# rows naming nobody whose row it wrote, when that row is a redacted customer's (a file
# can give an earlier file's row its customer).
_ITS_ROWS = "SELECT n.row_id FROM import_lines n WHERE n.import_id = $1"
_ITS_REDACTED_ROWS = " UNION ALL ".join(
    f"SELECT id FROM {t} WHERE id IN ({_ITS_ROWS}) AND customer_id IN ({_REDACTED})"  # noqa: S608
    for t in ("redemptions", "publications")
)
REDACT_NEW_LINES = [
    redact_lines(f"l.import_id = $1 AND l.customer_id IN ({_REDACTED})"),
    redact_lines(f"l.customer_id IS NULL AND l.row_id IN ({_ITS_REDACTED_ROWS})"),
    redact_before_0012(f"row ->> 'customer_id' IS NULL AND row ->> 'id' IN ({_ITS_REDACTED_ROWS})"),
]
# What events stored after a customer's redaction brought back: their payloads and the
# names they copied. $1 holds those events' ids (NULL: everything, at the end of a replay).
# The writer runs these after each batch, replay after its last page.
REDACT_AFTER_STORE = [
    """
    WITH redacted AS (
        UPDATE events e SET payload = redact_customer_payload(e.payload)
        FROM customer_redactions r
        WHERE e.customer_id = r.customer_id
          AND ($1::text[] IS NULL OR e.id = ANY($1::text[]))
          AND e.payload <> redact_customer_payload(e.payload)
        RETURNING e.customer_id
    )
    UPDATE customer_redactions r SET events_redacted = r.events_redacted + c.n
    FROM (SELECT customer_id, count(*) AS n FROM redacted GROUP BY 1) c
    WHERE r.customer_id = c.customer_id
    """,
    *REDACT_STORED_COPIES,
]
REDACT_EVENTS = """
WITH redacted AS (
    UPDATE events SET payload = redact_customer_payload(payload)
    WHERE customer_id = $1 AND payload <> redact_customer_payload(payload)
    RETURNING 1
)
INSERT INTO customer_redactions AS r (customer_id, event_id, events_redacted)
SELECT $1, $2, count(*) FROM redacted
ON CONFLICT (customer_id) DO UPDATE
SET events_redacted = r.events_redacted + EXCLUDED.events_redacted
"""


def redact_customer(w: Writes, meta: Meta, customer_id: str) -> None:
    w.add(REDACT_CUSTOMER, customer_id, meta.at)
    for statement in REDACT_COPIES:
        w.add(statement, customer_id)
    w.add(REDACT_EVENTS, customer_id, meta.event_id)


# -- orders -------------------------------------------------------------------------------

ORDER_COLUMNS = (
    "id", "source_id", "created_at", "updated_at", "status", "amount", "discount_amount",
    "items_discount_amount", "total_discount_amount", "total_amount", "customer_id",
    "referrer_id", "metadata", "is_stub", "last_event_at", "last_event_id",
)  # fmt: skip
# A full order replaces a copy, or an older full order; a copy replaces only an older copy.
UPSERT_ORDER = upsert(
    "orders", ORDER_COLUMNS, when=f"t.is_stub OR {NEWER}", copy_when=f"t.is_stub AND {NEWER}"
)
# Items follow the order row: only the event the order row now holds rewrites them, so
# within one batch or across batches the newest event's items win.
DELETE_ORDER_ITEMS = Bulk(
    "order_items_delete",
    (("order_id", "text"), ("event_id", "text")),
    """
    DELETE FROM order_items i USING orders o, {rows}
    WHERE i.order_id = r.order_id AND o.id = r.order_id AND o.last_event_id = r.event_id
    """,
)
INSERT_ORDER_ITEMS = Bulk(
    "order_items_insert",
    (("order_id", "text"), ("event_id", "text"), ("position", "integer"), ("id", "text"),
     ("source_id", "text"), ("product_id", "text"), ("sku_id", "text"),
     ("related_object", "text"), ("quantity", "integer"), ("amount", "bigint"),
     ("discount_amount", "bigint"), ("subtotal_amount", "bigint"), ("price", "numeric"),
     ("metadata", "jsonb")),
    """
    INSERT INTO order_items (order_id, position, id, source_id, product_id, sku_id,
                             related_object, quantity, amount, discount_amount,
                             subtotal_amount, price, metadata)
    SELECT r.order_id, r.position, r.id, r.source_id, r.product_id, r.sku_id,
           r.related_object, r.quantity, r.amount, r.discount_amount, r.subtotal_amount,
           r.price, r.metadata
    FROM {rows}
    WHERE EXISTS (SELECT FROM orders o WHERE o.id = r.order_id AND o.last_event_id = r.event_id)
    """,
)  # fmt: skip


def order(
    w: Writes,
    meta: Meta,
    order: Order | None,
    *,
    full: bool,
    customer_id: str | None,
    referrer_id: str | None = None,
) -> str | None:
    """Record an order (its own family's full object, or a copy); returns its id.
    `customer_id`, `referrer_id`: the event's customer and referrer, where the order
    leaves out its own."""
    if order is None or not order.id:
        return None
    w.add(
        UPSERT_ORDER,
        order.id,
        order.source_id,
        parse_time(order.created_at),
        parse_time(order.updated_at),
        order.status,
        order.amount,
        order.discount_amount,
        order.items_discount_amount,
        order.total_discount_amount,
        order.total_amount,
        order.customer_id or (order.customer.id if order.customer else None) or customer_id,
        order.referrer_id or (order.referrer.id if order.referrer else None) or referrer_id,
        order.metadata,
        not full,
        meta.at,
        meta.event_id,
    )
    w.add(DELETE_ORDER_ITEMS, order.id, meta.event_id)
    for position, i in enumerate(order.items or []):
        w.add(
            INSERT_ORDER_ITEMS,
            order.id,
            meta.event_id,
            position,
            i.id,
            i.source_id,
            i.product_id,
            i.sku_id,
            i.related_object,
            i.quantity,
            i.amount,
            i.discount_amount,
            i.subtotal_amount,
            i.price,
            i.metadata,
        )
    return order.id


# -- vouchers -----------------------------------------------------------------------------

VOUCHER_COLUMNS = (
    "id", "code", "voucher_type", "value", "discount_type", "campaign", "campaign_id",
    "category", "start_date", "expiration_date", "gift_balance", "loyalty_balance",
    "redemption_quantity", "redemption_count", "active", "qr_code", "bar_code", "metadata",
    "is_referral_code", "created_at", "updated_at", "validity_timeframe_interval",
    "validity_timeframe_duration", "validity_day_of_week", "discount_amount_limit",
    "discount_unit_type", "discount_unit_effect", "additional_info", "customer_id",
    "discount_effect", "last_event_at", "last_event_id",
)  # fmt: skip
# Every event embeds a Simple Voucher: it never has the assets, validity timeframe and
# days or additional info of an export file, and may leave out all but its code, type
# and creation time (holder, balances, value, campaign, dates, counts, metadata, ...).
# So no column is one a copy can be trusted to clear: a copy without a value keeps the
# one an earlier or later row brought, in every column. (Nor can a copy clear a value
# Voucherify removed, an expiration date or a redemption limit: it stays until an export
# file newer than the row is imported. And see `upsert` on values that change while
# their events arrive out of order.)
VOUCHER_KEPT_IF_NULL = tuple(
    c for c in VOUCHER_COLUMNS if c not in ("id", "last_event_at", "last_event_id")
)
UPSERT_VOUCHER = upsert("vouchers", VOUCHER_COLUMNS, kept_if_null=VOUCHER_KEPT_IF_NULL)
MARK_VOUCHER_DELETED = "UPDATE vouchers SET deleted_at = LEAST(deleted_at, $2) WHERE id = $1"


def voucher_value(voucher: Voucher, gift: float | None, points: int | None) -> float | None:
    """Export `value`: discount off, gift amount left, or usable loyalty points."""
    if voucher.type == "GIFT_VOUCHER":
        return gift
    if voucher.type == "LOYALTY_CARD":
        return points
    discount = voucher.discount
    if discount is None:
        return None
    for value in (discount.amount_off, discount.percent_off, discount.unit_off,
                  discount.fixed_amount):  # fmt: skip
        if value is not None:
            return value
    return None


def voucher(
    w: Writes,
    meta: Meta,
    voucher: Voucher | None,
    *,
    holder_id: str | None = None,
    balance: int | None = None,
) -> str | None:
    """Record a voucher as the event shows it, balances included; returns its id.
    `balance`: the card's balance after the event, where the event states it besides."""
    if voucher is None or not voucher.id:
        return None
    discount = voucher.discount
    assets = voucher.assets
    counts = voucher.redemption
    timeframe = voucher.validity_timeframe
    gift = voucher.gift.balance if voucher.gift else None
    points = voucher.loyalty_card.balance if voucher.loyalty_card else None
    if gift is None and voucher.type == "GIFT_VOUCHER":
        gift = balance
    if points is None and voucher.type == "LOYALTY_CARD":
        points = balance
    w.add(
        UPSERT_VOUCHER,
        voucher.id,
        voucher.code,
        voucher.type,
        voucher_value(voucher, gift, points),
        discount.type if discount else None,
        voucher.campaign,
        voucher.campaign_id,
        voucher.category or (voucher.categories[0].name if voucher.categories else None),
        parse_time(voucher.start_date),
        parse_time(voucher.expiration_date),
        whole(gift),
        points,
        counts.quantity if counts else None,
        counts.redeemed_quantity if counts else None,
        voucher.active,
        assets.qr.url if assets and assets.qr else None,
        assets.barcode.url if assets and assets.barcode else None,
        voucher.metadata,
        voucher.is_referral_code,
        parse_time(voucher.created_at),
        parse_time(voucher.updated_at),
        timeframe.interval if timeframe else None,
        timeframe.duration if timeframe else None,
        voucher.validity_day_of_week,
        whole(discount.amount_limit) if discount else None,
        discount.unit_type if discount else None,
        discount.effect if discount and discount.type == "UNIT" else None,
        voucher.additional_info,
        voucher.holder_id or holder_id,
        discount.effect if discount else None,
        meta.at,
        meta.event_id,
    )
    return voucher.id


def mark_voucher_deleted(w: Writes, meta: Meta, voucher_id: str) -> None:
    w.add(MARK_VOUCHER_DELETED, voucher_id, meta.at)


# -- voucher transactions -----------------------------------------------------------------

TRANSACTION_COLUMNS = (
    "id", "type", "source_id", "reason", "source", "balance", "amount", "created_at",
    "voucher_id", "campaign_id", "related_transaction_id", "details",
    "last_event_at", "last_event_id",
)  # fmt: skip
UPSERT_TRANSACTION = upsert("voucher_transactions", TRANSACTION_COLUMNS)


def balance_change(balance: VoucherBalance | int | None) -> tuple[int | None, int | None]:
    """(amount moved, balance after) from a balance object; a bare int is the balance."""
    if balance is None:
        return None, None
    if isinstance(balance, int):
        return None, balance
    moved = balance.amount if balance.amount is not None else balance.points
    return moved, balance.balance


def balance_after(balance: VoucherBalance | int | None, voucher_id: str) -> int | None:
    """The card's balance after the event, as `balance` states it: None when it names
    another card (`related_object`; points_transferred moves points between two)."""
    related = balance.related_object if isinstance(balance, VoucherBalance) else None
    if related is not None and related.id not in (None, voucher_id):
        return None
    return balance_change(balance)[1]


def transaction_balance_after(tx: VoucherTransaction | None, voucher_id: str) -> int | None:
    """The card's balance after the event, as its transaction states it (details.balance):
    None when the transaction is another card's."""
    if tx is None or tx.voucher_id not in (None, voucher_id):
        return None
    return balance_after(tx.balance(), voucher_id)


def transaction(w: Writes, meta: Meta, tx: VoucherTransaction | None) -> None:
    """Record a gift-credit or loyalty-points transaction, its details kept as sent."""
    if tx is None or not tx.id:
        return
    moved, after = balance_change(tx.balance())
    w.add(
        UPSERT_TRANSACTION,
        tx.id,
        tx.type,
        tx.source_id,
        tx.reason,
        tx.source,
        after,
        moved,
        parse_time(tx.created_at),
        tx.voucher_id,
        tx.campaign_id,
        tx.related_transaction_id,
        tx.details if bytes(tx.details) else None,
        meta.at,
        meta.event_id,
    )

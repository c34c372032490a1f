"""Create the normalized analyst tables every event family writes into.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Column names follow Voucherify's export fields (seed 000) wherever one exists, so a query
written against an export file reads the same here. Current-state tables (customers,
orders, redemptions, vouchers, ...) keep `last_event_at`/`last_event_id`, the event whose
data the row holds, and ignore older events; history tables are keyed by the event id and
get one row per event. Every table and column carries a comment: `\\d+ orders` explains it.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LAST_EVENT = [
    ("last_event_at", "timestamptz NOT NULL", "Time of the event whose data this row holds; "
     "older events arriving later are ignored."),
    ("last_event_id", "text NOT NULL", "Id of that event (events.id); breaks ties of equal times."),
]  # fmt: skip

# (table, comment, primary key, [(column, type, comment), ...])
TABLES: list[tuple[str, str, str, list[tuple[str, str, str]]]] = [
    ("customers", "One row per Voucherify customer: its latest known profile and summary.", "id", [
        ("id", "text", "Unique customer ID (cust_...)."),
        ("source_id", "text", "Unique custom customer identifier (your own id, often an email)."),
        ("name", "text", "Customer name."),
        ("email", "text", "Customer's email."),
        ("phone", "text", "Customer's phone number."),
        ("description", "text", "An arbitrary string attached to the customer."),
        ("birthdate", "date", "Customer's birthdate."),
        ("birthday", "date", "Deprecated birthdate field, kept as Voucherify sends it."),
        ("address_city", "text", "City."),
        ("address_state", "text", "State."),
        ("address_line_1", "text", "First line of the customer's address."),
        ("address_line_2", "text", "Second line of the customer's address."),
        ("address_country", "text", "Country."),
        ("address_postal_code", "text", "Postal code (ZIP code)."),
        ("metadata", "jsonb", "Customer metadata."),
        ("created_at", "timestamptz", "When the customer was created in Voucherify."),
        ("updated_at", "timestamptz", "When the customer was last updated in Voucherify."),
        ("redemptions_total_redeemed", "integer", "Total customer redemptions."),
        ("redemptions_total_failed", "integer", "Total failed redemptions."),
        ("redemptions_total_succeeded", "integer", "Total succeeded redemptions."),
        ("redemptions_total_rolled_back", "integer", "Total redemptions rolled back."),
        ("redemptions_total_rollback_failed", "integer", "Total unsuccessful rollbacks."),
        ("redemptions_total_rollback_succeeded", "integer", "Total successful rollbacks."),
        ("orders_total_amount", "bigint", "Sum of order amounts over the customer's lifetime, "
         "in the smallest currency unit (10000 = $100)."),
        ("orders_total_count", "integer", "Total number of customer orders."),
        ("orders_average_amount", "bigint", "Average order amount, smallest currency unit."),
        ("orders_last_order_amount", "bigint", "Amount of the last order, smallest currency unit."),
        ("orders_last_order_date", "timestamptz", "When the customer's last order was placed."),
        ("loyalty_points", "bigint", "Points to go across all the customer's loyalty cards."),
        ("loyalty_referred_customers", "integer", "How many customers this customer referred."),
        ("deleted_at", "timestamptz", "When customer.deleted happened; null while the customer "
         "exists. Stale updates never clear it."),
        ("is_stub", "boolean NOT NULL", "True while only copies embedded in other events "
         "(id, name, email, source_id, metadata) have been seen; the first full customer event "
         "replaces them."),
        *LAST_EVENT,
    ]),
    ("orders", "One row per order: its latest known state.", "id", [
        ("id", "text", "Unique order ID (ord_...)."),
        ("source_id", "text", "Unique order source ID (your own order number)."),
        ("created_at", "timestamptz", "When the order was created."),
        ("updated_at", "timestamptz", "When the order was last updated."),
        ("status", "text", "Order status: CREATED, PAID, FULFILLED, CANCELED, PROCESSING."),
        ("amount", "bigint", "Total amount of order items, smallest currency unit."),
        ("discount_amount", "bigint", "Discount applied to the whole cart."),
        ("items_discount_amount", "bigint", "Discount applied to order line items."),
        ("total_discount_amount", "bigint", "All discounts: cart plus line items."),
        ("total_amount", "bigint", "Order amount after all discounts."),
        ("customer_id", "text", "Customer unique ID (customers.id)."),
        ("referrer_id", "text", "Referrer unique ID (customers.id)."),
        ("metadata", "jsonb", "Order metadata."),
        ("is_stub", "boolean NOT NULL", "True while the order is known only from copies embedded "
         "in redemption or points events; the first customer.order.* event replaces them."),
        *LAST_EVENT,
    ]),
    ("order_items", "Line items of each order, as the order's latest event lists them.",
     "order_id, position", [
        ("order_id", "text NOT NULL REFERENCES orders (id) ON DELETE CASCADE",
         "The order (orders.id)."),
        ("position", "integer NOT NULL", "0-based position of the item in the order."),
        ("id", "text", "Order item id, when Voucherify sends one."),
        ("source_id", "text", "Item source id (product or SKU source id)."),
        ("product_id", "text", "Product id."),
        ("sku_id", "text", "SKU id."),
        ("related_object", "text", "product or sku."),
        ("quantity", "integer", "Quantity ordered."),
        ("amount", "bigint", "Item amount (price x quantity), smallest currency unit."),
        ("discount_amount", "bigint", "Discount applied to this item."),
        ("subtotal_amount", "bigint", "Item amount after its discount."),
        ("price", "numeric", "Unit price."),
        ("metadata", "jsonb", "Item metadata."),
    ]),
    ("redemptions", "One row per redemption or rollback (object = 'redemption_rollback'), "
     "with its latest known status.", "id", [
        ("id", "text", "Unique redemption ID (r_...; rollbacks rr_...)."),
        ("object", "text", "redemption or redemption_rollback."),
        ("date", "timestamptz", "When the voucher was redeemed (or the redemption rolled back)."),
        ("voucher_code", "text", "Voucher code redeemed."),
        ("voucher_id", "text", "Voucher id (vouchers.id)."),
        ("campaign", "text", "Parent campaign name of the voucher, if any."),
        ("campaign_id", "text", "Parent campaign id."),
        ("promotion_tier_id", "text", "Promotion tier redeemed, for promotions."),
        ("customer_id", "text", "Redeeming customer (customers.id)."),
        ("customer_source_id", "text", "Source id of the redeeming customer."),
        ("customer_name", "text", "Name of the redeeming customer."),
        ("tracking_id", "text", "Tracking id Voucherify assigned to the customer."),
        ("order_id", "text", "Order the redemption applied to (orders.id)."),
        ("order_amount", "bigint", "Total order amount before discounts."),
        ("gift_amount", "bigint", "Gift credits used for the redemption."),
        ("loyalty_points", "bigint", "Loyalty points used for the redemption."),
        ("result", "text", "SUCCESS or FAILURE."),
        ("status", "text", "SUCCEEDED, FAILED or ROLLED_BACK."),
        ("amount", "bigint", "Amount redeemed (credits or points), when Voucherify sends it."),
        ("failure_code", "text", "Why the redemption failed (Voucherify code)."),
        ("failure_message", "text", "Why the redemption failed, in words."),
        ("reason", "text", "Reason given for a rollback."),
        ("parent_redemption_id", "text", "For a rollback: the redemption it rolls back."),
        ("metadata", "jsonb", "Redemption metadata."),
        *LAST_EVENT,
    ]),
    ("vouchers", "One row per voucher, gift card or loyalty card: its latest known state and "
     "balances.", "id", [
        ("id", "text", "Unique voucher ID (v_...)."),
        ("code", "text", "Unique voucher code."),
        ("voucher_type", "text", "DISCOUNT_VOUCHER, GIFT_VOUCHER or LOYALTY_CARD."),
        ("value", "numeric", "Discount: amount, percent or units off; gift card: amount left to "
         "spend; loyalty card: usable points."),
        ("discount_type", "text", "AMOUNT, PERCENT, UNIT or FIXED, for discount vouchers."),
        ("campaign", "text", "Campaign name."),
        ("campaign_id", "text", "Parent campaign ID."),
        ("category", "text", "Category the voucher belongs to."),
        ("start_date", "timestamptz", "When the code becomes active."),
        ("expiration_date", "timestamptz", "When the code expires."),
        ("gift_balance", "bigint", "Gift card: amount left to spend, smallest currency unit."),
        ("loyalty_balance", "bigint", "Loyalty card: available usable points."),
        ("redemption_quantity", "integer", "Maximum number of redemptions."),
        ("redemption_count", "integer", "Redemptions so far."),
        ("active", "boolean", "Whether the voucher is available for use."),
        ("qr_code", "text", "URL of the QR code of the voucher."),
        ("bar_code", "text", "URL of the barcode of the voucher."),
        ("metadata", "jsonb", "Voucher metadata."),
        ("is_referral_code", "boolean", "Whether the voucher is a referral code."),
        ("created_at", "timestamptz", "When the voucher was created."),
        ("updated_at", "timestamptz", "When the voucher was last updated."),
        ("validity_timeframe_interval", "text", "ISO 8601 interval between active periods (P2D)."),
        ("validity_timeframe_duration", "text", "ISO 8601 length of each active period (PT1H)."),
        ("validity_day_of_week", "integer[]", "Days of the week it is valid (0 = Sunday)."),
        ("discount_amount_limit", "bigint", "For PERCENT discounts: the maximum deducted."),
        ("discount_unit_type", "text", "For UNIT discounts: the product or shipping id."),
        ("discount_unit_effect", "text", "UNIT discount effect (ADD_MISSING_ITEMS, ...)."),
        ("additional_info", "text", "Free text attached to the code."),
        ("customer_id", "text", "Holder the voucher was published to (customers.id)."),
        ("deleted_at", "timestamptz", "When customer.voucher.deleted happened, else null."),
        *LAST_EVENT,
    ]),
    ("publications", "One row per publication: a voucher assigned to a customer.", "id", [
        ("id", "text", "Publication id (pub_...)."),
        ("voucher_code", "text", "Voucher code published."),
        ("customer_id", "text", "Customer the voucher was published to."),
        ("customer_source_id", "text", "Source id of that customer."),
        ("date", "timestamptz", "When the voucher was published."),
        ("channel", "text", "Publication channel (API, voucherify-website, ...)."),
        ("campaign", "text", "Campaign name."),
        ("campaign_id", "text", "Campaign id."),
        ("is_winner", "boolean", "Kept for export compatibility; events do not carry it."),
        ("result", "text", "SUCCESS or FAILURE."),
        ("source_id", "text", "Source id given to the publication."),
        ("tracking_id", "text", "Tracking id of the customer."),
        ("metadata", "jsonb", "Publication metadata."),
        *LAST_EVENT,
    ]),
    ("voucher_transactions", "Gift card credit and loyalty point movements, one row per "
     "transaction.", "id", [
        ("id", "text", "Unique transaction ID (vtx_...)."),
        ("type", "text", "CREDITS_ADDITION, POINTS_ACCRUAL, POINTS_EXPIRATION, ..."),
        ("source_id", "text", "Custom source id of the transaction."),
        ("reason", "text", "Reason given for the transaction."),
        ("source", "text", "Channel that initiated it (API, voucherify-web-ui, Automation)."),
        ("balance", "bigint", "Card balance after the transaction."),
        ("amount", "bigint", "Credits or points moved; negative when taken away."),
        ("created_at", "timestamptz", "When the transaction was created."),
        ("voucher_id", "text", "Gift or loyalty card (vouchers.id)."),
        ("campaign_id", "text", "Parent campaign id."),
        ("related_transaction_id", "text", "The other card's transaction in a points transfer."),
        ("details", "jsonb", "Transaction details as Voucherify sends them."),
        *LAST_EVENT,
    ]),
    ("points_expirations", "Loyalty point buckets seen expiring.", "id", [
        ("id", "text", "Loyalty points bucket id (lopb_...)."),
        ("campaign_id", "text", "Parent loyalty campaign."),
        ("voucher_id", "text", "Parent loyalty card (vouchers.id)."),
        ("status", "text", "ACTIVE or INACTIVE."),
        ("expires_at", "date", "Date the points expire."),
        ("points", "bigint", "Number of points in the bucket."),
        *LAST_EVENT,
    ]),
    ("loyalty_tier_changes", "Loyalty tier history: one row per tier event.", "event_id", [
        ("event_id", "text", "The event (events.id)."),
        ("customer_id", "text", "Customer whose tier changed."),
        ("campaign_id", "text", "Loyalty campaign."),
        ("change", "text", "joined, left, upgraded, downgraded, prolonged or expiration_changed."),
        ("tier_from_id", "text", "Tier before an upgrade or downgrade."),
        ("tier_to_id", "text", "Tier after an upgrade or downgrade."),
        ("tier_id", "text", "Tier the customer holds after the change (the tier left, for left)."),
        ("expiration_date", "timestamptz", "When the tier expires, if known."),
        ("created_at", "timestamptz", "When the change happened."),
    ]),
    ("distributions", "Messages sent through distribution channels: one row per event.",
     "event_id", [
        ("event_id", "text", "The event (events.id)."),
        ("customer_id", "text", "Customer the message was for."),
        ("channel", "text", "sms, email, activecampaign, braze, mailchimp, intercom, shopify, "
         "klaviyo or batch."),
        ("status", "text", "sent, recovered or failed."),
        ("occurred_at", "timestamptz", "When it was sent, recovered or failed."),
        ("distribution", "jsonb", "The channel's distribution object, as sent."),
    ]),
    ("segment_memberships", "Which customers are in which segment, and since when.",
     "customer_id, segment_id", [
        ("customer_id", "text", "Customer."),
        ("segment_id", "text", "Segment (seg_...)."),
        ("segment_name", "text", "Segment name."),
        ("entered_at", "timestamptz", "Latest time the customer entered the segment."),
        ("left_at", "timestamptz", "Latest time the customer left; the customer is a member "
         "when left_at is null or earlier than entered_at."),
        *LAST_EVENT,
    ]),
    ("validations", "Validations of a customer's vouchers or promotions.", "id", [
        ("id", "text", "Validation id."),
        ("session_id", "text", "Validation session id, if a session was locked."),
        ("status", "text", "VALID or INVALID."),
        ("result", "text", "succeeded or failed, from the event type."),
        ("customer_id", "text", "Customer validated for."),
        ("created_at", "timestamptz", "When the validation happened."),
        *LAST_EVENT,
    ]),
    ("reward_redemptions", "Rewards bought with loyalty points: latest status of each.", "id", [
        ("id", "text", "Reward redemption id."),
        ("status", "text", "created, pending, completed or rolledback."),
        ("customer_id", "text", "Customer redeeming the reward."),
        ("reward_id", "text", "Reward."),
        ("reward_name", "text", "Reward name."),
        ("reward_type", "text", "CAMPAIGN, COIN or MATERIAL."),
        ("voucher_id", "text", "Loyalty card the points came from."),
        ("campaign_id", "text", "Loyalty campaign."),
        ("points", "bigint", "Points spent, as the event reports its balance change."),
        ("source", "text", "Where the redemption came from."),
        *LAST_EVENT,
    ]),
    ("customer_rewards", "Rewards granted to customers (customer.rewarded, "
     "customer.rewarded.loyalty_points): one row per event.", "event_id", [
        ("event_id", "text", "The event (events.id)."),
        ("kind", "text", "rewarded (referral or custom-event reward) or loyalty_points."),
        ("customer_id", "text", "Customer rewarded."),
        ("holder_id", "text", "Holder of the card credited, when different."),
        ("campaign_id", "text", "Campaign granting the reward."),
        ("voucher_id", "text", "Card or voucher credited."),
        ("reward_id", "text", "Reward granted."),
        ("reward_type", "text", "Type of the reward."),
        ("amount", "bigint", "Credits granted."),
        ("points", "bigint", "Points granted."),
        ("order_id", "text", "Order that earned loyalty points."),
        ("occurred_at", "timestamptz", "When the reward was granted."),
    ]),
    ("voucher_holders", "Who holds which voucher, in which role.", "id", [
        ("id", "text", "Holder assignment id."),
        ("voucher_id", "text", "Voucher (vouchers.id)."),
        ("customer_id", "text", "Customer holding it."),
        ("holder_role", "text", "OWNER, REFERRER or REFEREE."),
        ("campaign_id", "text", "Campaign of the voucher."),
        ("publication_id", "text", "Publication that made the assignment."),
        ("created_at", "timestamptz", "When the assignment was created."),
        ("deleted_at", "timestamptz", "When the assignment was deleted, else null."),
        *LAST_EVENT,
    ]),
    ("custom_events", "Project-defined events tracked for customers: one row per event.",
     "event_id", [
        ("event_id", "text", "The webhook event (events.id)."),
        ("custom_event_id", "text", "Voucherify's id of the custom event (evcus_...)."),
        ("type", "text", "Name of the custom event."),
        ("customer_id", "text", "Customer the event was tracked for."),
        ("referral_code", "text", "Referral code attached to the event, if any."),
        ("loyalty_code", "text", "Loyalty card attached to the event, if any."),
        ("metadata", "jsonb", "Custom event metadata."),
        ("occurred_at", "timestamptz", "When the event was tracked."),
    ]),
    ("referrals", "Customers who joined through a referral: one row per event.", "event_id", [
        ("event_id", "text", "The event (events.id)."),
        ("customer_id", "text", "The referred customer."),
        ("referrer_id", "text", "The customer who referred them."),
        ("campaign_id", "text", "Referral campaign."),
        ("voucher_id", "text", "Referral code's voucher id."),
        ("voucher_code", "text", "Referral code used."),
        ("custom_event_id", "text", "Custom event that triggered the referral, if any."),
        ("redemption_id", "text", "Redemption that triggered the referral, if any."),
        ("occurred_at", "timestamptz", "When the referral happened."),
    ]),
    ("loyalty_pending_points", "Points waiting to activate on loyalty cards: latest state of "
     "each pending entry.", "id", [
        ("id", "text", "Pending points id."),
        ("status", "text", "added, updated, activated or canceled."),
        ("voucher_id", "text", "Loyalty card."),
        ("campaign_id", "text", "Loyalty campaign."),
        ("customer_id", "text", "Card holder."),
        ("order_id", "text", "Order that earned the points."),
        ("points", "bigint", "Points pending."),
        ("activates_at", "timestamptz", "When the points activate."),
        *LAST_EVENT,
    ]),
]  # fmt: skip

INDEXES = [
    "CREATE INDEX orders_customer_id_idx ON orders (customer_id)",
    "CREATE INDEX redemptions_customer_id_idx ON redemptions (customer_id)",
    "CREATE INDEX redemptions_date_idx ON redemptions (date)",
    "CREATE INDEX redemptions_parent_idx ON redemptions (parent_redemption_id)",
    "CREATE INDEX vouchers_code_idx ON vouchers (code)",
    "CREATE INDEX vouchers_customer_id_idx ON vouchers (customer_id)",
    "CREATE INDEX publications_customer_id_idx ON publications (customer_id)",
    "CREATE INDEX voucher_transactions_voucher_id_idx ON voucher_transactions (voucher_id)",
    "CREATE INDEX loyalty_tier_changes_customer_idx ON loyalty_tier_changes "
    "(customer_id, campaign_id, created_at)",
    "CREATE INDEX distributions_customer_id_idx ON distributions (customer_id)",
    "CREATE INDEX segment_memberships_segment_idx ON segment_memberships (segment_id)",
]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def upgrade() -> None:
    for table, comment, key, columns in TABLES:
        body = ",\n    ".join(f"{name} {kind}" for name, kind, _ in columns)
        op.execute(f"CREATE TABLE {table} (\n    {body},\n    PRIMARY KEY ({key})\n)")
        op.execute(f"COMMENT ON TABLE {table} IS {_quote(comment)}")
        for name, _, column_comment in columns:
            op.execute(f"COMMENT ON COLUMN {table}.{name} IS {_quote(column_comment)}")
    for statement in INDEXES:
        op.execute(statement)


def downgrade() -> None:
    for table, *_ in reversed(TABLES):
        op.execute(f"DROP TABLE {table}")

"""The `vouchers` row a voucher copy makes: discount, balances and holder."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service import db
from tests.conftest import WEBHOOK, compact_json, fetch_one, load_fixture, signed


async def voucher_row(
    client: httpx.AsyncClient, conn: db.Connection, activity: dict[str, Any]
) -> dict[str, Any]:
    """Deliver the event; returns the row of its `data.voucher`."""
    body = compact_json(activity)
    response = await client.post(WEBHOOK, content=body, headers=signed(body))
    assert response.json()["outcome"] == "processed"
    voucher_id = activity["data"]["voucher"]["id"]
    return await fetch_one(conn, "SELECT * FROM vouchers WHERE id = $1", voucher_id)


def with_discount(discount: dict[str, Any]) -> dict[str, Any]:
    activity = load_fixture("customer.redemption.succeeded")
    activity["data"]["voucher"].update(type="DISCOUNT_VOUCHER", discount=discount)
    return activity


@pytest.mark.parametrize(
    ("discount", "unit_effect"),
    [
        ({"type": "AMOUNT", "amount_off": 500, "effect": "APPLY_TO_ORDER"}, None),
        ({"type": "PERCENT", "percent_off": 10, "effect": "APPLY_TO_ITEMS"}, None),
        ({"type": "UNIT", "unit_off": 1, "unit_type": "prod_1", "effect": "ADD_NEW_ITEMS"},
         "ADD_NEW_ITEMS"),
    ],
)  # fmt: skip
async def test_only_a_unit_discount_has_a_unit_effect(
    client: httpx.AsyncClient,
    conn: db.Connection,
    discount: dict[str, Any],
    unit_effect: str | None,
) -> None:
    """The export's `discount_unit_effect` is the UNIT discount effect; other kinds' effects
    (APPLY_TO_ORDER, ...) are not unit effects, and go in `discount_effect`."""
    row = await voucher_row(client, conn, with_discount(discount))
    assert row["discount_unit_effect"] == unit_effect
    assert row["discount_effect"] == discount["effect"]  # kept for every kind


async def test_a_fixed_discount_is_valued_at_its_fixed_amount(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    row = await voucher_row(client, conn, with_discount({"type": "FIXED", "fixed_amount": 1500}))
    assert (row["discount_type"], row["value"]) == ("FIXED", 1500)


@pytest.mark.parametrize(
    ("event_type", "voucher_type", "column", "card"),
    [
        ("customer.voucher.gift.balance_added", "GIFT_VOUCHER", "gift_balance", "gift"),
        ("customer.voucher.loyalty_card.points_added", "LOYALTY_CARD", "loyalty_balance",
         "loyalty_card"),
    ],
)  # fmt: skip
async def test_a_card_without_its_balance_takes_the_balance_after_the_change(
    client: httpx.AsyncClient,
    conn: db.Connection,
    event_type: str,
    voucher_type: str,
    column: str,
    card: str,
) -> None:
    """`data.balance.balance` is the card's balance after the event (Voucher Balance):
    the card's balance and value where its copy leaves them out."""
    activity = load_fixture(event_type)
    voucher = activity["data"]["voucher"]
    voucher.update(id="v_card", type=voucher_type)
    del voucher[card]
    activity["data"]["balance"].update(balance=4200, related_object={"id": "v_card"})

    row = await voucher_row(client, conn, activity)
    assert (row[column], row["value"]) == (4200, 4200)


async def test_a_balance_of_another_card_is_not_this_cards(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """points_transferred names the card `balance` is about (`related_object`)."""
    activity = load_fixture("customer.voucher.loyalty_card.points_transferred")
    voucher = activity["data"]["voucher"]
    voucher.update(id="v_card", type="LOYALTY_CARD")
    del voucher["loyalty_card"]
    activity["data"]["balance"].update(balance=4200, related_object={"id": "v_other"})

    row = await voucher_row(client, conn, activity)
    assert (row["loyalty_balance"], row["value"]) == (None, None)


@pytest.mark.parametrize(("role", "holder"), [("OWNER", "cust_owner"), ("REFERRER", None)])
async def test_an_owners_assignment_names_the_vouchers_holder(
    client: httpx.AsyncClient, conn: db.Connection, role: str, holder: str | None
) -> None:
    activity = load_fixture("customer.holder.assignment.created")
    del activity["data"]["voucher"]["holder_id"]
    activity["data"]["holder"].update(customer_id="cust_owner", holder_role=role)

    row = await voucher_row(client, conn, activity)
    assert row["customer_id"] == holder

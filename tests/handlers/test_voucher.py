"""The `vouchers` row a voucher copy makes: discount, balances and holder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from service import db
from service.events.times import parse_time
from service.exports.importer import load
from tests.conftest import deliver_processed, fetch_one, load_fixture


async def voucher_row(
    client: httpx.AsyncClient, conn: db.Connection, activity: dict[str, Any]
) -> dict[str, Any]:
    """Deliver the event; returns the row of its `data.voucher`."""
    await deliver_processed(client, activity)
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


def at(activity: dict[str, Any], n: int, when: str) -> dict[str, Any]:
    """The activity as event `evcus_v_<n>`, created at `when`."""
    return activity | {"id": f"evcus_v_{n}", "created_at": when}


VOUCHER_CSV = (
    "ID,Code,Voucher Type,QR Code,Bar Code,Additional Info,Validity Timeframe Interval,"
    "Validity Timeframe Duration,Validity Day Of Week,Redemption Count,Active,"
    "Expiration Date,Updated At\n"
    'v_imported,CODE-1,LOYALTY_CARD,https://qr/1,https://bar/1,Gold tier,P2D,PT1H,"1,2,3",3,'
    "true,2025-01-01T00:00:00.000Z,2024-01-01T00:00:00.000Z\n"
)


async def test_a_newer_simple_voucher_keeps_the_imported_columns_it_does_not_carry(
    client: httpx.AsyncClient, conn: db.Connection, tmp_path: Path
) -> None:
    """A Simple Voucher has no assets, validity timeframe or days, nor additional info:
    a newer event's copy keeps an export file's values there, and takes its own."""
    path = tmp_path / "vouchers.csv"
    path.write_text(VOUCHER_CSV)
    assert await load(conn, "voucher", path) == (1, [])
    activity = at(load_fixture("customer.voucher.loyalty_card.points_added"), 1,
                  "2024-06-01T00:00:00Z")  # fmt: skip
    activity["data"]["voucher"].update(id="v_imported", type="LOYALTY_CARD")
    del activity["data"]["voucher"]["redemption"]

    row = await voucher_row(client, conn, activity)

    assert row["last_event_id"] == "evcus_v_1"
    assert (row["qr_code"], row["bar_code"], row["additional_info"]) == (
        "https://qr/1", "https://bar/1", "Gold tier")  # fmt: skip
    assert (row["validity_timeframe_interval"], row["validity_timeframe_duration"],
            row["validity_day_of_week"]) == ("P2D", "PT1H", [1, 2, 3])  # fmt: skip
    assert row["redemption_count"] == 3
    voucher = activity["data"]["voucher"]
    assert row["loyalty_balance"] == voucher["loyalty_card"]["balance"]  # its own values
    assert row["expiration_date"] == parse_time(voucher["expiration_date"])


async def test_a_newer_copy_of_only_required_fields_erases_nothing(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Simple Voucher requires only its code, type and creation time (OpenAPI): a copy of
    just those leaves every other column as an earlier copy wrote it."""
    full = at(load_fixture("customer.redemption.succeeded"), 1, "2024-01-01T00:00:00Z")
    voucher = full["data"]["voucher"]
    voucher.update(id="v_bare", active=False, metadata={"tier": "gold"})
    before = await voucher_row(client, conn, full)
    bare = at(load_fixture("customer.redemption.succeeded"), 2, "2024-02-01T00:00:00Z")
    bare["data"]["voucher"] = {key: voucher[key] for key in
                               ("id", "code", "type", "created_at", "object")}  # fmt: skip
    del bare["data"]["holder"]  # (its holder is the voucher's holder)

    row = await voucher_row(client, conn, bare)

    assert row["last_event_id"] == "evcus_v_2"
    assert before["active"] is False
    assert before["redemption_count"] is not None
    assert before["expiration_date"] is not None
    kept = {c: v for c, v in before.items() if c not in ("last_event_at", "last_event_id")}
    assert {c: row[c] for c in kept} == kept


async def test_points_expired_takes_the_balance_after_from_its_transaction(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """points_expired has no `data.balance`: the card's balance after the expiry is its
    transaction's `details.balance.balance`, as `voucher_transactions.balance` shows."""
    added = at(load_fixture("customer.voucher.loyalty_card.points_added"), 1,
               "2024-01-01T00:00:00Z")  # fmt: skip
    added["data"]["voucher"].update(id="v_card", type="LOYALTY_CARD")
    added["data"]["voucher"]["loyalty_card"]["balance"] = 1000
    assert (await voucher_row(client, conn, added))["loyalty_balance"] == 1000
    expired = at(load_fixture("customer.voucher.loyalty_card.points_expired"), 2,
                 "2024-02-01T00:00:00Z")  # fmt: skip
    expired["data"]["voucher"].update(id="v_card", type="LOYALTY_CARD")
    del expired["data"]["voucher"]["loyalty_card"]
    transaction = expired["data"]["transaction"]
    transaction["voucher_id"] = "v_card"
    transaction["details"]["balance"].update(balance=700, related_object={"id": "v_card"})

    row = await voucher_row(client, conn, expired)

    assert (row["loyalty_balance"], row["value"], row["last_event_id"]) == (700, 700, "evcus_v_2")
    tx = await fetch_one(conn, "SELECT balance FROM voucher_transactions WHERE id = $1",
                         transaction["id"])  # fmt: skip
    assert tx["balance"] == 700


@pytest.mark.parametrize(
    ("voucher_id", "related_id", "balance"),
    [("v_other", "v_card", None), ("v_card", "v_other", None), (None, None, 700)],
)
async def test_a_transaction_of_another_card_does_not_set_this_cards_balance(
    client: httpx.AsyncClient,
    conn: db.Connection,
    voucher_id: str | None,
    related_id: str | None,
    balance: int | None,
) -> None:
    """The transaction's balance is this card's only where neither its `voucher_id` nor
    its balance's `related_object` names another card."""
    expired = load_fixture("customer.voucher.loyalty_card.points_expired")
    expired["data"]["voucher"].update(id="v_card", type="LOYALTY_CARD")
    del expired["data"]["voucher"]["loyalty_card"]
    transaction = expired["data"]["transaction"]
    transaction["voucher_id"] = voucher_id
    transaction["details"]["balance"].update(balance=700, related_object={"id": related_id})

    row = await voucher_row(client, conn, expired)
    assert (row["loyalty_balance"], row["value"]) == (balance, balance)


async def test_rewarded_loyalty_points_takes_the_cards_balance_after_the_reward(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """customer.rewarded.loyalty_points carries the card's balance after the reward in
    `data.balance` (a Voucher Balance of that card)."""
    added = at(load_fixture("customer.voucher.loyalty_card.points_added"), 1,
               "2024-01-01T00:00:00Z")  # fmt: skip
    added["data"]["voucher"].update(id="v_card", type="LOYALTY_CARD")
    added["data"]["voucher"]["loyalty_card"]["balance"] = 1200
    assert (await voucher_row(client, conn, added))["loyalty_balance"] == 1200
    rewarded = at(load_fixture("customer.rewarded.loyalty_points"), 2, "2024-02-01T00:00:00Z")
    rewarded["data"]["voucher"].update(id="v_card", type="LOYALTY_CARD")
    del rewarded["data"]["voucher"]["loyalty_card"]
    card = {"id": "v_card", "type": "voucher"}
    rewarded["data"]["balance"].update(points=300, balance=1500, related_object=card)

    row = await voucher_row(client, conn, rewarded)

    assert (row["loyalty_balance"], row["value"], row["last_event_id"]) == (1500, 1500, "evcus_v_2")
    reward = await fetch_one(conn, "SELECT points FROM customer_rewards")
    assert reward["points"] == 300  # the points granted, not the balance


@pytest.mark.parametrize("balance", [{"balance": 1500, "related_object": {"id": "v_other"}}, 1500])
async def test_a_reward_balance_of_another_card_or_a_bare_number_is_not_the_cards_balance(
    client: httpx.AsyncClient, conn: db.Connection, balance: dict[str, Any] | int
) -> None:
    """A bare number in a reward event counts the points granted, not the balance."""
    rewarded = load_fixture("customer.rewarded.loyalty_points")
    rewarded["data"]["voucher"].update(id="v_card", type="LOYALTY_CARD")
    del rewarded["data"]["voucher"]["loyalty_card"]
    rewarded["data"]["balance"] = balance

    row = await voucher_row(client, conn, rewarded)
    assert (row["loyalty_balance"], row["value"]) == (None, None)

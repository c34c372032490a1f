"""Holder assignments: `voucher_holders`, and the owner they give a voucher
(`vouchers.customer_id`), whatever order their events arrive in."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from service import db
from service.intake import parse
from service.replay import replay
from service.writer import commit, prepare
from tests.conftest import WEBHOOK, compact_json, dump, fetch_one, load_fixture, signed

CREATED = "customer.holder.assignment.created"
DELETED = "customer.holder.assignment.deleted"
VOUCHER = "v_owned"
OWNER = "SELECT customer_id FROM vouchers WHERE id = 'v_owned'"


def assignment(
    event_type: str, n: int, day: int, *, holder: str = "rh_1", customer: str = "cust_owner",
    role: str = "OWNER",
) -> dict[str, Any]:  # fmt: skip
    """Event `evcus_h_<n>` of January `day`, 2024: `holder` gives `customer` the voucher
    in `role`; its voucher copy names no holder (as a deletion's does)."""
    activity = load_fixture(event_type)
    activity.update(id=f"evcus_h_{n}", created_at=f"2024-01-{day:02d}T10:00:00Z")
    activity["data"]["holder"].update(id=holder, customer_id=customer, holder_role=role,
                                      redeemable_id=VOUCHER)  # fmt: skip
    activity["data"]["voucher"].update(id=VOUCHER, holder_id=None)
    return activity


async def send(client: httpx.AsyncClient, *activities: dict[str, Any]) -> None:
    """Each activity as its own delivery, in this order."""
    for activity in activities:
        body = compact_json(activity)
        response = await client.post(WEBHOOK, content=body, headers=signed(body))
        assert response.json()["outcome"] == "processed"


async def one_batch(conn: db.Connection, *activities: dict[str, Any]) -> None:
    received = datetime.now(UTC)
    await commit(conn, [prepare(parse(compact_json(a)), received) for a in activities])


async def test_deleting_the_owners_assignment_takes_the_voucher_from_the_owner(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """The voucher's customer is the owner it was published to: none once that owner's
    assignment is deleted, though the deletion's voucher copy names no holder."""
    await send(client, assignment(CREATED, 1, 1))
    assert await conn.fetchval(OWNER) == "cust_owner"

    await send(client, assignment(DELETED, 2, 2))

    assert await conn.fetchval(OWNER) is None
    holder = await fetch_one(conn, "SELECT * FROM voucher_holders WHERE id = 'rh_1'")
    assert holder["deleted_at"] == datetime(2024, 1, 2, 10, tzinfo=UTC)


async def test_a_creation_arriving_after_its_deletion_does_not_bring_the_owner_back(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """The older creation's copy fills the owner the row lacks, as older copies do; the
    assignment is deleted by then, so the owner is taken away again, and a full replay
    (in time order) gives the same."""
    await send(client, assignment(DELETED, 2, 2), assignment(CREATED, 1, 1))

    assert await conn.fetchval(OWNER) is None
    before = await dump(conn)
    await replay(conn)
    assert await dump(conn) == before


@pytest.mark.parametrize("deletion_first", [False, True])
async def test_a_creation_and_its_deletion_in_one_batch_leave_no_owner(
    conn: db.Connection, deletion_first: bool
) -> None:
    created, deleted = assignment(CREATED, 1, 1), assignment(DELETED, 2, 2)
    await one_batch(conn, *((deleted, created) if deletion_first else (created, deleted)))
    assert await conn.fetchval(OWNER) is None


async def test_a_deleted_assignment_of_a_former_owner_leaves_the_new_owner(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Only a voucher that still names the deleted assignment's owner loses it."""
    await send(client, assignment(CREATED, 1, 1),
               assignment(CREATED, 2, 2, holder="rh_2", customer="cust_new"))  # fmt: skip
    await send(client, assignment(DELETED, 3, 3))
    assert await conn.fetchval(OWNER) == "cust_new"


async def test_a_late_deletion_leaves_an_owner_a_newer_assignment_names_again(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """The owner published the voucher again (a second assignment, still live): the first
    assignment's deletion, arriving after, does not take the voucher from them."""
    await send(client, assignment(CREATED, 1, 1),
               assignment(CREATED, 3, 3, holder="rh_2"), assignment(DELETED, 2, 2))  # fmt: skip
    assert await conn.fetchval(OWNER) == "cust_owner"


async def test_deleting_a_referrers_assignment_leaves_the_vouchers_holder(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Only an owner's assignment names the voucher's holder, so only its deletion
    takes it away."""
    redeemed = load_fixture("customer.redemption.succeeded")
    redeemed["data"]["voucher"].update(id=VOUCHER, holder_id="cust_owner")
    await send(client, redeemed, assignment(DELETED, 2, 2, role="REFERRER"))
    assert await conn.fetchval(OWNER) == "cust_owner"

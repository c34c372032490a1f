"""Publications: how each went, and whom the voucher was published to."""

from __future__ import annotations

import httpx
import pytest

from service import db
from tests.conftest import deliver_processed, fetch_one, load_fixture


@pytest.mark.parametrize(
    ("event_type", "result"),
    [("customer.publication.succeeded", "SUCCESS"), ("customer.publication.failed", "FAILURE")],
)
async def test_a_publications_result_is_the_outcome_its_event_type_names(
    client: httpx.AsyncClient, conn: db.Connection, event_type: str, result: str
) -> None:
    """The data's `result` says SUCCESS in both (Valid Single Voucher's only value): a
    failed publication is stored as FAILURE."""
    activity = load_fixture(event_type)
    activity["data"]["publication"]["result"] = "SUCCESS"
    await deliver_processed(client, activity)

    assert await conn.fetchval("SELECT result FROM publications") == result


async def test_a_publication_without_the_events_customer_names_its_own(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """`data.customer` is optional: the publication's required `customer_id` names the
    customer then."""
    activity = load_fixture("customer.publication.succeeded")
    del activity["data"]["customer"]
    activity["data"]["publication"]["customer_id"] = "cust_published_to"
    await deliver_processed(client, activity)

    row = await fetch_one(conn, "SELECT id, customer_id FROM publications")
    assert row == {"id": activity["data"]["publication"]["id"], "customer_id": "cust_published_to"}


async def test_a_publication_without_the_events_customer_takes_its_own_customers_ids(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """A publication may carry its customer as an object (ListPublicationsItem's
    `customer`): its id and source id fill the row where the event has no customer."""
    activity = load_fixture("customer.publication.succeeded")
    del activity["data"]["customer"]
    publication = activity["data"]["publication"]
    publication.pop("customer_id", None)
    publication["customer"] = {"id": "cust_own", "source_id": "crm-7", "object": "customer"}
    await deliver_processed(client, activity)

    row = await fetch_one(conn, "SELECT customer_id, customer_source_id FROM publications")
    assert row == {"customer_id": "cust_own", "customer_source_id": "crm-7"}
    assert await conn.fetchval("SELECT customer_id FROM events") == "cust_own"

"""From bytes to an event: both wire shapes, drift tolerance, and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from service.events import DECODER, EVENT_TYPES
from service.events.orders import OrderPaid
from service.events.redemptions import RedemptionRollbackSucceeded
from service.events.times import parse_time
from service.events.vouchers import PointsAdded
from service.intake import Rejected, parse
from tests.conftest import compact_json, envelope, fixture_types, load_fixture


@pytest.mark.parametrize("event_type", fixture_types())
def test_each_fixture_decodes_into_the_struct_of_its_type(event_type: str) -> None:
    body = compact_json(load_fixture(event_type))
    incoming = parse(body)
    assert incoming.decode_error is None
    assert incoming.event is not None
    assert incoming.event.type == event_type
    assert type(incoming.event) in EVENT_TYPES


def test_the_decoder_is_one_tagged_union_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing reuses the module-level decoders instead of building one per request
    (building the 74-type union costs far more than a decode)."""
    built: list[object] = []
    real = msgspec.json.Decoder

    def counting(*args: Any, **kwargs: Any) -> Any:
        built.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(msgspec.json, "Decoder", counting)
    body = compact_json(load_fixture("customer.order.paid"))
    assert isinstance(DECODER.decode(body), OrderPaid)
    assert isinstance(parse(body).event, OrderPaid)
    assert built == []


def test_the_envelope_event_id_wins_over_the_send_out_id() -> None:
    activity = load_fixture("customer.order.paid")
    incoming = parse(compact_json(envelope(activity, "whs_123")))
    assert incoming.event_id == activity["id"]
    assert incoming.delivery_id == "whs_123"
    assert incoming.project_id == "proj_Vw6vKkQ2"


def test_an_envelope_without_an_inner_event_id_falls_back_to_its_id() -> None:
    activity = load_fixture("customer.order.paid")
    body = envelope(activity, "whs_9")
    del body["event"]["id"]
    assert parse(compact_json(body)).event_id == "whs_9"


def test_handlers_get_what_they_need_from_the_typed_event() -> None:
    """The decoded Struct carries the ids and amounts later tables are keyed on."""
    activity = load_fixture("customer.order.paid")
    event = parse(compact_json(activity)).event
    assert isinstance(event, OrderPaid)
    assert event.data.order is not None
    assert event.data.order.id == activity["data"]["order"]["id"]
    assert event.data.order.amount == activity["data"]["order"]["amount"]
    assert event.data.customer is not None
    assert event.data.customer.id == activity["data"]["customer"]["id"]

    rollback = parse(compact_json(load_fixture("customer.redemption.rollback.succeeded"))).event
    assert isinstance(rollback, RedemptionRollbackSucceeded)
    assert rollback.data.redemption_rollback is not None
    assert rollback.data.redemption_rollback.id


def test_a_balance_documented_both_as_object_and_integer_decodes_either_way() -> None:
    """The Customer Activity docs say `balance: integer`, the OpenAPI file an object."""
    activity = load_fixture("customer.voucher.loyalty_card.points_added")
    as_object = parse(compact_json(activity)).event
    activity["data"]["balance"] = 1200
    as_integer = parse(compact_json(activity)).event
    assert isinstance(as_object, PointsAdded)
    assert isinstance(as_integer, PointsAdded)
    assert as_integer.data.balance == 1200


def test_a_type_mismatch_deep_in_data_is_reported_with_its_path() -> None:
    activity = load_fixture("customer.order.paid")
    activity["data"]["order"]["items"] = "not a list"
    incoming = parse(compact_json(activity))
    assert incoming.event is None
    assert incoming.family == "order"
    assert incoming.decode_error is not None
    assert "$.data.order.items" in incoming.decode_error


def test_unknown_types_are_not_decoded_but_kept() -> None:
    incoming = parse(b'{"id":"evcus_x","type":"customer.new.thing","data":{"a":1}}')
    assert (incoming.family, incoming.event, incoming.decode_error) == ("unknown", None, None)


def test_a_missing_data_object_is_quarantined_not_refused() -> None:
    """The id and type are enough to keep it; the missing data is the quarantine reason."""
    incoming = parse(b'{"id":"evcus_x","type":"customer.order.paid"}')
    assert incoming.event is None
    assert incoming.decode_error is not None
    assert "data" in incoming.decode_error


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"nope", 400), (b"\xff", 400), (b"[]", 422), (b"{}", 422), (b'{"id":"e"}', 422)],
)
def test_unusable_bodies_are_rejected_with_their_status(body: bytes, status: int) -> None:
    with pytest.raises(Rejected) as raised:
        parse(body)
    assert raised.value.status == status


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2022-08-30T09:14:07.660Z", datetime(2022, 8, 30, 9, 14, 7, 660000, tzinfo=UTC)),
        ("2022-06-30", datetime(2022, 6, 30, tzinfo=UTC)),
        ("not a time", None),
        (None, None),
    ],
)
def test_times_are_read_leniently(value: str | None, expected: datetime | None) -> None:
    assert parse_time(value) == expected

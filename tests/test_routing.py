"""The routing table: every documented type has exactly one family and one handler."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import get_type_hints

import pytest

from service import routing
from service.events import EVENT_TYPES, Activity

OPENAPI = Path(__file__).resolve().parents[2] / "shared" / "voucherify-openapi" / "customers.json"
FAMILIES = {
    "order", "redemption", "loyalty_tier", "distribution", "customer", "segment",
    "custom_event", "referral", "reward", "voucher", "publication", "validation", "holder",
}  # fmt: skip


def openapi_types() -> list[str]:
    """The CustomerActivity.type enum of Voucherify's OpenAPI file (all 74 known types)."""
    if OPENAPI.exists():
        spec = json.loads(OPENAPI.read_text())
        enum: list[str] = spec["components"]["schemas"]["CustomerActivity"]["properties"]["type"][
            "enum"
        ]
        return enum
    # CI clones keep shared/ beside the repo; the fixtures mirror the enum otherwise.
    fixtures = Path(__file__).parent / "fixtures" / "events"
    return sorted(p.stem for p in fixtures.glob("*.json"))


def struct_by_type() -> dict[str, type[Activity]]:
    return {str(cls.__struct_config__.tag): cls for cls in EVENT_TYPES}


def test_the_openapi_enum_has_74_types() -> None:
    assert len(openapi_types()) == 74


@pytest.mark.parametrize("event_type", openapi_types())
def test_every_documented_type_has_exactly_one_route(event_type: str) -> None:
    """Each type: one family from the contract's list, one Struct, one handler."""
    family = routing.FAMILY_BY_TYPE[event_type]
    assert family in FAMILIES
    assert family in routing.HANDLER_BY_FAMILY
    assert list(struct_by_type()).count(event_type) == 1


def test_the_routing_table_knows_exactly_the_documented_types() -> None:
    assert set(routing.FAMILY_BY_TYPE) == set(openapi_types())
    assert set(struct_by_type()) == set(openapi_types())
    assert len(EVENT_TYPES) == 74


def test_every_family_has_its_own_handler_module() -> None:
    """service/handlers/<family>.py, one per family, and nothing routes to 'unknown'."""
    assert set(routing.HANDLER_BY_FAMILY) == FAMILIES
    for family, handler in routing.HANDLER_BY_FAMILY.items():
        assert handler.__module__ == f"service.handlers.{family}"
        assert Path(inspect.getfile(handler)).name == f"{family}.py"


@pytest.mark.parametrize("event_type", sorted(routing.FAMILY_BY_TYPE))
def test_each_handler_accepts_the_structs_routed_to_it(event_type: str) -> None:
    """The handler's declared event class is a base of the Struct its types decode into."""
    handler = routing.HANDLER_BY_FAMILY[routing.FAMILY_BY_TYPE[event_type]]
    accepted = get_type_hints(handler)["event"]
    assert issubclass(struct_by_type()[event_type], accepted)


def test_unknown_types_route_to_unknown() -> None:
    assert routing.family_of("customer.hologram.sent") == "unknown"
    assert routing.family_of("customer.order.paid") == "order"

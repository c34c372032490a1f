"""Event schemas: one tagged union over all 74 customer-activity types, decoded once.

Each family module lists its event Structs in `EVENTS`; together they form the union that
`DECODER` (built once, at import) decodes in a single pass keyed by `type`. `HEAD_DECODER`
reads only the outer fields, so a body whose type is unknown or whose `data` does not match
its type still yields an id and a type to store it under.
"""

from __future__ import annotations

from typing import Any, Union

import msgspec

from service.events import (
    custom_events,
    customers,
    distributions,
    holders,
    loyalty,
    orders,
    publications,
    redemptions,
    referrals,
    rewards,
    segments,
    validations,
    vouchers,
)
from service.events._base import Activity, EnvelopeEvent, EventData

__all__ = [
    "DECODER",
    "EVENT_TYPES",
    "HEAD_DECODER",
    "Activity",
    "EventData",
    "Head",
    "decode_failure",
]

EVENT_TYPES: tuple[type[Activity], ...] = (
    *customers.EVENTS,
    *segments.EVENTS,
    *distributions.EVENTS,
    *orders.EVENTS,
    *redemptions.EVENTS,
    *loyalty.EVENTS,
    *vouchers.EVENTS,
    *rewards.EVENTS,
    *referrals.EVENTS,
    *custom_events.EVENTS,
    *publications.EVENTS,
    *validations.EVENTS,
    *holders.EVENTS,
)

_EventUnion: Any = Union[EVENT_TYPES]  # noqa: UP007 - a runtime-built union needs Union[...]

DECODER: msgspec.json.Decoder[Activity] = msgspec.json.Decoder(_EventUnion)


def decode_failure(event_type: str, exc: msgspec.ValidationError) -> str:
    """The `events.error` of a known type whose data does not decode; names the path."""
    return f"data does not match {event_type}: {exc}"


class Head(msgspec.Struct, kw_only=True):
    """The outer fields of either wire shape; everything else is skipped unparsed."""

    id: str | None = None
    type: str | None = None
    created_at: str | None = None
    group_id: str | None = None
    project_id: str | None = None
    event: EnvelopeEvent | None = None

    @property
    def event_id(self) -> str | None:
        """Contract section 1: the envelope's `event.id`, else the top-level `id`."""
        if self.event is not None and self.event.id:
            return self.event.id
        return self.id

    @property
    def is_envelope(self) -> bool:
        return self.event is not None


HEAD_DECODER = msgspec.json.Decoder(Head)

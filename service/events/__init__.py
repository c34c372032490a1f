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
from service.events._base import Activity, EventData

__all__ = [
    "DECODER",
    "EVENT_TYPES",
    "HEAD_DECODER",
    "Activity",
    "EventData",
    "Head",
    "HeadEvent",
    "decode_failure",
    "text",
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


class HeadEvent(msgspec.Struct):
    """The envelope's `event`, as far as storing needs it: its id. The rest are read if
    they are text, else left out (`text`): a drifted type there must not cost the event,
    which the full decode then stores quarantined with the mismatch named."""

    id: str | None = None
    created_at: object = None
    group_id: object = None


class Head(msgspec.Struct, kw_only=True):
    """The outer fields of either wire shape; everything else is skipped unparsed. Only
    `id` and `type` must be text (contract section 2: 422 only without a usable id or
    type); the optional fields are read if they are text (`text`)."""

    id: str | None = None
    type: str | None = None
    created_at: object = None
    group_id: object = None
    project_id: object = None
    event: HeadEvent | None = None

    @property
    def event_id(self) -> str | None:
        """Contract section 1: the envelope's `event.id`, else the top-level `id`."""
        if self.event is not None and self.event.id:
            return self.event.id
        return self.id

    @property
    def is_envelope(self) -> bool:
        return self.event is not None


def text(value: object) -> str | None:
    """An optional outer field: its value if it is text, else None (as if absent)."""
    return value if isinstance(value, str) else None


HEAD_DECODER = msgspec.json.Decoder(Head)

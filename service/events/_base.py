"""The outer activity shape shared by every event type, in both wire formats."""

from __future__ import annotations

from typing import Any

import msgspec

from service.events._blocks import Block, Customer


class EventSource(Block):
    channel: str | None = None


class EnvelopeEvent(Block):
    """`event` of the v2024-01-01 envelope: it carries the customer-activity event id."""

    id: str | None = None
    type: str | None = None
    created_at: str | None = None
    group_id: str | None = None
    entity_id: str | None = None


class EventData(Block):
    """Base of every `data` object: nearly every event names its customer."""

    customer: Customer | None = None


class Activity(msgspec.Struct, tag_field="type", kw_only=True):
    """A customer activity, as the Customer Activity object or the v2024-01-01 envelope.

    Subclasses set `tag=<event type>` and narrow `data`; the union of all of them is
    decoded in one pass by `service.events.DECODER`.
    """

    id: str | None = None
    created_at: str | None = None
    group_id: str | None = None
    event_source: EventSource | None = None
    # v2024-01-01 envelope only: `id` above is then the send-out id (whs_...).
    project_id: str | None = None
    event: EnvelopeEvent | None = None
    data: EventData

    @property
    def type(self) -> str:
        tag: Any = self.__struct_config__.tag
        return str(tag)

"""customer.segment.{entered,left}: segment membership changes."""

from __future__ import annotations

from service.events._base import Activity, EventData
from service.events._blocks import Segment


class SegmentEvent(EventData):
    segment: Segment | None = None


class SegmentActivity(Activity):
    data: SegmentEvent


class SegmentEntered(SegmentActivity, tag="customer.segment.entered"): ...


class SegmentLeft(SegmentActivity, tag="customer.segment.left"): ...


EVENTS = (
    SegmentEntered,
    SegmentLeft,
)

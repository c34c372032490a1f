"""Handlers, one module per event family; `service.routing` says which handles what.

A handler runs inside the transaction that stores the raw event, for live deliveries and
for `replay` alike. Raising `NormalizeError` (or any error) rolls back the handler's work:
the raw event stays, quarantined with the error, for `replay` to retry once fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

T = TypeVar("T")


class NormalizeError(Exception):
    """The event decoded, but lacks what its normalized rows need."""


@dataclass(frozen=True, slots=True)
class Meta:
    """What a handler knows about the event besides its data."""

    event_id: str
    # When the activity happened: the event's created_at, else when it was received.
    # Current-state rows keep it and ignore anything older.
    at: datetime
    type: str


def require(value: T | None, path: str) -> T:
    """The value a normalized row is keyed on, or a NormalizeError naming what is missing."""
    if value is None or value == "":
        raise NormalizeError(f"{path} is missing")
    return value


def handler_failure(family: str, exc: BaseException) -> str:
    """The `events.error` of an event its handler could not normalize."""
    return f"{family} handler: {type(exc).__name__}: {exc}"

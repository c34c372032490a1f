"""Handlers, one module per event family; `service.routing` says which handles what.

A handler runs inside the transaction that stores the raw event. Raising `NormalizeError`
(or any error) rolls back only the handler's work: the raw event stays, quarantined with the
error, for `python -m service replay` to retry once the mapping is fixed.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class NormalizeError(Exception):
    """The event decoded, but lacks what its normalized rows need."""


def require(value: T | None, path: str) -> T:
    """The value a normalized row is keyed on, or a NormalizeError naming what is missing."""
    if value is None or value == "":
        raise NormalizeError(f"{path} is missing")
    return value

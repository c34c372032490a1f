"""Voucherify's times and amounts, read leniently into database values."""

from __future__ import annotations

from datetime import UTC, date, datetime


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time as Voucherify writes it (`Z` suffix, or a bare date), else None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_date(value: str | None) -> date | None:
    """A calendar date from `2022-06-30` or a full timestamp, else None."""
    parsed = parse_time(value)
    return parsed.date() if parsed is not None else None


def whole(value: float | None) -> int | None:
    """An amount in the smallest currency unit; the OpenAPI file types some as `number`."""
    return None if value is None else round(value)

"""Times as they cross the boundary: ISO 8601 in, UTC ISO 8601 with `Z` out."""

from __future__ import annotations

import re
from datetime import datetime, timezone

_FRACTION = re.compile(r"\.(\d{6})\d+")


def parse_utc(text: str | None) -> datetime | None:
    """An ISO date or date-time as aware UTC. Naive values are UTC; Azure DevOps' 7-digit
    fractions are cut to Python's 6."""
    if not text:
        return None
    value = datetime.fromisoformat(_FRACTION.sub(r".\1", text).replace("Z", "+00:00"))
    try:
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    except OverflowError:   # e.g. 0001-01-01T00:00:00+01:00: a time outside what UTC can hold is no time
        raise ValueError(f"{text[:40]!r} is outside the range of UTC times") from None


def format_utc(value: datetime | None) -> str | None:
    """UTC ISO 8601 with `Z`, seconds precision (the report's and the tags' format)."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")

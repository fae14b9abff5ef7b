"""Key Vault tags the watchdog reads and writes, and the limits it keeps within (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from pat_watchdog.core.errors import WatchdogError
from pat_watchdog.core.times import parse_utc

# Key Vault limits (https://learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates):
# 15 tags per version, 256 characters per tag value; PATCH replaces the whole tag set.
MAX_TAGS = 15
MAX_TAG_VALUE = 256
STATUS_TAG = "watchdog-status"
REASON_TAG = "watchdog-reason"
ROTATED_TAG = "rotated-at"
FINGERPRINT_TAG = "fingerprint"
OWN_TAGS = (STATUS_TAG, REASON_TAG, ROTATED_TAG, FINGERPRINT_TAG)
# Tags whose values are read as something; `file-encoding` (the Azure CLI's own, `--file`) and every
# other tag are left alone.
_TIME_TAGS = (ROTATED_TAG, "revoked-at", "replaced-at", "expires")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_STATES = ("pending", "rejected", "applying", "current", "failed")


class TagLimitError(WatchdogError):
    """A version has no room for the watchdog's tags; it is left untouched."""


@dataclass(frozen=True)
class SecretVersion:
    name: str
    version: str
    created_on: datetime | None
    expires_on: datetime | None
    not_before: datetime | None
    enabled: bool
    tags: dict = field(default_factory=dict)

    @property
    def status(self) -> str | None:
        return self.tags.get(STATUS_TAG)


def tag_time(version: SecretVersion, name: str) -> datetime | None:
    """A time tag's value, or None when it is absent or does not parse (tag_problems reports it)."""
    try:
        return parse_utc(version.tags.get(name))
    except (ValueError, TypeError):
        return None


def tag_id(version: SecretVersion, name: str = "authorizationId") -> str | None:
    """An authorization ID tag's value when it is a GUID, else None (tag_problems reports it)."""
    value = version.tags.get(name)
    return value if value and _GUID.match(value) else None


def inconclusive_count(version: SecretVersion, limit: int) -> int:
    """Runs without a definitive answer, as the `watchdog-reason` tag counts them (`inconclusive N/limit`);
    anything else reads as 0, and the count stays within 0..limit (anyone who stages can write the tag)."""
    reason = version.tags.get(REASON_TAG) or ""
    if not reason.startswith("inconclusive "):
        return 0
    try:
        return min(max(int(reason.split("/")[0].removeprefix("inconclusive ")), 0), limit)
    except ValueError:
        return 0


def tag_problems(version: SecretVersion) -> list[str]:
    """What in a version's tags does not parse, naming the tag and version, never its value (a person can
    paste anything into a tag). Each such tag is ignored; nothing a tag says stops an alert."""
    found = []
    for name in _TIME_TAGS:
        if version.tags.get(name) and tag_time(version, name) is None:
            found.append(f"tag {name} of {version.name}/{version.version} is not an ISO 8601 time: ignored")
    claimed = version.tags.get("authorizationId")
    if claimed and not _GUID.match(claimed):
        found.append(f"tag authorizationId of {version.name}/{version.version} is not a GUID: ignored")
    status = version.tags.get(STATUS_TAG)
    if status and status not in _STATES:
        found.append(f"tag {STATUS_TAG} of {version.name}/{version.version} is none of {', '.join(_STATES)}: "
                     "the version is left alone (remove the tag to make it a candidate)")
    return found


def merge_tags(existing: dict, changes: dict) -> dict:
    """Existing tags plus `changes` (None deletes), within Key Vault's limits, values shortened."""
    merged = {**existing}
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            text = str(value)
            merged[key] = text if len(text) <= MAX_TAG_VALUE else text[:MAX_TAG_VALUE - 1] + "…"
    if len(merged) > MAX_TAGS:
        raise TagLimitError(f"{len(merged)} tags needed, Key Vault allows {MAX_TAGS}")
    return merged


def has_room(tags: dict) -> bool:
    """Room for every tag of the watchdog's own, so no later step can fail on the limit."""
    return len(set(tags) | set(OWN_TAGS)) <= MAX_TAGS

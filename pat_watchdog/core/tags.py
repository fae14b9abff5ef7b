"""Key Vault tags the watchdog reads and writes, and the limits it keeps within (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pat_watchdog.core.errors import WatchdogError

# Key Vault limits (https://learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates):
# 15 tags per version, 256 characters per tag value; PATCH replaces the whole tag set.
MAX_TAGS = 15
MAX_TAG_VALUE = 256
STATUS_TAG = "watchdog-status"
REASON_TAG = "watchdog-reason"
ROTATED_TAG = "rotated-at"
FINGERPRINT_TAG = "fingerprint"
OWN_TAGS = (STATUS_TAG, REASON_TAG, ROTATED_TAG, FINGERPRINT_TAG)


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

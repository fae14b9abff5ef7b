"""ARM resource IDs of Aggregator instances and of the scopes they are discovered in."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)"
    r"(?:/resourceGroups/(?P<group>[^/]+)"
    r"(?:/providers/Microsoft\.Web/sites/(?P<site>[^/]+))?)?/?$",
    re.IGNORECASE)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class ResourceId:
    """A subscription, a resource group, or a Function App (`Microsoft.Web/sites`)."""

    subscription: str
    resource_group: str | None = None
    site: str | None = None

    @property
    def is_site(self) -> bool:
        return self.site is not None

    def contains(self, other: "ResourceId") -> bool:
        """Whether `other` is this resource or lies within this subscription or resource group."""
        if self.subscription.lower() != other.subscription.lower():
            return False
        if self.resource_group and (other.resource_group or "").lower() != self.resource_group.lower():
            return False
        return not self.site or (other.site or "").lower() == self.site.lower()

    @property
    def key(self) -> str:
        """Case-insensitive identity, as ARM compares resource IDs."""
        return str(self).lower()

    def __str__(self) -> str:
        text = f"/subscriptions/{self.subscription}"
        if self.resource_group:
            text += f"/resourceGroups/{self.resource_group}"
        if self.site:
            text += f"/providers/Microsoft.Web/sites/{self.site}"
        return text


def parse_resource_id(text: str) -> ResourceId:
    """Parse a site, resource group or subscription ID; raise ValueError saying what is expected."""
    match = _ID.match(text.strip())
    if not match:
        raise ValueError("expected /subscriptions/S/resourceGroups/G/providers/Microsoft.Web/sites/N, "
                         "/subscriptions/S/resourceGroups/G or /subscriptions/S")
    if not _GUID.match(match["sub"]):
        raise ValueError(f"subscription {match['sub']!r} is not a GUID")
    return ResourceId(match["sub"], match["group"], match["site"])

"""Key Vault secret versions: storage, validation and the JSON bundles the service returns."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

MAX_TAGS = 15
MAX_TAG_VALUE = 256
MAX_TAG_NAME = 512
MAX_VALUE = 25 * 1024
NAME_PATTERN = re.compile(r"^[0-9a-zA-Z-]{1,127}$")


class BadParameter(ValueError):
    """A request Key Vault refuses with 400 BadParameter."""


@dataclass
class Version:
    """One secret version."""

    version: str
    value: str
    tags: dict[str, str]
    enabled: bool
    expires_on: datetime | None
    not_before: datetime | None
    created_on: datetime
    updated_on: datetime
    content_type: str | None = None

    def public(self) -> dict[str, Any]:
        """The test-facing dict (sb.vault.versions())."""
        return {"version": self.version, "value": self.value, "tags": dict(self.tags),
                "enabled": self.enabled, "expires_on": self.expires_on,
                "not_before": self.not_before, "created_on": self.created_on,
                "updated_on": self.updated_on, "content_type": self.content_type}


@dataclass
class Secret:
    """A secret: its name as first written, and its versions in creation order."""

    name: str
    versions: list[Version]

    def find(self, version: str) -> Version | None:
        """A version by id; the latest (by creation) when version is empty."""
        if not version:
            return self.versions[-1] if self.versions else None
        return next((v for v in self.versions if v.version == version.lower()), None)


def check_name(name: str) -> None:
    """Secret names: 1-127 letters, digits, dashes."""
    if not NAME_PATTERN.match(name):
        raise BadParameter(f"The request URI contains an invalid name: {name}")


def check_tags(tags: Any) -> dict[str, str]:
    """Key Vault's tag limits: 15 tags, names up to 512 and values up to 256 characters."""
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise BadParameter("Tags must be an object of string values.")
    if len(tags) > MAX_TAGS:
        raise BadParameter(f"The number of tags ({len(tags)}) exceeds the maximum of {MAX_TAGS}.")
    for name, value in tags.items():
        if len(name) > MAX_TAG_NAME:
            raise BadParameter(f"Tag name exceeds the maximum length of {MAX_TAG_NAME}.")
        if len(value) > MAX_TAG_VALUE:
            raise BadParameter(f"Tag value of '{name[:64]}' exceeds the maximum length of {MAX_TAG_VALUE}.")
    return dict(tags)


def new_version(value: str, created: datetime, **fields: Any) -> Version:
    """Validate and build a version (fields: tags, enabled, expires_on, not_before, content_type)."""
    if not isinstance(value, str) or len(value.encode("utf-8")) > MAX_VALUE:
        raise BadParameter("The secret value must be a string of at most 25 KB.")
    return Version(uuid.uuid4().hex, value, check_tags(fields.get("tags")),
                   bool(fields.get("enabled", True)), fields.get("expires_on"),
                   fields.get("not_before"), created, created, fields.get("content_type"))


def epoch(moment: datetime | None) -> int | None:
    """Attribute times are whole epoch seconds."""
    return None if moment is None else int(moment.timestamp())


def from_epoch(value: Any, field_name: str) -> datetime | None:
    """Parse an epoch attribute from a request body."""
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise BadParameter(f"Attribute '{field_name}' must be a number of seconds since 1970.")
    return datetime.fromtimestamp(int(value), timezone.utc)


def attributes(v: Version) -> dict[str, Any]:
    """The attributes object (spec: keyvault__GetSecret-example.json)."""
    result: dict[str, Any] = {"enabled": v.enabled}
    if v.not_before is not None:
        result["nbf"] = epoch(v.not_before)
    if v.expires_on is not None:
        result["exp"] = epoch(v.expires_on)
    result.update(created=epoch(v.created_on), updated=epoch(v.updated_on),
                  recoveryLevel="Recoverable+Purgeable", recoverableDays=90)
    return result


def bundle(base: str, secret: Secret, v: Version, *, with_value: bool) -> dict[str, Any]:
    """A SecretBundle (spec: keyvault__SetSecret-example.json / UpdateSecret / GetSecret)."""
    result: dict[str, Any] = {"value": v.value} if with_value else {}
    result["id"] = f"{base}/secrets/{secret.name}/{v.version}"
    if v.content_type is not None:
        result["contentType"] = v.content_type
    result["attributes"] = attributes(v)
    if v.tags:
        result["tags"] = dict(v.tags)
    return result


def item(base: str, secret: Secret, v: Version, *, versioned: bool = True) -> dict[str, Any]:
    """A SecretItem of a listing: no value (spec: keyvault__GetSecretVersions-example.json)."""
    result = bundle(base, secret, v, with_value=False)
    if not versioned:
        result["id"] = f"{base}/secrets/{secret.name}"
    return result

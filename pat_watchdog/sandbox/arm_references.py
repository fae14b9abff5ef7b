"""Key Vault references in app settings, as App Service reports how it resolved them.

`GET {site}/config/configreferences/appsettings[/{appSettingKey}]` (operations
WebApps_GetAppSettingKeyVaultReference / WebApps_GetAppSettingsKeyVaultReferences in
Azure/azure-rest-api-specs specification/web/resource-manager/Microsoft.Web/AppService/ApiKVReference.tsp;
examples tests/specs/web__GetKeyVaultReferencesForAppSetting(s).json). Reference syntax: Microsoft
Learn, "Use Key Vault references as app settings", Reference syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable
from urllib.parse import urlsplit

# ResolveStatus, in the spec's order (the values of azure-mgmt-web 11's models.ResolveStatus,
# generated from the spec above, and of the Learn page "Web Apps - Get App Setting Key Vault Reference").
STATUSES = ("Initialized", "Resolved", "InvalidSyntax", "MSINotEnabled", "VaultNotFound", "SecretNotFound",
            "SecretVersionNotFound", "AccessToKeyVaultDenied", "OtherReasons", "FetchTimedOut",
            "UnauthorizedClient")

# `details` per status. The Resolved and MSINotEnabled texts are the ones App Service returns (as
# reported by users); Microsoft documents no others, so the rest are the sandbox's own wording.
DETAILS = {
    "Initialized": "Reference has been initialized and is pending resolution.",
    "Resolved": "Reference has been successfully resolved.",
    "InvalidSyntax": "Reference was not able to be resolved because of invalid syntax.",
    "MSINotEnabled": "Reference was not able to be resolved because site Managed Identity not enabled.",
    "VaultNotFound": "Reference was not able to be resolved because the key vault was not found.",
    "SecretNotFound": "Reference was not able to be resolved because the secret was not found.",
    "SecretVersionNotFound": "Reference was not able to be resolved because the secret version was not found.",
    "AccessToKeyVaultDenied": "Reference was not able to be resolved because access to the key vault was "
                              "denied for the identity.",
    "OtherReasons": "Reference was not able to be resolved.",
    "FetchTimedOut": "Reference was not able to be resolved because fetching the secret timed out.",
    "UnauthorizedClient": "Reference was not able to be resolved because the identity is not authorized.",
}

# Versionless references are fetched again on every restart, and otherwise within 24 hours
# (Microsoft Learn, "Use Key Vault references as app settings", Rotation).
REFETCH = timedelta(hours=24)
# (vault host, secret name) -> current version id: what a versionless reference resolves to.
VersionLookup = Callable[[str, str], "str | None"]

_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\((?P<body>.*)\)$", re.DOTALL | re.IGNORECASE)
_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")


@dataclass(frozen=True)
class Reference:
    """What a reference points at; `valid` False for the InvalidSyntax case."""

    vault_name: str | None
    vault_host: str | None
    secret_name: str | None
    version: str | None
    valid: bool = True


def is_reference(value: str) -> bool:
    """A setting whose value starts with @Microsoft.KeyVault( is a reference (resolved or not)."""
    return value.lstrip().lower().startswith("@microsoft.keyvault(")


def parse(value: str) -> Reference:
    """Both documented syntaxes: SecretUri=... and VaultName=...;SecretName=...[;SecretVersion=...]."""
    match = _REFERENCE.match(value.strip())
    if not match:
        return Reference(None, None, None, None, valid=False)
    parts: dict[str, str] = {}
    for item in match["body"].split(";"):
        key, sep, val = item.partition("=")
        if sep:
            parts[key.strip().lower()] = val.strip()
    if "secreturi" in parts:
        return _from_uri(parts["secreturi"])
    vault, name = parts.get("vaultname", ""), parts.get("secretname", "")
    if _NAME.match(vault) and _NAME.match(name):
        return Reference(vault, f"{vault.lower()}.vault.azure.net", name, parts.get("secretversion") or None)
    return Reference(None, None, None, None, valid=False)


def _from_uri(uri: str) -> Reference:
    split = urlsplit(uri)
    segments = [s for s in split.path.split("/") if s]
    host = (split.hostname or "").lower()
    if split.scheme != "https" or ".vault." not in host or len(segments) not in (2, 3) or segments[0] != "secrets":
        return Reference(None, None, None, None, valid=False)
    return Reference(host.split(".")[0], host, segments[1], segments[2] if len(segments) == 3 else None)


def reference_resource(site_id: str, setting: str, value: str, status: str, details: str | None,
                       active_version: str | None) -> dict[str, Any]:
    """An ApiKVReference: the example's keys (id, properties) with every documented property.

    No `name`/`type`: Microsoft's example has neither, so a client takes the setting name from `id`.
    `identityType` is a ManagedServiceIdentity object, as the spec types it.
    """
    ref = parse(value)
    return {
        "id": f"{site_id}/config/configreferences/appsettings/{setting}",
        "properties": {
            "reference": value,
            "status": status,
            "vaultName": ref.vault_name,
            "secretName": ref.secret_name,
            "secretVersion": ref.version,
            "identityType": {"type": "SystemAssigned"},
            "details": details if details is not None else DETAILS[status],
            "source": "KeyVault",
            "activeVersion": active_version if status == "Resolved" else None,
        },
    }


class ResolvedReferences:
    """What App Service reports for a site's references: forced statuses and the versions it holds."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self.secret_version: VersionLookup | None = None  # the Sandbox wires its Key Vault here
        self._forced: dict[tuple[str, str], tuple[str, str | None]] = {}
        self._held: dict[tuple[str, str], tuple[tuple[str, str], str | None, datetime]] = {}

    def force(self, site_id: str, setting: str, status: str, details: str | None) -> None:
        """Report `status` for a setting from now on; "Resolved" without details goes back to computing."""
        if status not in STATUSES:
            raise ValueError(f"not a ResolveStatus: {status!r} (one of {', '.join(STATUSES)})")
        key = (site_id.lower(), setting.lower())
        if status == "Resolved" and details is None:
            self._forced.pop(key, None)
        else:
            self._forced[key] = (status, details)

    def resource(self, site: Any, name: str, value: str) -> dict[str, Any]:
        """The ApiKVReference of one setting: Resolved, InvalidSyntax when unparseable, or as forced."""
        ref = parse(value)
        forced = self._forced.get((site.id.lower(), name.lower()))
        status, details = forced or (("Resolved" if ref.valid else "InvalidSyntax"), None)
        return reference_resource(site.id, name, value, status, details, self._active(site, name, ref))

    def refetch(self, site: Any) -> None:
        """A (re)start, which every settings write causes, fetches every referenced secret again."""
        prefix = site.id.lower()
        for key in [k for k in self._held if k[0] == prefix]:
            del self._held[key]
        for name, value in site.settings.items():
            if is_reference(value):
                ref = parse(value)
                if ref.valid and not ref.version:
                    self._fetch(site, name, ref)

    def _active(self, site: Any, name: str, ref: Reference) -> str | None:
        """The pinned version, else the latest one as of App Service's last fetch."""
        if not ref.valid or ref.version:
            return ref.version
        held = self._held.get((site.id.lower(), name.lower()))
        if held is None or held[0] != _secret(ref) or held[1] is None or self._clock() - held[2] >= REFETCH:
            held = self._fetch(site, name, ref)
        return held[1]

    def _fetch(self, site: Any, name: str, ref: Reference) -> tuple[tuple[str, str], str | None, datetime]:
        version = None
        if self.secret_version is not None and ref.vault_host and ref.secret_name:
            version = self.secret_version(ref.vault_host, ref.secret_name)
        held = (_secret(ref), version, self._clock())
        self._held[(site.id.lower(), name.lower())] = held
        return held


def _secret(ref: Reference) -> tuple[str, str]:
    """The secret a reference points at: a changed reference is fetched anew."""
    return (ref.vault_host or "", (ref.secret_name or "").lower())

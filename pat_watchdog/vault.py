"""Azure Key Vault: staged replacement versions, their tags, and the values behind them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from pat_watchdog.errors import ServiceError, WatchdogError, is_transient_status
from pat_watchdog.http import RetryPolicy
from pat_watchdog.secret import Token

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


def _kv_error(error: AzureError, what: str) -> ServiceError:
    from pat_watchdog.aggregator import NO_CREDENTIAL

    if isinstance(error, ClientAuthenticationError) and getattr(error, "response", None) is None:
        return ServiceError("Key Vault", f"{what}: {NO_CREDENTIAL}")
    status = getattr(getattr(error, "response", None), "status_code", None)
    return ServiceError("Key Vault", f"{what}: HTTP {status}" if status else f"{what}: {type(error).__name__}",
                        status=status, transient=is_transient_status(status))


class Vault:
    """One vault, through `azure-keyvault-secrets`; values are returned as Tokens only."""

    def __init__(self, credential: TokenCredential, vault_url: str, retry: RetryPolicy):
        self.url = vault_url.rstrip("/")
        self._client = SecretClient(self.url, credential, **retry.sdk_kwargs())

    def versions(self, name: str) -> list[SecretVersion]:
        """Every version's properties, without values; [] when the secret does not exist."""
        try:
            return [_version(p) for p in self._client.list_properties_of_secret_versions(name)]
        except ResourceNotFoundError:
            return []
        except (HttpResponseError, AzureError) as error:
            raise _kv_error(error, f"listing versions of {name}") from None

    def read(self, name: str, version: str | None = None) -> tuple[Token, SecretVersion]:
        try:
            secret = self._client.get_secret(name, version)
        except (HttpResponseError, AzureError) as error:
            raise _kv_error(error, f"reading {name}/{version or 'latest'}") from None
        if not secret.value:
            raise ServiceError("Key Vault", f"{name}/{secret.properties.version} is empty")
        return Token(secret.value), _version(secret.properties)

    def set_tags(self, version: SecretVersion, changes: dict) -> SecretVersion:
        """Merge `changes` into the version's tags (PATCH replaces the set, so always merge)."""
        tags = merge_tags(version.tags, changes)
        try:
            props = self._client.update_secret_properties(version.name, version.version, tags=tags)
        except (HttpResponseError, AzureError) as error:
            raise _kv_error(error, f"tagging {version.name}/{version.version}") from None
        return _version(props)

    def store(self, name: str, token: Token, *, tags: dict, expires_on: datetime | None = None) -> SecretVersion:
        """Write the token as a new version of `name`."""
        try:
            secret = self._client.set_secret(name, token.reveal(), tags=merge_tags({}, tags),
                                             expires_on=expires_on, content_type="Azure DevOps PAT")
        except (HttpResponseError, AzureError) as error:
            raise _kv_error(error, f"storing a new version of {name}") from None
        return _version(secret.properties)

    def close(self) -> None:
        self._client.close()


def _version(props) -> SecretVersion:
    return SecretVersion(props.name, props.version, props.created_on, props.expires_on, props.not_before,
                         props.enabled is not False, dict(props.tags or {}))


class Vaults:
    """Vault clients by URL, shared by all instances of a run (one challenge, one token)."""

    def __init__(self, credential: TokenCredential, retry: RetryPolicy):
        self._credential, self._retry = credential, retry
        self._vaults: dict[str, Vault] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> Vault:
        key = url.rstrip("/").lower()
        with self._lock:
            if key not in self._vaults:
                self._vaults[key] = Vault(self._credential, url, self._retry)
            return self._vaults[key]

    def close(self) -> None:
        for vault in self._vaults.values():
            vault.close()

"""Azure Key Vault: staged replacement versions, their tags, and the values behind them."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.keyvault.secrets import SecretClient

from pat_watchdog.adapters.retry import RetryPolicy, sdk_transport
from pat_watchdog.adapters.sdk_errors import service_error
from pat_watchdog.core.errors import EmptySecret, UnexpectedAnswer
from pat_watchdog.core.paging import Pages
from pat_watchdog.core.secret import Token
from pat_watchdog.core.tags import SecretVersion, merge_tags

class Vault:
    """One vault, through `azure-keyvault-secrets`; values are returned as Tokens only."""

    def __init__(self, credential: TokenCredential, vault_url: str, retry: RetryPolicy, pool_size: int = 10):
        self.url = vault_url.rstrip("/")
        self._client = SecretClient(self.url, credential, transport=sdk_transport(retry, pool_size),
                                    per_retry_policies=retry.sdk_deadline(), **retry.sdk_kwargs())

    def versions(self, name: str) -> list[SecretVersion]:
        """Every version's properties, without values; [] when the secret does not exist.

        GET /secrets/{name}/versions through the client's own pipeline (its challenge check, token,
        retries), read as the service's JSON: the SDK's models of every version cost more CPU than the
        request, once per instance. nextLinks are followed only within this vault, never twice, at most
        1,000 pages (core/paging.py); an item of another shape fails the listing (UnexpectedAnswer)."""
        found: list[SecretVersion] = []
        first = f"/secrets/{quote(name, safe='')}/versions"
        what = f"listing versions of {name}"
        pages = Pages("Key Vault", what, self.url + first)
        page: str | None = first
        try:
            while page:
                response = self._client.send_request(HttpRequest("GET", page, headers={"Accept": "application/json"}))
                if response.status_code == 404:
                    return []
                response.raise_for_status()
                body = response.json()
                items = body.get("value", []) if isinstance(body, dict) else None
                if not isinstance(items, list):
                    raise UnexpectedAnswer("Key Vault", f"{what}: page {pages.read} is not a listing")
                found += [_listed_version(item, what) for item in items]
                page = pages.follow(body.get("nextLink"))
        except ResourceNotFoundError:
            return []
        except AzureError as error:
            raise service_error("Key Vault", error, what) from None
        except ValueError:
            raise UnexpectedAnswer("Key Vault", f"{what}: a body that is not JSON") from None
        return found

    def read(self, name: str, version: str | None = None) -> tuple[Token, SecretVersion]:
        try:
            secret = self._client.get_secret(name, version)
        except AzureError as error:
            raise service_error("Key Vault", error, f"reading {name}/{version or 'latest'}") from None
        if not (secret.value or "").strip():
            raise EmptySecret(f"{name}/{secret.properties.version} holds no token (empty or white space only)")
        return Token(secret.value), _version(secret.properties)

    def set_tags(self, version: SecretVersion, changes: dict) -> SecretVersion:
        """Merge `changes` into the version's tags (PATCH replaces the set, so always merge)."""
        tags = merge_tags(version.tags, changes)
        try:
            props = self._client.update_secret_properties(version.name, version.version, tags=tags)
        except AzureError as error:
            raise service_error("Key Vault", error, f"tagging {version.name}/{version.version}") from None
        return _version(props)

    def set_expiry(self, name: str, version: str, expires_on: datetime) -> SecretVersion:
        """Correct a version's `expires` attribute (informational for secrets); tags are left as they are."""
        try:
            props = self._client.update_secret_properties(name, version, expires_on=expires_on)
        except AzureError as error:
            raise service_error("Key Vault", error, f"correcting the expiry of {name}/{version}") from None
        return _version(props)

    def store(self, name: str, token: Token, *, tags: dict, expires_on: datetime | None = None,
              content_type: str = "Azure DevOps PAT") -> SecretVersion:
        """Write the token as a new version of `name`."""
        try:
            secret = self._client.set_secret(name, token.reveal(), tags=merge_tags({}, tags),
                                             expires_on=expires_on, content_type=content_type)
        except AzureError as error:
            raise service_error("Key Vault", error, f"storing a new version of {name}") from None
        return _version(secret.properties)

    def close(self) -> None:
        self._client.close()


def _version(props) -> SecretVersion:
    return SecretVersion(props.name, props.version, props.created_on, props.expires_on, props.not_before,
                         props.enabled is not False, dict(props.tags or {}))


def _listed_version(item, what: str) -> SecretVersion:
    """A SecretItem of the versions listing (`id` .../secrets/{name}/{version}, `attributes` in epoch
    seconds, `tags`), as the SDK's SecretProperties would give it; UnexpectedAnswer for another shape."""
    try:
        path = [part for part in urlsplit(item["id"]).path.split("/") if part]
        attributes, tags = item.get("attributes") or {}, item.get("tags") or {}
        if len(path) < 2 or path[0] != "secrets" or not isinstance(attributes, dict) or not isinstance(tags, dict) \
                or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise ValueError
        return SecretVersion(path[1], path[2] if len(path) > 2 else None, _epoch(attributes.get("created")),
                             _epoch(attributes.get("exp")), _epoch(attributes.get("nbf")),
                             attributes.get("enabled") is not False, dict(tags))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, OSError):
        raise UnexpectedAnswer("Key Vault", f"{what}: an item that is not a secret version") from None


def _epoch(seconds) -> datetime | None:
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ValueError(seconds)
    return datetime.fromtimestamp(seconds, timezone.utc)


class Vaults:
    """Vault clients by URL, shared by all instances of a run (one challenge, one token)."""

    def __init__(self, credential: TokenCredential, retry: RetryPolicy, pool_size: int = 10):
        self._credential, self._retry, self._pool_size = credential, retry, pool_size
        self._vaults: dict[str, Vault] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> Vault:
        key = url.rstrip("/").lower()
        with self._lock:
            if key not in self._vaults:
                self._vaults[key] = Vault(self._credential, url, self._retry, self._pool_size)
            return self._vaults[key]

    def close(self) -> None:
        for vault in self._vaults.values():
            vault.close()

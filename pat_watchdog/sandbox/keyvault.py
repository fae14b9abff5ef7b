"""Key Vault (secrets) stand-in: challenge auth, Azure RBAC on the data actions, versions, paging, tag limits."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import datetime
from typing import Any, Callable

from . import vault_store as store
from .arm_authorization import Authorization, key_vault_action
from .arm_resources import UNPLACED, Resources
from .identity import Identity
from .web import Request, Response, decode_skip, encode_skip, error, json_response

# The challenge's resource must share the vault's domain (verify_challenge_resource=True).
RESOURCES = {"vault.azure.net": "https://vault.azure.net",
             "vault.usgovcloudapi.net": "https://vault.usgovcloudapi.net"}
_ROUTE = re.compile(r"^/secrets(?:/([^/]+)(?:/([^/]*))?)?/?$")
MAX_RESULTS = 25


class KeyVault:
    """Vaults by name, each a dict of secrets."""

    def __init__(self, identity: Identity, clock: Callable[[], datetime], resources: Resources,
                 authorization: Authorization) -> None:
        self._identity = identity
        self._clock = clock
        self._resources = resources          # where each vault is in ARM (its scope for RBAC)
        self._authorization = authorization
        self._lock = threading.RLock()
        self._vaults: dict[str, dict[str, store.Secret]] = {}
        self.tenant_id = str(uuid.uuid4())
        self.page_size = MAX_RESULTS

    def url(self, vault_name: str) -> str:
        """The vault URL clients use."""
        return f"https://{vault_name}.vault.azure.net"

    def set_secret(self, vault_name: str, secret_name: str, value: str, *, expires_on=None,
                   not_before=None, tags=None, enabled=True, created_on=None,
                   content_type=None) -> str:
        """Add a version from the test side; returns the version id (32 hex)."""
        store.check_name(secret_name)
        self._resources.place_vault(vault_name)
        version = store.new_version(value, created_on or self._clock(), tags=tags,
                                    enabled=enabled, expires_on=expires_on,
                                    not_before=not_before, content_type=content_type)
        with self._lock:
            self._secret(vault_name, secret_name, create=True).versions.append(version)
        return version.version

    def versions(self, vault_name: str, secret_name: str) -> list[dict[str, Any]]:
        """Every version of a secret (with value), in creation order."""
        with self._lock:
            secret = self._secret(vault_name, secret_name)
            return [v.public() for v in secret.versions] if secret else []

    def current_version(self, vault_host: str, secret_name: str) -> str | None:
        """The version a versionless GET of the secret returns (the latest), or None."""
        with self._lock:
            secret = self._secret(vault_host.split(".")[0], secret_name)
            latest = secret.find("") if secret else None
            return latest.version if latest else None

    def _secret(self, vault: str, name: str, create: bool = False) -> store.Secret | None:
        """Look a secret up (names are case-insensitive), optionally creating it."""
        secrets = self._vaults.setdefault(vault.lower(), {})
        if create and name.lower() not in secrets:
            secrets[name.lower()] = store.Secret(name, [])
        return secrets.get(name.lower())

    def handle(self, request: Request) -> Response:
        """Challenge/authenticate, then route the secrets API."""
        denied = self._authenticate(request)
        if denied:
            return denied
        if not request.query.get("api-version"):
            return error(400, "BadParameter", "The request URI contains an invalid api-version: missing.")
        match = _ROUTE.match(request.path)
        if not match:
            return error(404, "NotFound", f"No route for {request.method} {request.path}.")
        vault = request.host.split(".")[0]
        base = f"https://{request.host}"
        refused = self._refusal(request, vault, match.group(1), match.group(2))
        if refused:
            return refused
        try:
            with self._lock:
                return self._route(request, vault, base, match.group(1), match.group(2))
        except store.BadParameter as exc:
            return error(400, "BadParameter", str(exc))

    def _authenticate(self, request: Request) -> Response | None:
        """Key Vault's bearer challenge : 401 until a vault token is presented."""
        domain = request.host.split(".", 1)[1]
        resource = RESOURCES.get(domain, "https://vault.azure.net")
        challenge = {"WWW-Authenticate": f'Bearer authorization="https://login.microsoftonline.com/'
                                         f'{self.tenant_id}", resource="{resource}"'}
        if not self._identity.has_bearer(request):
            return json_response(401, {"error": {"code": "Unauthorized", "message":
                                 "AKV10000: Request is missing a Bearer or PoP token."}}, challenge)
        audience = self._identity.audience(request)
        if audience is None:
            return json_response(401, {"error": {"code": "Unauthorized", "message":
                                 "AKV10032: Invalid issuer or token."}}, challenge)
        if audience != resource:
            return json_response(401, {"error": {"code": "Unauthorized", "message":
                                 f"AKV10022: Invalid audience. Expected {resource}, found: {audience}."}},
                                 challenge)
        return None

    def _refusal(self, request: Request, vault: str, name: str | None, version: str | None) -> Response | None:
        """Azure RBAC on the data action, at the secret (a grant on it or on the vault above it).

        A vault ARM does not know holds no grant: it is refused as one in UNPLACED would be."""
        found = self._resources.vault(vault)
        vault_id = found.id if found else \
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.KeyVault/vaults/{}".format(*UNPLACED, vault)
        resource = f"{vault_id}/secrets/{name}" if name else vault_id
        caller = {"appid": self._identity.client_id, "oid": self._identity.object_id, "tid": self.tenant_id}
        return self._authorization.data_refusal(resource, key_vault_action(request.method, name, version), caller,
                                                vault, found.location if found else "westeurope")

    def _route(self, request: Request, vault: str, base: str, name: str | None,
               version: str | None) -> Response:
        """Dispatch on method and path shape."""
        method = request.method
        if name is None and method == "GET":
            return self._list_secrets(request, vault, base)
        if name is not None and version == "versions" and method == "GET":
            return self._list_versions(request, vault, base, name)
        if name is not None and method == "GET":
            return self._get(vault, base, name, version or "")
        if name is not None and not version and method == "PUT":
            return self._put(request, vault, base, name)
        if name is not None and method == "PATCH":
            return self._patch(request, vault, base, name, version or "")
        return error(405, "MethodNotAllowed", f"{method} is not supported on {request.path}.")

    def _not_found(self, name: str, version: str = "") -> Response:
        """Key Vault's 404 for a secret or version."""
        ident = f"{name}/{version}" if version else name
        return error(404, "SecretNotFound", f"A secret with (name/id) {ident} was not found in this "
                                            "key vault. If you recently deleted this secret you may be "
                                            "able to recover it using the correct recovery command.")

    def _get(self, vault: str, base: str, name: str, version: str) -> Response:
        """GET /secrets/{name}[/{version}] (spec: keyvault__GetSecret-example.json)."""
        secret = self._secret(vault, name)
        found = secret.find(version) if secret else None
        if found is None:
            return self._not_found(name, version)
        if not found.enabled:
            return error(403, "Forbidden", "Operation get is not allowed on a disabled secret.",
                         innererror={"code": "SecretDisabled"})
        return json_response(200, store.bundle(base, secret, found, with_value=True))

    def _put(self, request: Request, vault: str, base: str, name: str) -> Response:
        """PUT /secrets/{name}: a new version (spec: keyvault__SetSecret-example.json)."""
        store.check_name(name)
        body = request.json()
        if not isinstance(body, dict) or "value" not in body:
            raise store.BadParameter("The request body must contain 'value'.")
        attrs = body.get("attributes") or {}
        version = store.new_version(
            body["value"], self._clock(), tags=body.get("tags"), enabled=attrs.get("enabled", True),
            expires_on=store.from_epoch(attrs.get("exp"), "exp"),
            not_before=store.from_epoch(attrs.get("nbf"), "nbf"), content_type=body.get("contentType"))
        secret = self._secret(vault, name, create=True)
        secret.versions.append(version)
        return json_response(200, store.bundle(base, secret, version, with_value=True))

    def _patch(self, request: Request, vault: str, base: str, name: str, version: str) -> Response:
        """PATCH /secrets/{name}/{version} (spec: keyvault__UpdateSecret-example.json)."""
        secret = self._secret(vault, name)
        found = secret.find(version) if secret else None
        if found is None:
            return self._not_found(name, version)
        body = request.json()
        if not isinstance(body, dict):
            raise store.BadParameter("The request body must be a JSON object.")
        tags = store.check_tags(body["tags"]) if body.get("tags") is not None else None
        attrs = body.get("attributes") or {}
        expires = store.from_epoch(attrs.get("exp"), "exp") if "exp" in attrs else found.expires_on
        not_before = store.from_epoch(attrs.get("nbf"), "nbf") if "nbf" in attrs else found.not_before
        if tags is not None:
            found.tags = tags  # a PATCH with tags replaces the whole tag set
        if attrs.get("enabled") is not None:
            found.enabled = bool(attrs["enabled"])
        found.expires_on, found.not_before = expires, not_before
        if "contentType" in body:
            found.content_type = body["contentType"]
        found.updated_on = self._clock()
        return json_response(200, store.bundle(base, secret, found, with_value=False))

    def _list_versions(self, request: Request, vault: str, base: str, name: str) -> Response:
        """GET /secrets/{name}/versions (spec: keyvault__GetSecretVersions-example.json)."""
        secret = self._secret(vault, name)
        # An unknown secret lists as empty (like `az keyvault secret list-versions`), no 404.
        # The service does not list versions in creation order: sort by version id as it does.
        ordered = sorted(secret.versions, key=lambda v: v.version) if secret else []
        items = [store.item(base, secret, v) for v in ordered]
        link_name = secret.name if secret else name
        return self._page(request, items, f"{base}:443/secrets/{link_name}/versions")

    def _list_secrets(self, request: Request, vault: str, base: str) -> Response:
        """GET /secrets: latest version of each secret (spec: keyvault__GetSecrets-example.json)."""
        secrets = sorted(self._vaults.get(vault.lower(), {}).values(), key=lambda s: s.name.lower())
        items = [store.item(base, s, s.versions[-1], versioned=False) for s in secrets if s.versions]
        return self._page(request, items, f"{base}:443/secrets")

    def _page(self, request: Request, items: list[dict], link_base: str) -> Response:
        """One page by maxresults/$skiptoken; nextLink absolute, with :443 like the service."""
        size = _max_results(request.query.get("maxresults"), self.page_size)
        start = decode_skip(request.query.get("$skiptoken"))
        body: dict[str, Any] = {"value": items[start:start + size], "nextLink": None}
        if start + size < len(items):
            token = encode_skip(start + size, "NextMarker")
            body["nextLink"] = (f"{link_base}?api-version={request.query['api-version']}"
                                f"&$skiptoken={token}&maxresults={size}")
        return json_response(200, body)


def _max_results(raw: str | None, default: int) -> int:
    """maxresults: 1..25, else 400."""
    if raw in (None, ""):
        return max(1, min(default, MAX_RESULTS))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_RESULTS:
        raise store.BadParameter(f"invalid maxresults: {raw} (1 to {MAX_RESULTS})")
    return int(raw)


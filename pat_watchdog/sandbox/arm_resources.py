"""Key Vault and storage account resources in ARM, and a subscription's resource listing.

- `GET /subscriptions/S/resourceGroups/G/providers/Microsoft.KeyVault/vaults/N?api-version=2023-07-01`
  (Vaults_Get; example tests/specs/keyvault__getVault.json), with `enableRbacAuthorization` and
  `enablePurgeProtection` settable per vault. Needs `Microsoft.KeyVault/vaults/read` at the vault.
- `GET /subscriptions/S/resources?$filter=...&api-version=2021-04-01` (Resources_List; Microsoft's
  example has an empty body, so the items follow the GenericResourceExpanded schema): only what the
  caller may read, filtered by `resourceType eq '...'` and `name eq '...'` joined with `and`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

from .arm_authorization import DEFAULT_ROLES, STORAGE_ACTIONS, STORAGE_DATA_ACTIONS, Authorization, Roles
from .arm_shapes import display_location
from .web import Request, Response, error, json_response

# Where a vault seeded from the test side without an ARM resource is placed (the seed's subscription).
UNPLACED = ("8c56d827-5f07-45ce-8f2b-6c5001db5c6f", "rg-vaults")
VAULT_TYPE = "Microsoft.KeyVault/vaults"
STORAGE_TYPE = "Microsoft.Storage/storageAccounts"
_VAULT = re.compile(r"^/subscriptions/([^/]+)/resourcegroups/([^/]+)/providers/microsoft\.keyvault/vaults/([^/]+)$",
                    re.IGNORECASE)
_LISTING = re.compile(r"^/subscriptions/([^/]+)/resources$", re.IGNORECASE)
_CLAUSE = re.compile(r"^\s*(resourceType|name)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


@dataclass
class Resource:
    """A vault or storage account: where it is, and the vault's settings the doctor reads."""

    subscription: str
    group: str
    name: str
    type: str
    location: str = "westeurope"
    rbac: bool = True
    purge_protection: bool = True

    @property
    def id(self) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.group}/providers/{self.type}/{self.name}"


def vault_resource(vault: Resource, tenant_id: str) -> dict:
    """A Microsoft.KeyVault/vaults resource (spec: keyvault__getVault.json, without the HSM pool ID)."""
    properties = {
        "sku": {"family": "A", "name": "standard"}, "tenantId": tenant_id, "accessPolicies": [],
        "enabledForDeployment": False, "enabledForDiskEncryption": False, "enabledForTemplateDeployment": False,
        "enableSoftDelete": True, "softDeleteRetentionInDays": 90, "enableRbacAuthorization": vault.rbac,
        "vaultUri": f"https://{vault.name.lower()}.vault.azure.net/", "provisioningState": "Succeeded",
        "publicNetworkAccess": "Enabled",
    }
    if vault.purge_protection:  # Key Vault leaves it out until it is on (it cannot be turned off)
        properties["enablePurgeProtection"] = True
    stamp = "2026-01-05T09:00:00.0000000Z"
    return {"id": vault.id, "name": vault.name, "type": VAULT_TYPE, "location": vault.location, "tags": {},
            "systemData": {"createdBy": "deployer@contoso.com", "createdByType": "User", "createdAt": stamp,
                           "lastModifiedBy": "deployer@contoso.com", "lastModifiedByType": "User",
                           "lastModifiedAt": stamp},
            "properties": properties}


def generic_resource(item: dict) -> dict:
    """An item of Resources_List (GenericResourceExpanded): id, name, type, location, tags, kind."""
    return {k: item[k] for k in ("id", "name", "type", "location", "tags", "kind") if k in item}


class Resources:
    """Vaults and storage accounts by name; the listing also shows the sites of the Microsoft.Web stand-in."""

    def __init__(self, authorization: Authorization, tenant_id: Callable[[], str],
                 roles: Roles = DEFAULT_ROLES) -> None:
        self._authorization = authorization
        self._roles = roles
        self._tenant_id = tenant_id
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], Resource] = {}

    def add_vault(self, subscription: str, group: str, name: str, *, rbac: bool = True,
                  purge_protection: bool = True) -> str:
        """A vault, with the deployment's rotation role on it (the watchdog's data actions); returns its ID."""
        vault = Resource(subscription, group, name, VAULT_TYPE, rbac=rbac, purge_protection=purge_protection)
        with self._lock:
            self._items[(VAULT_TYPE, name.lower())] = vault
        self._authorization.grant(vault.id, data_actions=self._roles.vault_data_actions)
        return vault.id

    def vault(self, name: str) -> Resource | None:
        """The vault of that name (vault names are global in Azure), or None."""
        with self._lock:
            return self._items.get((VAULT_TYPE, name.lower()))

    def place_vault(self, name: str) -> Resource:
        """The vault of that name; one seeded from the test side that ARM did not know yet is placed in
        UNPLACED with the rotation role on it, as the deployment grants it on the staging vault."""
        found = self.vault(name)
        if found is None:
            self.add_vault(*UNPLACED, name)
            found = self.vault(name)
        return found

    def set_vault(self, name: str, *, rbac: bool | None = None, purge_protection: bool | None = None) -> None:
        """Change a vault's authorization mode (False: access policies) or purge protection."""
        with self._lock:
            vault = self._items[(VAULT_TYPE, name.lower())]
            vault.rbac = vault.rbac if rbac is None else rbac
            vault.purge_protection = vault.purge_protection if purge_protection is None else purge_protection

    def add_storage_account(self, subscription: str, group: str, name: str) -> str:
        """A storage account, with the watchdog's table and queue data roles on it; returns its ID."""
        account = Resource(subscription, group, name, STORAGE_TYPE)
        with self._lock:
            self._items[(STORAGE_TYPE, name.lower())] = account
        self._authorization.grant(account.id, actions=STORAGE_ACTIONS, data_actions=STORAGE_DATA_ACTIONS)
        return account.id

    def storage_account(self, name: str) -> Resource | None:
        with self._lock:
            return self._items.get((STORAGE_TYPE, name.lower()))

    def handle(self, request: Request, path: str, sites: Callable[[], Iterable[dict]]) -> Response | None:
        """The vault GET and the resource listing; None for any other path."""
        vault, listing = _VAULT.match(path), _LISTING.match(path)
        if not (vault or listing):
            return None
        if request.method != "GET":
            return error(405, "MethodNotAllowed", f"{request.method} is not supported here.")
        if vault:
            return self._vault(*vault.groups())
        return self._listing(request, listing.group(1), sites)

    def _vault(self, subscription: str, group: str, name: str) -> Response:
        with self._lock:
            found = self._items.get((VAULT_TYPE, name.lower()))
        wanted = f"/subscriptions/{subscription}/resourceGroups/{group}/providers/{VAULT_TYPE}/{name}"
        if not self._authorization.allows(wanted, f"{VAULT_TYPE}/read"):
            return error(403, "AuthorizationFailed", "The client does not have authorization to perform action "
                         f"'{VAULT_TYPE}/read' over scope '{wanted}' or the scope is invalid. If access was "
                         "recently granted, please refresh your credentials.")
        if found is None or found.id.lower() != wanted.lower():
            return error(404, "ResourceNotFound", f"The Resource '{VAULT_TYPE}/{name}' under resource group "
                                                  f"'{group}' was not found.")
        return json_response(200, vault_resource(found, self._tenant_id()))

    def _listing(self, request: Request, subscription: str, sites: Callable[[], Iterable[dict]]) -> Response:
        clauses = [c for c in re.split(r"\s+and\s+", request.query.get("$filter", ""), flags=re.IGNORECASE) if c]
        wanted = [_CLAUSE.match(c) for c in clauses]
        if not all(wanted):
            return error(400, "InvalidFilterInQueryString", "The $filter could not be parsed.")
        with self._lock:
            own = [{"id": r.id, "name": r.name, "type": r.type, "location": r.location, "tags": {}}
                   for r in self._items.values()]
        items = [i for i in [*sites(), *own] if i["id"].lower().startswith(f"/subscriptions/{subscription.lower()}/")]
        for clause in wanted:
            key = "type" if clause.group(1).lower() == "resourcetype" else "name"
            items = [i for i in items if i[key].lower() == clause.group(2).lower()]
        visible = [generic_resource({**i, "location": display_location(i["location"])}) for i in items
                   if self._authorization.allows(i["id"], f"{i['type']}/read")]
        return json_response(200, {"value": visible})

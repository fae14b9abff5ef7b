"""Azure RBAC as the caller sees it: role grants per scope, and ARM's permissions API over them.

`GET {scope}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01` (operations
Permissions_ListForResource / Permissions_ListForResourceGroup, Azure/azure-rest-api-specs
specification/authorization/resource-manager/Microsoft.Authorization/Authorization/stable/2022-04-01,
authorization-RoleDefinitionsCalls.json; examples tests/specs/authorization__GetResourcePermissions.json
and authorization__GetPermissions.json): one Permission per role assignment that applies at the scope
(made there or above it), each with actions, notActions, dataActions and notDataActions.

The sandbox has one caller (its managed identity). By default it holds what the deployment grants
(infra/app/*.bicep): `grant` and `revoke` change that per action and scope. The permissions API and
the new stand-ins (vault properties, the resource listing, Table storage) honour the grants; the
older stand-ins (app settings, restart, Key Vault secrets) do not check them.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from .web import Request, Response, error, json_response

# infra/app/aggregator-access.bicep, setting mode (the default tokenMode)
SITE_ACTIONS = ("Microsoft.Web/sites/read", "Microsoft.Web/sites/config/read",
                "Microsoft.Web/sites/config/list/action", "Microsoft.Web/sites/config/write",
                "Microsoft.Web/sites/restart/action")
# infra/app/keyvault-access.bicep, the custom rotation role
VAULT_DATA_ACTIONS = ("Microsoft.KeyVault/vaults/secrets/getSecret/action",
                      "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
                      "Microsoft.KeyVault/vaults/secrets/setSecret/action",
                      "Microsoft.KeyVault/vaults/secrets/update/action")
# infra/app/storage.bicep: Storage Table Data Contributor and Storage Queue Data Contributor
# (Microsoft Learn, "Azure built-in roles for Storage").
STORAGE_ACTIONS = ("Microsoft.Storage/storageAccounts/tableServices/tables/read",
                   "Microsoft.Storage/storageAccounts/tableServices/tables/write",
                   "Microsoft.Storage/storageAccounts/tableServices/tables/delete",
                   "Microsoft.Storage/storageAccounts/queueServices/queues/read",
                   "Microsoft.Storage/storageAccounts/queueServices/queues/write",
                   "Microsoft.Storage/storageAccounts/queueServices/queues/delete")
STORAGE_DATA_ACTIONS = ("Microsoft.Storage/storageAccounts/tableServices/tables/entities/*",
                        "Microsoft.Storage/storageAccounts/queueServices/queues/messages/*")

_PERMISSIONS = re.compile(r"^(/subscriptions/.+?)/providers/microsoft\.authorization/permissions$", re.IGNORECASE)
_KINDS = ("actions", "notActions", "dataActions", "notDataActions")


@dataclass
class Grant:
    """One role assignment's permissions, at one scope."""

    scope: str
    lists: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in _KINDS})

    def applies_to(self, scope: str) -> bool:
        """Made at `scope` or above it (RBAC inherits downwards)."""
        own, asked = self.scope.lower().rstrip("/"), scope.lower().rstrip("/")
        return asked == own or asked.startswith(own + "/")

    def permission(self) -> dict[str, list[str]]:
        return {kind: list(values) for kind, values in self.lists.items()}


def _covers(pattern: str, action: str) -> bool:
    """RBAC's wildcard: `*` stands for any run of characters; operation names ignore case."""
    regex = "".join(".*" if piece == "*" else re.escape(piece) for piece in re.split(r"(\*)", pattern))
    return re.fullmatch(regex, action, re.IGNORECASE) is not None


class Authorization:
    """The caller's grants, and ARM's answer about them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._grants: list[Grant] = []

    def grant(self, scope: str, actions=(), data_actions=(), not_actions=(), not_data_actions=()) -> None:
        """A role assignment at `scope` with these permissions."""
        lists = dict(zip(_KINDS, (list(actions), list(not_actions), list(data_actions), list(not_data_actions)),
                         strict=True))
        with self._lock:
            self._grants.append(Grant(scope, lists))

    def revoke(self, scope: str, actions=(), data_actions=()) -> None:
        """Take actions out of the grants made at exactly `scope` (an inherited one cannot be revoked below)."""
        with self._lock:
            for kind, names in (("actions", actions), ("dataActions", data_actions)):
                for name in names:
                    held = [g for g in self._grants if g.scope.lower() == scope.lower()
                            and name.lower() in (a.lower() for a in g.lists[kind])]
                    if not held:
                        raise ValueError(f"no grant at {scope} holds {name}")
                    for grant in held:
                        grant.lists[kind] = [a for a in grant.lists[kind] if a.lower() != name.lower()]

    def permissions(self, scope: str) -> list[dict[str, list[str]]]:
        """One Permission per grant that applies at `scope`."""
        with self._lock:
            return [g.permission() for g in self._grants if g.applies_to(scope)]

    def allows(self, scope: str, action: str, *, data: bool = False) -> bool:
        """Whether some grant at or above `scope` covers `action` without excluding it."""
        allow, deny = ("dataActions", "notDataActions") if data else ("actions", "notActions")
        return any(any(_covers(p, action) for p in perm[allow]) and not any(_covers(p, action) for p in perm[deny])
                   for perm in self.permissions(scope))

    def handle(self, request: Request, path: str) -> Response | None:
        """GET {scope}/providers/Microsoft.Authorization/permissions; None for any other path."""
        match = _PERMISSIONS.match(path)
        if not match:
            return None
        if request.method != "GET":
            return error(405, "MethodNotAllowed", f"{request.method} is not supported on permissions.")
        # Shape: authorization__GetPermissions.json (every Permission property, as the schema has them).
        return json_response(200, {"value": self.permissions(match.group(1))})

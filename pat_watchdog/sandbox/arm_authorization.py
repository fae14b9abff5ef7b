"""Azure RBAC as the caller sees it: role grants per scope, the action ARM and Key Vault derive from a
request, their refusal of an action no grant covers, and ARM's permissions API over the grants.

`GET {scope}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01` (operations
Permissions_ListForResource / Permissions_ListForResourceGroup, Azure/azure-rest-api-specs
specification/authorization/resource-manager/Microsoft.Authorization/Authorization/stable/2022-04-01,
authorization-RoleDefinitionsCalls.json; examples tests/specs/authorization__GetResourcePermissions.json
and authorization__GetPermissions.json): one Permission per role assignment that applies at the scope
(made there or above it), each with actions, notActions, dataActions and notDataActions.

The sandbox has one caller (its managed identity). It holds what the deployment grants: the roles'
actions come in as `Roles` (the tests read them from infra/ and hand them over; `DEFAULT_ROLES` is the
same, for the demo), and `grant` and `revoke` change them per action and scope. Every ARM request and
every Key Vault secrets request is authorized against them, as the services do: ARM answers 403
AuthorizationFailed, Key Vault 403 ForbiddenByRbac.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field, replace
from typing import Mapping

from .web import Request, Response, error, json_response

WEB = "Microsoft.Web/sites"
# infra/app/aggregator-access.bicep: the custom "pat-watchdog Aggregator settings" role, per tokenMode.
AGGREGATOR_ACTIONS = {
    "setting": (f"{WEB}/read", f"{WEB}/config/appsettings/read", f"{WEB}/config/list/action",
                f"{WEB}/config/write", f"{WEB}/restart/action"),
    "reference": (f"{WEB}/read", f"{WEB}/config/appsettings/read", f"{WEB}/config/list/action",
                  f"{WEB}/restart/action"),
}
SITE_ACTIONS = AGGREGATOR_ACTIONS["setting"]
# infra/app/keyvault-access.bicep, the custom rotation role
VAULT_DATA_ACTIONS = ("Microsoft.KeyVault/vaults/secrets/getSecret/action",
                      "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
                      "Microsoft.KeyVault/vaults/secrets/setSecret/action",
                      "Microsoft.KeyVault/vaults/secrets/update/action")
# infra/app/acs-access.bicep, the custom email sender role
ACS_ACTIONS = ("Microsoft.Communication/CommunicationServices/Read",
               "Microsoft.Communication/CommunicationServices/Write")
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


@dataclass(frozen=True)
class Roles:
    """The deployment's custom roles for the watchdog, as data: the actions each one grants."""

    aggregator: Mapping[str, tuple[str, ...]]   # token mode -> actions
    vault_data_actions: tuple[str, ...]
    acs_actions: tuple[str, ...] = ACS_ACTIONS

    def without(self, action: str) -> "Roles":
        """The same roles with one action taken out of every role that holds it."""
        def keep(actions: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(a for a in actions if a != action)
        return replace(self, aggregator={mode: keep(a) for mode, a in self.aggregator.items()},
                       vault_data_actions=keep(self.vault_data_actions), acs_actions=keep(self.acs_actions))


DEFAULT_ROLES = Roles(aggregator=AGGREGATOR_ACTIONS, vault_data_actions=VAULT_DATA_ACTIONS)

_PERMISSIONS = re.compile(r"^(/subscriptions/.+?)/providers/microsoft\.authorization/permissions$", re.IGNORECASE)
_KINDS = ("actions", "notActions", "dataActions", "notDataActions")
_VERBS = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}


def arm_action(method: str, path: str) -> tuple[str, str] | None:
    """(action, scope) that ARM authorizes for a request, or None for a call no action guards.

    ARM names the action after the resource types of the path without their names, under the last
    provider namespace, then read / write / delete by method, or for a POST the segment after the
    resource followed by /action; the scope is the resource the request addresses (the operations in
    Microsoft's "Azure resource provider operations"; AuthorizationFailed messages name both, e.g.
    'Microsoft.Web/sites/config/list/action' over scope '.../sites/N/config/appsettings' for POST
    .../config/appsettings/list, microsoft/vscode-azurefunctions#3830; 'Microsoft.Web/sites/read' over
    scope '/subscriptions/S' for the subscription's site listing, microsoft/vscode-azurefunctions#2127).
    Not guarded: the caller's own permissions (Permissions_List: "Gets all permissions the caller has")
    and the resource listing, which shows only what the caller may read (arm_resources.py).
    """
    parts = [p for p in path.split("/") if p]
    lowered = [p.lower() for p in parts]
    if "providers" not in lowered:
        return None
    at = len(lowered) - 1 - lowered[::-1].index("providers")
    namespace, rest = (parts[at + 1] if at + 1 < len(parts) else ""), parts[at + 2:]
    if not rest or (namespace.lower() == "microsoft.authorization" and rest[0].lower() == "permissions"):
        return None
    types = rest[0::2]
    if method == "POST" and len(rest) % 2 == 1 and len(rest) > 1:
        return "/".join([namespace, *types[:-1], rest[-1], "action"]), "/" + "/".join(parts[:-1])
    verb = _VERBS.get(method, method.lower())
    if len(rest) % 2 == 0:      # a resource
        return "/".join([namespace, *types, verb]), "/" + "/".join(parts)
    # a collection: authorized at its parent (the group or subscription for a top-level type)
    parent = parts[:-1] if len(rest) > 1 else parts[:at]
    return "/".join([namespace, *types, verb]), "/" + "/".join(parent)


def key_vault_action(method: str, secret: str | None, version: str | None) -> str:
    """The data action Key Vault authorizes for a secrets request (Microsoft.KeyVault DataActions)."""
    if method == "GET" and (secret is None or version == "versions"):
        return "Microsoft.KeyVault/vaults/secrets/readMetadata/action"     # list secrets, list versions
    suffix = {"GET": "getSecret/action", "PUT": "setSecret/action", "PATCH": "update/action", "DELETE": "delete"}
    return f"Microsoft.KeyVault/vaults/secrets/{suffix.get(method, method.lower())}"


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

    def refusal(self, request: Request, path: str, caller: str) -> Response | None:
        """ARM's 403 when no grant covers the request's action at its scope; None when one does."""
        derived = arm_action(request.method, path)
        if derived is None or self.allows(derived[1], derived[0]):
            return None
        action, scope = derived
        # The shape of every AuthorizationFailed quoted above (the client is named by its object ID).
        return error(403, "AuthorizationFailed", f"The client '{caller}' with object id '{caller}' does not have "
                     f"authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. "
                     "If access was recently granted, please refresh your credentials.")

    def data_refusal(self, resource: str, action: str, caller: dict[str, str], vault: str,
                     location: str) -> Response | None:
        """Key Vault's 403 ForbiddenByRbac when no grant at or above `resource` holds the data action."""
        if self.allows(resource, action, data=True):
            return None
        # As Key Vault answers (hashicorp/terraform-provider-azurerm#27817, piyushsachdeva/Terraform_AKS#2):
        # the resource in lower case, the lines separated by CR LF.
        lines = ["Caller is not authorized to perform action on resource.",
                 "If role assignments, deny assignments or role definitions were changed recently, please observe "
                 "propagation time.",
                 f"Caller: appid={caller['appid']};oid={caller['oid']};iss=https://sts.windows.net/{caller['tid']}/",
                 f"Action: '{action}'", f"Resource: '{resource.lower()}'", "Assignment: (not found)",
                 "DenyAssignmentId: null", "DecisionReason: 'DeniedWithNoValidRBAC' ",
                 f"Vault: {vault};location={location}", ""]
        return error(403, "Forbidden", "\r\n".join(lines), innererror={"code": "ForbiddenByRbac"})

    def handle(self, request: Request, path: str) -> Response | None:
        """GET {scope}/providers/Microsoft.Authorization/permissions; None for any other path."""
        match = _PERMISSIONS.match(path)
        if not match:
            return None
        if request.method != "GET":
            return error(405, "MethodNotAllowed", f"{request.method} is not supported on permissions.")
        # Shape: authorization__GetPermissions.json (every Permission property, as the schema has them).
        return json_response(200, {"value": self.permissions(match.group(1))})

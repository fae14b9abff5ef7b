"""The exact commands the doctor prints for each gap, computed from what the watchdog knows (pure).

What it knows: its identity's object ID (the `oid` claim of an ARM access token its credential
gives, so no Microsoft Graph call), each instance's resource ID, the vault, the storage account.
Role names: the deployment's custom roles end in a hash of their resource group (infra/app/
aggregator-access.bicep, keyvault-access.bicep: `uniqueString(resourceGroup().id)`), which only
Resource Manager computes, so the command looks the role up by name in that group as it runs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from pat_watchdog.core.references import parse_reference
from pat_watchdog.core.resource_ids import ResourceId

UNKNOWN_PRINCIPAL = "<watchdog principal ID>"
AGGREGATOR_ROLE = "pat-watchdog Aggregator settings"
ROTATION_ROLE = "pat-watchdog Key Vault rotation"
TABLE_ROLE = "Storage Table Data Contributor"
QUEUE_ROLE = "Storage Queue Data Contributor"
VAULT_READER = "Reader"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_VAULT_ID = re.compile(r"^(/subscriptions/[^/]+/resourceGroups/[^/]+)/providers/Microsoft\.KeyVault/vaults/([^/]+)$",
                       re.IGNORECASE)


def principal_id(access_token: str) -> str | None:
    """The `oid` claim of an Entra ID access token (a JWT), or None when it is not one."""
    parts = access_token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    oid = claims.get("oid") if isinstance(claims, dict) else None
    return oid if isinstance(oid, str) and _GUID.match(oid) else None


def group_of(resource_id: str) -> str:
    """/subscriptions/S/resourceGroups/G of a resource ID."""
    return "/".join(resource_id.split("/")[:5])


def deployed_role(prefix: str, group_id: str) -> str:
    """The name of the deployment's custom role in a group, looked up when the command runs."""
    return (f'$(az role definition list --custom-role-only true --scope {group_id} '
            f'--query "[?starts_with(roleName, \'{prefix} (\')].roleName | [0]" -o tsv)')


def role_assignment(principal: str | None, role: str, scope: str) -> str:
    scope = f'"{scope}"' if scope.startswith("$(") else scope
    return (f"az role assignment create --assignee-object-id {principal or UNKNOWN_PRINCIPAL} "
            f'--assignee-principal-type ServicePrincipal --role "{role}" --scope {scope}')


def site_role(principal: str | None, app: ResourceId) -> str:
    """Assign the deployment's Aggregator role on the site again."""
    return role_assignment(principal, deployed_role(AGGREGATOR_ROLE, group_of(str(app))), str(app))


def vault_role(principal: str | None, vault_id: str) -> str:
    """Assign the deployment's Key Vault rotation role on the vault again."""
    return role_assignment(principal, deployed_role(ROTATION_ROLE, group_of(vault_id)), vault_id)


def vault_id_lookup(vault_name: str) -> str:
    return f"$(az keyvault show --name {vault_name} --query id -o tsv)"


def vault_update(vault_id: str, flag: str) -> str:
    """`az keyvault update` of one property (`--enable-rbac-authorization true`, ...)."""
    match = _VAULT_ID.match(vault_id)
    group = f" --resource-group {match.group(1).rsplit('/', 1)[1]}" if match else ""
    name = match.group(2) if match else vault_id
    return f"az keyvault update --name {name}{group} {flag} true"


def app_setting(app: ResourceId, name: str, value: str) -> str:
    return f"az functionapp config appsettings set -g {app.resource_group} -n {app.site} --settings {name}={value}"


def restart(app: ResourceId) -> str:
    return f"az functionapp restart -g {app.resource_group} -n {app.site}"


def assign_identity(app: ResourceId) -> str:
    return f"az functionapp identity assign -g {app.resource_group} -n {app.site}"


def reference_reader(app: ResourceId, vault_name: str, secret: str) -> str:
    """Let the Aggregator app's own identity read its token secret (deploy.md, reference mode)."""
    aggregator = f"$(az functionapp identity show -g {app.resource_group} -n {app.site} --query principalId -o tsv)"
    scope = f'"{vault_id_lookup(vault_name)}/secrets/{secret}"'
    return (f'az role assignment create --assignee-object-id "{aggregator}" --assignee-principal-type '
            f'ServicePrincipal --role "Key Vault Secrets User" --scope {scope}')


def channel_secret_reader(principal: str | None, reference: str) -> str:
    """Let the watchdog's identity resolve a channel setting's Key Vault reference (its channel vault)."""
    try:
        vault = parse_reference(reference).vault_url.split("//", 1)[1].split(".", 1)[0]
    except ValueError:
        vault = "<channel vault>"
    return role_assignment(principal, "Key Vault Secrets User", vault_id_lookup(vault))


def storage_role(principal: str | None, role: str, account: str) -> str:
    return role_assignment(principal, role, f"$(az storage account show --name {account} --query id -o tsv)")


def teams_webhook() -> str:
    """A new Workflows URL, through the deployment (the URL lives in the channel vault)."""
    return 'read -rs TEAMS_URL && azd env set WATCHDOG_TEAMS_WEBHOOK_URL "$TEAMS_URL" && azd provision'

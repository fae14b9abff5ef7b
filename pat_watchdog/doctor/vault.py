"""The staging vault: reachable, Azure RBAC mode, purge protection, the watchdog's data actions.

Reachable is a data-plane read (the staged secret's versions, without values). The rest is Resource
Manager's: the vault's resource is found by the documented resource listing (Resources_List with
`$filter=resourceType eq 'Microsoft.KeyVault/vaults' and name eq '<name>'`), which shows only what
the caller may read; its properties come from Vaults_Get, its data actions from the permissions API.
The deployment gives the watchdog data actions only, no `Microsoft.KeyVault/vaults/read`: then the
resource is invisible and those checks say how to let the doctor see it.
"""

from __future__ import annotations

from pat_watchdog.adapters.signin import SignIn
from pat_watchdog.core.settings import BROAD_CLIENTS, SIGNIN_CLIENT_DOCS
from pat_watchdog.core import fixes
from pat_watchdog.core import permissions as P
from pat_watchdog.core.checkup import Check, fix, ok, skip
from pat_watchdog.core.errors import ServiceError
from pat_watchdog.doctor.visit import Visit

VAULT_TYPE = "Microsoft.KeyVault/vaults"
_RESOURCE_CHECKS = ("vault.rbac", "vault.purge_protection", "vault.data_actions")


def check_vault(visit: Visit) -> list[Check]:
    settings = visit.settings
    if not settings.key_vault_url:
        return [skip("vault", "watchdog", "WATCHDOG_KEY_VAULT_URL is not set: no staging vault, so no rotation "
                     "and no Key Vault expiry source")]
    scope, name = settings.key_vault_url, settings.vault_name
    vault_id, looked = _locate(visit, name)
    checks = [_reachable(visit, vault_id)]
    if vault_id is None:
        grant = fixes.role_assignment(visit.principal, fixes.VAULT_READER, fixes.vault_id_lookup(name))
        why = (f"the vault's Azure resource is not visible to this identity{looked} (it needs "
               f"{VAULT_TYPE}/read on the vault, which the deployment does not grant); to let the doctor "
               f"check it: {grant}")
        return checks + [skip(_RESOURCE_CHECKS[0], scope, f"not checked: {why}")] + \
            [skip(i, scope, f"not checked: the vault's resource is not visible (see {_RESOURCE_CHECKS[0]})")
             for i in _RESOURCE_CHECKS[1:]]
    try:
        props = visit.arm.vault_properties(vault_id)
    except ServiceError as error:
        props = None
        checks += [skip(i, scope, f"not checked: the vault's properties cannot be read: {error}")
                   for i in _RESOURCE_CHECKS[:2]]
    if props is not None:
        checks.append(ok("vault.rbac", scope, "Azure RBAC authorization (the deployment's roles apply)")
                      if props.get("enableRbacAuthorization") is True else
                      fix("vault.rbac", scope, "the vault uses access policies, so the watchdog's role assignments "
                          "do not apply there; switching to Azure RBAC ends every access policy: grant the roles "
                          "that replace them first", fixes.vault_update(vault_id, "--enable-rbac-authorization")))
        checks.append(ok("vault.purge_protection", scope, "purge protection is on")
                      if props.get("enablePurgeProtection") is True else
                      fix("vault.purge_protection", scope, "purge protection is off: a deleted staged or previous "
                          "token could be purged at once (turning it on cannot be undone)",
                          fixes.vault_update(vault_id, "--enable-purge-protection")))
    return checks + [_data_actions(visit, vault_id)]


def check_signins(visit: Visit) -> list[Check]:
    """`auto` rotation: a delegated sign-in is stored for each instance (metadata only: nothing is used)."""
    settings = visit.settings
    if not settings.auto:
        return []
    checks = [_signin_client(settings)]
    per_name = "{name}" in settings.signin_secret
    for name, site in {settings.signin_name(a.site): a.site for a in visit.targets}.items():
        scope = f"{settings.key_vault_url}/secrets/{name}"
        try:
            user = SignIn(settings, visit.ports.vaults.get(settings.key_vault_url), name).present()
        except ServiceError as error:
            checks.append(skip("signin", scope, f"not checked: {error}"))
            continue
        command = "pat-watchdog login" + (f" --instance {site}" if per_name else "")
        checks.append(ok("signin", scope, f"a sign-in for auto rotation is stored ({user}); each run checks it "
                         "still works") if user else
                      fix("signin", scope, "WATCHDOG_ROTATION=auto but nobody has signed in: the watchdog cannot "
                          "create replacements. Run this as the token's user, where `az login` may write secrets "
                          "in the staging vault", command))
    return checks


def _signin_client(settings) -> Check:
    """The sign-in's client: a dedicated app registration reaches Azure DevOps only; a client of Microsoft's
    family of client IDs (the Azure CLI's) yields refresh tokens redeemable for ARM, Graph and Key Vault."""
    client = settings.signin_client_id
    broad = BROAD_CLIENTS.get((client or "").lower())
    if broad is None:
        return ok("signin_client", "WATCHDOG_SIGNIN_CLIENT_ID", f"the sign-in uses the app registration {client}: "
                  "give it only the Azure DevOps user_impersonation permission")
    return fix("signin_client", "WATCHDOG_SIGNIN_CLIENT_ID",
               f"SIGNIN_CLIENT_BROAD (WARNING): WATCHDOG_SIGNIN_CLIENT_ID is {broad}'s client, a member of "
               "Microsoft's family of client IDs: a stolen sign-in could act as the user in Azure Resource Manager, "
               "Microsoft Graph and Key Vault, not only Azure DevOps. Create a dedicated app registration "
               f"({SIGNIN_CLIENT_DOCS}), set its ID, then sign in again",
               "az ad app create --display-name pat-watchdog-signin --is-fallback-public-client true "
               "--sign-in-audience AzureADMyOrg --query appId -o tsv")


def _locate(visit: Visit, name: str) -> tuple[str | None, str]:
    """The vault's resource ID, looked for in the watchdog's and the instances' subscriptions."""
    searched = []
    for subscription in visit.subscriptions():
        searched.append(subscription)
        try:
            found = visit.arm.find(subscription, VAULT_TYPE, name)
        except ServiceError:
            continue   # a subscription this identity may not list: the vault is not there for it
        if found:
            return found[0], ""
    return None, f" in subscription {', '.join(searched)}" if searched else ""


def _reachable(visit: Visit, vault_id: str | None) -> Check:
    settings, scope = visit.settings, visit.settings.key_vault_url
    site = visit.targets[0].site if visit.targets else "{name}"
    staged = settings.secret_names(site)[0]
    try:
        versions = visit.ports.vaults.get(settings.key_vault_url).versions(staged)
    except ServiceError as error:
        command = fixes.vault_role(visit.principal, vault_id) if error.status == 403 and vault_id else None
        return fix("vault.reachable", scope, f"the staged secret's versions cannot be listed: {error}", command)
    return ok("vault.reachable", scope, f"lists the versions of {staged} ({len(versions)} staged)")


def _data_actions(visit: Visit, vault_id: str) -> Check:
    scope = visit.settings.key_vault_url
    try:
        held = visit.arm.permissions(vault_id)
    except ServiceError as error:
        return skip("vault.data_actions", scope, f"not checked: the permissions cannot be read: {error}")
    missing = P.missing(held, P.VAULT_DATA_ACTIONS, data=True)
    if not missing:
        return ok("vault.data_actions", scope, "getSecret, readMetadata, setSecret and update permitted")
    short = ", ".join(a.split("/")[-2] for a in missing)
    return fix("vault.data_actions", scope, f"the watchdog lacks {short} on the vault ({', '.join(missing)})",
               fixes.vault_role(visit.principal, vault_id))

"""`pat-watchdog login [--instance NAME]`: the one-time delegated sign-in of `auto` rotation
(docs/reference.md, "Hands-free rotation").

Device code sign-in with MSAL; the signed-in user must be the user of each instance's current token
(a PAT the watchdog creates acts as the signed-in user). The sign-in (MSAL's token cache: refresh
token and account) is stored in Key Vault as `WATCHDOG_SIGNIN_SECRET`, one per instance when the name
holds `{name}`. Nothing of it is printed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable

from pat_watchdog.adapters.signin import SignIn, device_code_login
from pat_watchdog.bootstrap import open_ports
from pat_watchdog.core.errors import ServiceError, WatchdogError
from pat_watchdog.core.resource_ids import ResourceId
from pat_watchdog.core.settings import SIGNIN_CLIENT_DOCS, Settings
from pat_watchdog.observe import observe
from pat_watchdog.watchdog import resolve_targets


def login(settings: Settings, instance: str | None, now: datetime, show: Callable[[str], None], *,
          credential=None, retry=None, new_user: bool = False) -> list[str]:
    """Sign in, check the user, store the sign-in; lines saying what was done. Raises WatchdogError.

    The user must be the one the current token belongs to, or, once it is dead, the one the watchdog's
    record remembers from while it worked. `new_user`: a person hands the instances to the signed-in
    user, whose ID becomes the record's (docs/reference.md, "What the watchdog trusts"). Without a sign-in
    client (staged rotation), `new_user` hands them to the user of the token in place, and signs in nobody."""
    if not settings.key_vault_url:
        raise WatchdogError("WATCHDOG_KEY_VAULT_URL is required: the sign-in is kept in that vault")
    if not settings.signin_client_id and not new_user:
        raise WatchdogError("WATCHDOG_SIGNIN_CLIENT_ID is required to sign in: the application (client) ID of a "
                            f"dedicated app registration ({SIGNIN_CLIENT_DOCS})")
    ports = open_ports(settings, credential, retry)
    try:
        targets, errors = resolve_targets(settings, ports)
        chosen = _choose(settings, targets, instance, errors)
        if new_user and not ports.ledger.shared:
            raise WatchdogError("--new-user records the new user in the watchdog's state table: set "
                                "AzureWebJobsStorage (or AzureWebJobsStorage__accountName) to the Function's "
                                "storage account. Nothing was signed in")
        seen = {app.site: observe(app, settings, ports, now) for app in chosen}
        if not ports.records.readable:
            raise WatchdogError("the watchdog's record could not be read, so the instances' user cannot be "
                                "confirmed. Nothing was signed in")
        owners = {site: obs.record.owner or obs.snapshot.live.user_id for site, obs in seen.items()}
        if not settings.signin_client_id:
            return _hand_over(chosen, seen, ports)
        cache, session = device_code_login(settings, show)
        user = ports.pats.user_id(session.access_token)
        strangers = [site for site, owner in owners.items() if owner and owner != user]
        if strangers and not new_user:
            raise WatchdogError(f"signed in as {session.username} (Azure DevOps user {user}), but the token of "
                                f"{', '.join(strangers)} belongs to another user; a PAT the watchdog creates acts "
                                "as the signed-in user: sign in as the token's user, or, to hand the instance to "
                                "this user, run `pat-watchdog login --new-user`. Nothing was stored")
        vault = ports.vaults.get(settings.key_vault_url)
        lines = [f"signed in as {session.username} (Azure DevOps user {user})"]
        unknown = [site for site, owner in owners.items() if not owner]
        if unknown and not new_user:
            raise WatchdogError(f"the user of {', '.join(unknown)} is not known (its token does not work and no "
                                "earlier run recorded one): to give it to the signed-in user, run `pat-watchdog "
                                "login --new-user`. Nothing was stored")
        if not new_user and ports.ledger.shared:      # confirmed: the record names the user from now on
            for app in chosen:
                ports.records.update(app.key, lambda r: r.first_owner(user))
                ports.records.write(app.key)
        if new_user:
            for app in chosen:
                ports.records.update(app.key, lambda r: r.with_owner(user))
                ports.records.write(app.key)
            lines.append(f"the instances {', '.join(a.site for a in chosen)} now belong to user {user}: their "
                         "replacements must be this user's PATs")
        for name in dict.fromkeys(settings.signin_name(app.site) for app in chosen):
            SignIn(settings, vault, name).store(cache, session.username)
            lines.append(f"the sign-in is stored in Key Vault {settings.vault_name}, secret {name}")
        if settings.rotation != "auto":
            lines.append(f"note: WATCHDOG_ROTATION is {settings.rotation}: the sign-in is used once it is auto")
        return lines
    except ServiceError as error:
        raise WatchdogError(f"sign-in not stored: {error}") from None
    finally:
        ports.close()


def _hand_over(chosen: list[ResourceId], seen: dict, ports) -> list[str]:
    """`login --new-user` with staged rotation: the instances now belong to the user of the token in place."""
    lines = []
    for app in chosen:
        user = seen[app.site].snapshot.live.user_id
        if not user:
            raise WatchdogError(f"the token of {app.site} does not work, so there is no user to hand it to: put a "
                                "working PAT of the new user in place, then run this again")
        ports.records.update(app.key, lambda r, user=user: r.with_owner(user))
        ports.records.write(app.key)
        lines.append(f"{app.site} now belongs to Azure DevOps user {user} (the user of the token in place): "
                     "replacements must be this user's PATs")
    return lines


def _choose(settings: Settings, targets: list[ResourceId], instance: str | None, errors: list[str]) -> list[ResourceId]:
    """The instances this sign-in is for: the one named, else all (one sign-in secret for all of them)."""
    if errors and not targets:
        raise WatchdogError("; ".join(errors))
    if instance:
        found = [app for app in targets if app.site.lower() == instance.lower()]
        if not found:
            raise WatchdogError(f"--instance {instance}: no such instance among the "
                                f"{len(targets)} watched ({', '.join(sorted(a.site for a in targets)[:10])})")
        return found
    if "{name}" in settings.signin_secret and len(targets) > 1:
        raise WatchdogError("WATCHDOG_SIGNIN_SECRET contains {name}: name the instance with --instance NAME")
    if not targets:
        raise WatchdogError("no Aggregator instance found in WATCHDOG_AGGREGATOR_APP")
    return targets

"""The delegated sign-in of `auto` rotation: an MSAL token cache kept in Key Vault (docs/reference.md,
"Hands-free rotation").

A person signs in once with the device code flow (`pat-watchdog login`); MSAL's serialized cache
(refresh token and account, never the short-lived access token) is stored as a version of
`WATCHDOG_SIGNIN_SECRET`. Each use redeems the refresh token, which keeps the sign-in alive (Entra
ends a refresh token unused for 90 days) and yields a new one, stored back. OAuth is MSAL's, not ours.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

import msal

from pat_watchdog.core.errors import EmptySecret, ServiceError, WatchdogError
from pat_watchdog.core.secret import Token
from pat_watchdog.core.settings import Settings
from pat_watchdog.adapters.keyvault import Vault

log = logging.getLogger(__name__)
# Azure DevOps as an Entra resource (Microsoft Learn, "Use Microsoft Entra tokens with Azure DevOps").
DEVOPS_RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
SCOPES = [f"{DEVOPS_RESOURCE}/.default"]
CONTENT_TYPE = "application/vnd.pat-watchdog.signin+json"   # what the secret holds, for whoever looks
STORE_EVERY = timedelta(days=7)


def _below_warning(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


# MSAL logs each token cache event at DEBUG with the device code in clear ("code"): MSAL's records
# below WARNING never reach a handler, however verbose the logging (filters sit on each logger).
for _name in [n for n in logging.root.manager.loggerDict if n == "msal" or n.startswith("msal.")]:
    logging.getLogger(_name).addFilter(_below_warning)


class SignInRequired(WatchdogError):
    """No usable sign-in: never signed in, expired, revoked, or another user. The fix is `pat-watchdog login`."""


@dataclass(frozen=True)
class Session:
    """A fresh delegated access token (kept out of every repr) and who it belongs to."""

    access_token: str
    username: str

    def __repr__(self) -> str:
        return f"Session(username={self.username!r})"


def authority(settings: Settings) -> str:
    """The Entra authority: the tenant of AZURE_TENANT_ID, else any work or school account."""
    return f"https://login.microsoftonline.com/{settings.signin_tenant}"


def _app(settings: Settings, cache: msal.SerializableTokenCache) -> msal.PublicClientApplication:
    return msal.PublicClientApplication(settings.signin_client_id, authority=authority(settings),
                                        token_cache=cache, timeout=30)


def _failure(result: dict | None) -> str:
    """Entra's error code and AADSTS number: enough to act on, nothing secret."""
    if not result:
        return "no account in the stored sign-in"
    codes = result.get("error_codes") or []
    first_line = str(result.get("error_description") or "").splitlines()[0:1]
    return (f"{result.get('error', 'error')}" + (f" AADSTS{codes[0]}" if codes else "")
            + (f": {first_line[0][:200]}" if first_line else ""))


def _slim(cache: msal.SerializableTokenCache) -> Token:
    """The cache without access tokens (short-lived, and not needed to sign in again)."""
    state = json.loads(cache.serialize())
    state.pop("AccessToken", None)
    return Token(json.dumps(state, separators=(",", ":")))


class SignIn:
    """One sign-in secret in the staging vault."""

    def __init__(self, settings: Settings, vault: Vault, secret_name: str):
        self.settings, self.vault, self.name = settings, vault, secret_name

    def present(self) -> str | None:
        """The signed-in user's name when a sign-in is stored (metadata only), else None."""
        versions = [v for v in self.vault.versions(self.name) if v.enabled]
        if not versions:
            return None
        newest = max(versions, key=lambda v: v.created_on or v.version)
        return newest.tags.get("user") or "someone"

    def session(self, now: datetime, *, store_every: timedelta = STORE_EVERY) -> Session:
        """A fresh access token from the stored refresh token. The renewed cache is stored back when the
        stored one is `store_every` old: Entra keeps earlier refresh tokens valid, and storing weekly
        keeps the stored one far from its 90 idle days without a new secret version every day."""
        try:
            stored, version = self.vault.read(self.name)
        except EmptySecret:
            raise SignInRequired(f"the sign-in secret {self.name} is empty") from None
        except ServiceError as error:
            if error.status == 404:
                raise SignInRequired(f"nobody has signed in yet (no secret {self.name})") from None
            raise
        cache = msal.SerializableTokenCache()
        try:
            cache.deserialize(stored.reveal())
        except ValueError:
            raise SignInRequired(f"the sign-in secret {self.name} does not hold a sign-in") from None
        app = _app(self.settings, cache)
        accounts = app.get_accounts()
        if not accounts:
            raise SignInRequired(f"the sign-in secret {self.name} holds no account")
        account = accounts[0]
        result = app.acquire_token_silent_with_error(SCOPES, account, force_refresh=True)
        if not result or "access_token" not in result:
            raise SignInRequired(f"the sign-in of {account.get('username')} no longer works: {_failure(result)}")
        if cache.has_state_changed and (version.created_on is None or now - version.created_on >= store_every):
            self.store(cache, account.get("username") or "")
        return Session(result["access_token"], account.get("username") or "")

    def store(self, cache: msal.SerializableTokenCache, username: str) -> None:
        """A new version of the sign-in secret (the old ones stay until Key Vault's retention ends)."""
        self.vault.store(self.name, _slim(cache), tags={"user": username, "purpose": "pat-watchdog sign-in"},
                         content_type=CONTENT_TYPE)


def device_code_login(settings: Settings, show: Callable[[str], None]) -> tuple[msal.SerializableTokenCache,
                                                                             Session]:
    """Device code sign-in: `show` prints MSAL's instructions (URL and code); blocks until done or refused."""
    cache = msal.SerializableTokenCache()
    app = _app(settings, cache)
    flow = app.initiate_device_flow(scopes=SCOPES)
    if "user_code" not in flow:
        raise SignInRequired(f"the device code sign-in could not start: {_failure(flow)}")
    show(flow["message"])
    result = app.acquire_token_by_device_flow(flow)
    if "access_token" not in result:
        raise SignInRequired(f"the sign-in did not complete: {_failure(result)}")
    username = ((result.get("id_token_claims") or {}).get("preferred_username")
                or next((a.get("username") for a in app.get_accounts()), "") or "")
    return cache, Session(result["access_token"], username)

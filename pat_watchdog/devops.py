"""Azure DevOps: is the PAT alive (connectionData), and what does the token listing say about it."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote

import requests

from pat_watchdog.errors import ServiceError
from pat_watchdog.http import RetryPolicy, send
from pat_watchdog.model import ExpiryFact, LiveCheck, Liveness
from pat_watchdog.secret import Token
from pat_watchdog.times import parse_utc

# Listing endpoint: undocumented but widely used (README, "How the expiry and scopes are learned");
# entries are shaped like tests/specs/devops__GetPersonalAccessTokensForAUserInYourOrganization.json.
LISTING_PATH = "/_apis/Token/SessionTokens?displayFilterOption=1&api-version=5.0-preview.1"
# Azure DevOps times have 7-digit fractions and sometimes no zone.
parse_time = parse_utc


def _headers(token: Token) -> dict:
    # Without X-TFS-FedAuthRedirect a bad credential gets 203 and a sign-in page.
    return {"Authorization": token.basic_auth(), "X-TFS-FedAuthRedirect": "Suppress",
            "Accept": "application/json"}


def service_error_text(response: requests.Response) -> str:
    """X-TFS-ServiceError arrives URL-encoded (`Access%20Denied%3A...`): decode before reading."""
    return unquote(response.headers.get("X-TFS-ServiceError", "")).strip()


def check_live(session: requests.Session, org_url: str, token: Token, policy: RetryPolicy) -> LiveCheck:
    """GET {org}/_apis/connectionData with the PAT and classify the answer (200, 203, 401, 429, 5xx)."""
    try:
        response = send(session, "GET", f"{org_url}/_apis/connectionData", system="Azure DevOps",
                        policy=policy, headers=_headers(token))
    except ServiceError as error:
        return LiveCheck(Liveness.UNKNOWN, detail=str(error))
    status = response.status_code
    if status == 200 and "json" in response.headers.get("Content-Type", ""):
        user = (response.json().get("authenticatedUser") or {}).get("id")
        if user:
            return LiveCheck(Liveness.VALID, user_id=user)
        return LiveCheck(Liveness.INVALID, detail="connectionData answered without an authenticated user")
    if status in (200, 203):
        return LiveCheck(Liveness.INVALID, detail=f"HTTP {status} with a sign-in page instead of data")
    if status == 401:
        text = service_error_text(response)
        state = Liveness.EXPIRED if "expired" in text.lower() else Liveness.INVALID
        return LiveCheck(state, detail=f"HTTP 401: {text or 'unauthorized'}")
    if status == 403:
        return LiveCheck(Liveness.INVALID, detail=f"HTTP 403: {service_error_text(response) or 'forbidden'}")
    return LiveCheck(Liveness.UNKNOWN, detail=f"HTTP {status} from connectionData (is "
                                               "WATCHDOG_DEVOPS_ORG_URL right?)")


@dataclass(frozen=True)
class Listing:
    entries: tuple[dict, ...] = ()
    unavailable: str | None = None


def list_tokens(session: requests.Session, vssps_url: str, token: Token, policy: RetryPolicy) -> Listing:
    """The PAT owner's active tokens; a 401/403/404 just means this source is not available."""
    try:
        response = send(session, "GET", vssps_url + LISTING_PATH, system="Azure DevOps token listing",
                        policy=policy, headers=_headers(token))
    except ServiceError as error:
        return Listing(unavailable=str(error))
    if response.status_code != 200 or "json" not in response.headers.get("Content-Type", ""):
        return Listing(unavailable=f"HTTP {response.status_code} from the token listing")
    return Listing(tuple(response.json().get("value") or ()))


class ListingCache:
    """One listing per user and run: SessionTokens lists the authenticated user's PATs, so every
    PAT of that user gets the same answer. Failures are kept too: instances of one service account
    must not queue up behind a listing that keeps timing out (the next run asks again)."""

    def __init__(self):
        self._listings: dict[str, Listing] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, user_id: str | None, fetch) -> Listing:
        if not user_id:
            return fetch()
        with self._guard:
            lock = self._locks.setdefault(user_id, threading.Lock())
        with lock:  # concurrent instances of one user wait for the first call instead of repeating it
            if user_id not in self._listings:
                self._listings[user_id] = fetch()
            return self._listings[user_id]


@dataclass(frozen=True)
class Match:
    entry: dict | None
    ambiguous: bool = False
    not_found: str | None = None       # the authorization id that matched nothing


def match_entry(entries, now: datetime, *, authorization_id: str | None = None,
                user_id: str | None = None, known_expiry: datetime | None = None) -> Match:
    """Pick the listing entry of the current PAT, saying when it is a guess (README, expiry sources)."""
    if authorization_id:
        found = [e for e in entries if str(e.get("authorizationId", "")).lower() == authorization_id.lower()]
        return Match(found[0]) if found else Match(None, not_found=authorization_id)
    active = [e for e in entries if e.get("isValid", True) and (parse_time(e.get("validTo")) or now) > now
              and (user_id is None or e.get("userId") in (None, user_id))]
    if known_expiry is not None:
        close = [e for e in active if abs(parse_time(e.get("validTo")) - known_expiry) <= timedelta(days=1)]
        if close:
            return Match(min(close, key=lambda e: abs(parse_time(e["validTo"]) - known_expiry)))
        return Match(None)
    if len(active) == 1:
        return Match(active[0])
    if active:
        return Match(min(active, key=lambda e: parse_time(e["validTo"])), ambiguous=True)
    return Match(None)


def fact_from_entry(entry: dict, *, ambiguous: bool = False, among: int = 1) -> ExpiryFact:
    scopes = tuple(str(entry.get("scope") or "").split()) or None
    detail = (f"{among} active tokens of this user in the listing; the earliest validTo is used "
              "(set WATCHDOG_PAT_AUTHORIZATION_ID or stage the current token to be exact)") if ambiguous else ""
    return ExpiryFact("devops", parse_time(entry.get("validTo")), scopes,
                      global_pat=(entry["targetAccounts"] is None) if "targetAccounts" in entry else None,
                      authorization_id=entry.get("authorizationId"), ambiguous=ambiguous, detail=detail)

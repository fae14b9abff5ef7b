"""Azure DevOps: is the PAT alive (connectionData), and what does the token listing say about it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote

import requests

from pat_watchdog.adapters import deadlines
from pat_watchdog.adapters.retry import RetryPolicy, send
from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.listing import Entries
from pat_watchdog.core.model import LiveCheck, Liveness
from pat_watchdog.core.secret import Token
from pat_watchdog.core.times import parse_utc

# Listing endpoint: undocumented but widely used (docs/reference.md, "Expiry and scopes");
# entries are shaped like tests/specs/devops__GetPersonalAccessTokensForAUserInYourOrganization.json.
LISTING_PATH = "/_apis/Token/SessionTokens?displayFilterOption=1&api-version=5.0-preview.1"


def _headers(token: Token) -> dict:
    # Without X-TFS-FedAuthRedirect a bad credential gets 203 and a sign-in page.
    return {"Authorization": token.basic_auth(), "X-TFS-FedAuthRedirect": "Suppress",
            "Accept": "application/json"}


def service_error_text(response: requests.Response) -> str:
    """X-TFS-ServiceError arrives URL-encoded (`Access%20Denied%3A...`): decode before reading."""
    return unquote(response.headers.get("X-TFS-ServiceError", "")).strip()


@dataclass(frozen=True)
class Listing:
    entries: tuple[dict, ...] = ()
    unavailable: str | None = None



class DevOps:
    """One organization: `connectionData` for liveness, the token listing for expiry and scopes."""

    def __init__(self, session: requests.Session, org_url: str, vssps_url: str, retry: RetryPolicy, *,
                 sleep=time.sleep):
        self.session, self.org_url, self.vssps_url, self.retry = session, org_url, vssps_url, retry
        self._sleep = sleep

    def check_live(self, token: Token) -> LiveCheck:
        """GET {org}/_apis/connectionData with the PAT and classify the answer (200, 203, 401, 429, 5xx).

        A sign-in page (203, or HTML with 200) is asked again once, after a pause, before it counts: Azure
        DevOps serves one now and then to a working token, and that made a day-long CRITICAL TOKEN_INVALID.
        A second sign-in page stays invalid (docs/reference.md, "Expiry and scopes"), still marked not definitive."""
        found = self._ask(token)
        if found.state is not Liveness.INVALID or found.definitive:
            return found
        self._sleep(self.retry.pause(1, None))
        again = self._ask(token)
        if again.state is Liveness.INVALID and not again.definitive:
            return LiveCheck(Liveness.INVALID, detail=f"{again.detail}, twice in a row", definitive=False)
        return again

    def _ask(self, token: Token) -> LiveCheck:
        try:
            response = send(self.session, "GET", f"{self.org_url}/_apis/connectionData", system="Azure DevOps",
                            policy=self.retry, headers=_headers(token))
        except ServiceError as error:
            return LiveCheck(Liveness.UNKNOWN, detail=str(error))
        return _liveness(response)

    def list_tokens(self, token: Token) -> Listing:
        """The PAT owner's active tokens; a 401/403/404 just means this source is not available."""
        try:
            response = send(self.session, "GET", self.vssps_url + LISTING_PATH,
                            system="Azure DevOps token listing", policy=self.retry, headers=_headers(token))
        except ServiceError as error:
            return Listing(unavailable=str(error))
        if response.status_code != 200 or "json" not in response.headers.get("Content-Type", ""):
            return Listing(unavailable=f"HTTP {response.status_code} from the token listing")
        entries = _json_object(response).get("value") or []
        if not isinstance(entries, list) or not all(_entry_shaped(e) for e in entries):
            return Listing(unavailable="the token listing answered in an unexpected shape (entries without the "
                           "fields of a session token)")
        return Listing(Entries(entries))   # indexed once, for every instance


def _json_object(response: requests.Response) -> dict:
    """The answer's JSON object; {} for a body that is not one (an answer of an unexpected shape)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


_TEXT_FIELDS = ("authorizationId", "displayName", "scope", "userId", "validFrom", "validTo")


def _entry_shaped(entry) -> bool:
    """A listing entry as core/listing.py reads it: text fields text (dates that parse), targetAccounts a
    list or null."""
    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), (str, type(None))) for k in _TEXT_FIELDS):
        return False
    if not isinstance(entry.get("targetAccounts", []), (list, type(None))):
        return False
    try:
        parse_utc(entry.get("validTo")), parse_utc(entry.get("validFrom"))
    except ValueError:
        return False
    return True


def _liveness(response: requests.Response) -> LiveCheck:
    status = response.status_code
    if status == 200 and "json" in response.headers.get("Content-Type", ""):
        body = _json_object(response)
        if not body:
            return LiveCheck(Liveness.UNKNOWN, detail="connectionData answered HTTP 200 with a body that is not a "
                             "JSON object (an answer of an unexpected shape)")
        user = body.get("authenticatedUser")
        user = user.get("id") if isinstance(user, dict) else None
        if user and isinstance(user, str):
            return LiveCheck(Liveness.VALID, user_id=user)
        return LiveCheck(Liveness.INVALID, detail="connectionData answered without an authenticated user")
    if status in (200, 203):
        return LiveCheck(Liveness.INVALID, detail=f"HTTP {status} with a sign-in page instead of data",
                         definitive=False)
    if status == 401:
        text = service_error_text(response)
        state = Liveness.EXPIRED if "expired" in text.lower() else Liveness.INVALID
        return LiveCheck(state, detail=f"HTTP 401: {text or 'unauthorized'}")
    if status == 403:
        # Not a verdict on the token: the watchdog's egress is not Aggregator's, and an IP or conditional access
        # policy of the organization can refuse one and not the other. Unknown, and a candidate is kept.
        return LiveCheck(Liveness.UNKNOWN, detail=f"HTTP 403 from connectionData: "
                         f"{service_error_text(response) or 'forbidden'}; an IP or conditional access policy may "
                         "refuse the watchdog's address (not a verdict on the token)", definitive=False)
    return LiveCheck(Liveness.UNKNOWN, detail=f"HTTP {status} from connectionData (is "
                                               "WATCHDOG_DEVOPS_ORG_URL right?)")


class ListingCache:
    """One listing per user and run: SessionTokens lists the authenticated user's PATs, so every
    PAT of that user gets the same answer. Failures are kept too: instances of one service account
    must not queue up behind a listing that keeps timing out (the next run asks again). Also the run's
    cache of other answers every instance shares (`Ports.once`)."""

    def __init__(self):
        self._listings: dict[str, Listing] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, user_id: str | None, fetch) -> Listing:
        if not user_id:
            return fetch()
        with self._guard:
            lock = self._locks.setdefault(user_id, threading.Lock())
        # Concurrent instances of one user wait for the first call instead of repeating it, never past
        # their own deadline (an instance's 150 s; docs/reference.md, "Answers and deadlines").
        # Past it, this instance asks on its own: under a passed deadline its call fails at once, in the
        # answer type its caller expects.
        remaining = deadlines.left()
        if not lock.acquire(timeout=-1 if remaining is None else max(0.0, remaining)):
            return fetch()
        try:
            if user_id not in self._listings:
                self._listings[user_id] = fetch()
            return self._listings[user_id]
        finally:
            lock.release()

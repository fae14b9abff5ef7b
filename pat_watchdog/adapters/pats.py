"""Azure DevOps PAT Lifecycle API, with a delegated user token: create, list and revoke PATs.

`{vssps}/_apis/tokens/pats?api-version=7.1-preview.1`, shaped like tests/specs/devops__CreatePat.json,
devops__ListPats.json and devops__RevokePat.json. Only a delegated user token may call it; managed
identities, service principals and PATs cannot (Microsoft Learn, "Manage personal access tokens using
API"). The API shows a PAT's value only in the answer to its creation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import requests

from pat_watchdog.adapters.devops import service_error_text
from pat_watchdog.adapters.retry import RetryPolicy, send
from pat_watchdog.core.errors import ServiceError, UnexpectedAnswer, WatchdogError
from pat_watchdog.core.paging import Pages
from pat_watchdog.core.secret import Token
from pat_watchdog.core.times import format_utc, parse_utc

API = "/_apis/tokens/pats"
VERSION = "7.1-preview.1"
SYSTEM = "Azure DevOps PAT Lifecycle API"


class CreationRefused(WatchdogError):
    """Azure DevOps answered the creation with an error (`patTokenError`, or an HTTP error): no PAT exists."""

    def __init__(self, code: str, status: int | None, text: str = ""):
        super().__init__(f"Azure DevOps refused to create the PAT: {code}" + (f" (HTTP {status})" if status else "")
                         + (f": {text}" if text else ""))
        self.code, self.status, self.text = code, status, text


@dataclass(frozen=True)
class PatRecord:
    """One PAT as the API lists it (never its value)."""

    authorization_id: str
    display_name: str
    valid_from: datetime | None
    valid_to: datetime | None
    scope: str
    target_accounts: tuple[str, ...] | None


@dataclass(frozen=True)
class CreatedPat:
    """A PAT just created: the value lives only here and in Key Vault."""

    record: PatRecord
    token: Token


def _record(item) -> PatRecord:
    """A PatToken of the API's answers; UnexpectedAnswer for another shape."""
    try:
        accounts = item.get("targetAccounts")
        if accounts is not None and not isinstance(accounts, list):
            raise TypeError
        return PatRecord(str(item.get("authorizationId") or ""), str(item.get("displayName") or ""),
                         parse_utc(item["validFrom"]) if item.get("validFrom") else None,
                         parse_utc(item["validTo"]) if item.get("validTo") else None,
                         str(item.get("scope") or ""), tuple(str(a) for a in accounts) if accounts is not None
                         else None)
    except (AttributeError, TypeError, ValueError):
        raise UnexpectedAnswer(SYSTEM, "a PAT that is not shaped like a PatToken") from None


class PatLifecycle:
    """One organization's PAT Lifecycle API, called with a delegated access token."""

    def __init__(self, session: requests.Session, org_url: str, vssps_url: str, retry: RetryPolicy):
        self.session, self.org_url, self.url, self.retry = session, org_url, vssps_url + API, retry

    def _headers(self, access_token: str) -> dict:
        return {"Authorization": f"Bearer {access_token}", "Accept": "application/json",
                "X-TFS-FedAuthRedirect": "Suppress"}

    def user_id(self, access_token: str) -> str:
        """The Azure DevOps user behind the sign-in (connectionData's `authenticatedUser.id`)."""
        response = send(self.session, "GET", f"{self.org_url}/_apis/connectionData", system="Azure DevOps",
                        policy=self.retry, headers=self._headers(access_token))
        if response.status_code != 200 or "json" not in response.headers.get("Content-Type", ""):
            raise ServiceError("Azure DevOps", f"HTTP {response.status_code} for connectionData with the sign-in: "
                               f"{service_error_text(response) or 'no JSON answer'}", status=response.status_code)
        answer = _json(response)
        user = answer.get("authenticatedUser") if isinstance(answer, dict) else None
        return str(user.get("id") or "") if isinstance(user, dict) else ""

    def create(self, access_token: str, *, display_name: str, scope: str, valid_to: datetime) -> CreatedPat:
        """POST once: a creation is not idempotent, so only a throttled (429) answer is retried; a lost
        answer leaves a PAT the next run finds by its display name."""
        body = {"displayName": display_name, "scope": scope, "validTo": format_utc(valid_to), "allOrgs": False}
        response = send(self.session, "POST", self.url, system=SYSTEM, policy=self.retry,
                        retry_on=lambda r: r.status_code == 429, resend_lost=False, params={"api-version": VERSION},
                        headers=self._headers(access_token), json=body)
        answer = _json(response)
        error = str(answer.get("patTokenError") or "none") if isinstance(answer, dict) else "none"
        pat = answer.get("patToken") if isinstance(answer, dict) else None
        if response.status_code == 200 and error == "none" and isinstance(pat, dict) and pat.get("token"):
            return CreatedPat(_record(pat), Token(pat["token"]))
        if response.status_code == 200:
            raise CreationRefused(error, None)
        code = error if error != "none" else str(answer.get("typeKey") or "") if isinstance(answer, dict) else ""
        message = str(answer.get("message") or "") if isinstance(answer, dict) else ""
        raise CreationRefused(code or f"HTTP {response.status_code}", response.status_code,
                              (message or service_error_text(response))[:300])

    def list(self, access_token: str) -> list[PatRecord]:
        """The signed-in user's active PATs in this organization, every page: a continuation token is
        never followed twice, and at most 1,000 pages are read (core/paging.py)."""
        found: list[PatRecord] = []
        params = {"api-version": VERSION, "displayFilterOption": "active"}
        pages = Pages(SYSTEM, "listing PATs", None)
        while True:
            response = send(self.session, "GET", self.url, system=SYSTEM,
                            policy=self.retry, params=params, headers=self._headers(access_token))
            answer = _json(response)
            if response.status_code != 200 or not isinstance(answer, dict):
                raise ServiceError(SYSTEM, f"HTTP {response.status_code} listing PATs", status=response.status_code)
            items = answer.get("patTokens") or []
            if not isinstance(items, list):
                raise UnexpectedAnswer(SYSTEM, "listing PATs: `patTokens` is not a list")
            found += [_record(item) for item in items]
            following = pages.follow(answer.get("continuationToken"))
            if following is None:
                return found
            params = {**params, "continuationToken": following}

    def revoke(self, access_token: str, authorization_id: str) -> None:
        """DELETE by authorization ID (204); one already gone (404) counts as revoked."""
        response = send(self.session, "DELETE", self.url, system=SYSTEM,
                        policy=self.retry, params={"api-version": VERSION, "authorizationId": authorization_id},
                        headers=self._headers(access_token))
        if response.status_code not in (200, 204, 404):
            raise ServiceError(SYSTEM,
                               f"HTTP {response.status_code} revoking {authorization_id}", status=response.status_code)


def _json(response: requests.Response):
    if "json" not in response.headers.get("Content-Type", ""):
        return None
    try:
        return response.json()
    except ValueError:
        return None

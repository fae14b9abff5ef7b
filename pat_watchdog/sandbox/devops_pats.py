"""Azure DevOps PAT Lifecycle Management API ({vssps}/_apis/tokens/pats, 7.1-preview.1) and the tenant and
organization policies that refuse a creation.

Sources:
- Operations, parameters and shapes: MicrosoftDocs/vsts-rest-api-specs specification/tokens/7.1/tokens.json
  (Pats_Create/Get/List/Update/Revoke) and its httpExamples (tests/specs/devops__CreatePat.json, GetPat,
  ListPats, UpdatePat, RevokePat: 204 with no body). Dates come back at SQL datetime precision, 1/300 s
  (validTo 23:46:23.319 is answered 23:46:23.32, validFrom .1033333).
- Only a Microsoft Entra user token may call it: "You can't use service principals or managed identities
  to create or revoke PATs", and users must provide an Entra access token "instead of a PAT" (Microsoft
  Learn, "Manage personal access tokens (PATs) using REST API"). A valid PAT gets 401 (Microsoft Q&A
  2242239, "Azure DevOps PAT Token API returned 401 but OK for Work items"); an app-only token is not
  signed in at all (MicrosoftDocs/azure-devops-docs#13661: a sign-in redirect), answered here like any bad
  credential (203 sign-in page, or 401 with X-TFS-FedAuthRedirect: Suppress).
- Refusals are a PatTokenResult {"patToken": null, "patTokenError": <SessionTokenError>}; the spec documents
  no other status than 200 (pat_error_status changes it). Values from tokens/7.2/tokens.json (2026-03):
  disablePatCreationPolicyViolation for the organization policy "Restrict personal access token creation"
  (a user not on its allowlist may not create or regenerate PATs; Microsoft Learn, "Manage personal access
  tokens using policies"), globalPATCreationBlocked for global PATs since their retirement (creation
  blocked 2026-03-15), globalPatPolicyViolation, fullScopePatPolicyViolation and patLifespanPolicyViolation
  for the tenant policies, expiredPatCannotBeExtended. The lifespan policy errors by default (the enum
  value; "update your existing PATs to comply ... to ensure successful renewal"); pat_lifespan_shortens
  switches to answering validTo = now + maximum instead (the shortening NOTES describes).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple
from urllib.parse import quote

from .devops_shapes import Pat, vss_error
from .pat_format import new_pat
from .web import Request, Response, decode_skip, encode_skip, json_response

GLOBAL_PAT_CREATION_CUTOFF = datetime(2026, 3, 15, tzinfo=timezone.utc)
MAX_TOP = 100  # "$top: How many tokens to return, limit of 100"
_FILTERS = {"1": "active", "2": "revoked", "3": "expired", "4": "all"}  # DisplayFilterOptions
_SORTS = {"1": "displayname", "2": "displaydate", "3": "status"}  # SortByOptions
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class CreatedPat(NamedTuple):
    """A PAT created through the API (for tests asserting how many were made)."""

    authorization_id: str
    display_name: str
    user_id: str


class PatLifecycle:
    """Mixin of the DevOps stand-in: the PAT Lifecycle API and its policies (plain attributes)."""

    def _init_pat_lifecycle(self) -> None:
        self.restrict_pat_creation = False  # organization policy, the user not on its allowlist
        self.pat_max_lifespan: timedelta | None = None  # tenant "Enforce maximum PAT lifespan"
        self.pat_lifespan_shortens = False  # True: shorten validTo instead of patLifespanPolicyViolation
        self.block_full_scope = False  # tenant "Restrict full-scoped PAT creation"
        self.block_global = False  # tenant "Restrict global PAT creation"
        self.global_pat_creation_cutoff: datetime | None = GLOBAL_PAT_CREATION_CUTOFF
        self.pat_page_size = 20  # the most one List page holds here (the service's limit is 100)
        self.pat_error_status = 200  # HTTP status of a PatTokenResult that carries an error
        self._created: list[CreatedPat] = []

    def created_pats(self) -> list[CreatedPat]:
        """Every PAT created through the API, oldest first."""
        with self._lock:
            return list(self._created)

    def _pats_call(self, request: Request, org: str) -> Response:
        """{vssps}/_apis/tokens/pats: a delegated Entra user token only."""
        user_id, denied = self._pat_api_caller(request, org)
        if denied is not None:
            return denied
        method, wanted = request.method, request.query.get("authorizationid")
        if method == "POST":
            return self._create_pat(request, org, user_id)
        if method == "GET" and wanted is not None:
            return self._answer_one(org, user_id, wanted)
        if method == "GET":
            return self._list_pats(request, org, user_id)
        if method == "PUT":
            return self._update_pat(request, org, user_id)
        if method == "DELETE":
            return self._revoke_pat(org, user_id, wanted or "")
        return self._not_found(request.path)

    def _pat_api_caller(self, request: Request, org: str) -> tuple[str, Response | None]:
        """The signed-in user's Azure DevOps id, or the refusal (a PAT: 401; anything else not signed in)."""
        if (request.header("Authorization") or "").lower().startswith("basic "):
            pat, denied = self._authenticate(request, org)
            if denied is not None:
                return "", denied
            message = f"TF400813: The user '{pat.user_id}' is not authorized to access this resource."
            return "", json_response(401, vss_error(message, "UnauthorizedRequestException"),
                                     {"X-TFS-ServiceError": quote(message, safe="")})
        principal = self._delegated(request)
        if principal is None:
            return "", self._denial(request, expired=False)
        return principal.devops_user_id, None

    def _refused(self, error: str) -> Response:
        return json_response(self.pat_error_status, {"patToken": None, "patTokenError": error})

    def _policy_error(self, scope: str, all_orgs: bool, now: datetime) -> str | None:
        """The tenant policy (or retirement) a PAT of this scope and reach violates."""
        if all_orgs and self.global_pat_creation_cutoff is not None and now >= self.global_pat_creation_cutoff:
            return "globalPATCreationBlocked"
        if all_orgs and self.block_global:
            return "globalPatPolicyViolation"
        if self.block_full_scope and "app_token" in scope.split():
            return "fullScopePatPolicyViolation"
        return None

    def _lifespan(self, valid_to: datetime, now: datetime) -> tuple[datetime, str | None]:
        """validTo under the maximum lifespan policy: kept, shortened, or refused."""
        if self.pat_max_lifespan is None or valid_to - now <= self.pat_max_lifespan:
            return valid_to, None
        if self.pat_lifespan_shortens:
            return now + self.pat_max_lifespan, None
        return valid_to, "patLifespanPolicyViolation"

    def _create_pat(self, request: Request, org: str, user_id: str) -> Response:
        """POST: {displayName, scope, validTo, allOrgs} -> PatTokenResult with the token (only time it is shown)."""
        body = _body(request)
        now = self._clock()
        name, scope = str(body.get("displayName") or "").strip(), " ".join(str(body.get("scope") or "").split())
        valid_to, all_orgs = _parse_date(body.get("validTo")), body.get("allOrgs") is True
        if not name:
            return self._refused("displayNameRequired")
        if not scope:
            return self._refused("invalidScope")
        if valid_to is None or valid_to <= now:
            return self._refused("invalidValidTo")
        if self.restrict_pat_creation:
            return self._refused("disablePatCreationPolicyViolation")
        valid_to, lifespan_error = self._lifespan(valid_to, now)
        error = self._policy_error(scope, all_orgs, now) or lifespan_error
        if error:
            return self._refused(error)
        token = new_pat(issued=now.date())
        authorization_id = self.add_pat(org, token, user_id=user_id, valid_to=sql_datetime(valid_to),
                                        valid_from=sql_datetime(now, down=True), scope=scope, global_pat=all_orgs,
                                        display_name=name)
        self._created.append(CreatedPat(authorization_id, name, user_id))
        return json_response(200, {"patToken": self._pat_shape(self._pats[token], token),
                                   "patTokenError": "none"})

    def _find_pat(self, org: str, user_id: str, authorization_id: str) -> Pat | None:
        """The caller's PAT with that authorization id, bound to this organization or global."""
        for pat in self._pats.values():
            if pat.authorization_id.lower() == authorization_id.lower() and pat.user_id == user_id \
                    and (pat.global_pat or pat.org == org):
                return pat
        return None

    def _answer_one(self, org: str, user_id: str, authorization_id: str) -> Response:
        """GET ?authorizationId=: PatTokenResult without the token."""
        if not _GUID.match(authorization_id):
            return self._refused("invalidAuthorizationId")
        pat = self._find_pat(org, user_id, authorization_id)
        if pat is None:
            return self._refused("authorizationNotFound")
        return json_response(200, {"patToken": self._pat_shape(pat), "patTokenError": "none"})

    def _list_pats(self, request: Request, org: str, user_id: str) -> Response:
        """GET: one page of the caller's PATs, then continuationToken ("" on the last page)."""
        query, now = request.query, self._clock()
        wanted = _option(query.get("displayfilteroption"), _FILTERS, "active")
        sort = _option(query.get("sortbyoption"), _SORTS, "displaydate")
        if wanted not in _FILTERS.values() or sort not in _SORTS.values():
            return json_response(400, vss_error("The value of displayFilterOption or sortByOption is not valid.",
                                                "InvalidArgumentValueException"))
        pats = [p for p in self._pats.values() if p.user_id == user_id and (p.global_pat or p.org == org)
                and wanted in ("all", _pat_state(p, now))]
        order = {"displayname": lambda p: (p.display_name.lower(), p.authorization_id),
                 "displaydate": lambda p: (p.valid_to, p.authorization_id),
                 "status": lambda p: (_pat_state(p, now), p.authorization_id)}[sort]
        pats.sort(key=order, reverse=query.get("issortascending", "true").lower() == "false")
        top = int(query["$top"]) if query.get("$top", "").isdigit() and int(query["$top"]) > 0 else MAX_TOP
        size = min(top, self.pat_page_size, MAX_TOP)
        start = decode_skip(query.get("continuationtoken"))
        more = start + size < len(pats)
        return json_response(200, {"continuationToken": encode_skip(start + size, "continuationToken") if more else "",
                                   "patTokens": [self._pat_shape(p) for p in pats[start:start + size]]})

    def _update_pat(self, request: Request, org: str, user_id: str) -> Response:
        """PUT {authorizationId, displayName?, scope?, validTo?, allOrgs?}: a valid (not revoked) PAT only."""
        body = _body(request)
        now, wanted = self._clock(), str(body.get("authorizationId") or "")
        if not _GUID.match(wanted):
            return self._refused("invalidAuthorizationId")
        pat = self._find_pat(org, user_id, wanted)
        if pat is None:
            return self._refused("authorizationNotFound")
        if pat.revoked:
            return self._refused("invalidToken")
        if now >= pat.valid_to:
            return self._refused("expiredPatCannotBeExtended")
        name = str(body["displayName"]).strip() if body.get("displayName") is not None else pat.display_name
        scope = " ".join(str(body["scope"]).split()) if body.get("scope") is not None else pat.scope
        valid_to = _parse_date(body["validTo"]) if body.get("validTo") is not None else pat.valid_to
        all_orgs = body["allOrgs"] is True if body.get("allOrgs") is not None else pat.global_pat
        if not name or not scope or valid_to is None or valid_to <= now:
            return self._refused("invalidDisplayName" if not name else "invalidScope" if not scope
                                 else "invalidValidTo")
        lifespan_error = None
        if body.get("validTo") is not None:
            valid_to, lifespan_error = self._lifespan(valid_to, now)
        error = self._policy_error(scope if body.get("scope") is not None else "",
                                   all_orgs and not pat.global_pat, now) or lifespan_error
        if error:
            return self._refused(error)
        pat.display_name, pat.scope, pat.valid_to = name, scope, sql_datetime(valid_to)
        pat.global_pat, pat.org = all_orgs, (pat.org if all_orgs else org)
        return json_response(200, {"patToken": self._pat_shape(pat), "patTokenError": "none"})

    def _revoke_pat(self, org: str, user_id: str, authorization_id: str) -> Response:
        """DELETE ?authorizationId=: 204, no body; the PAT stops working and lists as revoked."""
        pat = self._find_pat(org, user_id, authorization_id) if _GUID.match(authorization_id) else None
        if pat is None:
            message = f"The personal access token with authorization id '{authorization_id}' was not found."
            return json_response(404, vss_error(message, "SessionTokenNotFoundException"))
        pat.revoked = True
        return Response(204)

    def _pat_shape(self, pat: Pat, token: str | None = None) -> dict[str, Any]:
        """A PatToken, keys in the order of the spec examples."""
        return {"displayName": pat.display_name, "validTo": pat_date(pat.valid_to), "scope": pat.scope,
                "targetAccounts": None if pat.global_pat else [self._orgs[pat.org]],
                "validFrom": pat_date(pat.valid_from), "authorizationId": pat.authorization_id, "token": token}


def _body(request: Request) -> dict[str, Any]:
    """The JSON object body ({} when absent or not an object)."""
    body = request.json()
    return body if isinstance(body, dict) else {}


def _option(value: str | None, numbered: dict[str, str], default: str) -> str:
    """An enum query parameter given by name (any case) or number."""
    if value is None or value == "":
        return default
    return numbered.get(value, value.lower())


def _pat_state(pat: Pat, now: datetime) -> str:
    """active / revoked / expired."""
    if pat.revoked:
        return "revoked"
    return "expired" if now >= pat.valid_to else "active"


def _parse_date(value: Any) -> datetime | None:
    """An ISO 8601 date-time (any number of fraction digits; naive means UTC); None when not one."""
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?", value.strip())
    if match is None:
        return None
    fraction = (match.group(2) or "0")[:6].ljust(6, "0")
    zone = match.group(3) or "Z"
    try:
        moment = datetime.fromisoformat(f"{match.group(1)}.{fraction}{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        return None
    return moment.astimezone(timezone.utc)


def sql_datetime(moment: datetime, *, down: bool = False) -> datetime:
    """The moment at SQL Server datetime precision (1/300 s), as the service stores PAT dates. `down`: never
    later than `moment` (a PAT is usable the moment it is created, also under a sandbox clock that stands still)."""
    moment = moment.astimezone(timezone.utc)
    ticks = (int if down else round)(moment.microsecond * 300 / 1_000_000)
    return moment.replace(microsecond=0) + timedelta(microseconds=round(ticks * 1_000_000 / 300))


def pat_date(moment: datetime) -> str:
    """A PAT date as the API prints it: up to 7 fraction digits, trailing zeros dropped ("...23.32Z")."""
    moment = sql_datetime(moment)
    ticks = round(moment.microsecond * 300 / 1_000_000)
    fraction = f"{round(ticks * 10_000_000 / 300):07d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


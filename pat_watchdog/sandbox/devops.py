"""Azure DevOps stand-in: PAT liveness (connectionData), the SessionTokens listing, the PAT Lifecycle API
(devops_pats.py), service hook subscriptions and the Project security namespace with its permission checks.
Delegated Microsoft Entra tokens (entra.py) are accepted as Bearer credentials."""

from __future__ import annotations

import base64
import binascii
import re
import threading
import uuid
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import quote

from . import devops_shapes as shapes
from . import devops_security as security
from .devops_hooks import ServiceHooks, respond_subscriptions
from .devops_pats import PatLifecycle
from .devops_shapes import Pat
from .entra_shapes import AZURE_DEVOPS
from .web import Request, Response, html_response, json_response

SERVER_HOST = "tfs.contoso.test"  # an Azure DevOps Server; collections live under /tfs/
# Global PATs stop working on this date (Microsoft's announcement); None disables the rule.
GLOBAL_PAT_CUTOFF = datetime(2026, 12, 1, tzinfo=timezone.utc)
# displayFilterOption: 1 active, 2 revoked, 3 expired, 4 all.
_FILTERS = {"1": "active", "2": "revoked", "3": "expired", "4": "all"}
# Scopes that open the subscriptions API. serviceHooks.json (7.1) lists vso.work, vso.build and vso.code
# for List, Get and Replace; the scope reference adds vso.hooks (read) and vso.hooks_write (create,
# update). Wider forms of a scope include it; app_token (full access) holds every scope.
_EVENT_SCOPES = {"vso.work", "vso.work_write", "vso.work_full", "vso.build", "vso.build_execute",
                 "vso.code", "vso.code_write", "vso.code_manage", "vso.code_full"}
HOOKS_READ_SCOPES = frozenset({"vso.hooks", "vso.hooks_write", *_EVENT_SCOPES})
HOOKS_WRITE_SCOPES = frozenset({"vso.hooks_write", *_EVENT_SCOPES})
OPERATOR_ID = "5d1e0c47-8a60-4c1e-b2f5-7a3d9e0c4b21"  # who created test-side subscriptions
_SUBSCRIPTION = re.compile(r"^/_apis/hooks/subscriptions/([0-9a-f]{8}-[0-9a-f-]{27})$")
_NAMESPACE = re.compile(r"^/_apis/securitynamespaces/([^/]+)$")
_PERMISSIONS = re.compile(r"^/_apis/permissions/([^/]+)/([^/]+)$")


class DevOps(PatLifecycle):
    """Organizations, users and PATs."""

    def __init__(self, clock: Callable[[], datetime], tenant_id: str) -> None:
        self._clock = clock
        self._tenant = tenant_id
        self._lock = threading.RLock()
        self._orgs: dict[str, str] = {}  # lower-case name -> organization id
        self._pats: dict[str, Pat] = {}  # token -> Pat
        self._users: dict[str, tuple[str, str]] = {}  # user id -> (display name, account)
        self.deployment_id = str(uuid.uuid4())
        self.listing_status: int | None = None
        self.global_pat_cutoff: datetime | None = GLOBAL_PAT_CUTOFF
        # A valid PAT without the API's scope: users report 401 (Microsoft documents no status).
        self.scope_denial_status = 401
        self.hooks = ServiceHooks(clock)
        self.permissions = security.Permissions()
        self.entra: Any = None  # the Entra stand-in whose delegated tokens are accepted (set by the Sandbox)
        self._init_pat_lifecycle()

    def org_url(self, org: str, *, host: str = "dev.azure.com") -> str:
        """Organization URL (host: dev.azure.com, visualstudio.com or tfs.contoso.test)."""
        self._org_id(org)
        if host == "visualstudio.com":
            return f"https://{org}.visualstudio.com"
        if host == SERVER_HOST:
            return f"https://{SERVER_HOST}/tfs/{org}"
        return f"https://dev.azure.com/{org}"

    def vssps_url(self, org: str, *, host: str = "dev.azure.com") -> str:
        """Token service base URL matching org_url()."""
        self._org_id(org)
        if host == "visualstudio.com":
            return f"https://{org}.vssps.visualstudio.com"
        if host == SERVER_HOST:
            return f"https://{SERVER_HOST}/tfs/{org}"
        return f"https://vssps.dev.azure.com/{org}"

    def add_user(self, user_id: str, display_name: str, account: str) -> None:
        """Name a user (connectionData shows it); optional."""
        with self._lock:
            self._users[user_id] = (display_name, account)

    def add_pat(self, org: str, token: str, *, user_id: str, valid_to: datetime,
                valid_from: datetime | None = None, scope: str = "app_token",
                global_pat: bool = False, authorization_id: str | None = None,
                display_name: str = "aggregator") -> str:
        """Register a PAT; returns its authorization id."""
        pat = Pat(org.lower(), token, user_id, valid_from or self._clock(), valid_to, scope,
                  global_pat, authorization_id or str(uuid.uuid4()), display_name)
        with self._lock:
            self._org_id(org)
            self._pats[token] = pat
        return pat.authorization_id

    def extend(self, token: str, valid_to: datetime) -> None:
        """Change a PAT's expiry in place, as the PAT page's "Edit" does."""
        with self._lock:
            self._pats[token].valid_to = valid_to

    def revoke(self, token: str) -> None:
        """Revoke a PAT (it stays listed as revoked)."""
        with self._lock:
            self._pats[token].revoked = True

    def works(self, token: str) -> bool:
        """Whether connectionData would accept this PAT now (known, not revoked, not expired)."""
        with self._lock:
            pat = self._pats.get(token)
            return pat is not None and _state(pat, self._clock()) == "active" and \
                not self._global_expired(pat, self._clock())

    def authorization_id_of(self, token: str) -> str | None:
        """The authorization ID of a PAT by its value (for tests)."""
        with self._lock:
            pat = self._pats.get(token)
            return pat.authorization_id if pat else None

    def scope_of(self, authorization_id: str) -> str | None:
        """The scope a PAT was issued with (for tests asserting what was created)."""
        with self._lock:
            return next((p.scope for p in self._pats.values() if p.authorization_id == authorization_id), None)

    def is_revoked(self, authorization_id: str) -> bool:
        """Whether the PAT with this authorization ID was revoked (by a test or through the API)."""
        with self._lock:
            return any(p.revoked for p in self._pats.values() if p.authorization_id == authorization_id)

    def pat_values(self) -> list[str]:
        """Every PAT value the sandbox knows, those the API created included (for leak checks)."""
        with self._lock:
            return list(self._pats)

    def add_subscription(self, org: str, *, url: str, project_id: str, event_type: str = "workitem.updated",
                         status: str = "enabled", consumer_inputs: dict[str, str] | None = None,
                         created_by: str = OPERATOR_ID) -> str:
        """A webHooks service hook subscription (what aggregator-cli's map.rule creates); returns its id."""
        with self._lock:
            return self.hooks.add(org.lower(), self._org_id(org), url=url, event_type=event_type,
                                  project_id=project_id, status=status, created_by=created_by,
                                  consumer_inputs=consumer_inputs)

    def set_subscription_status(self, org: str, subscription_id: str, status: str) -> None:
        """Set a subscription's status as Azure DevOps does (probation, disabled by the system, ...)."""
        with self._lock:
            self.hooks.set_status(org.lower(), subscription_id, status)

    def subscriptions(self, org: str) -> list[dict[str, Any]]:
        """The organization's subscriptions in the API's shape (confidential inputs not masked)."""
        with self._lock:
            return self.hooks.snapshot(org.lower(), self.org_url(org))

    def grant_bypass_rules(self, org: str, user_id: str, project_id: str, allowed: bool = True) -> None:
        """Allow (or take back) "Bypass rules on work item updates" for a user in a project."""
        with self._lock:
            self.permissions.set(org, user_id, security.PROJECT_NAMESPACE, security.project_token(project_id),
                                 security.BYPASS_RULES, allowed)

    def _org_id(self, org: str) -> str:
        """The organization id, created on first mention."""
        with self._lock:
            return self._orgs.setdefault(org.lower(), str(uuid.uuid4()))

    def handle(self, request: Request) -> Response:
        """Route connectionData and SessionTokens for every supported URL form."""
        located = _locate(request.host, request.path)
        if located is None:
            return self._not_found(request.path)
        org, api, vssps = located
        with self._lock:
            if org not in self._orgs:
                return self._not_found(request.path)
            if api == "/_apis/connectiondata" and request.method == "GET":
                return self._connection_data(request, org)
            # The token area lives on the token service (vssps) only, as in Azure DevOps.
            if api == "/_apis/token/sessiontokens" and request.method == "GET" and vssps:
                return self._session_tokens(request, org)
            if api == "/_apis/tokens/pats" and vssps and request.host != SERVER_HOST:  # Services only
                return self._pats_call(request, org)
            if not vssps or request.host == SERVER_HOST:
                routed = self._org_call(request, org, api)
                if routed is not None:
                    return routed
        return self._not_found(request.path)

    def _org_call(self, request: Request, org: str, api: str) -> Response | None:
        """Service hooks and security, on the organization's host; None when no route matches."""
        one = _SUBSCRIPTION.match(api)
        hooks = (api == "/_apis/hooks/subscriptions" and request.method == "GET") or \
            (one is not None and request.method in ("GET", "PUT"))
        namespace = _NAMESPACE.match(api) if request.method == "GET" else None
        permissions = _PERMISSIONS.match(api) if request.method == "GET" else None
        if not (hooks or namespace or permissions):
            return None
        pat, denied = self._authenticate(request, org)
        if denied:
            return denied
        if hooks:
            if not _holds(pat, HOOKS_WRITE_SCOPES if request.method == "PUT" else HOOKS_READ_SCOPES):
                return self._scope_denied(pat)
            return respond_subscriptions(self.hooks, request, org, pat.user_id, one.group(1) if one else None,
                                         _base_url(request, org))
        if namespace:
            # Spec: devops__GetSecurityNamespace.json
            return json_response(200, security.namespace_description(namespace.group(1)))
        return security.has_permissions(self.permissions, request, org, pat.user_id, *permissions.groups())

    def _scope_denied(self, pat: Pat) -> Response:
        """A valid PAT that lacks the API's scope."""
        message = f"TF400813: The user '{pat.user_id}' is not authorized to access this resource."
        return json_response(self.scope_denial_status, shapes.vss_error(message, "UnauthorizedRequestException"),
                             {"X-TFS-ServiceError": quote(message, safe="")})

    def _not_found(self, path: str) -> Response:
        """404 in Azure DevOps' JSON error shape."""
        return json_response(404, shapes.vss_error(f"The resource '{path}' cannot be found.",
                                                   "ResourceNotFoundException"))

    def _authenticate(self, request: Request, org: str) -> tuple[Pat | None, Response | None]:
        """The PAT behind Basic auth, or the response for a bad credential."""
        pat = self._pats.get(_basic_password(request.header("Authorization")) or "")
        now = self._clock()
        usable = pat is not None and not pat.revoked and (pat.global_pat or pat.org == org)
        if usable and self._global_expired(pat, now):
            usable = False
        if usable and pat.valid_from <= now < pat.valid_to:
            return pat, None
        return None, self._denial(request, expired=usable and now >= pat.valid_to)

    def _denial(self, request: Request, *, expired: bool) -> Response:
        """The answer to a bad credential."""
        if (request.header("X-TFS-FedAuthRedirect") or "").lower() != "suppress":
            # Without the header a bad credential is "redirected" to a sign-in page: 203 + HTML.
            return html_response(203, shapes.SIGN_IN_PAGE)
        message = shapes.EXPIRED if expired else shapes.NOT_AUTHORIZED
        return html_response(401, shapes.denial_page(message), shapes.denial_headers(message, self._tenant))

    def _delegated(self, request: Request) -> Any:
        """The Entra principal behind "Authorization: Bearer": issued for Azure DevOps, not expired; else None."""
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        principal = self.entra.principal(token.strip()) if self.entra and scheme.lower() == "bearer" else None
        if principal is None or principal.audience != AZURE_DEVOPS or self._clock() >= principal.expires:
            return None
        return principal

    def _global_expired(self, pat: Pat, now: datetime) -> bool:
        """Global PATs stop working at the cutoff."""
        return pat.global_pat and self.global_pat_cutoff is not None and now >= self.global_pat_cutoff

    def _connection_data(self, request: Request, org: str) -> Response:
        """GET _apis/connectionData (Microsoft publishes no example for it: shape from the Location service docs)."""
        if (request.header("Authorization") or "").lower().startswith("bearer "):
            principal = self._delegated(request)
            if principal is None:
                return self._denial(request, expired=False)
            user_id, known = principal.devops_user_id, (principal.name, principal.upn)
        else:
            pat, denied = self._authenticate(request, org)
            if denied:
                return denied
            user_id, known = pat.user_id, (f"User {pat.user_id[:8]}", f"user-{pat.user_id[:8]}@contoso.test")
        name, account = self._users.get(user_id, known)
        user = shapes.identity(user_id, self._tenant, name, account)
        body = shapes.connection_data(user, self._orgs[org], self.deployment_id,
                                      hosted=request.host != SERVER_HOST)
        return json_response(200, body, {"ActivityId": str(uuid.uuid4())})

    def _session_tokens(self, request: Request, org: str) -> Response:
        """GET _apis/Token/SessionTokens
        (spec: devops__GetPersonalAccessTokensForAUserInYourOrganization.json entries)."""
        pat, denied = self._authenticate(request, org)
        if denied:
            return denied
        if self.listing_status is not None:
            error = shapes.vss_error("Access denied: the caller may not list session tokens.",
                                     "UnauthorizedRequestException")
            return json_response(self.listing_status, error)
        wanted = _FILTERS.get(request.query.get("displayfilteroption", "1"), "active")
        now = self._clock()
        entries = [shapes.token_entry(p, self._orgs[org]) for p in self._pats.values()
                   if p.user_id == pat.user_id and (p.global_pat or p.org == org)
                   and wanted in ("all", _state(p, now))]
        return json_response(200, {"count": len(entries), "value": entries})


def _holds(pat: Pat, accepted: frozenset[str]) -> bool:
    """Whether the PAT's scopes include one of `accepted` (app_token: full access)."""
    scopes = set(pat.scope.split())
    return "app_token" in scopes or bool(scopes & accepted)


def _base_url(request: Request, org: str) -> str:
    """The organization URL as the request reached it (subscription `url`s are built on it)."""
    if request.host == SERVER_HOST:
        return f"https://{SERVER_HOST}/tfs/{org}"
    if request.host.endswith(".visualstudio.com"):
        return f"https://{request.host}"
    return f"https://dev.azure.com/{org}"


def _state(pat: Pat, now: datetime) -> str:
    """active / revoked / expired, for displayFilterOption."""
    if pat.revoked:
        return "revoked"
    return "expired" if now >= pat.valid_to else "active"


def _locate(host: str, path: str) -> tuple[str, str, bool] | None:
    """(organization, API path lower-cased, is token service) for Azure DevOps' URL forms."""
    if host in ("dev.azure.com", "vssps.dev.azure.com"):
        match = re.match(r"^/([^/]+)(/_apis/.*)$", path)
        org = match.group(1) if match else ""
    elif host.endswith(".visualstudio.com"):
        match = re.match(r"^()(/_apis/.*)$", path)
        org = host.split(".")[0]
    elif host == SERVER_HOST:  # a server hosts both services under the collection URL
        match = re.match(r"^/tfs/([^/]+)(/_apis/.*)$", path, re.IGNORECASE)
        org = match.group(1) if match else ""
    else:
        return None
    if not match:
        return None
    vssps = host == SERVER_HOST or host.startswith("vssps.") or ".vssps." in host
    return org.lower(), match.group(2).lower().rstrip("/"), vssps


def _basic_password(value: str | None) -> str | None:
    """The password part of "Basic base64(user:password)" (the PAT)."""
    if not value or not value.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] or None

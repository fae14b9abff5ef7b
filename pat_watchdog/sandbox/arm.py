"""Azure Resource Manager stand-in: Microsoft.Web sites, app settings, Key Vault references, restart."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import unquote

from . import arm_references as refs
from .arm_authorization import DEFAULT_ROLES, Authorization, Roles
from .arm_resources import Resources
from .arm_shapes import appsettings_resource, host_names, site_resource
from .identity import Identity
from .web import Request, Response, decode_skip, encode_skip, error, json_response

# Audiences ARM accepts per host: a token for another cloud is rejected, as in Azure.
AUDIENCES = {
    "management.azure.com": {"https://management.azure.com", "https://management.core.windows.net"},
    "management.usgovcloudapi.net": {"https://management.usgovcloudapi.net",
                                     "https://management.core.usgovcloudapi.net"},
}
_SITES = r"^/subscriptions/([^/]+)(?:/resourcegroups/([^/]+))?/providers/microsoft\.web/sites/?$"
_SITE = r"^/subscriptions/([^/]+)/resourcegroups/([^/]+)/providers/microsoft\.web/sites/([^/]+)(/.*)?$"
_REFERENCES = re.compile(r"^/config/configreferences/appsettings(?:/([^/]+))?$", re.IGNORECASE)


@dataclass
class Site:
    """One Function App / web app known to the sandbox."""

    subscription: str
    group: str
    name: str
    settings: dict[str, str]
    tags: dict[str, str] = field(default_factory=dict)
    kind: str = "functionapp,linux"
    location: str = "westeurope"
    modified: str = ""
    default_host: str = ""
    scm_host: str = ""

    @property
    def id(self) -> str:
        """The ARM resource id."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.group}"
                f"/providers/Microsoft.Web/sites/{self.name}")


def _key(app_id: str) -> tuple[str, str, str]:
    """Case-insensitive lookup key of a site id (ARM ids are case-insensitive)."""
    match = re.match(_SITE, app_id.rstrip("/"), re.IGNORECASE)
    if not match or match.group(4):
        raise KeyError(f"not a site resource id: {app_id}")
    return match.group(1).lower(), match.group(2).lower(), match.group(3).lower()


class Arm:
    """State and request handling of the Microsoft.Web part of ARM."""

    def __init__(self, identity: Identity, clock: Callable[[], datetime], roles: Roles = DEFAULT_ROLES) -> None:
        self._identity = identity
        self.roles = roles
        self._clock = clock
        self._lock = threading.RLock()
        self._sites: dict[tuple[str, str, str], Site] = {}
        self.writes: list[tuple[str, dict[str, str]]] = []
        self.restarts: list[str] = []
        self.page_size = 100
        self.references = refs.ResolvedReferences(clock)
        self.authorization = Authorization()
        self.resources = Resources(self.authorization, lambda: identity.tenant_id, roles)

    def grant(self, scope: str, actions=(), data_actions=(), not_actions=(), not_data_actions=()) -> None:
        """A role assignment for the sandbox's identity at `scope` (see arm_authorization)."""
        self.authorization.grant(scope, actions, data_actions, not_actions, not_data_actions)

    def revoke(self, scope: str, actions=(), data_actions=()) -> None:
        """Take actions out of the identity's grants at exactly `scope`."""
        self.authorization.revoke(scope, actions, data_actions)

    def assign_aggregator_role(self, scope: str, token_mode: str = "setting") -> None:
        """The deployment's Aggregator role (infra/app/aggregator-access.bicep) for that token mode, at
        `scope`: a site (aggregatorAccessScope=site), its resource group (resourceGroup) or a subscription."""
        self.authorization.grant(scope, actions=self.roles.aggregator[token_mode])

    def add_vault(self, subscription: str, group: str, name: str, **settings: bool) -> str:
        """A Key Vault resource (rbac, purge_protection), with the watchdog's data actions on it."""
        return self.resources.add_vault(subscription, group, name, **settings)

    def set_vault(self, name: str, **settings: bool) -> None:
        """Switch a vault's authorization mode (rbac=False: access policies) or purge protection."""
        self.resources.set_vault(name, **settings)

    def add_storage_account(self, subscription: str, group: str, name: str) -> str:
        """A storage account for the Table stand-in, with the watchdog's table and queue data roles."""
        return self.resources.add_storage_account(subscription, group, name)

    def add_site(self, subscription: str, resource_group: str, name: str, settings: dict[str, str],
                 tags: dict[str, str] | None = None, kind: str = "functionapp,linux",
                 location: str = "westeurope", default_host: str | None = None,
                 token_mode: str | None = "setting") -> str:
        """Create (or replace) a site; returns its resource id.

        default_host: None for `<name>.azurewebsites.net`, "unique" for a unique default hostname
        (`<name>-<hash>.<region>-01.azurewebsites.net`), or the default host name itself.
        token_mode: the deployment's Aggregator role of that mode on the site; None grants nothing there
        (a group or subscription role is given with assign_aggregator_role).
        """
        site = Site(subscription, resource_group, name, dict(settings), dict(tags or {}),
                    kind, location, _stamp(self._clock()))
        site.default_host, site.scm_host = host_names(name, location, default_host, site.id)
        with self._lock:
            self._sites[_key(site.id)] = site
            self.references.refetch(site)
        if token_mode is not None:
            self.assign_aggregator_role(site.id, token_mode)
        return site.id

    def default_host(self, app_id: str) -> str:
        """The site's properties.defaultHostName."""
        with self._lock:
            return self._sites[_key(app_id)].default_host

    def host_names(self, app_id: str) -> list[str]:
        """The site's properties.enabledHostNames (default host, then scm host)."""
        with self._lock:
            site = self._sites[_key(app_id)]
            return [site.default_host, site.scm_host]

    def set_reference_status(self, app_id: str, setting: str, status: str, details: str | None = None) -> None:
        """Force how App Service reports the Key Vault reference in `setting` (a ResolveStatus value).

        `details` defaults to a text for the status; "Resolved" with no details clears the override.
        """
        with self._lock:
            self.references.force(self._sites[_key(app_id)].id, setting, status, details)

    def settings(self, app_id: str) -> dict[str, str]:
        """A copy of a site's app settings."""
        with self._lock:
            return dict(self._sites[_key(app_id)].settings)

    def set_settings(self, app_id: str, settings: dict[str, str]) -> None:
        """Replace a site's settings from the test side (not recorded as a write; the app restarts)."""
        with self._lock:
            site = self._sites[_key(app_id)]
            site.settings = dict(settings)
            self.references.refetch(site)

    def handle(self, request: Request) -> Response:
        """Authenticate, check api-version, route."""
        denied = self._authenticate(request)
        if denied:
            return denied
        if not request.query.get("api-version"):
            return error(400, "MissingApiVersionParameter",
                         "The api-version query parameter (?api-version=) is required for all requests.")
        path = request.path.rstrip("/")
        refused = self.authorization.refusal(request, path, self._identity.object_id)
        if refused:
            return refused
        answered = self.authorization.handle(request, path) or self.resources.handle(request, path, self._site_items)
        if answered:
            return answered
        listing = re.match(_SITES, path, re.IGNORECASE)
        if listing:
            return self._list(request, listing.group(1), listing.group(2))
        site = re.match(_SITE, path, re.IGNORECASE)
        if site:
            return self._site_call(request, site.groups())
        return error(404, "NotFound", f"No route for {request.method} {path}.")

    def _site_items(self) -> list[dict]:
        with self._lock:
            return [site_resource(site) for site in self._sites.values()]

    def _authenticate(self, request: Request) -> Response | None:
        """ARM's 401s: missing header, unknown token, token for another audience."""
        challenge = {"WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/", '
                                         'error="invalid_token", error_description="The authentication failed."'}
        if not self._identity.has_bearer(request):
            return json_response(401, {"error": {"code": "AuthenticationFailed", "message":
                                 "Authentication failed. The 'Authorization' header is missing."}}, challenge)
        audience = self._identity.audience(request)
        if audience is None:
            return json_response(401, {"error": {"code": "InvalidAuthenticationToken", "message":
                                 "The access token is invalid."}}, challenge)
        if audience not in AUDIENCES.get(request.host, set()):
            return json_response(401, {"error": {"code": "InvalidAuthenticationTokenAudience",
                                 "message": f"The access token has been obtained for wrong audience "
                                            f"or resource '{audience}'."}}, challenge)
        return None

    def _site_call(self, request: Request, parts: tuple) -> Response:
        """Calls on one site: GET, config/appsettings/list, config/appsettings, configreferences, restart."""
        sub, group, name, rest = parts
        with self._lock:
            site = self._find(sub, group, name)
            if isinstance(site, Response):
                return site
            references = _REFERENCES.match((rest or "").rstrip("/"))
            if references and request.method == "GET":
                return self._references(site, references.group(1))
            action = (request.method, (rest or "").lower().rstrip("/"))
            if action == ("GET", ""):
                # Spec: web__ListWebApps.json (item shape; there is no GetSite example).
                return json_response(200, site_resource(site))
            if action == ("POST", "/config/appsettings/list"):
                # Spec: web__ListAppSettings.json
                return json_response(200, appsettings_resource(site))
            if action == ("PUT", "/config/appsettings"):
                return self._put_settings(request, site)
            if action == ("POST", "/restart"):
                # No spec example for WebApps_Restart: 200 with an empty body, as documented.
                self.restarts.append(site.id)
                self.references.refetch(site)
                return Response(200)
        return error(405, "MethodNotAllowed", f"{request.method} is not supported on {rest or 'the site'}.")

    def _put_settings(self, request: Request, site: Site) -> Response:
        """PUT config/appsettings: replaces ALL settings (spec: web__UpdateAppSettings.json)."""
        body = request.json()
        props = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(props, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in props.items()):
            return error(400, "BadRequest", "The request body must be {\"properties\": {name: string}}.")
        site.settings = dict(props)
        site.modified = _stamp(self._clock())
        self.writes.append((site.id, dict(props)))
        self.references.refetch(site)  # a settings write restarts the app, which refetches every reference
        return json_response(200, appsettings_resource(site))

    def _references(self, site: Site, setting: str | None) -> Response:
        """config/configreferences/appsettings: every reference, or one (404 when not a reference)."""
        if setting is None:
            # Spec: web__GetKeyVaultReferencesForAppSettings.json (settings that are no reference are left out).
            items = [self.references.resource(site, name, value) for name, value in site.settings.items()
                     if refs.is_reference(value)]
            return json_response(200, {"value": items})
        setting = unquote(setting)
        name = next((n for n in site.settings if n == setting), None) or \
            next((n for n in site.settings if n.lower() == setting.lower()), None)
        if name is None or not refs.is_reference(site.settings[name]):
            # DefaultErrorResponse (ApiKVReference.tsp: OverrideErrorType); the text is the sandbox's own.
            return error(404, "NotFound", f"The app setting '{setting}' of site '{site.name}' is not a "
                                          "Key Vault reference.")
        # Spec: web__GetKeyVaultReferencesForAppSetting.json
        return json_response(200, self.references.resource(site, name, site.settings[name]))

    def _find(self, sub: str, group: str, name: str) -> Site | Response:
        """The site, or ARM's 404 for a missing subscription, group or site."""
        site = self._sites.get((sub.lower(), group.lower(), name.lower()))
        if site:
            return site
        missing = self._missing_scope(sub, group)
        return missing or error(404, "ResourceNotFound",
                                f"The Resource 'Microsoft.Web/sites/{name}' under resource group "
                                f"'{group}' was not found. For more details please go to "
                                "https://aka.ms/ARMResourceNotFoundFix")

    def _missing_scope(self, sub: str, group: str | None) -> Response | None:
        """404 when the subscription (or group) holds no site at all."""
        keys = list(self._sites)
        if not any(k[0] == sub.lower() for k in keys):
            return error(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
        if group is not None and not any(k[:2] == (sub.lower(), group.lower()) for k in keys):
            return error(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found.")
        return None

    def _list(self, request: Request, sub: str, group: str | None) -> Response:
        """GET .../providers/Microsoft.Web/sites, paged with $skipToken."""
        # Spec: web__ListWebApps.json (subscription), web__ListWebAppsByResourceGroup.json (group).
        if request.method != "GET":
            return error(405, "MethodNotAllowed", f"{request.method} is not supported here.")
        with self._lock:
            missing = self._missing_scope(sub, group)
            if missing:
                return missing
            sites = [s for k, s in self._sites.items()
                     if k[0] == sub.lower() and (group is None or k[1] == group.lower())]
            start = decode_skip(request.query.get("$skiptoken"))
            page = [site_resource(s) for s in sites[start:start + self.page_size]]
        body: dict = {"value": page}
        if start + self.page_size < len(sites):
            token = encode_skip(start + self.page_size, "offset")
            body["nextLink"] = (f"https://{request.host}{request.path}?api-version="
                                f"{request.query['api-version']}&$skipToken={token}")
        return json_response(200, body)


def _stamp(moment: datetime) -> str:
    """ARM's lastModifiedTimeUtc format."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

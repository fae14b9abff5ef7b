"""Azure Resource Manager: the Aggregator Function App's settings, read and replaced whole; and, for
the doctor, what the caller may do and the staging vault's properties."""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Iterator
from urllib.parse import quote, urlencode

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.web import WebSiteManagementClient
from azure.mgmt.web.models import StringDictionary

from pat_watchdog.adapters import deadlines
from pat_watchdog.adapters.retry import RetryPolicy, sdk_transport
from pat_watchdog.adapters.sdk_errors import service_error
from pat_watchdog.core.errors import ServiceError, UnexpectedAnswer
from pat_watchdog.core.paging import Pages
from pat_watchdog.core.resource_ids import ResourceId

SYSTEM = "Azure Resource Manager"

# azure-core retries a time-out or a lost connection only for the methods in `retry_on_methods` (by
# default HEAD GET PUT DELETE OPTIONS TRACE: never POST), per call. `config/appsettings/list` is a read
# despite its POST, so it is retried like one. The settings PUT replaces every setting and may have been
# applied although its answer was lost: it is never sent again blindly (only a 429 with Retry-After, which
# ARM answers before doing anything, is); swap.py re-reads to learn whether it was written.
_SAFE = frozenset({"HEAD", "GET", "OPTIONS", "TRACE"})
READ = {"retry_on_methods": _SAFE | {"POST"}}
WRITE = {"retry_on_methods": _SAFE}

log = logging.getLogger(__name__)

SITES_API = "2025-05-01"         # Microsoft.Web sites, the version azure-mgmt-web 11 asks for
PERMISSIONS_API = "2022-04-01"   # Microsoft.Authorization permissions
RESOURCES_API = "2021-04-01"     # Microsoft.Resources resource listing
KEYVAULT_API = "2023-07-01"      # Microsoft.KeyVault vaults


@dataclass(frozen=True)
class ReferenceStatus:
    """App Service's resolution of a Key Vault reference: `Resolved`, or why not (ResolveStatus)."""

    status: str
    details: str | None
    active_version: str | None

    @property
    def resolved(self) -> bool:
        return self.status == "Resolved"


class ArmThrottle(SansIOHTTPPolicy):
    """Slow down while ARM says its budget is nearly spent, before it starts answering 429.

    https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling
    (`x-ms-ratelimit-remaining-subscription-reads`, `-writes`, `-resource-*`). 429 itself, with
    Retry-After, is handled by azure-core's retry policy.
    """

    LOW = 20
    MAX_PAUSE = 5.0

    def __init__(self, sleep=time.sleep):
        self._sleep = sleep

    def on_response(self, request, response) -> None:
        remaining = [int(v) for k, v in response.http_response.headers.items()
                     if k.lower().startswith("x-ms-ratelimit-remaining-") and v.strip().isdigit()]
        if remaining and min(remaining) < self.LOW:
            pause = self.MAX_PAUSE * (self.LOW - min(remaining)) / self.LOW
            left = deadlines.left()     # never past the deadline of the work in progress
            self._sleep(pause if left is None else max(0.0, min(pause, left)))


class AggregatorApps:
    """`POST config/appsettings/list` and `PUT config/appsettings` through azure-mgmt-web."""

    HOSTS_FROM_LISTING = 3      # sites named in one subscription from which one listing beats a GET each

    def __init__(self, credential: TokenCredential, arm_endpoint: str, retry: RetryPolicy, *,
                 sleep=time.sleep, pool_size: int = 10, named: Iterable[ResourceId] = ()):
        self._named: dict[str, set[str]] = {}       # subscription -> keys of the sites named in it
        for app in named:
            if app.is_site:
                self._named.setdefault(app.subscription.lower(), set()).add(app.key)
        self._listed: dict[str, threading.Lock] = {}  # subscriptions whose listing was read (or is being)
        self._credential = credential
        self._pool_size = pool_size
        self._endpoint = arm_endpoint
        self._retry = retry
        self._clients: dict[str, WebSiteManagementClient] = {}
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}
        self._hosts: dict[str, tuple[str, ...]] = {}   # from discovery's listing, or one GET per run
        self.throttle = ArmThrottle(sleep)

    def client(self, subscription: str) -> WebSiteManagementClient:
        """One client per subscription, shared by every instance and thread of the run."""
        with self._lock:
            if subscription not in self._clients:
                # base_url points ARM at sovereign clouds; the credential scope follows it.
                scope = self._endpoint.rstrip("/") + "/.default"
                self._clients[subscription] = WebSiteManagementClient(
                    self._credential, subscription, base_url=self._endpoint,
                    credential_scopes=[scope], per_call_policies=[self.throttle],
                    per_retry_policies=self._retry.sdk_deadline(),
                    transport=sdk_transport(self._retry, self._pool_size), **self._retry.sdk_kwargs())
            return self._clients[subscription]

    def list_settings(self, app: ResourceId) -> dict[str, str]:
        """POST config/appsettings/list (WebApps_ListApplicationSettings) through the client's pipeline, read
        as ARM's JSON: azure-mgmt-web's model of it cost more CPU than the request, once per instance."""
        what = f"listing the app settings of {app.site}"
        body = self._send("POST", f"{_path(app)}/config/appsettings/list?api-version={SITES_API}", what,
                          subscription=app.subscription, **READ)
        parts = str(body.get("id") or "").split("/")
        if "sites" in parts[:-1]:   # ARM's own spelling of the name, whatever the setting's casing
            self._names[app.key] = parts[parts.index("sites") + 1]
        settings = body.get("properties") or {}
        if not isinstance(settings, dict) or not all(isinstance(v, str) for v in settings.values()):
            raise UnexpectedAnswer(SYSTEM, f"{what}: `properties` is not an object of strings")
        return dict(settings)

    def reference_status(self, app: ResourceId, setting: str) -> ReferenceStatus:
        """How App Service resolved the Key Vault reference in `setting`, with the app's identity:
        `GET config/configreferences/appsettings/{setting}` (web__GetKeyVaultReferencesForAppSetting.json)."""
        try:
            found = self.client(app.subscription).web_apps.get_app_setting_key_vault_reference(
                app.resource_group, app.site, setting)
        except AzureError as error:
            raise service_error(SYSTEM, error, f"reading how {setting} of {app.site} resolves") from None
        props = found.properties
        status = props.status if props else None
        return ReferenceStatus(str(getattr(status, "value", status) or "unknown"),
                               props.details if props else None, props.active_version if props else None)

    def is_aggregator_site(self, app: ResourceId) -> bool:
        """One GET of the site: whether it is an Aggregator instance (tag or naming)."""
        return is_aggregator(self._site(app))

    def host_names(self, app: ResourceId) -> tuple[str, ...]:
        """The app's host names as ARM reports them (`defaultHostName`, `enabledHostNames`): never built
        from the site name, since apps made since late 2024 get a unique default host name."""
        if app.key not in self._hosts:
            self._hosts_from_listing(app.subscription)
        if app.key not in self._hosts:
            self.remember_hosts(app, self._site(app))
        return self._hosts[app.key]

    def _hosts_from_listing(self, subscription: str) -> None:
        """Many sites named in one subscription: their host names from the listing of its sites
        (WebApps_List: the same Site resources a GET returns) instead of a GET each. Read once per run,
        and at most half as many pages as the GETs it replaces, so a subscription full of other sites
        costs little; a site it did not reach is read on its own."""
        named = self._named.get(subscription.lower(), set())
        if len(named) < self.HOSTS_FROM_LISTING:
            return
        with self._lock:
            first = subscription.lower() not in self._listed
            lock = self._listed.setdefault(subscription.lower(), threading.Lock())
            if first:
                lock.acquire()      # the others wait for this listing instead of each GETting their site
        if not first:
            with lock:
                return
        try:
            budget = max(1, len(named) // 2)
            for sites in self.pages(_sites(ResourceId(subscription)), f"listing the sites of /subscriptions/"
                                    f"{subscription}", subscription):
                for site in sites:
                    if str(site.get("id") or "").lower() in named:
                        self._remember(str(site["id"]).lower(), site)
                budget -= 1
                if not budget or named <= self._hosts.keys():
                    break
        except UnexpectedAnswer as error:   # each site is read on its own; a person should know, though
            log.warning("the sites of /subscriptions/%s: %s", subscription, error)
        except ServiceError as error:   # not a verdict: each site is read on its own
            log.info("the sites of /subscriptions/%s could not be listed: %s", subscription, error)
        finally:
            lock.release()

    def _site(self, app: ResourceId) -> dict:
        """WebApps_Get as ARM's JSON: the few fields read here, without building the SDK's whole Site model."""
        return self.get(f"{_path(app)}?api-version={SITES_API}", f"reading the site {app.site}", app.subscription)

    def remember_hosts(self, app: ResourceId, site: dict) -> None:
        self._remember(app.key, site)

    def _remember(self, key: str, site: dict) -> None:
        props = site.get("properties")
        props = props if isinstance(props, dict) else {}
        enabled = props.get("enabledHostNames")
        hosts = [props.get("defaultHostName"), *(enabled if isinstance(enabled, list) else ())]
        self._hosts[key] = tuple(dict.fromkeys(h.lower() for h in hosts if h and isinstance(h, str)))

    def site_name(self, app: ResourceId) -> str:
        """The site's name as ARM spells it (known once its settings were listed)."""
        return self._names.get(app.key, app.site)

    def replace_settings(self, app: ResourceId, settings: dict[str, str]) -> dict[str, str]:
        """Replace ALL settings (ARM semantics); callers do read-merge-replace."""
        try:
            result = self.client(app.subscription).web_apps.update_application_settings(
                app.resource_group, app.site, StringDictionary(properties=dict(settings)), **WRITE)
        except AzureError as error:
            raise service_error(SYSTEM, error, f"replacing the app settings of {app.site}") from None
        return dict(result.properties or {})

    def restart(self, app: ResourceId) -> None:
        try:
            self.client(app.subscription).web_apps.restart(app.resource_group, app.site,
                                                           soft_restart=False, synchronous=False)
        except AzureError as error:
            raise service_error(SYSTEM, error, f"restarting {app.site}") from None

    def get(self, path: str, what: str, subscription: str | None = None) -> dict:
        """A plain ARM GET (`path` from /subscriptions/...) through the client's pipeline: the same
        credential, retries and throttle, for the APIs azure-mgmt-web does not cover."""
        return self._send("GET", path, what, subscription=subscription)

    def pages(self, first: str, what: str, subscription: str | None = None) -> Iterator[list[dict]]:
        """The `value` of every page of an ARM listing, from `first` (a path): each nextLink followed only
        to ARM's own endpoint, never twice, at most 1,000 pages (core/paging.py). The pipeline would send
        the managed identity's token to any host a nextLink names."""
        pages = Pages(SYSTEM, what, self._endpoint.rstrip("/") + first)
        page: str | None = first
        while page:
            body = self._send("GET", page, what, subscription=subscription)
            items = body.get("value", [])
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise UnexpectedAnswer(SYSTEM, f"{what}: page {pages.read}'s `value` is not a list of objects")
            yield items
            page = pages.follow(body.get("nextLink"))

    def _send(self, method: str, path: str, what: str, *, subscription: str | None = None, **options) -> dict:
        """One request through the subscription's client (any client when the path names none); the
        answer must be a JSON object."""
        from azure.core.rest import HttpRequest

        if subscription is None:
            subscription = path.split("/subscriptions/", 1)[1].split("/", 1)[0] if "/subscriptions/" in path else ""
        try:
            response = self.client(subscription).send_request(
                HttpRequest(method, path, headers={"Accept": "application/json"}), **options)
            response.raise_for_status()
            body = response.json()
        except AzureError as error:
            raise service_error(SYSTEM, error, what) from None
        except ValueError:
            raise UnexpectedAnswer(SYSTEM, f"{what}: HTTP {response.status_code} with a body that is not JSON",
                                   status=response.status_code) from None
        if not isinstance(body, dict):
            raise UnexpectedAnswer(SYSTEM, f"{what}: the answer is a JSON {type(body).__name__}, not an object",
                                   status=response.status_code)
        return body

    def permissions(self, scope: str) -> list[dict]:
        """What the caller may do at `scope` (Permissions_ListForResource), every page."""
        first = f"{scope}/providers/Microsoft.Authorization/permissions?api-version={PERMISSIONS_API}"
        return [item for page in self.pages(first, f"reading the permissions at {scope}") for item in page]

    def find(self, subscription: str, resource_type: str, name: str) -> list[str]:
        """IDs of the resources of that type and name that the caller can see (Resources_List, filtered)."""
        query = urlencode({"$filter": f"resourceType eq '{resource_type}' and name eq '{name}'",
                           "api-version": RESOURCES_API}, quote_via=quote)
        found = self.pages(f"/subscriptions/{subscription}/resources?{query}", f"looking for {resource_type} {name}",
                           subscription)
        return [item["id"] for page in found for item in page if isinstance(item.get("id"), str) and item["id"]]

    def vault_properties(self, vault_id: str) -> dict:
        """A vault's ARM properties (Vaults_Get): enableRbacAuthorization, enablePurgeProtection, ..."""
        body = self.get(f"{vault_id}?api-version={KEYVAULT_API}", "reading the vault's properties")
        props = body.get("properties") or {}
        if not isinstance(props, dict):
            raise UnexpectedAnswer(SYSTEM, "reading the vault's properties: `properties` is not an object")
        return props

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def is_aggregator(site: dict) -> bool:
    """aggregator-cli tags what it creates with `aggregatorVersion`; its naming is `<name>aggregator`
    in `aggregator-<name>` (built-in naming template). `site`: a Microsoft.Web/sites resource as ARM's JSON."""
    if "functionapp" not in _text(site.get("kind")).lower():
        return False
    tags = site.get("tags")
    if isinstance(tags, dict) and any(str(key).lower() == "aggregatorversion" for key in tags):
        return True
    props = site.get("properties")
    group = _text(props.get("resourceGroup") if isinstance(props, dict) else None) or _group_of(site.get("id")) or ""
    return _text(site.get("name")).lower().endswith("aggregator") and group.lower().startswith("aggregator-")


# ARM resource and group names never hold these (Microsoft Learn, "Naming rules and restrictions for Azure
# resources"); one that did would make the site's path point at another resource.
_NAME = re.compile(r"[^/?#%\\\s]+")


def _text(value) -> str:
    """A field that should be a string; anything else reads as empty (an answer of another shape)."""
    return value if isinstance(value, str) else ""


def _group_of(resource_id) -> str | None:
    parts = _text(resource_id).split("/")
    lowered = [p.lower() for p in parts]
    return parts[lowered.index("resourcegroups") + 1] if "resourcegroups" in lowered[:-1] else None


def _path(scope: ResourceId) -> str:
    """The ARM path of a subscription, group or site, each name quoted as the SDK quotes it."""
    return quote(str(scope), safe="/")


def _sites(scope: ResourceId) -> str:
    """WebApps_List (a subscription) or WebApps_ListByResourceGroup, first page."""
    return f"{_path(scope)}/providers/Microsoft.Web/sites?api-version={SITES_API}"


def discover_pages(apps: AggregatorApps, scope: ResourceId) -> Iterator[list[ResourceId]]:
    """The Aggregator Function Apps in a subscription or resource group, a page at a time as ARM sends
    them (WebApps_List, WebApps_ListByResourceGroup; nextLinks followed as `AggregatorApps.pages` allows),
    with their host names remembered: no GET per instance later. The pages are read as JSON: the SDK's
    Site model of every site in a subscription costs far more than the few fields read here. A site whose
    name or group is not a resource name fails the discovery (UnexpectedAnswer), never the run."""
    what = f"listing the Function Apps of {scope}"
    for sites in apps.pages(_sites(scope), what, scope.subscription):
        found = []
        for site in sites:
            if is_aggregator(site) and _text(site.get("name")):
                app = ResourceId(scope.subscription, _group_of(site.get("id")) or scope.resource_group, site["name"])
                if not all(_NAME.fullmatch(part or "-") for part in (app.resource_group, app.site)):
                    raise UnexpectedAnswer(SYSTEM, f"{what}: a site whose name or group is not a resource name")
                apps.remember_hosts(app, site)
                found.append(app)
        yield found


def discover(apps: AggregatorApps, scope: ResourceId) -> list[ResourceId]:
    """Every Aggregator Function App in a subscription or resource group (all pages followed)."""
    return [app for page in discover_pages(apps, scope) for app in page]

"""Azure Resource Manager: the Aggregator Function App's settings, read and replaced whole."""

from __future__ import annotations

import threading
import time

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.web import WebSiteManagementClient
from azure.mgmt.web.models import StringDictionary

from pat_watchdog.adapters.retry import RetryPolicy
from pat_watchdog.adapters.sdk_errors import service_error
from pat_watchdog.core.resource_ids import ResourceId


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
            self._sleep(pause)


class AggregatorApps:
    """`POST config/appsettings/list` and `PUT config/appsettings` through azure-mgmt-web."""

    def __init__(self, credential: TokenCredential, arm_endpoint: str, retry: RetryPolicy, *,
                 sleep=time.sleep):
        self._credential = credential
        self._endpoint = arm_endpoint
        self._retry = retry
        self._clients: dict[str, WebSiteManagementClient] = {}
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}
        self.throttle = ArmThrottle(sleep)

    def client(self, subscription: str) -> WebSiteManagementClient:
        """One client per subscription, shared by every instance and thread of the run."""
        with self._lock:
            if subscription not in self._clients:
                # base_url points ARM at sovereign clouds; the credential scope follows it.
                scope = self._endpoint.rstrip("/") + "/.default"
                self._clients[subscription] = WebSiteManagementClient(
                    self._credential, subscription, base_url=self._endpoint,
                    credential_scopes=[scope], per_call_policies=[self.throttle], **self._retry.sdk_kwargs())
            return self._clients[subscription]

    def list_settings(self, app: ResourceId) -> dict[str, str]:
        try:
            result = self.client(app.subscription).web_apps.list_application_settings(app.resource_group, app.site)
        except AzureError as error:
            raise service_error("Azure Resource Manager", error, f"listing the app settings of {app.site}") from None
        parts = (result.id or "").split("/")
        if "sites" in parts[:-1]:   # ARM's own spelling of the name, whatever the setting's casing
            self._names[app.key] = parts[parts.index("sites") + 1]
        return dict(result.properties or {})

    def is_aggregator_site(self, app: ResourceId) -> bool:
        """One GET of the site: whether it is an Aggregator instance (tag or naming)."""
        try:
            site = self.client(app.subscription).web_apps.get(app.resource_group, app.site)
        except AzureError as error:
            raise service_error("Azure Resource Manager", error, f"reading the site {app.site}") from None
        return is_aggregator(site)

    def site_name(self, app: ResourceId) -> str:
        """The site's name as ARM spells it (known once its settings were listed)."""
        return self._names.get(app.key, app.site)

    def replace_settings(self, app: ResourceId, settings: dict[str, str]) -> dict[str, str]:
        """Replace ALL settings (ARM semantics); callers do read-merge-replace."""
        try:
            result = self.client(app.subscription).web_apps.update_application_settings(
                app.resource_group, app.site, StringDictionary(properties=dict(settings)))
        except AzureError as error:
            raise service_error("Azure Resource Manager", error, f"replacing the app settings of {app.site}") from None
        return dict(result.properties or {})

    def restart(self, app: ResourceId) -> None:
        try:
            self.client(app.subscription).web_apps.restart(app.resource_group, app.site,
                                                           soft_restart=False, synchronous=False)
        except AzureError as error:
            raise service_error("Azure Resource Manager", error, f"restarting {app.site}") from None

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def is_aggregator(site) -> bool:
    """aggregator-cli tags what it creates with `aggregatorVersion`; its naming is `<name>aggregator`
    in `aggregator-<name>` (built-in naming template)."""
    if "functionapp" not in (site.kind or "").lower():
        return False
    if any(key.lower() == "aggregatorversion" for key in (site.tags or {})):
        return True
    group = (getattr(site, "resource_group", None) or _group_of(site.id) or "").lower()
    return site.name.lower().endswith("aggregator") and group.startswith("aggregator-")


def _group_of(resource_id: str | None) -> str | None:
    parts = (resource_id or "").split("/")
    lowered = [p.lower() for p in parts]
    return parts[lowered.index("resourcegroups") + 1] if "resourcegroups" in lowered else None


def discover(apps: AggregatorApps, scope: ResourceId) -> list[ResourceId]:
    """Every Aggregator Function App in a subscription or resource group (all pages followed)."""
    client = apps.client(scope.subscription)
    try:
        pages = client.web_apps.list_by_resource_group(scope.resource_group) if scope.resource_group \
            else client.web_apps.list()
        sites = [s for s in pages if is_aggregator(s)]
    except AzureError as error:
        raise service_error("Azure Resource Manager", error, f"listing the Function Apps of {scope}") from None
    return [ResourceId(scope.subscription, _group_of(s.id) or scope.resource_group, s.name) for s in sites]

"""JSON shapes of Microsoft.Web resources, after Microsoft's examples in tests/specs/."""

from __future__ import annotations

import hashlib
from typing import Any

# ARM answers with display names ("East US" in web__ListWebApps.json), not region codes.
REGION_NAMES = {
    "westeurope": "West Europe", "northeurope": "North Europe", "eastus": "East US",
    "eastus2": "East US 2", "westus": "West US", "westus2": "West US 2",
    "uksouth": "UK South", "swedencentral": "Sweden Central", "usgovvirginia": "USGov Virginia",
}


def display_location(location: str) -> str:
    """Region code -> ARM display name (unknown codes pass through)."""
    return REGION_NAMES.get(location.replace(" ", "").lower(), location)


def site_config(kind: str) -> dict[str, Any]:
    """siteConfig as the list/get calls return it (spec: web__ListWebApps.json)."""
    linux = "linux" in kind
    return {
        "acrUseManagedIdentityCreds": False, "alwaysOn": False, "appCommandLine": "",
        "autoHealEnabled": False, "azureStorageAccounts": {},
        "defaultDocuments": ["Default.htm", "Default.html", "index.html", "hostingstart.html"],
        "detailedErrorLoggingEnabled": False, "ftpsState": "FtpsOnly",
        "functionAppScaleLimit": 200, "functionsRuntimeScaleMonitoringEnabled": False,
        "http20Enabled": True, "httpLoggingEnabled": False,
        "linuxFxVersion": "DOTNET|8.0" if linux else "", "loadBalancing": "LeastRequests",
        "logsDirectorySizeLimit": 35, "managedPipelineMode": "Integrated", "minTlsVersion": "1.2",
        "minimumElasticInstanceCount": 0, "netFrameworkVersion": "v4.0" if linux else "v8.0",
        "nodeVersion": "", "numberOfWorkers": 1, "phpVersion": "", "powerShellVersion": "",
        "pythonVersion": "", "remoteDebuggingEnabled": False, "requestTracingEnabled": False,
        "scmMinTlsVersion": "1.2", "use32BitWorkerProcess": not linux,
        "virtualApplications": [{"physicalPath": "site\\wwwroot", "preloadEnabled": False,
                                 "virtualPath": "/"}],
        "vnetName": "", "vnetPrivatePortsCount": 0, "vnetRouteAllEnabled": False,
        "webSocketsEnabled": False,
    }


def host_names(name: str, location: str, form: str | None, salt: str) -> tuple[str, str]:
    """(default host, scm host) of a site.

    Classic: `<name>.azurewebsites.net` (web__ListWebApps.json). "unique": the unique default hostname
    App Service gives new apps, `<name>-<16-character hash>.<region>-01.azurewebsites.net` (Microsoft
    Learn, App Service regionalization note: "myapp-ds27dh7271aah175.westus-01.azurewebsites.net"),
    scm at `<name>-<hash>.scm.<region>-01.azurewebsites.net` (Azure/azure-functions-host#10090).
    Any other string is taken as the default host itself.
    """
    name = name.lower()
    if form is None:
        return f"{name}.azurewebsites.net", f"{name}.scm.azurewebsites.net"
    if form == "unique":
        digest = hashlib.sha256(salt.lower().encode()).digest()
        label = "".join("abcdefghijklmnopqrstuvwxyz0123456789"[b % 36] for b in digest[:16])
        region = location.replace(" ", "").lower()
        return (f"{name}-{label}.{region}-01.azurewebsites.net",
                f"{name}-{label}.scm.{region}-01.azurewebsites.net")
    host = form.lower()
    first, _, rest = host.partition(".")
    return host, f"{first}.scm.{rest}"


def site_properties(site: Any) -> dict[str, Any]:
    """properties of a Microsoft.Web/sites item (spec: web__ListWebApps.json)."""
    host, scm = site.default_host, site.scm_host
    return {
        "availabilityState": "Normal", "clientAffinityEnabled": False, "clientCertEnabled": False,
        "clientCertMode": "Required", "containerSize": 1536, "customDomainVerificationId":
        "7F3BB652450EF7AD0B6AA33064586E4A9CE823A46DF0B2EC6443A68086E84153",
        "dailyMemoryTimeQuota": 0, "defaultHostName": host, "enabled": True,
        "enabledHostNames": [host, scm],
        "hostNameSslStates": [{"name": host, "hostType": "Standard", "sslState": "Disabled"},
                              {"name": scm, "hostType": "Repository", "sslState": "Disabled"}],
        "hostNames": [host], "hostNamesDisabled": False, "httpsOnly": True, "hyperV": False,
        "isXenon": False, "keyVaultReferenceIdentity": "SystemAssigned",
        "lastModifiedTimeUtc": site.modified, "outboundIpAddresses": "20.50.2.10,20.50.2.11",
        "outboundVnetRouting": {"allTraffic": False, "applicationTraffic": False,
                                "backupRestoreTraffic": False, "contentShareTraffic": False,
                                "imagePullTraffic": False, "managedIdentityTraffic": False},
        "possibleOutboundIpAddresses": "20.50.2.10,20.50.2.11,20.50.2.12",
        "redundancyMode": "None", "repositorySiteName": site.name, "reserved": "linux" in site.kind,
        "resourceConfig": None, "resourceGroup": site.group, "scmSiteAlsoStopped": False,
        "serverFarmId": f"/subscriptions/{site.subscription}/resourceGroups/{site.group}"
                        f"/providers/Microsoft.Web/serverfarms/{site.name}-plan",
        "siteConfig": site_config(site.kind), "state": "Running", "storageAccountRequired": False,
        "usageState": "Normal", "workloadProfileName": None,
    }


def site_resource(site: Any) -> dict[str, Any]:
    """A Microsoft.Web/sites resource (spec: web__ListWebApps.json items, plus tags)."""
    return {
        "id": site.id, "name": site.name, "type": "Microsoft.Web/sites", "kind": site.kind,
        "location": display_location(site.location), "tags": dict(site.tags),
        "properties": site_properties(site),
    }


def appsettings_resource(site: Any) -> dict[str, Any]:
    """The config/appsettings resource (spec: web__ListAppSettings.json, web__UpdateAppSettings.json)."""
    return {
        "id": f"{site.id}/config/appsettings", "name": "appsettings",
        "type": "Microsoft.Web/sites/config", "kind": site.kind,
        "location": display_location(site.location), "properties": dict(site.settings),
    }

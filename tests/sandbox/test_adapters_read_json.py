"""The adapters read a few answers as the services' JSON instead of the SDKs' models (for CPU, at
thousands of instances): what they read must be what the SDK models say, over the same requests."""

from __future__ import annotations

from datetime import timedelta

from azure.keyvault.secrets import SecretClient
from azure.mgmt.web import WebSiteManagementClient

from pat_watchdog.adapters.arm import AggregatorApps, discover
from pat_watchdog.adapters.keyvault import Vault, _version
from pat_watchdog.adapters.retry import RetryPolicy
from pat_watchdog.core.resource_ids import ResourceId, parse_resource_id
from tests.sandbox.support import FAST, NOW, SUB

RETRY = RetryPolicy(attempts=2, backoff=0.01, backoff_max=0.01, total=5, read_timeout=3)


def test_key_vault_versions_read_as_json_are_the_sdk_properties(sb, cred):
    sb.vault.set_secret("kvjson", "staged", "a", tags={"authorizationId": "A1", "fingerprint": "f"},
                        expires_on=NOW + timedelta(days=30), not_before=NOW - timedelta(days=1))
    sb.vault.set_secret("kvjson", "staged", "b", enabled=False, created_on=NOW + timedelta(minutes=1))
    for i in range(5):
        sb.vault.set_secret("kvjson", "staged", f"c{i}", expires_on=NOW + timedelta(days=i),
                            created_on=NOW + timedelta(minutes=2 + i))
    sb.vault.page_size = 3
    try:
        ours = Vault(cred, sb.vault.url("kvjson"), RETRY).versions("staged")
        sdk = [_version(p) for p in SecretClient(sb.vault.url("kvjson"), cred, **FAST)
               .list_properties_of_secret_versions("staged")]
    finally:
        sb.vault.page_size = 25
    assert ours == sdk and len(ours) == 7
    assert {v.enabled for v in ours} == {True, False} and any(v.not_before for v in ours)
    assert Vault(cred, sb.vault.url("kvjson"), RETRY).versions("never-staged") == []


def test_app_settings_and_sites_read_as_json_are_the_sdk_models(sb, cred):
    app = parse_resource_id(sb.arm.add_site(SUB, "aggregator-j", "JsonAggregator",
                                            {"Aggregator_VstsToken": "x", "Other": "ü ; \" =", "Empty": ""},
                                            tags={"aggregatorVersion": "1.3.1"}, default_host="unique"))
    sb.arm.add_site(SUB, "aggregator-j", "plainsite", {}, tags={})
    sb.arm.assign_aggregator_role(f"/subscriptions/{SUB}/resourceGroups/aggregator-j")   # discovery's scope
    apps = AggregatorApps(cred, "https://management.azure.com", RETRY)
    web = WebSiteManagementClient(cred, SUB, base_url="https://management.azure.com", **FAST)
    assert apps.list_settings(app) == dict(web.web_apps.list_application_settings(app.resource_group,
                                                                                   app.site).properties)
    assert apps.site_name(ResourceId(SUB, "aggregator-j", "jsonaggregator")) == "JsonAggregator"
    site = web.web_apps.get(app.resource_group, app.site)
    assert apps.host_names(app) == tuple(dict.fromkeys(
        h.lower() for h in [site.default_host_name, *site.enabled_host_names]))
    found = discover(apps, ResourceId(SUB, "aggregator-j"))
    assert [a.site for a in found] == ["JsonAggregator"] and apps.is_aggregator_site(app)
    assert not apps.is_aggregator_site(ResourceId(SUB, "aggregator-j", "plainsite"))
    apps.close()

"""The doctor's stand-ins against Microsoft's examples and the real SDK clients: ARM's permissions API,
the vault's ARM resource, the resource listing, Table storage with the identity, and the token's oid."""

from __future__ import annotations

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import TableClient

from pat_watchdog.adapters.arm import AggregatorApps
from pat_watchdog.adapters.retry import RetryPolicy
from pat_watchdog.core import permissions as P
from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.fixes import principal_id
from tests.sandbox.support import FAST, SUB, bearer, spec_body

ARM = "https://management.azure.com"
RETRY = RetryPolicy(attempts=1, total=5, read_timeout=5)


def _permissions(sb, cred, scope: str) -> dict:
    url = f"{ARM}{scope}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01"
    response = requests.get(url, headers=bearer(cred, ARM), timeout=10)
    assert response.status_code == 200
    return response.json()


def test_permissions_have_the_shape_of_microsofts_examples(sb, cred):
    app = sb.arm.add_site(SUB, "aggregator-p", "paggregator", {})
    for_resource = _permissions(sb, cred, app)
    example = spec_body("authorization__GetResourcePermissions.json")
    assert set(example) <= set(for_resource)
    every_property = set(spec_body("authorization__GetPermissions.json")["value"][0])
    for item in for_resource["value"]:
        assert set(example["value"][0]) <= set(item) and set(item) == every_property
    assert any("Microsoft.Web/sites/config/write" in item["actions"] for item in for_resource["value"])


def test_grants_inherit_downwards_and_revoke_per_action(sb, cred):
    app = sb.arm.add_site(SUB, "aggregator-q", "qaggregator", {})
    group = app.split("/providers/")[0]
    assert _permissions(sb, cred, group)["value"] == []          # a grant on the site is not one on its group
    sb.arm.grant(group, actions=["Microsoft.Web/sites/*"], not_actions=["Microsoft.Web/sites/config/write"])
    sb.arm.revoke(app, actions=["Microsoft.Web/sites/config/write", "Microsoft.Web/sites/restart/action"])
    held = AggregatorApps(cred, ARM, RETRY).permissions(app)      # the product's adapter, through azure-mgmt-web
    assert len(held) == 2
    assert not P.allows(held, "Microsoft.Web/sites/config/write")           # the group's role excludes it
    assert P.allows(held, "microsoft.web/SITES/restart/action")             # ... and covers this one
    with pytest.raises(ValueError, match="no grant"):
        sb.arm.revoke(app, actions=["Microsoft.Web/sites/config/write"])    # gone already


@pytest.mark.parametrize("pattern, action, expected", [
    ("Microsoft.Web/sites/*", "Microsoft.Web/sites/config/write", True),
    ("Microsoft.Web/*/read", "Microsoft.Web/sites/config/read", True),
    ("*", "Microsoft.KeyVault/vaults/read", True),
    ("Microsoft.Web/sites/read", "Microsoft.Web/sites/config/read", False),
    ("Microsoft.Web/sites/*/action", "Microsoft.Web/sites/config/write", False),
    ("microsoft.keyvault/vaults/secrets/*", "Microsoft.KeyVault/vaults/secrets/getSecret/action", True),
])
def test_the_sandbox_and_the_doctor_read_wildcards_alike(sb, pattern, action, expected):
    scope = f"/subscriptions/{SUB}/resourceGroups/wildcards-{abs(hash((pattern, action)))}"
    sb.arm.grant(scope, actions=[pattern])
    assert sb.arm.authorization.allows(scope, action) is expected
    assert P.allows(sb.arm.authorization.permissions(scope), action) is expected


def test_the_vault_resource_has_the_example_shape_and_needs_read(sb, cred):
    vault_id = sb.arm.add_vault(SUB, "rg-vaults", "shape-kv")
    apps = AggregatorApps(cred, ARM, RETRY)
    with pytest.raises(ServiceError) as denied:
        apps.vault_properties(vault_id)
    assert denied.value.status == 403
    assert apps.find(SUB, "Microsoft.KeyVault/vaults", "shape-kv") == []      # invisible without read
    sb.arm.grant(vault_id, actions=["Microsoft.KeyVault/vaults/read"])
    assert apps.find(SUB, "Microsoft.KeyVault/vaults", "SHAPE-kv") == [vault_id]
    url = f"{ARM}{vault_id}?api-version=2023-07-01"
    body = requests.get(url, headers=bearer(cred, ARM), timeout=10).json()
    example = spec_body("keyvault__getVault.json")
    assert set(example) <= set(body)
    assert set(example["properties"]) - {"hsmPoolResourceId"} <= set(body["properties"])
    assert body["properties"]["enableRbacAuthorization"] is True and body["properties"]["enablePurgeProtection"]
    sb.arm.set_vault("shape-kv", rbac=False, purge_protection=False)
    props = apps.vault_properties(vault_id)
    assert props["enableRbacAuthorization"] is False and "enablePurgeProtection" not in props


def test_the_resource_listing_filters_by_type_and_name(sb, cred):
    app = sb.arm.add_site(SUB, "aggregator-l", "laggregator", {})
    apps = AggregatorApps(cred, ARM, RETRY)
    assert apps.find(SUB, "Microsoft.Web/sites", "laggregator") == [app]
    assert apps.find(SUB, "Microsoft.KeyVault/vaults", "laggregator") == []
    url = f"{ARM}/subscriptions/{SUB}/resources?$filter=location eq 'x'&api-version=2021-04-01"
    assert requests.get(url, headers=bearer(cred, ARM), timeout=10).status_code == 400


def test_the_identitys_tokens_name_its_object_id(sb, cred):
    assert principal_id(cred.get_token(ARM + "/.default").token) == sb.identity.object_id
    assert principal_id("opaque") is None and principal_id("a.b.c") is None


def test_table_storage_with_the_identity_and_its_data_roles(sb, cred):
    account = sb.arm.add_storage_account(SUB, "rg-storage", "stfidelity")
    client = TableClient("https://stfidelity.table.core.windows.net", "ledger", credential=cred, **FAST)
    with pytest.raises(ResourceNotFoundError):
        list(client.list_entities())
    client.create_table()
    client.create_entity({"PartitionKey": "p", "RowKey": "r", "n": 1})
    assert [dict(e) for e in client.list_entities()][0]["n"] == 1
    client.delete_entity("p", "r")
    assert sb.tables.rows("stfidelity", "ledger") == []
    sb.arm.revoke(account, data_actions=["Microsoft.Storage/storageAccounts/tableServices/tables/entities/*"])
    with pytest.raises(HttpResponseError) as denied:
        client.create_entity({"PartitionKey": "p", "RowKey": "s"})
    assert denied.value.status_code == 403 and "AuthorizationPermissionMismatch" in str(denied.value)

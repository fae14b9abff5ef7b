"""The sandbox authorizes as ARM and Key Vault do: the action derived from the request, refused with the
services' own 403 shapes through the real SDK clients, and the roles it grants are infra/'s."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.keyvault.secrets import SecretClient
from azure.mgmt.web import WebSiteManagementClient

from pat_watchdog.sandbox.arm_authorization import DEFAULT_ROLES, arm_action, key_vault_action
from tests.deployed_roles import deployed_roles
from tests.sandbox.support import FAST, SUB

SITE = f"/subscriptions/{SUB}/resourceGroups/g/providers/Microsoft.Web/sites/n"


@pytest.mark.parametrize("method, path, action, scope", [
    ("GET", SITE, "Microsoft.Web/sites/read", SITE),
    ("POST", f"{SITE}/config/appsettings/list", "Microsoft.Web/sites/config/list/action", f"{SITE}/config/appsettings"),
    ("PUT", f"{SITE}/config/appsettings", "Microsoft.Web/sites/config/write", f"{SITE}/config/appsettings"),
    ("GET", f"{SITE}/config/configreferences/appsettings/Aggregator_VstsToken",
     "Microsoft.Web/sites/config/appsettings/read", f"{SITE}/config/configreferences/appsettings/Aggregator_VstsToken"),
    ("GET", f"{SITE}/config/configreferences/appsettings", "Microsoft.Web/sites/config/appsettings/read",
     f"{SITE}/config/configreferences"),
    ("POST", f"{SITE}/restart", "Microsoft.Web/sites/restart/action", SITE),
    ("DELETE", SITE, "Microsoft.Web/sites/delete", SITE),
    ("GET", f"/subscriptions/{SUB}/providers/Microsoft.Web/sites", "Microsoft.Web/sites/read", f"/subscriptions/{SUB}"),
    ("GET", f"/subscriptions/{SUB}/resourceGroups/g/providers/Microsoft.Web/sites", "Microsoft.Web/sites/read",
     f"/subscriptions/{SUB}/resourceGroups/g"),
    ("GET", f"/subscriptions/{SUB}/resourceGroups/g/providers/Microsoft.KeyVault/vaults/kv",
     "Microsoft.KeyVault/vaults/read", f"/subscriptions/{SUB}/resourceGroups/g/providers/Microsoft.KeyVault/vaults/kv"),
])
def test_the_action_is_derived_from_the_request_as_arm_derives_it(method, path, action, scope):
    assert arm_action(method, path) == (action, scope)


def test_the_callers_own_permissions_and_the_resource_listing_need_no_action():
    assert arm_action("GET", f"{SITE}/providers/Microsoft.Authorization/permissions") is None
    assert arm_action("GET", f"/subscriptions/{SUB}/resources") is None


@pytest.mark.parametrize("method, secret, version, action", [
    ("GET", None, None, "readMetadata"), ("GET", "s", "versions", "readMetadata"), ("GET", "s", "", "getSecret"),
    ("GET", "s", "0123", "getSecret"), ("PUT", "s", None, "setSecret"), ("PATCH", "s", "0123", "update"),
])
def test_key_vault_data_actions(method, secret, version, action):
    assert key_vault_action(method, secret, version) == f"Microsoft.KeyVault/vaults/secrets/{action}/action"


def test_arm_refuses_an_action_no_grant_covers_with_its_authorization_failed_shape(sb, cred):
    app = sb.arm.add_site(SUB, "aggregator-z", "zaggregator", {"Aggregator_VstsToken": "x"}, token_mode="reference")
    web = WebSiteManagementClient(cred, SUB, base_url="https://management.azure.com", **FAST)
    assert web.web_apps.list_application_settings("aggregator-z", "zaggregator").properties
    with pytest.raises(HttpResponseError) as denied:
        web.web_apps.update_application_settings("aggregator-z", "zaggregator", {"properties": {}})
    assert denied.value.status_code == 403 and denied.value.error.code == "AuthorizationFailed"
    assert denied.value.error.message == (
        f"The client '{sb.identity.object_id}' with object id '{sb.identity.object_id}' does not have authorization "
        f"to perform action 'Microsoft.Web/sites/config/write' over scope '{app}/config/appsettings' or the scope is "
        "invalid. If access was recently granted, please refresh your credentials.")
    assert sb.arm.settings(app) == {"Aggregator_VstsToken": "x"} and sb.arm.writes == []


def test_key_vault_refuses_a_data_action_no_grant_holds_with_forbidden_by_rbac(sb, cred):
    vault_id = sb.arm.add_vault(SUB, "rg-kv", "kvrbac")
    sb.vault.set_secret("kvrbac", "s", "value")
    client = SecretClient(sb.vault.url("kvrbac"), cred, **FAST)
    assert client.get_secret("s").value == "value"
    sb.arm.revoke(vault_id, data_actions=["Microsoft.KeyVault/vaults/secrets/getSecret/action"])
    with pytest.raises(HttpResponseError) as denied:
        client.get_secret("s")
    error = denied.value.response.json()["error"]
    assert denied.value.status_code == 403 and error["code"] == "Forbidden"
    assert error["innererror"] == {"code": "ForbiddenByRbac"}
    lines = error["message"].split("\r\n")
    assert lines[0] == "Caller is not authorized to perform action on resource."
    assert "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'" in lines
    assert f"Resource: '{vault_id.lower()}/secrets/s'" in lines and "Vault: kvrbac;location=westeurope" in lines
    assert [p.name for p in client.list_properties_of_secrets()] == ["s"]    # readMetadata is still held


def test_a_grant_on_one_secret_covers_that_secret_only(sb, cred):
    vault_id = sb.arm.add_vault(SUB, "rg-kv", "kvsecret")
    sb.vault.set_secret("kvsecret", "mine", "1")
    sb.vault.set_secret("kvsecret", "other", "2")
    sb.arm.revoke(vault_id, data_actions=["Microsoft.KeyVault/vaults/secrets/getSecret/action"])
    sb.arm.grant(f"{vault_id}/secrets/mine", data_actions=["Microsoft.KeyVault/vaults/secrets/getSecret/action"])
    client = SecretClient(sb.vault.url("kvsecret"), cred, **FAST)
    assert client.get_secret("mine").value == "1"
    with pytest.raises(HttpResponseError, match="ForbiddenByRbac|not authorized"):
        client.get_secret("other")


def test_a_vault_arm_does_not_know_holds_no_grant(sb, cred):
    client = SecretClient(sb.vault.url("kvnowhere"), cred, **FAST)
    with pytest.raises(HttpResponseError) as denied:
        client.set_secret("s", "v")
    assert denied.value.status_code == 403 and "Assignment: (not found)" in denied.value.message


def test_the_sandboxs_own_roles_are_the_deployed_ones():
    # The demo runs on DEFAULT_ROLES; the tests on infra/'s, read by the Bicep parser.
    assert DEFAULT_ROLES == deployed_roles()

"""What decides whether Aggregator's rules run, in the sandbox, against Microsoft's shapes.

Key Vault references as App Service resolves them, the apps' host names, service hook subscriptions,
the Project security namespace with its permission checks, and the PAT format.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import unquote

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.web import WebSiteManagementClient
from azure.mgmt.web.models import ResolveStatus

from pat_watchdog.sandbox import pat_format
from pat_watchdog.sandbox.arm_references import STATUSES as RESOLVE_STATUSES
from pat_watchdog.sandbox.devops_hooks import STATUSES as SUBSCRIPTION_STATUSES
from pat_watchdog.sandbox.devops_security import PROJECT_NAMESPACE, project_token
from pat_watchdog.sandbox.seed import World
from tests.leaks import assert_no_leak
from tests.sandbox.support import FAST, NOW, SUB, SUPPRESS, basic, bearer, spec, spec_body

ARM = "https://management.azure.com"
USER = "bb5bb6c8-ef0a-400f-8987-92b3674d2043"
PROJECT = "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c"
OTHER_PROJECT = "eb6e4656-77fc-42a1-9181-4c6d8e9da5d1"
PROPERTIES = {"reference", "status", "vaultName", "secretName", "secretVersion", "identityType", "details",
              "source", "activeVersion"}  # ApiKVReferenceProperties


def web(cred, subscription: str = SUB) -> WebSiteManagementClient:
    return WebSiteManagementClient(cred, subscription, base_url=ARM, **FAST)


def ref(vault: str, secret: str, version: str = "") -> str:
    return f"@Microsoft.KeyVault(SecretUri=https://{vault}.vault.azure.net/secrets/{secret}/{version})"


# -- ARM: Key Vault references ----------------------------------------------------------------

def test_key_vault_references_answer_the_sdk_in_the_spec_shape(sb, cred):
    version = sb.vault.set_secret("kvrefs", "aggregator-pat", "v1")
    app = sb.arm.add_site(SUB, "aggregator-r", "raggregator", {
        "Plain": "not a reference", "Aggregator_VstsToken": ref("kvrefs", "aggregator-pat"),
        "Pinned": "@Microsoft.KeyVault(VaultName=kvrefs;SecretName=aggregator-pat;SecretVersion=abc123)",
        "Broken": "@Microsoft.KeyVault(SecretUri=not-a-uri)"})
    client = web(cred)
    one = client.web_apps.get_app_setting_key_vault_reference("aggregator-r", "raggregator", "Aggregator_VstsToken")
    assert one.status == ResolveStatus.RESOLVED and one.details == "Reference has been successfully resolved."
    assert (one.vault_name, one.secret_name, one.secret_version) == ("kvrefs", "aggregator-pat", None)
    assert one.active_version == version and one.source == "KeyVault" and one.identity_type.type == "SystemAssigned"
    assert one.reference == ref("kvrefs", "aggregator-pat")
    listed = {r.id.rsplit("/", 1)[1]: r for r in
              client.web_apps.get_app_settings_key_vault_references("aggregator-r", "raggregator")}
    assert set(listed) == {"Aggregator_VstsToken", "Pinned", "Broken"}  # no entry for a plain value
    assert listed["Pinned"].active_version == "abc123" and listed["Broken"].status == ResolveStatus.INVALID_SYNTAX
    with pytest.raises(ResourceNotFoundError) as plain:
        client.web_apps.get_app_setting_key_vault_reference("aggregator-r", "raggregator", "Plain")
    assert plain.value.error.code == "NotFound"
    with pytest.raises(ResourceNotFoundError):
        client.web_apps.get_app_setting_key_vault_reference("aggregator-r", "raggregator", "Missing")

    url = f"{ARM}{app}/config/configreferences/appsettings"
    raw = requests.get(url + "/Aggregator_VstsToken?api-version=2025-05-01", headers=bearer(cred, ARM)).json()
    example = spec_body("web__GetKeyVaultReferencesForAppSetting.json")
    assert set(raw) == set(example)
    assert set(example["properties"]) <= set(raw["properties"]) == PROPERTIES
    assert raw["id"] == f"{app}/config/configreferences/appsettings/Aggregator_VstsToken"
    listing = requests.get(url + "?api-version=2025-05-01", headers=bearer(cred, ARM)).json()
    examples = spec_body("web__GetKeyVaultReferencesForAppSettings.json")
    assert set(listing) == set(examples)
    assert all(set(item) == set(examples["value"][0]) for item in listing["value"])


def test_every_documented_resolve_status_can_be_forced(sb, cred):
    sb.vault.set_secret("kvforce", "pat", "v")
    app = sb.arm.add_site(SUB, "aggregator-f", "faggregator", {"T": ref("kvforce", "pat")})
    client = web(cred)
    assert set(RESOLVE_STATUSES) == {s.value for s in ResolveStatus}  # the spec's enum, as the SDK has it
    for status in RESOLVE_STATUSES:
        sb.arm.set_reference_status(app, "T", status)
        got = client.web_apps.get_app_setting_key_vault_reference("aggregator-f", "faggregator", "T")
        assert got.status == status and got.details
        assert (got.active_version is not None) == (status == "Resolved")
    sb.arm.set_reference_status(app, "T", "AccessToKeyVaultDenied", details="Forbidden by the vault's firewall.")
    got = client.web_apps.get_app_setting_key_vault_reference("aggregator-f", "faggregator", "t")
    assert got.status == "AccessToKeyVaultDenied" and got.details == "Forbidden by the vault's firewall."
    sb.arm.set_reference_status(app, "T", "Resolved")
    assert client.web_apps.get_app_setting_key_vault_reference("aggregator-f", "faggregator", "T").status == "Resolved"
    with pytest.raises(ValueError):
        sb.arm.set_reference_status(app, "T", "Forbidden")


def test_a_versionless_reference_moves_to_a_new_version_on_restart_or_after_a_day(sb, cred):
    first = sb.vault.set_secret("kvrotate", "pat", "v1")
    sb.arm.add_site(SUB, "aggregator-v", "vaggregator", {"T": ref("kvrotate", "pat")})
    client = web(cred)

    def active() -> str:
        return client.web_apps.get_app_setting_key_vault_reference("aggregator-v", "vaggregator", "T").active_version

    assert active() == first
    second = sb.vault.set_secret("kvrotate", "pat", "v2")
    assert active() == first  # App Service keeps what it fetched
    client.web_apps.restart("aggregator-v", "vaggregator")
    assert active() == second
    third = sb.vault.set_secret("kvrotate", "pat", "v3")
    sb.clock = lambda: NOW + timedelta(hours=25)
    assert active() == third
    fourth = sb.vault.set_secret("kvrotate", "pat", "v4")
    settings = client.web_apps.list_application_settings("aggregator-v", "vaggregator")
    client.web_apps.update_application_settings("aggregator-v", "vaggregator", settings)  # restarts the app
    assert active() == fourth


# -- ARM: host names ----------------------------------------------------------------------------

def test_sites_report_classic_and_unique_default_host_names(sb, cred):
    classic = sb.arm.add_site("sub-hosts", "aggregator-h", "classicaggregator", {})
    unique = sb.arm.add_site("sub-hosts", "aggregator-h", "uniqueaggregator", {}, default_host="unique",
                             location="westeurope")
    custom = sb.arm.add_site("sub-hosts", "aggregator-h", "customaggregator", {},
                             default_host="customaggregator-a1b2c3d4e5f6a7b8.eastus-01.azurewebsites.net")
    assert sb.arm.host_names(classic) == ["classicaggregator.azurewebsites.net",
                                          "classicaggregator.scm.azurewebsites.net"]
    host, scm = sb.arm.host_names(unique)
    assert re.fullmatch(r"uniqueaggregator-[a-z0-9]{16}\.westeurope-01\.azurewebsites\.net", host)
    assert scm == host.replace(".westeurope-01.", ".scm.westeurope-01.") and sb.arm.default_host(unique) == host
    assert sb.arm.host_names(custom)[1] == "customaggregator-a1b2c3d4e5f6a7b8.scm.eastus-01.azurewebsites.net"
    client = web(cred, "sub-hosts")
    sb.arm.assign_aggregator_role("/subscriptions/sub-hosts")
    site = client.web_apps.get("aggregator-h", "uniqueaggregator")
    assert site.default_host_name == host and site.enabled_host_names == [host, scm]
    assert site.host_names == [host] and [s.name for s in site.host_name_ssl_states] == [host, scm]
    assert {s.name: s.default_host_name for s in client.web_apps.list()} == {
        "classicaggregator": "classicaggregator.azurewebsites.net", "uniqueaggregator": host,
        "customaggregator": "customaggregator-a1b2c3d4e5f6a7b8.eastus-01.azurewebsites.net"}
    raw = requests.get(f"{ARM}{unique}?api-version=2025-05-01", headers=bearer(cred, ARM)).json()
    example = spec_body("web__ListWebApps.json")["value"][0]
    assert set(raw) == set(example) | {"tags"} and set(raw["properties"]) == set(example["properties"])


# -- Azure DevOps: service hook subscriptions ---------------------------------------------------

def _hooks(sb) -> dict:
    """An organization with a full-scope, a work, a hooks-read, a hooks-write and an identity-only PAT."""
    org = "hookorg"
    tokens = {}
    for name, scope in (("full", "app_token"), ("work", "vso.work_full vso.identity"), ("read", "vso.hooks"),
                        ("write", "vso.hooks_write"), ("narrow", "vso.identity")):
        tokens[name] = f"{name}-{org}"
        sb.devops.add_pat(org, tokens[name], user_id=USER, valid_to=NOW + timedelta(days=30), scope=scope)
    url = "https://hookaggregator-0123456789abcdef.westeurope-01.azurewebsites.net/api/"
    ids = {"ok": sb.devops.add_subscription(org, url=url + "ok", project_id=PROJECT),
           "dead": sb.devops.add_subscription(org, url=url + "dead", project_id=PROJECT, event_type="workitem.created",
                                              status="disabledBySystem"),
           "auth": sb.devops.add_subscription(org, url=url + "auth", project_id=OTHER_PROJECT,
                                              consumer_inputs={"basicAuthUsername": "agg",
                                                               "basicAuthPassword": "s3cret"})}
    return {"org": org, "base": sb.devops.org_url(org), "tokens": tokens, "ids": ids}


def _get(world: dict, path: str, token: str = "full") -> requests.Response:
    return requests.get(f"{world['base']}/_apis/hooks/subscriptions{path}?api-version=7.1",
                        headers={**basic(world["tokens"][token]), **SUPPRESS})


def _put(world: dict, sub_id: str, body, token: str = "full") -> requests.Response:
    return requests.put(f"{world['base']}/_apis/hooks/subscriptions/{sub_id}?api-version=7.1",
                        headers={**basic(world["tokens"][token]), **SUPPRESS}, json=body)


def test_subscriptions_list_and_get_in_the_spec_shape(sb):
    world = _hooks(sb)
    listed = _get(world, "")
    assert listed.status_code == 200
    body, example = listed.json(), spec_body("devops__ListSubscriptions.json")
    assert set(body) == set(example) and body["count"] == len(body["value"]) == 3
    example_keys = set().union(*(set(item) for item in example["value"]))
    assert all(set(item) == example_keys for item in body["value"])
    by_id = {item["id"]: item for item in body["value"]}
    ok, dead = by_id[world["ids"]["ok"]], by_id[world["ids"]["dead"]]
    updated = next(i for i in example["value"] if i["eventType"] == "workitem.updated")
    assert set(ok["publisherInputs"]) == set(updated["publisherInputs"])
    assert (ok["status"], ok["probationRetries"], dead["status"]) == ("enabled", 0, "disabledBySystem")
    assert ok["consumerInputs"] == {"url": "https://hookaggregator-0123456789abcdef.westeurope-01.azurewebsites.net/api/ok"}
    assert ok["publisherInputs"]["projectId"] == PROJECT and ok["eventType"] == "workitem.updated"
    assert (ok["publisherId"], ok["consumerId"], ok["consumerActionId"]) == ("tfs", "webHooks", "httpRequest")
    assert ok["url"] == f"{world['base']}/_apis/hooks/subscriptions/{ok['id']}"
    assert ok["actionDescription"] == "To host hookaggregator-0123456789abcdef.westeurope-01.azurewebsites.net"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z", ok["createdDate"])
    assert by_id[world["ids"]["auth"]]["consumerInputs"]["basicAuthPassword"] == "********"
    one = _get(world, f"/{world['ids']['ok']}")
    assert one.status_code == 200 and one.json() == ok
    assert set(spec_body("devops__GetSubscription.json")) <= set(one.json())
    only_created = requests.get(f"{world['base']}/_apis/hooks/subscriptions",
                                params={"eventType": "workitem.created", "api-version": "7.1"},
                                headers={**basic(world["tokens"]["full"]), **SUPPRESS}).json()
    assert [i["id"] for i in only_created["value"]] == [world["ids"]["dead"]]
    assert _get(world, "/00000000-0000-0000-0000-000000000000").status_code == 404
    vs = requests.get(sb.devops.org_url(world["org"], host="visualstudio.com") + "/_apis/hooks/subscriptions",
                      headers={**basic(world["tokens"]["full"]), **SUPPRESS}).json()
    assert vs["value"][0]["url"].startswith(f"https://{world['org']}.visualstudio.com/_apis/hooks/subscriptions/")


def test_subscriptions_need_a_pat_of_the_organization_with_a_hooks_scope(sb):
    world = _hooks(sb)
    sb.devops.add_pat("elsewhere", "foreign", user_id=USER, valid_to=NOW + timedelta(days=30))
    url = f"{world['base']}/_apis/hooks/subscriptions"
    assert requests.get(url, headers=SUPPRESS).status_code == 401
    assert requests.get(url, headers={**basic("foreign"), **SUPPRESS}).status_code == 401
    assert requests.get(url).status_code == 203  # no Suppress header: the sign-in page
    for token in ("full", "work", "read", "write"):  # serviceHooks.json lists vso.work; vso.hooks* by name
        assert _get(world, "", token).status_code == 200, token
    denied = _get(world, "", "narrow")
    assert denied.status_code == 401 and "TF400813" in unquote(denied.headers["X-TFS-ServiceError"])
    assert denied.json()["typeKey"] == "UnauthorizedRequestException"
    sub_id = world["ids"]["dead"]
    current = _get(world, f"/{sub_id}").json()
    assert _put(world, sub_id, current, "read").status_code == 401  # vso.hooks reads only
    assert _put(world, sub_id, current, "write").status_code == 200
    sb.devops.scope_denial_status = 403
    assert _get(world, "", "narrow").status_code == 403


def test_replacing_a_subscription_reenables_it_and_is_validated(sb):
    world = _hooks(sb)
    sub_id = world["ids"]["dead"]
    current = _get(world, f"/{sub_id}").json()
    assert current["status"] == "disabledBySystem" and current["modifiedBy"]["id"] != USER
    replaced = _put(world, sub_id, {**current, "status": "enabled"})
    assert replaced.status_code == 200
    body = replaced.json()
    assert body["status"] == "enabled" and body["probationRetries"] == 0 and body["modifiedBy"] == {"id": USER}
    assert set(spec_body("devops__ReplaceSubscription.json")) <= set(body)
    assert (body["id"], body["createdDate"], body["consumerInputs"]) == (sub_id, current["createdDate"],
                                                                         current["consumerInputs"])
    assert [s["status"] for s in sb.devops.subscriptions(world["org"]) if s["id"] == sub_id] == ["enabled"]
    # The replace example's request body (a build.complete hook) is valid here too.
    example = spec("devops__ReplaceSubscription.json")["parameters"]["body"]
    assert _put(world, sub_id, example).json()["publisherInputs"]["definitionName"] == "MyWebSite CI"
    bad = {"consumerInputs": {}, "eventType": "workitem.nothing", "status": "paused", "publisherId": "other",
           "consumerId": "slack"}
    for key, value in bad.items():
        refused = _put(world, sub_id, {**current, key: value})
        assert refused.status_code == 400 and refused.json()["message"], key
    for url in ("not a url", "ftp://example.com/x", ""):
        assert _put(world, sub_id, {**current, "consumerInputs": {"url": url}}).status_code == 400
    assert _put(world, sub_id, {**current, "publisherInputs": {"projectId": "nope"}}).status_code == 400
    assert _put(world, sub_id, {**current, "id": world["ids"]["ok"]}).status_code == 400
    assert _put(world, sub_id, ["not", "an", "object"]).status_code == 400
    assert _put(world, "00000000-0000-0000-0000-000000000000", current).status_code == 404


def test_a_masked_confidential_input_keeps_its_value_through_a_replace(sb):
    world = _hooks(sb)
    sub_id = world["ids"]["auth"]
    shown = _get(world, f"/{sub_id}").json()
    assert shown["consumerInputs"]["basicAuthPassword"] == "********"
    assert _put(world, sub_id, {**shown, "status": "disabledByUser"}).status_code == 200
    stored = next(s for s in sb.devops.subscriptions(world["org"]) if s["id"] == sub_id)
    assert stored["consumerInputs"]["basicAuthPassword"] == "s3cret" and stored["status"] == "disabledByUser"
    webhooks = next(c for c in spec_body("devops__ListConsumers.json")["value"] if c["id"] == "webHooks")
    inputs = {i["id"]: i for i in webhooks["actions"][0]["inputDescriptors"]}
    assert [k for k, i in inputs.items() if i["isConfidential"]] == ["basicAuthPassword"]
    assert inputs["url"]["validation"] == {"dataType": "uri", "isRequired": True}


def test_every_subscription_status_can_be_set(sb):
    world = _hooks(sb)
    # SubscriptionStatus in serviceHooks.json; the list example shows the two the service sets most.
    assert SUBSCRIPTION_STATUSES == ("enabled", "onProbation", "disabledByUser", "disabledBySystem",
                                     "disabledByInactiveIdentity")
    seen = {i.get("status") for i in spec_body("devops__ListSubscriptions.json")["value"]} - {None}
    assert seen <= set(SUBSCRIPTION_STATUSES)
    sub_id = world["ids"]["ok"]
    for status in SUBSCRIPTION_STATUSES:
        sb.devops.set_subscription_status(world["org"], sub_id, status)
        got = _get(world, f"/{sub_id}").json()
        assert got["status"] == status
        assert (got["probationRetries"] > 0) == (status == "onProbation")
    with pytest.raises(ValueError):
        sb.devops.set_subscription_status(world["org"], sub_id, "paused")
    with pytest.raises(ValueError):
        sb.devops.add_subscription(world["org"], url="https://x.azurewebsites.net/api/r", project_id=PROJECT,
                                   event_type="workitem.nothing")


# -- Azure DevOps: security ---------------------------------------------------------------------

def test_the_project_namespace_lists_bypass_rules(sb):
    world = _hooks(sb)
    url = f"{world['base']}/_apis/securitynamespaces/{PROJECT_NAMESPACE}?api-version=7.1"
    got = requests.get(url, headers={**basic(world["tokens"]["narrow"]), **SUPPRESS})  # no scope needed
    assert got.status_code == 200
    body, example = got.json(), spec_body("devops__GetSecurityNamespace.json")
    assert set(body) == set(example) and body["count"] == 1
    namespace = body["value"][0]
    assert set(namespace) == set(example["value"][0])
    assert all(set(a) == set(example["value"][0]["actions"][0]) for a in namespace["actions"])
    assert (namespace["namespaceId"], namespace["name"]) == (PROJECT_NAMESPACE, "Project")
    bypass = [a for a in namespace["actions"] if a["name"] == "BYPASS_RULES"]
    assert bypass == [{"bit": 1048576, "name": "BYPASS_RULES", "displayName": "Bypass rules on work item updates",
                       "namespaceId": PROJECT_NAMESPACE}]
    bits = [a["bit"] for a in namespace["actions"]]
    assert len(set(bits)) == len(bits) and all(b & (b - 1) == 0 for b in bits) and 1024 not in bits
    assert {"GENERIC_READ", "WORK_ITEM_DELETE", "SUPPRESS_NOTIFICATIONS"} <= {a["name"] for a in namespace["actions"]}
    other = requests.get(url.replace(PROJECT_NAMESPACE, "5a27515b-ccd7-42c9-84f1-54c998f03866"),
                         headers={**basic(world["tokens"]["narrow"]), **SUPPRESS}).json()
    assert other == {"count": 0, "value": []}
    assert requests.get(url, headers=SUPPRESS).status_code == 401


def test_has_permissions_answers_per_token_for_the_caller(sb):
    world = _hooks(sb)
    sb.devops.add_pat(world["org"], "someone-else", user_id="0f0f0f0f-0000-4000-8000-000000000001",
                      valid_to=NOW + timedelta(days=30))

    def has(bits: int, *projects: str, token: str = world["tokens"]["narrow"], **query: str) -> requests.Response:
        tokens = query.get("delimiter", ",").join(project_token(p) for p in projects)
        params = {"tokens": tokens, "api-version": "7.1", **query}
        return requests.get(f"{world['base']}/_apis/permissions/{PROJECT_NAMESPACE}/{bits}", params=params,
                            headers={**basic(token), **SUPPRESS})

    first = has(1048576, PROJECT)
    assert first.status_code == 200 and first.json() == {"count": 1, "value": [False]}
    assert set(first.json()) == set(spec_body("devops__HasPermissions.json"))
    sb.devops.grant_bypass_rules(world["org"], USER, PROJECT)
    assert has(1048576, PROJECT, OTHER_PROJECT).json() == {"count": 2, "value": [True, False]}
    assert has(1048576, PROJECT.upper()).json()["value"] == [True]  # security tokens are case-insensitive
    assert has(1048576 | 1, PROJECT).json()["value"] == [False]  # every requested bit must be allowed
    assert has(1048576, PROJECT, token="someone-else").json()["value"] == [False]
    assert has(1048576, PROJECT, OTHER_PROJECT, delimiter="|").json()["value"] == [True, False]
    assert has(1048576, PROJECT, alwaysAllowAdministrators="true").json()["value"] == [True]
    sb.devops.grant_bypass_rules(world["org"], USER, PROJECT, allowed=False)
    assert has(1048576, PROJECT).json()["value"] == [False]
    assert requests.get(f"{world['base']}/_apis/permissions/{PROJECT_NAMESPACE}/lots",
                        headers={**basic(world["tokens"]["narrow"]), **SUPPRESS}).status_code == 400
    assert has(1048576, PROJECT, token="unknown").status_code == 401


# -- PAT format ---------------------------------------------------------------------------------

# Microsoft's own detector for the 84-character format (security-utilities SEC101/200) and the
# product's form check.
MICROSOFT_FORM = re.compile(r"[A-Za-z0-9]{52}JQQJ9(?:9|D|H)[A-Za-z0-9][A-L][A-Za-z0-9]{16}[A-Za-z][A-Za-z0-9]{7}")


def test_sandbox_pats_have_the_84_character_format_unless_asked_for_classic(sb):
    world = World(sb, org="patformat")
    values = [pat_format.new_pat() for _ in range(50)]
    assert len(set(values)) == 50
    for value in values:
        assert len(value) == 84 and value[76:80] == "AZDO" and MICROSOFT_FORM.fullmatch(value)
        assert re.fullmatch(r"[A-Za-z0-9]{76}AZDO[A-Za-z0-9]{4}", value) and pat_format.is_new_format(value)
        head = value[:52]
        assert any(c.isupper() for c in head) and any(c.islower() for c in head) and any(c.isdigit() for c in head)
    classic = pat_format.new_pat(classic=True)
    assert re.fullmatch(r"[a-z2-7]{52}", classic) and pat_format.is_classic(classic)
    token, _ = world.issue(30)
    old, _ = world.issue(30, classic=True)
    assert pat_format.is_new_format(token) and pat_format.is_classic(old)
    url = world.sandbox.devops.org_url(world.org) + "/_apis/connectionData"
    for value in (token, old):
        assert requests.get(url, headers={**basic(value), **SUPPRESS}).status_code == 200
    for leaked in (token, token[:16], f"Basic {basic(token)['Authorization'][6:]}"):
        with pytest.raises(AssertionError):
            assert_no_leak(f"... {leaked} ...", [token], where="test")


"""The sandbox against the real SDK clients, over real TLS, through its CONNECT proxy."""

from __future__ import annotations

import base64
import re
import smtplib
import socket
import ssl
import time
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import unquote

import pytest
import requests
from azure.core.exceptions import (HttpResponseError, ResourceNotFoundError, ServiceRequestError,
                                   ServiceResponseError, ServiceResponseTimeoutError)
from azure.keyvault.secrets import SecretClient
from azure.mgmt.web import WebSiteManagementClient

from pat_watchdog.sandbox import Sandbox
from tests.sandbox.support import FAST, NOW, SUB, SUPPRESS, basic, bearer, spec_body


# -- managed identity and TLS ---------------------------------------------------------------

def test_managed_identity_issues_tokens_only_with_the_header(sb, cred):
    token = cred.get_token("https://management.azure.com/.default")
    assert token.token and token.expires_on > time.time()
    url = f"https://127.0.0.1:{sb.port}/msi/token?api-version=2019-08-01&resource=https://vault.azure.net"
    assert requests.get(url).status_code == 400
    assert requests.get(url, headers={"X-IDENTITY-HEADER": "wrong"}).status_code == 401
    body = requests.get(url, headers={"X-IDENTITY-HEADER": sb.identity_header}).json()
    assert set(body) >= {"access_token", "expires_on", "resource", "token_type"}
    assert body["token_type"] == "Bearer" and body["expires_on"].isdigit()


def test_tls_is_real_and_the_proxy_refuses_other_hosts(sb):
    import certifi

    with pytest.raises(requests.exceptions.SSLError):
        requests.get("https://dev.azure.com/contoso/_apis/connectionData", verify=certifi.where())
    with pytest.raises(requests.exceptions.ProxyError):
        requests.get("https://example.com/", timeout=5)
    assert "example.com" in sb.proxy_refused
    proxy_port = int(sb.proxy_url.rsplit(":", 1)[1])
    for head in (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
                 b"CONNECT dev.azure.com:80 HTTP/1.1\r\n\r\n",
                 b"GET http://dev.azure.com/ HTTP/1.1\r\nHost: dev.azure.com\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", proxy_port), timeout=5) as raw:
            raw.sendall(head)
            assert raw.recv(100).startswith(b"HTTP/1.1 502")


def test_the_proxy_tunnels_sockets_numbered_past_1023(sb):
    """select() refuses descriptors above 1023: a long simulation got there and every tunnel broke
    (SSLError everywhere from simulated day 53 of seed 17)."""
    import os

    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        answer = requests.get("https://dev.azure.com/contoso/_apis/connectionData", timeout=10)
        assert answer.status_code == 404      # an answer (no such organization here), not an SSLError
    finally:
        for fd in filler:
            os.close(fd)


# -- ARM ----------------------------------------------------------------------------------

def test_arm_app_settings_list_update_restart(sb, cred):
    app = sb.arm.add_site(SUB, "aggregator-a", "aaggregator", {"Keep": "1", "Old": "x"},
                          tags={"aggregatorVersion": "1.3.0"})
    web = WebSiteManagementClient(cred, SUB, base_url="https://management.azure.com", **FAST)
    settings = web.web_apps.list_application_settings("aggregator-a", "aaggregator")
    assert settings.properties == {"Keep": "1", "Old": "x"}
    settings.properties = {"Keep": "1", "New": "y"}
    updated = web.web_apps.update_application_settings("aggregator-a", "aaggregator", settings)
    assert updated.properties == {"Keep": "1", "New": "y"}
    assert sb.arm.settings(app) == {"Keep": "1", "New": "y"}  # PUT replaced everything
    assert sb.arm.writes[-1] == (app, {"Keep": "1", "New": "y"})
    web.web_apps.restart("aggregator-a", "aaggregator", soft_restart=True, synchronous=True)
    assert sb.arm.restarts == [app]
    assert sb.count(host="management", method="POST", path=r"/restart\?.*softRestart=true") == 1


def test_arm_responses_have_the_spec_shape(sb, cred):
    app = sb.arm.add_site(SUB, "aggregator-b", "baggregator", {"S": "1"})
    auth = bearer(cred, "https://management.azure.com")
    url = f"https://management.azure.com{app}/config/appsettings"
    listed = requests.post(url + "/list?api-version=2025-05-01", headers=auth).json()
    assert set(spec_body("web__ListAppSettings.json")) <= set(listed)
    assert listed["name"] == "appsettings" and listed["type"] == "Microsoft.Web/sites/config"
    put = requests.put(url + "?api-version=2025-05-01", headers=auth, json={"properties": {"S": "2"}})
    assert set(spec_body("web__UpdateAppSettings.json")) <= set(put.json())
    site = requests.get(f"https://management.azure.com{app}?api-version=2025-05-01", headers=auth).json()
    example = spec_body("web__ListWebApps.json")["value"][0]
    assert set(site) == set(example) | {"tags"}
    assert set(site["properties"]) == set(example["properties"])


def test_arm_lists_sites_across_pages(sb, cred):
    names = [f"p{i}aggregator" for i in range(5)]
    for name in names:
        sb.arm.add_site("sub-paging", "aggregator-p", name, {}, tags={"aggregatorVersion": "1"})
    sb.arm.assign_aggregator_role("/subscriptions/sub-paging")   # listing a subscription needs sites/read there
    sb.arm.page_size = 2
    try:
        web = WebSiteManagementClient(cred, "sub-paging", base_url="https://management.azure.com", **FAST)
        assert [s.name for s in web.web_apps.list()] == names
        assert [s.tags for s in web.web_apps.list_by_resource_group("aggregator-p")][0] == \
            {"aggregatorVersion": "1"}
        assert sb.count(method="GET", path=r"/subscriptions/sub-paging/providers/Microsoft.Web/sites") == 3
        assert sb.count(path=r"\$skipToken=") == 4
        page = requests.get("https://management.azure.com/subscriptions/sub-paging/providers/Microsoft.Web"
                            "/sites?api-version=2025-05-01", headers=bearer(cred, "https://management.azure.com"))
        assert set(spec_body("web__ListWebApps.json")) <= set(page.json())
        assert page.json()["nextLink"].startswith("https://management.azure.com/subscriptions/sub-paging/")
    finally:
        sb.arm.page_size = 100


def test_arm_errors(sb, cred):
    sb.arm.add_site(SUB, "aggregator-c", "caggregator", {})
    web = WebSiteManagementClient(cred, SUB, base_url="https://management.azure.com", **FAST)
    # ARM authorizes before it looks: without a grant at the scope, a missing site is a 403, not a 404.
    with pytest.raises(HttpResponseError) as denied:
        web.web_apps.list_application_settings("aggregator-c", "nosuchsite")
    assert denied.value.status_code == 403 and denied.value.error.code == "AuthorizationFailed"
    assert "'Microsoft.Web/sites/config/list/action' over scope '/subscriptions/" in denied.value.error.message
    sb.arm.assign_aggregator_role(f"/subscriptions/{SUB}")
    with pytest.raises(ResourceNotFoundError) as missing:
        web.web_apps.list_application_settings("aggregator-c", "nosuchsite")
    assert missing.value.error.code == "ResourceNotFound"
    assert "Microsoft.Web/sites/nosuchsite" in missing.value.error.message
    with pytest.raises(ResourceNotFoundError) as no_group:
        web.web_apps.list_application_settings("no-such-group", "caggregator")
    assert no_group.value.error.code == "ResourceGroupNotFound"
    base = f"https://management.azure.com/subscriptions/{SUB}/resourceGroups/aggregator-c/providers/Microsoft.Web/sites/caggregator"
    anonymous = requests.post(base + "/config/appsettings/list?api-version=2025-05-01")
    assert anonymous.status_code == 401 and "WWW-Authenticate" in anonymous.headers
    assert anonymous.json()["error"]["code"] == "AuthenticationFailed"
    forged = requests.post(base + "/config/appsettings/list?api-version=2025-05-01",
                           headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 401
    vault_token = bearer(cred, "https://vault.azure.net")
    assert requests.post(base + "/config/appsettings/list?api-version=2025-05-01",
                         headers=vault_token).status_code == 401  # wrong audience
    no_version = requests.post(base + "/config/appsettings/list", headers=bearer(cred, "https://management.azure.com"))
    assert no_version.status_code == 400


# -- Key Vault ------------------------------------------------------------------------------

def test_keyvault_challenge_then_set_and_get(sb, cred):
    sb.arm.add_vault(SUB, "rg-vaults", "kvchallenge")   # the rotation role on it, as deployed
    client = SecretClient(sb.vault.url("kvchallenge"), cred, **FAST)  # verify_challenge_resource on
    secret = client.set_secret("aggregator-pat-staged", "pat-1", expires_on=NOW + timedelta(days=90),
                               tags={"scopes": "vso.work_full"}, content_type="text/plain")
    first, second = [r for r in sb.requests if r.host == "kvchallenge.vault.azure.net"]
    assert first.status == 401 and first.body == b""  # the challenge request carries no body
    challenge = requests.get(f"{sb.vault.url('kvchallenge')}/secrets/x?api-version=7.5")
    assert challenge.headers["WWW-Authenticate"] == (
        f'Bearer authorization="https://login.microsoftonline.com/{sb.tenant_id}", '
        'resource="https://vault.azure.net"')
    assert second.status == 200
    assert secret.properties.expires_on == NOW + timedelta(days=90)
    got = client.get_secret("aggregator-pat-staged", secret.properties.version)
    assert got.value == "pat-1" and got.properties.tags == {"scopes": "vso.work_full"}
    assert client.get_secret("aggregator-pat-staged").value == "pat-1"
    [stored] = sb.vault.versions("kvchallenge", "aggregator-pat-staged")
    assert stored["value"] == "pat-1" and stored["created_on"] == NOW


def test_keyvault_responses_have_the_spec_shape(sb, cred):
    version = sb.vault.set_secret("kvshape", "s", "v", tags={"a": "b"}, content_type="text/plain")
    for i in range(2):
        sb.vault.set_secret("kvshape", "s", f"v{i}")
    base, auth = sb.vault.url("kvshape"), bearer(cred, "https://vault.azure.net")
    got = requests.get(f"{base}/secrets/s/{version}?api-version=7.5", headers=auth).json()
    example = spec_body("keyvault__GetSecret-example.json")
    assert set(example) <= set(got) and set(example["attributes"]) <= set(got["attributes"])
    put = requests.put(f"{base}/secrets/s?api-version=7.5", headers=auth, json={"value": "w", "contentType": "plainText"}).json()
    assert set(spec_body("keyvault__SetSecret-example.json")) <= set(put)
    patched = requests.patch(f"{base}/secrets/s/{version}?api-version=7.5", headers=auth,
                             json={"tags": {"mytag": "myvalue"}, "contentType": "myContentType"}).json()
    assert set(patched) == set(spec_body("keyvault__UpdateSecret-example.json"))
    listed = requests.get(f"{base}/secrets/s/versions?api-version=7.5&maxresults=1", headers=auth).json()
    example = spec_body("keyvault__GetSecretVersions-example.json")
    assert set(example) <= set(listed) and set(example["value"][0]) <= set(listed["value"][0])
    assert "value" not in listed["value"][0] and "$skiptoken=" in listed["nextLink"]
    secrets = requests.get(f"{base}/secrets?api-version=7.5", headers=auth).json()
    assert set(spec_body("keyvault__GetSecrets-example.json")["value"][0]) <= set(secrets["value"][0])
    assert isinstance(got["attributes"]["created"], int)


def test_keyvault_versions_page_and_are_not_in_creation_order(sb, cred):
    created = [sb.vault.set_secret("kvpages", "staged", f"v{i}", created_on=NOW + timedelta(minutes=i))
               for i in range(7)]
    sb.vault.page_size = 3
    try:
        client = SecretClient(sb.vault.url("kvpages"), cred, **FAST)
        listed = [p.version for p in client.list_properties_of_secret_versions("staged")]
    finally:
        sb.vault.page_size = 25
    assert sorted(listed) == sorted(created) and listed == sorted(created)
    pages = [r.status for r in sb.requests if "/secrets/staged/versions" in r.path]
    assert pages == [401, 200, 200, 200]  # one challenge (new host), then three pages
    assert [v["version"] for v in sb.vault.versions("kvpages", "staged")] == created


def test_keyvault_update_replaces_tags_and_enforces_limits(sb, cred):
    version = sb.vault.set_secret("kvtags", "staged", "pat", tags={"scopes": "x", "owner": "me"})
    client = SecretClient(sb.vault.url("kvtags"), cred, **FAST)
    props = client.update_secret_properties("staged", version, tags={"watchdog-status": "rejected"})
    assert props.tags == {"watchdog-status": "rejected"}
    assert sb.vault.versions("kvtags", "staged")[0]["tags"] == {"watchdog-status": "rejected"}
    client.update_secret_properties("staged", version, enabled=False)
    assert sb.vault.versions("kvtags", "staged")[0]["tags"] == {"watchdog-status": "rejected"}
    for tags in ({f"t{i}": "v" for i in range(16)}, {"reason": "x" * 257}):
        with pytest.raises(HttpResponseError) as bad:
            client.update_secret_properties("staged", version, tags=tags)
        assert bad.value.status_code == 400 and "BadParameter" in str(bad.value)
    with pytest.raises(HttpResponseError) as disabled:
        client.get_secret("staged", version)
    assert disabled.value.status_code == 403 and "disabled secret" in str(disabled.value)
    with pytest.raises(ResourceNotFoundError):
        client.get_secret("staged", "0" * 32)
    with pytest.raises(ResourceNotFoundError):
        client.get_secret("no-such-secret")


# -- Azure DevOps ---------------------------------------------------------------------------

def _devops(sb) -> dict[str, str]:
    """A user with a live, an expired, a revoked PAT, plus a global PAT and another user's."""
    user = "bb5bb6c8-ef0a-400f-8987-92b3674d2043"
    sb.devops.add_user(user, "Aggregator Bot", "bot@contoso.test")
    sb.devops.add_pat("fabrikam", "live", user_id=user, valid_to=NOW + timedelta(days=30),
                      valid_from=NOW - timedelta(days=300), scope="vso.work_full vso.identity")
    sb.devops.add_pat("fabrikam", "old", user_id=user, valid_to=NOW - timedelta(days=1))
    sb.devops.add_pat("fabrikam", "gone", user_id=user, valid_to=NOW + timedelta(days=9))
    sb.devops.revoke("gone")
    sb.devops.add_pat("fabrikam", "global", user_id=user, valid_to=NOW + timedelta(days=5), global_pat=True)
    sb.devops.add_pat("fabrikam", "other", user_id="someone-else", valid_to=NOW + timedelta(days=5))
    return {"user": user}


def test_devops_connection_data(sb):
    user = _devops(sb)["user"]
    url = sb.devops.org_url("fabrikam") + "/_apis/connectionData"
    ok = requests.get(url, headers={**basic("live"), **SUPPRESS})
    assert ok.status_code == 200
    body = ok.json()
    assert body["authenticatedUser"]["id"] == user == body["authorizedUser"]["id"]
    assert body["authenticatedUser"]["properties"]["Account"]["$value"] == "bot@contoso.test"
    assert body["deploymentType"] == "hosted"
    assert body["locationServiceData"]["serviceOwner"] == "00025394-6065-48ca-87d9-7f5672854ef7"
    expired = requests.get(url, headers={**basic("old"), **SUPPRESS})
    assert expired.status_code == 401
    assert expired.headers["X-TFS-ServiceError"] == \
        "Access%20Denied%3A%20The%20Personal%20Access%20Token%20used%20has%20expired."
    assert "has expired" in unquote(expired.headers["X-TFS-ServiceError"])
    for token in ("gone", "unknown"):
        denied = requests.get(url, headers={**basic(token), **SUPPRESS})
        assert denied.status_code == 401 and "TF400813" in unquote(denied.headers["X-TFS-ServiceError"])
    redirected = requests.get(url, headers=basic("old"))
    assert redirected.status_code == 203 and redirected.headers["Content-Type"].startswith("text/html")
    assert requests.get(url).status_code == 203
    vs = requests.get(sb.devops.org_url("fabrikam", host="visualstudio.com") + "/_apis/connectionData",
                      headers={**basic("live"), **SUPPRESS})
    assert vs.status_code == 200
    server = requests.get(sb.devops.org_url("fabrikam", host="tfs.contoso.test") + "/_apis/connectionData",
                          headers={**basic("live"), **SUPPRESS})
    assert server.json()["deploymentType"] == "onPremises"
    sb.clock = lambda: NOW + timedelta(days=31)
    assert requests.get(url, headers={**basic("live"), **SUPPRESS}).status_code == 401


def test_devops_session_tokens_listing(sb):
    user = _devops(sb)["user"]
    url = sb.devops.vssps_url("fabrikam") + "/_apis/Token/SessionTokens?displayFilterOption=1&api-version=5.0-preview.1"
    listed = requests.get(url, headers={**basic("live"), **SUPPRESS})
    assert listed.status_code == 200
    body = listed.json()
    example = spec_body("devops__GetPersonalAccessTokensForAUserInYourOrganization.json")["value"][0]
    assert all(set(entry) == set(example) for entry in body["value"])
    assert body["count"] == 2 and {e["userId"] for e in body["value"]} == {user}
    by_scope = {e["scope"]: e for e in body["value"]}
    live = by_scope["vso.work_full vso.identity"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", live["validTo"])
    assert live["validTo"].startswith((NOW + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S"))
    assert len(live["targetAccounts"]) == 1 and by_scope["app_token"]["targetAccounts"] is None
    vs_url = sb.devops.vssps_url("fabrikam", host="visualstudio.com") + "/_apis/Token/SessionTokens"
    assert requests.get(vs_url, headers={**basic("live"), **SUPPRESS}).json()["count"] == 4 - 2
    assert requests.get(url, headers={**basic("old"), **SUPPRESS}).status_code == 401
    wrong_host = sb.devops.org_url("fabrikam") + "/_apis/Token/SessionTokens"
    assert requests.get(wrong_host, headers={**basic("live"), **SUPPRESS}).status_code == 404
    sb.devops.listing_status = 403
    try:
        assert requests.get(url, headers={**basic("live"), **SUPPRESS}).status_code == 403
    finally:
        sb.devops.listing_status = None


# -- Teams and ACS ------------------------------------------------------------------------------

def _card(text: str) -> dict:
    return {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
        "content": {"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": text}]}}]}


def test_teams_webhook_validates_and_records(sb):
    url = sb.teams.url("ops")
    assert re.fullmatch(r"https://prod-00\.westeurope\.logic\.azure\.com:443/workflows/[0-9a-f]{32}/triggers/"
                        r"manual/paths/invoke\?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1\.0"
                        r"&sig=[A-Za-z0-9_-]{43}", url)
    accepted = requests.post(url, json=_card("hello"))
    assert accepted.status_code == 202 and accepted.content == b""
    assert sb.teams.received_for("ops") == [_card("hello")]
    assert requests.post(url, json={"text": "legacy connector payload"}).status_code == 400
    bad_card = _card("x")
    bad_card["attachments"][0]["content"]["type"] = "HeroCard"
    assert requests.post(url, json=bad_card).status_code == 400
    assert requests.post(url, json=_card("x" * 29 * 1024)).status_code == 413
    assert requests.post(url.replace("sig=", "sig=x"), json=_card("x")).status_code == 401
    assert sb.teams.received_for("ops") == [_card("hello")]


def test_acs_email_end_to_end(sb, cred):
    email_module = pytest.importorskip("azure.communication.email")
    client = email_module.EmailClient(sb.acs.url(), cred, **FAST)
    message = {"senderAddress": "DoNotReply@contoso.test",
               "recipients": {"to": [{"address": "ops@contoso.test"}]},
               "content": {"subject": "[pat-watchdog] WARNING", "plainText": "x", "html": "<p>x</p>"}}
    result = client.begin_send(message, polling_interval=0.01).result()
    assert result["status"] == "Succeeded"
    assert sb.acs.messages[-1] == message
    assert sb.count(method="GET", path=r"^/emails/operations/") == 1
    with pytest.raises(HttpResponseError):
        client.begin_send({"senderAddress": "x"}, polling_interval=0.01)


# -- faults and latency ---------------------------------------------------------------------------

def test_fault_status_on_nth_request(sb):
    _devops(sb)
    url = sb.devops.org_url("fabrikam") + "/_apis/connectionData"
    fault = sb.inject(host="dev.azure.com", path="connectionData", status=429, nth=2,
                      headers={"Retry-After": "7"}, body={"message": "throttled"})
    statuses = [requests.get(url, headers={**basic("live"), **SUPPRESS}) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 429, 200]
    assert statuses[1].headers["Retry-After"] == "7" and statuses[1].json() == {"message": "throttled"}
    assert fault.hits == 1 and sb.count(host="dev.azure.com") == 3
    always = sb.inject(method="GET", host="dev.azure.com", status=503, times=None)
    assert [requests.get(url).status_code for _ in range(2)] == [503, 503] and always.hits == 2


def test_fault_hang_drop_and_latency(sb, cred):
    url = sb.devops.org_url("hangorg") + "/_apis/connectionData"
    sb.inject(host="dev.azure.com", hang=0.5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(url, timeout=0.2)
    sb.inject(host="dev.azure.com", drop=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, timeout=5)
    assert sb.requests[-1].status == 0
    sb.arm.add_site(SUB, "g", "n", {})
    web = WebSiteManagementClient(cred, SUB, base_url="https://management.azure.com",
                                  **{**FAST, "read_timeout": 0.2})
    sb.inject(host="management", drop=True)
    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        web.web_apps.list_application_settings("g", "n")
    sb.inject(host="management", hang=0.5)
    with pytest.raises(ServiceResponseTimeoutError):
        web.web_apps.list_application_settings("g", "n")
    assert web.web_apps.list_application_settings("g", "n").properties == {}
    sb.latency = 0.1
    started = time.monotonic()
    assert requests.get(url, headers=SUPPRESS).status_code == 401
    assert time.monotonic() - started >= 0.1


def test_recorded_requests_keep_secrets_out_of_reprs(sb):
    _devops(sb)
    requests.get(sb.devops.org_url("fabrikam") + "/_apis/connectionData", headers={**basic("live"), **SUPPRESS})
    record = sb.requests[-1]
    assert record.headers["Authorization"] == basic("live")["Authorization"]
    assert "Authorization" not in repr(record) and base64.b64encode(b":live").decode() not in repr(record)


# -- SMTP -------------------------------------------------------------------------------------------

def _mail() -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "w@contoso.test", "ops@contoso.test", "hi"
    message.set_content("plain")
    return message


def test_smtp_requires_starttls_and_login(sb):
    context = ssl.create_default_context()  # trusts the sandbox CA through SSL_CERT_FILE
    with smtplib.SMTP(sb.smtp.host, sb.smtp.port, timeout=5) as smtp:
        with pytest.raises(smtplib.SMTPNotSupportedError):
            smtp.login(sb.smtp.username, sb.smtp.password)  # no AUTH before STARTTLS
        smtp.starttls(context=context)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login(sb.smtp.username, "wrong")
        smtp.login(sb.smtp.username, sb.smtp.password)
        smtp.send_message(_mail())
        sb.smtp.fail_next(1)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.send_message(_mail())
        assert refused.value.smtp_code == 451
    assert sb.smtp.messages[-1]["Subject"] == "hi" and sb.smtp.messages[-1].get_content().strip() == "plain"


def test_start_is_fast_and_stop_closes_everything(monkeypatch):
    started = time.monotonic()
    fresh = Sandbox().start()
    assert time.monotonic() - started < 1.0
    ports = [fresh.port, int(fresh.proxy_url.rsplit(":", 1)[1]), fresh.smtp.port]
    fresh.stop()
    for port in ports:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()

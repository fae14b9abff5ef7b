"""The Entra ID stand-in against the real MSAL PublicClientApplication, over real TLS and the proxy."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import msal
import pytest
import requests

from tests.sandbox.support import (ADO_SCOPE, AZURE_CLI, NOW, SUPPRESS, device_sign_in, entra_user, fingerprint,
                                   jwt_claims, public_app)

ERROR_FIELDS = {"error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id", "error_uri"}


@pytest.fixture(autouse=True)
def entra(sb):
    """The sandbox's Entra with a 1 s poll interval; its settings restored afterwards."""
    e = sb.entra
    saved = (e.auto_approve, e.refresh_lifetime, e.access_lifetime, e.poll_interval, e.accept_any_client)
    e.poll_interval = 1
    yield e
    e.auto_approve, e.refresh_lifetime, e.access_lifetime, e.poll_interval, e.accept_any_client = saved


def _token_posts(sb) -> int:
    return sb.count(host="login.microsoftonline.com", method="POST", path=r"/oauth2/v2\.0/token")


def test_device_flow_is_pending_until_approved_then_issues_tokens(sb, entra):
    oid, _ = entra_user(sb)
    app = public_app(sb)
    before = entra.issued["access_token"]
    flow = app.initiate_device_flow([ADO_SCOPE])
    assert {"user_code", "device_code", "verification_uri", "expires_in", "interval", "message"} <= set(flow)
    assert flow["expires_in"] == 900 and flow["interval"] == 1 and flow["user_code"] in flow["message"]
    assert flow["user_code"] in entra.pending_codes()

    pending = app.acquire_token_by_device_flow(flow, exit_condition=lambda _f: True)
    assert ERROR_FIELDS <= set(pending)
    assert pending["error"] == "authorization_pending" and pending["error_codes"] == [70016]
    assert pending["error_description"].startswith("AADSTS70016: ")
    assert pending["correlation_id"] == flow["_correlation_id"]  # Entra echoes client-request-id

    entra.approve(flow["user_code"], oid)
    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda _f: True)
    assert {"token_type", "scope", "expires_in", "ext_expires_in", "access_token", "refresh_token", "id_token",
            "client_info"} <= set(result)
    assert result["token_source"] == "identity_provider" and result["token_type"] == "Bearer"
    assert result["scope"].split() == ["499b84ac-1321-427f-aa17-267ca6975798/user_impersonation", ADO_SCOPE]
    claims = jwt_claims(result["access_token"])
    assert claims["aud"] == "499b84ac-1321-427f-aa17-267ca6975798" and claims["oid"] == oid
    assert claims["tid"] == sb.tenant_id and claims["scp"] == "user_impersonation"
    assert claims["exp"] - claims["iat"] == result["expires_in"] and claims["iat"] == int(NOW.timestamp())
    id_claims = result["id_token_claims"]
    assert id_claims["aud"] == AZURE_CLI and id_claims["oid"] == oid and id_claims["tid"] == sb.tenant_id
    assert id_claims["iss"] == f"https://login.microsoftonline.com/{sb.tenant_id}/v2.0"
    [account] = app.get_accounts()
    assert account["home_account_id"] == f"{oid}.{sb.tenant_id}" and account["local_account_id"] == oid
    assert account["username"] == id_claims["preferred_username"]

    assert flow["user_code"] not in entra.pending_codes() and entra.issued["access_token"] == before + 1
    issued = {fingerprint(s) for s in entra.issued_secrets()}
    assert {fingerprint(result["access_token"]), fingerprint(result["refresh_token"])} <= issued
    again = app.acquire_token_by_device_flow(flow, exit_condition=lambda _f: True)  # a device code is single-use
    assert again["error"] == "bad_verification_code"


def test_declined_and_expired_device_codes(sb, entra):
    entra_user(sb)
    app = public_app(sb)
    declined = app.initiate_device_flow([ADO_SCOPE])
    entra.decline(declined["user_code"])
    answer = app.acquire_token_by_device_flow(declined, exit_condition=lambda _f: True)
    assert answer["error"] == "authorization_declined" and "access_token" not in answer

    late = app.initiate_device_flow([ADO_SCOPE])
    sb.clock = lambda: NOW + timedelta(minutes=15, seconds=1)  # Entra gives 15 minutes
    assert late["user_code"] not in entra.pending_codes()
    answer = app.acquire_token_by_device_flow(late, exit_condition=lambda _f: True)
    assert answer["error"] == "expired_token" and answer["error_codes"] == [70020]
    with pytest.raises(KeyError):
        entra.approve("NOSUCHCODE", "nobody")


def test_auto_approve_lets_an_unattended_login_finish_on_the_first_poll(sb, entra):
    oid, _ = entra_user(sb)
    entra.auto_approve = oid
    app = public_app(sb, authority="https://login.microsoftonline.com/organizations")
    flow = app.initiate_device_flow([ADO_SCOPE])
    started = time.monotonic()
    result = app.acquire_token_by_device_flow(flow)  # MSAL's own blocking loop
    assert "access_token" in result and time.monotonic() - started < 1.0
    assert _token_posts(sb) == 1
    assert result["id_token_claims"]["oid"] == oid
    assert app.get_accounts()[0]["realm"] == "organizations"


def test_serialized_cache_serves_silently_then_refreshes_with_rotation(sb, entra):
    oid, _ = entra_user(sb)
    cache = msal.SerializableTokenCache()
    first = device_sign_in(sb, public_app(sb, cache), oid)
    first_access, first_refresh = fingerprint(first["access_token"]), fingerprint(first["refresh_token"])
    blob = cache.serialize()

    restored = msal.SerializableTokenCache()
    restored.deserialize(blob)
    app = public_app(sb, restored)
    [account] = app.get_accounts()
    posts = _token_posts(sb)
    cached = app.acquire_token_silent([ADO_SCOPE], account)
    assert cached["token_source"] == "cache" and fingerprint(cached["access_token"]) == first_access
    assert _token_posts(sb) == posts

    # Time passes: MSAL's cache judges expiry with the real clock, Azure DevOps with the sandbox's.
    state = json.loads(restored.serialize())
    for entry in state["AccessToken"].values():
        entry["expires_on"] = str(int(time.time()) - 60)
    aged = msal.SerializableTokenCache()
    aged.deserialize(json.dumps(state))
    app = public_app(sb, aged)
    sb.clock = lambda: NOW + timedelta(hours=2)
    refreshed = app.acquire_token_silent([ADO_SCOPE], app.get_accounts()[0])
    assert refreshed["token_source"] == "identity_provider" and _token_posts(sb) == posts + 1
    assert fingerprint(refreshed["access_token"]) != first_access
    assert entra.grants["refresh_token"] >= 1
    rotated = [fingerprint(rt["secret"]) for rt in json.loads(aged.serialize())["RefreshToken"].values()]
    assert rotated and first_refresh not in rotated  # a new refresh token replaced the old one in the cache

    # Entra does not revoke the refresh token it rotated away from.
    old = requests.post(f"https://login.microsoftonline.com/{sb.tenant_id}/oauth2/v2.0/token",
                        data={"client_id": AZURE_CLI, "grant_type": "refresh_token", "scope": ADO_SCOPE,
                              "refresh_token": first["refresh_token"]})
    assert old.status_code == 200 and "access_token" in old.json()


def test_revoked_sessions_fail_refresh_but_a_new_sign_in_works(sb, entra):
    oid, devops_id = entra_user(sb)
    app = public_app(sb)
    signed_in = device_sign_in(sb, app, oid)
    entra.revoke_sessions(oid)
    account = app.get_accounts()[0]
    failed = app.acquire_token_silent_with_error([ADO_SCOPE], account, force_refresh=True)
    assert ERROR_FIELDS | {"suberror"} <= set(failed)
    assert failed["error"] == "invalid_grant" and failed["error_codes"] == [50173]
    assert failed["suberror"] == "bad_token" and "TokensValidFrom" in failed["error_description"]
    assert app.acquire_token_silent([ADO_SCOPE], account, force_refresh=True) is None
    assert sb.count(path=r"^/common/discovery/instance\?") >= 1  # MSAL looked for host aliases; answered 200
    assert all(r.status == 200 for r in sb.requests if r.path.startswith("/common/discovery/instance"))

    # Access tokens stay valid until they expire (revocation reaches refresh tokens).
    headers = {"Authorization": "Bearer " + signed_in["access_token"], **SUPPRESS}
    answer = requests.get(sb.devops.org_url("entra-org") + "/_apis/connectionData", headers=headers)
    assert answer.status_code == 200 and answer.json()["authenticatedUser"]["id"] == devops_id

    again = device_sign_in(sb, app, oid)
    assert "access_token" in again
    refreshed = app.acquire_token_silent_with_error([ADO_SCOPE], app.get_accounts()[0], force_refresh=True)
    assert refreshed["token_source"] == "identity_provider"


def test_refresh_tokens_expire_after_inactivity_only(sb, entra):
    oid, _ = entra_user(sb)
    app = public_app(sb)
    device_sign_in(sb, app, oid)
    account = app.get_accounts()[0]
    for days in (89, 178):  # each use issues a fresh refresh token: the window slides
        sb.clock = lambda days=days: NOW + timedelta(days=days)
        used = app.acquire_token_silent_with_error([ADO_SCOPE], account, force_refresh=True)
        assert used["token_source"] == "identity_provider"
    sb.clock = lambda: NOW + timedelta(days=178 + 90)
    expired = app.acquire_token_silent_with_error([ADO_SCOPE], account, force_refresh=True)
    assert expired["error"] == "invalid_grant" and expired["error_codes"] == [700082]
    assert "inactive for 90.00:00:00" in expired["error_description"]

    entra.refresh_lifetime = timedelta(days=1)
    sb.clock = lambda: NOW
    device_sign_in(sb, app, oid)
    sb.clock = lambda: NOW + timedelta(days=1)
    short = app.acquire_token_silent_with_error([ADO_SCOPE], app.get_accounts()[0], force_refresh=True)
    assert short["error_codes"] == [700082] and "inactive for 1.00:00:00" in short["error_description"]


def test_unknown_clients_tenants_and_resources_are_refused(sb, entra):
    entra.accept_any_client = False
    stranger = public_app(sb, client_id="11111111-2222-3333-4444-555555555555")
    flow = stranger.initiate_device_flow([ADO_SCOPE])
    assert flow["error"] == "unauthorized_client" and flow["error_codes"] == [700016]
    assert "user_code" not in public_app(sb).initiate_device_flow(["https://management.azure.com/.default"])
    assert public_app(sb).initiate_device_flow([ADO_SCOPE])["user_code"]  # the Azure CLI is known
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        public_app(sb, authority="https://login.microsoftonline.com/00000000-0000-0000-0000-00000000dead")
    assert sb.requests[-1].status == 400 and sb.requests[-1].path.endswith("/v2.0/.well-known/openid-configuration")


def test_discovery_documents_and_error_bodies_have_entra_shapes(sb):
    base = "https://login.microsoftonline.com"
    config = requests.get(f"{base}/organizations/v2.0/.well-known/openid-configuration").json()
    assert config["issuer"] == f"{base}/{{tenantid}}/v2.0"
    assert config["token_endpoint"] == f"{base}/organizations/oauth2/v2.0/token"
    assert config["device_authorization_endpoint"] == f"{base}/organizations/oauth2/v2.0/devicecode"
    metadata = requests.get(f"{base}/common/discovery/instance?api-version=1.1").json()["metadata"]
    assert "login.microsoftonline.com" in metadata[0]["aliases"]
    bad = requests.post(f"{base}/{sb.tenant_id}/oauth2/v2.0/token",
                        data={"client_id": AZURE_CLI, "grant_type": "refresh_token", "refresh_token": "garbage",
                              "scope": ADO_SCOPE}, headers={"client-request-id": "c0ffee00-0000-4000-8000-000000000001"})
    assert bad.status_code == 400 and set(bad.json()) == ERROR_FIELDS
    body = bad.json()
    assert body["error"] == "invalid_grant" and body["correlation_id"] == "c0ffee00-0000-4000-8000-000000000001"
    assert "\r\nTrace ID: " in body["error_description"] and body["timestamp"] == "2026-11-28 06:00:00Z"
    assert bad.headers["Cache-Control"] == "no-store, no-cache"
    grant = requests.post(f"{base}/{sb.tenant_id}/oauth2/v2.0/token", data={"client_id": AZURE_CLI,
                                                                         "grant_type": "password"})
    assert grant.json()["error"] == "unsupported_grant_type"


def test_devops_accepts_delegated_tokens_until_they_expire(sb, cred, entra):
    oid, devops_id = entra_user(sb, name="Grace Hopper")
    token = device_sign_in(sb, public_app(sb), oid)["access_token"]
    url = sb.devops.org_url("entra-org") + "/_apis/connectionData"
    ok = requests.get(url, headers={"Authorization": f"Bearer {token}", **SUPPRESS})
    assert ok.status_code == 200
    assert ok.json()["authenticatedUser"]["id"] == devops_id
    assert ok.json()["authenticatedUser"]["providerDisplayName"] == "Grace Hopper"
    managed = cred.get_token(ADO_SCOPE).token  # an app-only token of the managed identity is not a user
    for bearer in ("not-a-token", managed):
        assert requests.get(url, headers={"Authorization": f"Bearer {bearer}", **SUPPRESS}).status_code == 401
    sb.clock = lambda: NOW + entra.access_lifetime
    expired = requests.get(url, headers={"Authorization": f"Bearer {token}", **SUPPRESS})
    assert expired.status_code == 401 and "TF400813" in expired.headers["X-TFS-ServiceError"].replace("%3A", ":")

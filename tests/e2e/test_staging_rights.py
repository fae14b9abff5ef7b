"""What a person with staging rights can make the watchdog do with one Key Vault write: nothing it would
not do anyway. Each scenario is the attack (docs/reference.md, "What the watchdog trusts"), then what
the watchdog does instead. Tags are claims; what the watchdog verified lives in its state table."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pat_watchdog.core.secret import fingerprint
from pat_watchdog.sandbox.entra_shapes import SIGNIN_CLIENT
from pat_watchdog.sandbox.seed import USER_ID
from tests.e2e.conftest import NAME, STAGED, scene, titles
from tests.leaks import fp

AUTO = {"WATCHDOG_ROTATION": "auto", "WATCHDOG_SIGNIN_CLIENT_ID": SIGNIN_CLIENT}
OID, UPN = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", "aggregator-admin@contoso.com"
OTHER_OID, OTHER_UPN, OTHER_USER = ("9a8b7c6d-5e4f-4321-8abc-def012345678", "someone@contoso.com",
                                    "11111111-2222-4333-8444-555555555555")


def codes(instance: dict) -> set[str]:
    return {r["code"] for r in instance["reasons"]}


@pytest.fixture
def person(sandbox):
    sandbox.entra.add_user(OID, UPN, USER_ID)
    sandbox.entra.add_user(OTHER_OID, OTHER_UPN, OTHER_USER)
    sandbox.entra.auto_approve, sandbox.entra.poll_interval = OID, 0
    return OID


def test_a_forged_created_and_rejected_version_never_revokes_the_pat_aggregator_uses(
        world, sandbox, run_cli, channels, person):
    token, auth = world.issue(100)
    app = world.add_instance(NAME, token)
    assert run_cli("login", **channels, **AUTO).code == 0
    assert run_cli("run", **channels, **AUTO).code == 0          # the record: this token, its ID
    junk, _ = world.issue(50)
    world.stage(junk, days=50, tags={"created-by": "pat-watchdog", "watchdog-status": "rejected",
                                     "authorizationId": auth, "fingerprint": fingerprint(junk)})
    other, other_auth = world.issue(200)                          # any other PAT of the user
    world.stage(junk, days=50, tags={"created-by": "pat-watchdog", "watchdog-status": "current",
                                     "rotated-at": "2026-01-01T00:00:00Z", "authorizationId": other_auth})
    for day in (0, 8, 30):
        result = run_cli("run", "--json", now=world.now + timedelta(days=day), **channels, **AUTO)
        assert [a for a in result.instance(NAME)["actions"] if a["kind"] == "revoke"] == []
    assert not sandbox.devops.is_revoked(auth) and not sandbox.devops.is_revoked(other_auth)
    assert world.token_setting(app) == token and sandbox.devops.works(token)


def test_a_forged_current_version_cannot_widen_a_created_pat_to_full_access(world, sandbox, run_cli, channels, person):
    token, auth = world.issue(10, scope="vso.work_write vso.project")
    app = world.add_instance(NAME, token)
    _full, full_auth = world.issue(300, scope="app_token")       # the user's full-access PAT
    world.stage("not-the-token-at-all", days=300, tags={        # any value, the public fingerprint, the ID
        "fingerprint": fingerprint(token), "watchdog-status": "current", "authorizationId": full_auth,
        "scopes": "app_token"})
    assert run_cli("login", **channels, **AUTO).code == 0
    result = run_cli("run", "--json", **channels, **AUTO)
    [created] = sandbox.devops.created_pats()
    scope = sandbox.devops.scope_of(created.authorization_id).split()
    assert "app_token" not in scope, scope
    assert fp(world.token_setting(app)) != fp(token)             # it still rotated, with honest scopes
    assert result.instance(NAME)["status"] in ("OK", "WARNING")


@pytest.mark.parametrize("forgery", ["late expiry", "another PAT's ID"])
def test_a_forged_current_version_does_not_silence_the_alert(world, sandbox, run_cli, channels, forgery):
    token, auth = world.issue(2)
    world.add_instance(NAME, token)
    world.stage(token, days=2, tags={"watchdog-status": "current", "authorizationId": auth})
    assert run_cli("run", **channels).code == 0                   # the honest record: two days left
    sandbox.teams.received.clear()
    _long, long_auth = world.issue(300)
    tags = {"fingerprint": fingerprint(token), "watchdog-status": "current"}
    if forgery == "another PAT's ID":
        tags["authorizationId"] = long_auth
    world.stage("a-value-that-is-no-token", days=300 if forgery == "late expiry" else 2, tags=tags)
    result = run_cli("status", "--json", **channels)
    inst = result.instance(NAME)
    assert inst["status"] == "CRITICAL" and inst["token"]["days_left"] in (1, 2), inst["reasons"]
    assert "TAG_DISAGREES" in codes(inst)                        # the forged fingerprint tag is reported
    assert run_cli("run", **channels, now=world.now + timedelta(hours=21)).code == 0
    assert f"CRITICAL: {NAME}" in titles(sandbox)


def test_a_tag_that_does_not_parse_is_reported_and_the_alert_still_goes_out(world, sandbox, run_cli, channels):
    token, auth = world.issue(-1)                                  # expired: CRITICAL
    world.add_instance(NAME, token)
    world.stage(token, days=1, tags={"watchdog-status": "current", "rotated-at": "yesterday",
                                     "authorizationId": "not-a-guid", "revoked-at": "soon"})
    result = run_cli("run", "--json", **channels)
    inst = result.instance(NAME)
    assert inst["status"] == "CRITICAL" and result.code == 0
    unparsed = [r["message"] for r in inst["reasons"] if r["code"] == "TAG_UNPARSED"]
    assert len(unparsed) == 3 and all(STAGED in m for m in unparsed)
    assert any("rotated-at" in m for m in unparsed) and "yesterday" not in " ".join(unparsed)
    assert f"CRITICAL: {NAME}" in titles(sandbox) and len(sandbox.smtp.messages) >= 1


def test_one_instances_setting_can_never_name_anothers_secrets(world, sandbox, run_cli, channels):
    names = {"WATCHDOG_STAGED_SECRET": "{name}-pat-staged", "WATCHDOG_PREVIOUS_SECRET": "{name}-pat-previous"}
    b_token, _ = world.issue(100)
    world.add_instance("baggregator", b_token)
    b_new, _ = world.issue(365)
    b_version = world.stage(b_new, days=365, secret="baggregator-pat-staged")
    uri = f"{sandbox.vault.url(world.vault)}/secrets/baggregator-pat-staged/"
    a_app = world.add_instance("aaggregator", f"@Microsoft.KeyVault(SecretUri={uri})")
    result = run_cli("run", "--json", **channels, **names)
    a = result.instance("aaggregator")
    assert a["status"] == "CRITICAL" and codes(a) == {"REFERENCE_NOT_ALLOWED"}
    assert "baggregator-pat-staged" in a["reasons"][0]["message"]
    assert world.token_setting(a_app).startswith("@Microsoft.KeyVault(")
    [b_staged] = [v for v in sandbox.vault.versions(world.vault, "baggregator-pat-staged")]
    assert b_staged["version"] == b_version and "watchdog-status" not in b_staged["tags"]
    assert sandbox.vault.versions(world.vault, "aaggregator-pat-staged") == []


def test_a_dead_token_does_not_turn_off_the_user_check(world, sandbox, run_cli, channels, person):
    token, _ = world.issue(10)
    app = world.add_instance(NAME, token)
    assert run_cli("run", **channels, **AUTO).code == 0            # the record: the token's user
    sandbox.devops.revoke(token)                                    # now dead
    sandbox.entra.auto_approve = OTHER_OID
    refused = run_cli("login", **channels, **AUTO)
    assert refused.code == 1 and "another user" in refused.err and "--new-user" in refused.err
    assert sandbox.vault.versions("contoso-kv", "pat-watchdog-signin") == []
    # A candidate of that other user is rejected too, although the token in place is dead.
    theirs, _ = world.issue(200, user_id=OTHER_USER)
    version = world.stage(theirs, days=200)
    result = run_cli("run", "--json", **channels)
    assert world.token_setting(app) == token
    tags = next(v["tags"] for v in sandbox.vault.versions("contoso-kv", STAGED) if v["version"] == version)
    assert tags["watchdog-status"] == "rejected" and "login --new-user" in tags["watchdog-reason"]
    assert result.instance(NAME)["status"] == "CRITICAL"
    # The documented hand-over: that person signs in with --new-user; then their PATs are accepted.
    handed = run_cli("login", "--new-user", **channels, **AUTO)
    assert handed.code == 0, handed.err
    assert "now belong to user" in handed.out
    again, _ = world.issue(200, user_id=OTHER_USER)
    world.stage(again, days=200)
    rotated = run_cli("run", "--json", **channels)
    assert fp(world.token_setting(app)) == fp(again), rotated.instance(NAME)["reasons"]


def test_a_sign_in_of_another_user_creates_nothing_once_the_token_is_dead(world, sandbox, run_cli, channels, person):
    token, _ = world.issue(10)
    world.add_instance(NAME, token)
    assert run_cli("run", **channels, **AUTO).code == 0            # the record: the token's user
    # Someone stores another user's sign-in (here: a login recorded in another table, so the
    # watchdog's own record still names the token's user), then the token dies.
    sandbox.entra.auto_approve = OTHER_OID
    assert run_cli("login", "--new-user", **{**channels, "WATCHDOG_STATE_TABLE": "elsewhere"}, **AUTO).code == 0
    sandbox.devops.revoke(token)
    result = run_cli("run", "--json", **channels, **AUTO)
    inst = result.instance(NAME)
    assert sandbox.devops.created_pats() == [] and world.token_setting(world.apps[0]) == token
    signin = next(r for r in inst["reasons"] if r["code"] == "SIGNIN_REQUIRED")
    assert OTHER_USER in signin["message"] and USER_ID in signin["message"] and signin["level"] == "CRITICAL"


def test_azure_devops_answer_beats_the_scopes_tag_for_candidate_and_token(world, sandbox, run_cli, channels):
    """The README's staging line carries a fixed `scopes` tag; a read-only PAT staged with it is what Azure
    DevOps says it is: the candidate is rejected, and a token in place with such a tag is CRITICAL."""
    old, _ = world.issue(5)
    app = world.add_instance(NAME, old)
    world.stage(old, days=5, tags={"watchdog-status": "current"})
    reader, _ = world.issue(365, scope="vso.work")
    version = world.stage(reader, days=365, scopes="vso.identity vso.project vso.serviceendpoint_manage vso.work_full")
    result = run_cli("run", "--json", **channels)
    assert world.token_setting(app) == old
    tags = next(v["tags"] for v in sandbox.vault.versions("contoso-kv", STAGED) if v["version"] == version)
    assert tags["watchdog-status"] == "rejected" and "vso.work_write" in tags["watchdog-reason"]
    assert result.instance(NAME)["candidate"]["state"] == "rejected"
    # The token in place itself, staged with the same tag: the listing's real scope wins.
    world.apps.clear()
    reading, _ = world.issue(200, scope="vso.work")
    world.add_instance("readeraggregator", reading)
    world.stage(reading, days=200, secret="readeraggregator-pat-staged",
                scopes="vso.identity vso.project vso.serviceendpoint_manage vso.work_full")
    inst = run_cli("status", "--json", WATCHDOG_STAGED_SECRET="{name}-pat-staged",
                   WATCHDOG_PREVIOUS_SECRET="{name}-pat-previous").instance("readeraggregator")
    assert inst["token"]["scopes"] == ["vso.work"] and inst["status"] == "CRITICAL"
    assert "SCOPE_MISSING" in codes(inst)


# -- found by an attacker's review --------------------------------------------------------------------
def test_a_forged_disabled_applying_version_and_previous_secret_put_nothing_into_aggregator(
        world, sandbox, run_cli, channels):
    """Two writes the staging role allows: another PAT in the previous secret tagged with this app, and a
    disabled staged version tagged `applying` with the current token's public fingerprint."""
    token, _ = world.issue(100)
    app = world.add_instance(NAME, token)
    world.stage(token, days=100, tags={"watchdog-status": "current"})
    assert run_cli("run", **channels).code == 0
    theirs, _ = world.issue(200, user_id=OTHER_USER)
    world.stage(theirs, days=200, secret="aggregator-pat-previous", tags={"app": app, "fingerprint": fp(theirs)})
    forged = world.stage(theirs, days=200, enabled=False,
                         tags={"watchdog-status": "applying", "fingerprint": fingerprint(token)})
    for day in (0, 1):
        result = run_cli("run", "--json", now=world.now + timedelta(days=day, hours=1), **channels)
        assert world.token_setting(app) == token, result.instance(NAME)["actions"]
    assert sandbox.arm.writes == []
    tags = next(v["tags"] for v in sandbox.vault.versions("contoso-kv", STAGED) if v["version"] == forged)
    assert tags["watchdog-status"] in ("applying", "rejected")


def test_an_applying_tag_the_watchdog_did_not_write_waits_for_the_window(world, sandbox, run_cli, channels):
    s = scene(world, days_left=100, tags={"watchdog-status": "applying"})
    app, token = s.app, s.old
    inst = run_cli("run", "--json", **channels).instance(NAME)
    assert world.token_setting(app) == token and sandbox.arm.writes == []     # not due: 100 days left
    assert "TAG_DISAGREES" in codes(inst)


def test_restaging_the_current_token_with_a_late_date_does_not_silence_its_alert(world, sandbox, run_cli, channels):
    """The user holds several PATs (common), so no listing entry is the token's for sure; the token works, so
    its entry is among the user's active ones: a Key Vault date none of them has is disproved."""
    token, auth = world.issue(5)
    world.issue(200)                                             # the user's other PAT
    world.add_instance(NAME, token)
    world.stage(token, days=5, tags={"watchdog-status": "current"})
    assert run_cli("run", **channels).code == 0
    world.stage(token, days=399)                                 # the same value again, a late --expires
    sandbox.teams.received.clear()
    inst = run_cli("run", "--json", now=world.now + timedelta(hours=21), **channels).instance(NAME)
    assert "EXPIRY_UNCONFIRMED" in codes(inst) and inst["token"]["days_left"] in (4, 5), inst["reasons"]
    assert inst["status"] in ("WARNING", "CRITICAL") and titles(sandbox)


def test_one_instance_naming_anothers_token_secret_is_refused_for_both(world, sandbox, run_cli, channels):
    a_token, _ = world.issue(100)
    sandbox.vault.set_secret("aggregator-kv", "b-pat", a_token, expires_on=world.now + timedelta(days=100))
    uri = f"{sandbox.vault.url('aggregator-kv')}/secrets/b-pat/"
    world.add_instance("baggregator", f"@Microsoft.KeyVault(SecretUri={uri})")
    world.add_instance("aaggregator", f"@Microsoft.KeyVault(SecretUri={uri})")
    env = {"WATCHDOG_REFERENCE_VAULTS": "https://aggregator-kv.vault.azure.net",
           "WATCHDOG_STAGED_SECRET": "{name}-pat-staged", "WATCHDOG_PREVIOUS_SECRET": "{name}-pat-previous"}
    result = run_cli("run", "--json", **channels, **env)
    for name in ("aaggregator", "baggregator"):
        inst = result.instance(name)
        assert codes(inst) == {"REFERENCE_NOT_ALLOWED"} and "b-pat" in inst["reasons"][0]["message"]
    assert len(sandbox.vault.versions("aggregator-kv", "b-pat")) == 1 and sandbox.arm.writes == []


def test_one_instance_alone_naming_a_secret_another_instance_was_recorded_with_is_refused(
        world, sandbox, run_cli, channels):
    """A fan-out execution watches one instance: the record of earlier runs names the other's secret."""
    b_token, _ = world.issue(100)
    sandbox.vault.set_secret("aggregator-kv", "b-pat", b_token, expires_on=world.now + timedelta(days=100))
    uri = f"{sandbox.vault.url('aggregator-kv')}/secrets/b-pat/"
    b_app = world.add_instance("baggregator", f"@Microsoft.KeyVault(SecretUri={uri})")
    env = {"WATCHDOG_REFERENCE_VAULTS": "https://aggregator-kv.vault.azure.net",
           "WATCHDOG_STAGED_SECRET": "{name}-pat-staged", "WATCHDOG_PREVIOUS_SECRET": "{name}-pat-previous"}
    assert run_cli("run", **channels, **env).code == 0          # B's form is recorded
    a_app = world.add_instance("aaggregator", f"@Microsoft.KeyVault(SecretUri={uri})")
    alone = run_cli("run", "--json", **channels, **env, WATCHDOG_AGGREGATOR_APP=a_app).instance("aaggregator")
    assert codes(alone) == {"REFERENCE_NOT_ALLOWED"} and "baggregator" in alone["reasons"][0]["message"]
    assert b_app != a_app


def test_a_working_token_of_another_user_never_takes_the_instance_over(world, sandbox, run_cli, channels):
    token, _ = world.issue(100)
    app = world.add_instance(NAME, token)
    assert run_cli("run", **channels).code == 0                  # the instance's user: recorded
    theirs, _ = world.issue(200, user_id=OTHER_USER)
    sandbox.arm.set_settings(app, {**sandbox.arm.settings(app), "Aggregator_VstsToken": theirs})
    for day in (1, 2):
        inst = run_cli("run", "--json", now=world.now + timedelta(days=day), **channels).instance(NAME)
        assert "TOKEN_USER_CHANGED" in codes(inst) and inst["status"] == "WARNING", inst["reasons"]
    handed = run_cli("login", "--new-user", now=world.now + timedelta(days=2), **channels)
    assert handed.code == 0 and OTHER_USER in handed.out, handed.err
    inst = run_cli("run", "--json", now=world.now + timedelta(days=3), **channels).instance(NAME)
    assert "TOKEN_USER_CHANGED" not in codes(inst)


def test_a_staged_version_without_room_for_tags_does_not_block_hands_free(world, sandbox, run_cli, channels, person):
    token, _ = world.issue(10)
    app = world.add_instance(NAME, token)
    junk, _ = world.issue(300)
    world.stage(junk, days=300, tags={f"t{i}": "x" for i in range(14)})   # 15 tags with scopes: no room
    assert run_cli("login", **channels, **AUTO).code == 0
    inst = run_cli("run", "--json", **channels, **AUTO).instance(NAME)
    assert len(sandbox.devops.created_pats()) == 1 and fp(world.token_setting(app)) != fp(token), inst["reasons"]


def test_thousands_of_staged_versions_cost_a_bounded_number_of_reads(world, sandbox, run_cli, channels):
    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    for _ in range(60):
        junk, _ = world.issue(300)
        world.stage(junk, days=300)
    sandbox.reset_requests()
    inst = run_cli("status", "--json", **channels).instance(NAME)
    reads = sandbox.count(method="GET", host="vault", path=r"aggregator-pat-staged/[0-9a-f]{32}")
    assert reads <= 25 and inst["status"] != "UNKNOWN"


# -- found by the second review ---------------------------------------------------------------------
def test_an_instance_whose_user_was_never_seen_gets_no_pat_of_the_signed_in_user(world, sandbox, run_cli, channels,
                                                                                 person):
    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    assert run_cli("login", **channels, **AUTO).code == 0
    per_name = {"WATCHDOG_STAGED_SECRET": "{name}-pat-staged", "WATCHDOG_PREVIOUS_SECRET": "{name}-pat-previous",
                "WATCHDOG_SIGNIN_SECRET": "pat-watchdog-signin"}
    evil = world.add_instance("evilaggregator", "not-a-token", group="someones-sandbox")
    inst = run_cli("run", "--json", **channels, **AUTO, **per_name).instance("evilaggregator")
    assert sandbox.devops.created_pats() == [] and world.token_setting(evil) == "not-a-token"
    signin = next(r for r in inst["reasons"] if r["code"] == "SIGNIN_REQUIRED")
    assert "--new-user" in signin["message"] and "not known yet" in signin["message"]


def test_two_watched_apps_of_one_name_share_no_replacement(world, sandbox, run_cli, channels):
    names = {"WATCHDOG_STAGED_SECRET": "{name}-pat-staged", "WATCHDOG_PREVIOUS_SECRET": "{name}-pat-previous"}
    token, _ = world.issue(5)
    world.add_instance(NAME, token)
    new, _ = world.issue(365)
    world.stage(new, days=365, secret=f"{NAME}-pat-staged")
    twin = world.add_instance(NAME, "not-a-token", group="someones-sandbox", default_host="unique")
    result = run_cli("run", "--json", **channels, **names)
    assert {i["status"] for i in result.json["instances"]} == {"CRITICAL"}
    assert all([r["code"] for r in i["reasons"]] == ["REFERENCE_NOT_ALLOWED"] for i in result.json["instances"])
    assert world.token_setting(twin) == "not-a-token" and sandbox.arm.writes == []


def test_a_reference_in_another_case_is_the_same_secret(world, sandbox, run_cli, channels):
    b_token, _ = world.issue(100)
    sandbox.vault.set_secret("aggregator-kv", "b-pat", b_token, expires_on=world.now + timedelta(days=100))
    env = {"WATCHDOG_REFERENCE_VAULTS": "https://aggregator-kv.vault.azure.net",
           "WATCHDOG_STAGED_SECRET": "{name}-pat-staged", "WATCHDOG_PREVIOUS_SECRET": "{name}-pat-previous"}
    world.add_instance("baggregator", f"@Microsoft.KeyVault(SecretUri={sandbox.vault.url('aggregator-kv')}/secrets/b-pat/)")
    assert run_cli("run", **channels, **env).code == 0
    upper = f"{sandbox.vault.url('aggregator-kv').upper().replace('HTTPS', 'https')}/secrets/B-PAT/"
    a_app = world.add_instance("aaggregator", f"@Microsoft.KeyVault(SecretUri={upper})")
    alone = run_cli("run", "--json", **channels, **env, WATCHDOG_AGGREGATOR_APP=a_app).instance("aaggregator")
    assert codes(alone) == {"REFERENCE_NOT_ALLOWED"}


def test_a_time_at_the_edge_of_the_calendar_is_no_time_and_costs_no_alert(world, sandbox, run_cli, channels):
    token, _ = world.issue(2)
    world.add_instance(NAME, token)
    world.stage(token, days=2, tags={"watchdog-status": "current"})
    world.stage("junk", days=300, scopes=None, tags={"rotated-at": "0001-01-01T00:00:00+01:00"})
    result = run_cli("run", "--json", **channels)
    inst = result.instance(NAME)
    assert inst["status"] == "CRITICAL" and "INTERNAL_ERROR" not in codes(inst) and "TAG_UNPARSED" in codes(inst)
    assert f"CRITICAL: {NAME}" in titles(sandbox)


def test_retagging_the_version_in_place_as_applying_rolls_nothing_back(world, sandbox, run_cli, channels, person):
    old, _ = world.issue(10)
    app = world.add_instance(NAME, old)
    assert run_cli("login", **channels, **AUTO).code == 0
    assert run_cli("run", **channels, **AUTO).code == 0
    placed = world.token_setting(app)
    [version] = [v["version"] for v in sandbox.vault.versions(world.vault, STAGED)]
    found = sandbox.vault._secret(world.vault, STAGED).find(version)     # two PATCHes a stager may make
    found.tags = {**found.tags, "watchdog-status": "applying"}
    found.enabled = False
    for day in (0.1, 1):
        run_cli("run", "--json", now=world.now + timedelta(days=day), **channels, **AUTO)
        assert world.token_setting(app) == placed and sandbox.devops.works(placed)


def test_a_moved_key_vault_date_does_not_replace_the_sure_match(world, sandbox, run_cli, channels):
    """One attribute write moves the current version's `expires` onto another PAT's date."""
    token, _ = world.issue(20)
    world.add_instance(NAME, token)
    version = world.stage(token, days=20, tags={"watchdog-status": "current"})
    assert run_cli("run", **channels).code == 0                      # the only PAT: a sure match
    _other, _ = world.issue(200)
    found = sandbox.vault._secret(world.vault, STAGED).find(version)
    found.expires_on = world.now + timedelta(days=200)
    for day in (1, 10):
        inst = run_cli("run", "--json", now=world.now + timedelta(days=day), **channels).instance(NAME)
        assert inst["token"]["days_left"] == 20 - day and inst["status"] == "WARNING", inst["reasons"]

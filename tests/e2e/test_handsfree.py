"""Hands-free rotation (docs/reference.md, "Hands-free rotation") against the sandbox's Entra ID and PAT Lifecycle API, with the real
MSAL client: sign in once, then the watchdog creates, stages, rotates and later revokes PATs itself."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pat_watchdog.sandbox import Step
from pat_watchdog.sandbox.entra_shapes import SIGNIN_CLIENT
from pat_watchdog.sandbox.seed import USER_ID
from tests.e2e.conftest import NAME, STAGED, card_texts, kill_after, titles
from tests.azurite import expire_locks
from tests.leaks import fp

ROOT = Path(__file__).resolve().parents[2]
OID, UPN = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", "aggregator-admin@contoso.com"
AUTO = {"WATCHDOG_ROTATION": "auto", "WATCHDOG_SIGNIN_CLIENT_ID": SIGNIN_CLIENT}
CREATE_PAT = dict(method="POST", host="vssps.dev.azure.com", path="_apis/tokens/pats")
# The request right after the created PAT's value reached Key Vault: the check of the new version.
STAGING = dict(method="PUT", path=f"secrets/{STAGED}")


def reason(instance: dict, code: str) -> dict | None:
    return next((r for r in instance["reasons"] if r["code"] == code), None)


def actions(instance: dict, kind: str) -> list[dict]:
    return [a for a in instance["actions"] if a["kind"] == kind]


def active_created(sandbox) -> list[str]:
    """Authorization IDs of the PATs the API created that still work."""
    return [p.authorization_id for p in sandbox.devops.created_pats()
            if not sandbox.devops.is_revoked(p.authorization_id)]


@pytest.fixture
def person(sandbox):
    """The token's user in Entra ID, who approves the device code as soon as it is shown."""
    sandbox.entra.add_user(OID, UPN, USER_ID)
    sandbox.entra.auto_approve = OID
    sandbox.entra.poll_interval = 0
    return OID


@pytest.fixture
def signed_in(world, run_cli, person, channels):
    """A world whose instance holds a token 10 days from expiry, nothing staged, and a stored sign-in."""
    old, _ = world.issue(10)
    app = world.add_instance(NAME, old)
    result = run_cli("login", **channels, **AUTO)
    assert result.code == 0, result.err
    assert f"signed in as {UPN}" in result.out and "pat-watchdog-signin" in result.out
    return app, old


def test_login_stores_the_sign_in_and_prints_nothing_of_it(signed_in, sandbox, world):
    stored = sandbox.vault.versions("contoso-kv", "pat-watchdog-signin")
    assert len(stored) == 1 and stored[0]["tags"]["user"] == UPN
    assert "refresh" in stored[0]["value"].lower() and "AccessToken\":{\"" not in stored[0]["value"]
    assert sandbox.devops.created_pats() == []          # signing in creates nothing


def test_one_run_creates_stages_rotates_and_reports_ok_then_revokes_what_it_replaced(
        signed_in, sandbox, world, run_cli, channels):
    app, old = signed_in
    start = world.now
    result = run_cli("run", "--json", **channels, **AUTO)
    assert result.code == 0, result.err
    inst = result.instance(NAME)
    assert inst["status"] == "OK", inst["reasons"]
    [created] = sandbox.devops.created_pats()
    assert created.display_name.startswith(f"pat-watchdog {NAME} ") and created.user_id == USER_ID
    [create] = actions(inst, "create")
    assert create["outcome"] == "done" and created.authorization_id in create["detail"]
    assert actions(inst, "rotate")[0]["outcome"] == "done"
    new = world.token_setting(app)
    assert fp(new) != fp(old) and sandbox.devops.works(new)
    [version] = sandbox.vault.versions("contoso-kv", STAGED)
    assert version["tags"]["created-by"] == "pat-watchdog" and version["tags"]["watchdog-status"] == "current"
    assert version["tags"]["authorizationId"] == created.authorization_id
    assert "vso.work_full" in version["tags"]["scopes"].split()          # the current token's scopes kept
    assert inst["token"]["days_left"] in (89, 90) and inst["candidate"]["state"] == "current"
    assert "INFO: " + NAME in titles(sandbox)

    # A person's PAT is never revoked: the old token simply expires.
    later = run_cli("run", "--json", now=start + timedelta(days=8), **channels, **AUTO)
    assert actions(later.instance(NAME), "revoke") == [] and sandbox.devops.works(old)
    # 77 days on, the created PAT has 13 days left: the next one is created and rotated in ...
    sandbox.clock = lambda: start + timedelta(days=77)
    second = run_cli("run", "--json", now=sandbox.clock(), **channels, **AUTO)
    assert [a["outcome"] for a in actions(second.instance(NAME), "rotate")] == ["done"]
    assert len(sandbox.devops.created_pats()) == 2
    # ... and 7 days after that rotation the PAT it replaced, which the watchdog made, is revoked.
    sandbox.clock = lambda: start + timedelta(days=84)
    week = run_cli("run", "--json", now=sandbox.clock(), **channels, **AUTO)
    [revoke] = actions(week.instance(NAME), "revoke")
    assert revoke["outcome"] == "done" and created.authorization_id in revoke["detail"]
    assert active_created(sandbox) == [sandbox.devops.created_pats()[1].authorization_id]
    assert sandbox.devops.works(world.token_setting(app))        # never what Aggregator holds
    assert week.code == 0 and week.instance(NAME)["status"] == "OK"


def test_the_users_other_pats_do_not_block_the_created_one(signed_in, sandbox, world, run_cli, channels):
    """The user holds a PAT for another tool that outlives the created one: the listing is ambiguous,
    yet the created PAT is compared with the expiry that made the run create it, and rotated in."""
    app, old = signed_in
    world.issue(300)
    result = run_cli("run", "--json", **channels, **AUTO)
    inst = result.instance(NAME)
    assert result.code == 0 and inst["status"] == "OK", inst["reasons"]
    assert [a["kind"] for a in inst["actions"] if a["kind"] in ("create", "rotate")] == ["create", "rotate"]
    assert fp(world.token_setting(app)) != fp(old)


@pytest.mark.parametrize("days_left, level", [(10, "WARNING"), (2, "CRITICAL")])
def test_a_revoked_sign_in_is_signin_required_with_the_login_command(world, sandbox, run_cli, person, channels,
                                                                      days_left, level):
    old, _ = world.issue(days_left)
    world.add_instance(NAME, old)
    assert run_cli("login", **channels, **AUTO).code == 0
    sandbox.entra.revoke_sessions(OID)
    result = run_cli("run", "--json", **channels, **AUTO)
    inst = result.instance(NAME)
    found = reason(inst, "SIGNIN_REQUIRED")
    assert found and found["level"] == level and "pat-watchdog login" in found["message"]
    assert "AADSTS50173" in found["message"]
    assert sandbox.devops.created_pats() == [] and world.token_setting(world.apps[0]) == old
    assert f"{level}: {NAME}" in titles(sandbox)


def test_nobody_signed_in_is_signin_required_and_status_writes_nothing(world, sandbox, run_cli, channels):
    old, _ = world.issue(5)
    world.add_instance(NAME, old)
    sandbox.reset_requests()
    status = run_cli("status", "--json", **channels, **AUTO)
    found = reason(status.instance(NAME), "SIGNIN_REQUIRED")
    assert found and "nobody has signed in" in found["message"] and found["level"] == "WARNING"
    assert sandbox.count(method="PUT") == sandbox.count(method="PATCH") == sandbox.count(method="POST",
                                                                                          host="vssps") == 0
    dry = run_cli("run", "--dry-run", "--json", **channels, **AUTO)
    assert [a["outcome"] for a in actions(dry.instance(NAME), "create")] == ["planned"]


def test_a_creation_policy_is_pat_creation_blocked_naming_it(signed_in, sandbox, world, run_cli, channels):
    app, old = signed_in
    sandbox.devops.restrict_pat_creation = True
    result = run_cli("run", "--json", **channels, **AUTO)
    inst = result.instance(NAME)
    found = reason(inst, "PAT_CREATION_BLOCKED")
    assert found and found["level"] == "CRITICAL" and "Restrict personal access token creation" in found["message"]
    assert inst["status"] == "CRITICAL" and f"CRITICAL: {NAME}" in titles(sandbox)
    assert sandbox.devops.created_pats() == [] and world.token_setting(app) == old
    assert result.code == 1                                      # the run failed: the monitor sees it


@pytest.mark.parametrize("shortens", [False, True], ids=["refused", "shortened"])
def test_a_lifespan_policy_is_capped_and_the_rotation_still_happens(signed_in, sandbox, world, run_cli, channels,
                                                                     shortens):
    app, old = signed_in
    sandbox.devops.pat_max_lifespan = timedelta(days=60)
    sandbox.devops.pat_lifespan_shortens = shortens
    result = run_cli("run", "--json", **channels, **AUTO)
    inst = result.instance(NAME)
    assert result.code == 0 and inst["status"] == "OK", inst["reasons"]
    assert reason(inst, "PAT_LIFESPAN_CAPPED") and fp(world.token_setting(app)) != fp(old)
    assert inst["token"]["days_left"] in (59, 60) and len(sandbox.devops.created_pats()) == 1


def test_login_as_another_user_stores_nothing(world, sandbox, run_cli, channels):
    old, _ = world.issue(10)
    world.add_instance(NAME, old)
    sandbox.entra.add_user("9a8b7c6d-5e4f-4321-8abc-def012345678", "someone@contoso.com",
                           "11111111-2222-4333-8444-555555555555")
    sandbox.entra.auto_approve, sandbox.entra.poll_interval = "9a8b7c6d-5e4f-4321-8abc-def012345678", 0
    result = run_cli("login", **channels, **AUTO)
    assert result.code == 1 and "belongs to another user" in result.err and "Nothing was stored" in result.err
    assert sandbox.vault.versions("contoso-kv", "pat-watchdog-signin") == []


# -- a run that dies between creation and staging -------------------------------------------------
@pytest.mark.parametrize("where, creations", [
    ("before the value reached Key Vault", 2),        # the orphan is revoked, one new PAT is created
    ("after the value reached Key Vault", 1),         # the staged PAT is adopted, none created
])
def test_a_run_killed_around_staging_leaves_no_created_pat_unaccounted_for(world, sandbox, run_cli, person,
                                                                          channels, where, creations):
    sandbox.clock = lambda: datetime.now(timezone.utc)        # the child process runs on the real clock
    old, _ = world.issue(10)
    app = world.add_instance(NAME, old)
    assert run_cli("login", now=sandbox.clock(), **channels, **AUTO).code == 0
    held = STAGING if creations == 2 else dict(method="GET", path=f"secrets/{STAGED}/[0-9a-f]{{32}}",
                                                after=Step("PUT", path=f"secrets/{STAGED}"))
    fault = sandbox.inject(hang=60, drop=True, **held)
    kill_after(sandbox, world, {**channels, **AUTO}, fault)
    assert len(sandbox.devops.created_pats()) == 1 and world.token_setting(app) == old
    sandbox.clear_faults()
    expire_locks(channels["AzureWebJobsStorage"], channels["WATCHDOG_STATE_TABLE"])   # the dead run's lease
    later = datetime.now(timezone.utc) + timedelta(minutes=16)
    sandbox.clock = lambda: later
    result = run_cli("run", "--json", now=later, **channels, **AUTO)
    inst = result.instance(NAME)
    assert result.code == 0 and inst["status"] == "OK", (inst["reasons"], inst["actions"])
    assert len(sandbox.devops.created_pats()) == creations
    holds = world.token_setting(app)
    assert fp(holds) != fp(old) and sandbox.devops.works(holds)
    assert len(active_created(sandbox)) == 1                   # exactly the one Aggregator holds
    if creations == 2:
        assert [a["outcome"] for a in actions(inst, "revoke")] == ["done"]
        assert "orphan" in actions(inst, "revoke")[0]["detail"]


def test_the_doctor_says_when_nobody_signed_in_and_how_to(world, sandbox, run_cli, person, channels):
    old, _ = world.issue(60)
    world.add_instance(NAME, old)
    before = run_cli("doctor", "--json", **channels, **AUTO).json
    [check] = [c for c in before["checks"] if c["id"] == "signin"]
    assert check["status"] == "FIX" and check["fix"] == "pat-watchdog login" and "nobody has signed in" in check["message"]
    assert run_cli("login", **channels, **AUTO).code == 0
    after = run_cli("doctor", "--json", **channels, **AUTO).json
    [check] = [c for c in after["checks"] if c["id"] == "signin"]
    assert check["status"] == "OK" and UPN in check["message"]
    staged = run_cli("doctor", "--json", **channels).json                  # staged rotation: no such check
    assert [c for c in staged["checks"] if c["id"] == "signin"] == []


def test_each_run_uses_the_sign_in_and_stores_it_back_weekly(world, sandbox, run_cli, person, channels):
    old, _ = world.issue(200)
    world.add_instance(NAME, old)
    start = world.now
    assert run_cli("login", **channels, **AUTO).code == 0
    refreshed = sandbox.entra.grants["refresh_token"]
    for day in (1, 2, 8, 9):
        sandbox.clock = lambda day=day: start + timedelta(days=day)
        result = run_cli("run", "--json", now=sandbox.clock(), **channels, **AUTO)
        assert result.code == 0 and result.instance(NAME)["status"] == "OK", result.instance(NAME)["reasons"]
    assert sandbox.entra.grants["refresh_token"] == refreshed + 4               # used every run: kept alive
    assert len(sandbox.vault.versions("contoso-kv", "pat-watchdog-signin")) == 2  # stored again after a week
    sandbox.clock = lambda: start + timedelta(days=120)                  # 111 idle days: Entra ended it
    late = run_cli("run", "--json", now=sandbox.clock(), **channels, **AUTO).instance(NAME)
    assert "AADSTS700082" in next(r["message"] for r in late["reasons"] if r["code"] == "SIGNIN_REQUIRED")


@pytest.mark.parametrize("current_staged", [False, True], ids=["nothing staged", "the current token staged"])
def test_a_created_pat_that_is_rejected_is_reported_as_itself_and_alerted_once(signed_in, sandbox, world, run_cli,
                                                                                channels, current_staged):
    """The report and the alert name the created version (not the current token's), the next run sends
    nothing new, and no subject or card carries a ledger key."""
    app, old = signed_in
    if current_staged:
        world.stage(old, days=10, tags={"watchdog-status": "current"})
    sandbox.inject(host="dev.azure.com", path="connectionData", status=401,
                   headers={"X-TFS-ServiceError": "Access%20Denied"}, after=Step("PUT", path=f"secrets/{STAGED}"))
    result = run_cli("run", "--json", **channels, **AUTO)
    inst = result.instance(NAME)
    [created] = [v for v in sandbox.vault.versions("contoso-kv", STAGED) if v["tags"].get("created-by")]
    assert created["tags"]["watchdog-status"] == "rejected" and world.token_setting(app) == old
    cand = inst["candidate"]
    assert (cand["version"], cand["state"], cand["fingerprint"]) == (
        created["version"], "rejected", created["tags"]["fingerprint"])
    assert cand["fingerprint"] != fp(old)
    rejected = reason(inst, "CANDIDATE_REJECTED")
    assert rejected and created["version"] in rejected["message"]
    cards, mails = len(sandbox.teams.received), len(sandbox.smtp.messages)
    assert f"WARNING: {NAME}" in titles(sandbox)

    later = run_cli("run", "--json", now=world.now + timedelta(hours=2), **channels, **AUTO)
    assert later.instance(NAME)["candidate"]["version"] == created["version"]
    assert len(sandbox.teams.received) == cards and len(sandbox.smtp.messages) == mails    # told once
    for envelope in sandbox.teams.received:
        assert not any(":" + created["version"] in text or "candidate_rejected" in text.lower()
                       for text in card_texts(envelope))
    for mail in sandbox.smtp.messages:
        assert created["version"] not in mail["Subject"] and "candidate_rejected" not in mail["Subject"].lower()


def test_a_creation_whose_answer_is_lost_is_never_sent_twice_and_the_orphan_is_revoked(
        signed_in, sandbox, world, run_cli, channels):
    """The POST reached Azure DevOps and created the PAT, but its answer never arrived whole: it is not sent
    again (it may have taken effect); the display name recorded before the request finds it, in the same run."""
    app, old = signed_in
    sandbox.inject(**CREATE_PAT, trickle=2.0, times=1)            # created, then a byte every 2 s: cut
    first = run_cli("run", "--json", **channels, **AUTO)
    inst = first.instance(NAME)
    assert sandbox.count(method="POST", host="vssps.dev.azure.com", path="_apis/tokens/pats") == 1
    assert world.token_setting(app) == old and [a["outcome"] for a in actions(inst, "create")] == ["failed"]
    [lost] = sandbox.devops.created_pats()
    assert any(a["outcome"] == "done" and lost.authorization_id in a["detail"] for a in actions(inst, "revoke"))
    assert sandbox.devops.is_revoked(lost.authorization_id) and sandbox.devops.works(old)
    second = run_cli("run", "--json", now=world.now + timedelta(hours=1), **channels, **AUTO).instance(NAME)
    assert active_created(sandbox) == [sandbox.devops.created_pats()[1].authorization_id]
    assert fp(world.token_setting(app)) != fp(old) and second["status"] == "OK", second["reasons"]

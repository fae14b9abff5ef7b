"""`status --json` against the sandbox: real SDK clients, real TLS, every situation of the policy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pat_watchdog.sandbox.seed import SUBSCRIPTION, USER_ID
from tests.e2e.conftest import REFERENCE_VAULT, SETTINGS_LIST
from tests.conftest import NOW

NAME = "contosoaggregator"


def codes(inst: dict) -> list[str]:
    return [r["code"] for r in inst["reasons"]]


def healthy(world, days=100, *, stage=True, **issue):
    token, auth = world.issue(days, **issue)
    world.add_instance(NAME, token)
    if stage:  # the steady state: the current token staged, and adopted by an earlier run
        world.stage(token, days=days, tags={"watchdog-status": "current"})
    return token, auth


def test_healthy_with_key_vault_expiry(world, run_cli):
    healthy(world)
    result = run_cli("status", "--json")
    inst = result.instance(NAME)
    assert result.code == 0 and result.json["status"] == "OK"
    assert inst["token"]["days_left"] == 100 and inst["token"]["expiry_source"] == "keyvault"
    assert inst["token"]["live"] is True and inst["token"]["user_id"] == USER_ID
    assert inst["token"]["expires_on"] == "2027-03-08T06:00:00Z"
    assert inst["app"] == f"/subscriptions/{SUBSCRIPTION}/resourceGroups/aggregator-contoso/providers/" \
                          f"Microsoft.Web/sites/{NAME}"
    assert codes(inst)[0] == "HEALTHY" and result.json["schema"] == 1


def test_status_writes_nothing(world, run_cli, sandbox):
    healthy(world)
    run_cli("status")
    assert not [r for r in sandbox.requests if r.method in ("PUT", "PATCH", "DELETE")]


@pytest.mark.parametrize("days,status,code,exit_code", [
    (25, "WARNING", "EXPIRES_SOON", 1),
    (10, "WARNING", "EXPIRES_SOON", 1),
    (5, "WARNING", "EXPIRES_SOON", 1),
    (2.5, "CRITICAL", "EXPIRES_CRITICAL", 2),
    (0.5, "CRITICAL", "EXPIRES_CRITICAL", 2),
])
def test_thresholds(world, run_cli, days, status, code, exit_code):
    healthy(world, days)
    result = run_cli("status", "--json")
    assert (result.code, result.json["status"]) == (exit_code, status)
    assert code in codes(result.instance(NAME))


def test_critical_days_with_a_replacement_staged_is_a_warning(world, run_cli):
    healthy(world, 2.5)
    replacement, _ = world.issue(365)
    world.stage(replacement, days=365)
    result = run_cli("status", "--json")
    inst = result.instance(NAME)
    assert result.code == 1 and inst["status"] == "WARNING"
    assert inst["candidate"]["state"] == "pending" and "ROTATION_DUE" in codes(inst)


def test_expired_token(world, run_cli):
    token, _ = world.issue(-2)
    world.add_instance(NAME, token)
    result = run_cli("status", "--json")
    inst = result.instance(NAME)
    assert result.code == 2 and inst["status"] == "CRITICAL" and codes(inst) == ["EXPIRED"]
    assert "has expired" in inst["reasons"][0]["message"]  # X-TFS-ServiceError, URL-decoded
    assert inst["token"]["live"] is False


def test_revoked_token(world, run_cli, sandbox):
    token, _ = healthy(world)
    sandbox.devops.revoke(token)
    result = run_cli("status", "--json")
    assert result.code == 2 and codes(result.instance(NAME)) == ["TOKEN_INVALID"]


SIGN_IN = dict(host="dev.azure.com", path="connectionData", body="<html><body>Sign in</body></html>",
               headers={"Content-Type": "text/html"})


@pytest.mark.parametrize("status", [203, 200])
def test_sign_in_page_means_invalid(world, run_cli, sandbox, status):
    healthy(world)
    sandbox.inject(**SIGN_IN, status=status, times=None)
    result = run_cli("status", "--json")
    assert result.code == 2 and codes(result.instance(NAME)) == ["TOKEN_INVALID"]
    assert "twice in a row" in result.instance(NAME)["reasons"][0]["message"]
    assert sandbox.count(host="dev.azure.com", path="connectionData") == 2


@pytest.mark.parametrize("status", [203, 200])
def test_a_single_sign_in_page_is_asked_again_before_it_counts(world, run_cli, sandbox, status):
    """A transient sign-in page (200 text/html) made a working token CRITICAL TOKEN_INVALID for a day."""
    healthy(world)
    sandbox.inject(**SIGN_IN, status=status)
    result = run_cli("status", "--json")
    assert result.code == 0 and result.instance(NAME)["status"] == "OK"
    assert sandbox.count(host="dev.azure.com", path="connectionData") == 2


@pytest.mark.parametrize("scope, code, exit_code, named", [
    ("vso.work vso.project", "SCOPE_MISSING", 2, "vso.work_write"),
    ("vso.work_full vso.project", "SCOPE_RECOMMENDED_MISSING", 1, "vso.identity vso.serviceendpoint_manage"),
    ("vso.work_write", "SCOPE_RECOMMENDED_MISSING", 1, "vso.identity vso.project"),
])
def test_missing_scope_learned_from_the_listing(world, run_cli, scope, code, exit_code, named):
    healthy(world, stage=False, scope=scope)
    result = run_cli("status", "--json")
    inst = result.instance(NAME)
    assert result.code == exit_code and codes(inst) == [code]
    assert inst["token"]["expiry_source"] == "devops"
    assert f"the token lacks {named}" in inst["reasons"][0]["message"]


def test_global_pat_before_and_after_the_cutoff(world, run_cli, sandbox):
    healthy(world, stage=False, global_pat=True)
    before = run_cli("status", "--json")
    assert before.code == 1 and codes(before.instance(NAME)) == ["GLOBAL_PAT"]
    assert before.instance(NAME)["token"]["global"] is True
    later = NOW + timedelta(days=4)
    sandbox.clock = lambda: later
    after = run_cli("status", "--json", now=later)
    assert after.code == 2 and after.instance(NAME)["reasons"][0]["level"] == "CRITICAL"


def test_expiry_unknown_says_how_to_fix(world, run_cli, sandbox):
    healthy(world, stage=False)
    sandbox.devops.listing_status = 403
    result = run_cli("status", "--json")
    inst = result.instance(NAME)
    assert result.code == 1 and codes(inst) == ["EXPIRY_UNKNOWN", "LISTING_UNAVAILABLE"]
    assert "az keyvault secret set --vault-name contoso-kv --name aggregator-pat-staged" in inst["reasons"][0]["message"]
    assert inst["token"]["expires_on"] is None and inst["token"]["days_left"] is None


def test_expiry_from_the_setting_as_last_resort(world, run_cli, sandbox):
    healthy(world, stage=False)
    sandbox.devops.listing_status = 401
    result = run_cli("status", "--json", WATCHDOG_PAT_EXPIRES_ON="2027-01-15")
    inst = result.instance(NAME)
    assert inst["token"]["expiry_source"] == "setting" and inst["token"]["days_left"] == 47


def test_sources_disagree_earliest_wins_both_named(world, run_cli):
    token, auth = world.issue(20)
    world.add_instance(NAME, token)
    world.stage(token, days=60, scopes=None, tags={"authorizationId": auth})
    result = run_cli("status", "--json")
    inst = result.instance(NAME)
    assert inst["token"]["expiry_source"] == "devops" and inst["token"]["days_left"] == 20
    message = next(r["message"] for r in inst["reasons"] if r["code"] == "EXPIRY_SOURCES_DISAGREE")
    assert "keyvault says 2027-01-27" in message and "devops says 2026-12-18" in message
    assert {s["source"] for s in inst["token"]["sources"]} == {"keyvault", "devops"}
    assert result.code == 1


def test_ambiguous_listing_after_a_manual_change(world, run_cli):
    healthy(world, 200, stage=False)
    world.issue(40)  # an older PAT of the same user, still active
    inst = run_cli("status", "--json").instance(NAME)
    assert "EXPIRY_AMBIGUOUS" in codes(inst) and inst["token"]["days_left"] == 40


def test_authorization_id_not_in_listing(world, run_cli):
    healthy(world, stage=False)
    inst = run_cli("status", "--json",
                   WATCHDOG_PAT_AUTHORIZATION_ID="00000000-1111-2222-3333-444444444444").instance(NAME)
    assert "PAT_NOT_IN_LISTING" in codes(inst) and inst["status"] == "WARNING"


def test_authorization_id_picks_the_entry(world, run_cli):
    _, auth = healthy(world, 200, stage=False)
    world.issue(40)
    inst = run_cli("status", "--json", WATCHDOG_PAT_AUTHORIZATION_ID=auth).instance(NAME)
    assert inst["token"]["days_left"] == 200 and "EXPIRY_AMBIGUOUS" not in codes(inst)


def test_candidate_absent_and_present(world, run_cli):
    healthy(world)
    assert run_cli("status", "--json").instance(NAME)["candidate"]["state"] == "current"
    none = run_cli("status", "--json", WATCHDOG_STAGED_SECRET="nothing-here").instance(NAME)
    assert none["candidate"] == {"version": None, "state": "none", "fingerprint": None, "expires_on": None,
                                 "reason": None, "superseded": [], "skipped": []}
    replacement, _ = world.issue(365)
    version = world.stage(replacement, days=365)
    cand = run_cli("status", "--json").instance(NAME)["candidate"]
    assert cand["version"] == version and cand["state"] == "pending"
    assert cand["expires_on"] == "2027-11-28T06:00:00Z" and len(cand["fingerprint"]) == 8


@pytest.mark.parametrize("syntax", ["SecretUri-versioned", "SecretUri-versionless", "VaultName"])
def test_key_vault_reference_in_the_token_setting(world, run_cli, sandbox, syntax):
    token, _ = world.issue(45)
    version = sandbox.vault.set_secret("aggregator-kv", "aggregator-pat", token,
                                       expires_on=NOW + timedelta(days=45),
                                       tags={"scopes": "vso.identity vso.project vso.serviceendpoint_manage vso.work_full"})
    uri = f"{sandbox.vault.url('aggregator-kv')}/secrets/aggregator-pat"
    reference = {"SecretUri-versioned": f"@Microsoft.KeyVault(SecretUri={uri}/{version})",
                 "SecretUri-versionless": f"@Microsoft.KeyVault(SecretUri={uri}/)",
                 "VaultName": "@Microsoft.KeyVault(VaultName=aggregator-kv;SecretName=aggregator-pat)"}[syntax]
    world.add_instance(NAME, reference)
    result = run_cli("status", "--json", **REFERENCE_VAULT)
    inst = result.instance(NAME)
    assert result.code == 0 and inst["status"] == "OK"
    assert inst["token"]["expiry_source"] == "keyvault" and inst["token"]["days_left"] == 45
    assert inst["token"]["live"] is True


def test_unresolvable_key_vault_reference_is_unknown(world, run_cli, sandbox):
    ref = f"@Microsoft.KeyVault(SecretUri={sandbox.vault.url('aggregator-kv')}/secrets/missing/)"
    world.add_instance(NAME, ref)
    result = run_cli("status", "--json", **REFERENCE_VAULT)
    assert result.code == 3 and codes(result.instance(NAME)) == ["KEYVAULT_REFERENCE_UNRESOLVED"]


def test_token_setting_missing(world, run_cli):
    world.add_instance(NAME, None)
    result = run_cli("status", "--json")
    assert result.code == 2 and codes(result.instance(NAME)) == ["TOKEN_MISSING"]


def test_one_failing_instance_does_not_stop_the_others(world, run_cli, sandbox):
    healthy(world)
    token, _ = world.issue(100)
    world.add_instance("fabrikamaggregator", token)
    sandbox.inject(host="management.azure.com", path="fabrikamaggregator", status=503, times=None)
    result = run_cli("status", "--json", WATCHDOG_STAGED_SECRET="{name}-staged",
                     WATCHDOG_PREVIOUS_SECRET="{name}-previous")
    assert result.instance("fabrikamaggregator")["status"] == "UNKNOWN"
    assert codes(result.instance("fabrikamaggregator")) == ["ARM_UNREACHABLE"]
    assert result.instance(NAME)["status"] == "OK"  # no {name} secret staged: the listing says 100 days
    assert result.json["status"] == "UNKNOWN" and result.code == 3


def test_devops_throttling_is_honoured_then_succeeds(world, run_cli, sandbox):
    healthy(world)
    sandbox.inject(host="dev.azure.com", path="connectionData", status=429, headers={"Retry-After": "0"})
    result = run_cli("status", "--json")
    assert result.code == 0
    assert sandbox.count(host="dev.azure.com", path="connectionData") == 2


def test_a_hang_on_the_arm_settings_list_is_retried(world, run_cli, sandbox):
    """`config/appsettings/list` is a read despite its POST: a read time-out (3.5 s against FAST_RETRY's 3 s)
    is retried like any read (azure-core retries no POST on a time-out by default)."""
    healthy(world)
    hang = sandbox.inject(**SETTINGS_LIST, hang=3.5)
    result = run_cli("status", "--json")
    # the hung list timed out (FAST_RETRY.read_timeout is 3 s) and the read was asked again
    assert hang.hits == 1 and result.code == 0 and result.instance(NAME)["status"] == "OK"


def test_devops_down_is_unknown_after_the_retries(world, run_cli, sandbox):
    healthy(world)
    sandbox.inject(host="dev.azure.com", path="connectionData", status=503, times=None)
    result = run_cli("status", "--json")
    inst = result.instance(NAME)
    assert result.code == 3 and "DEVOPS_UNREACHABLE" in codes(inst)
    assert sandbox.count(host="dev.azure.com", path="connectionData") == 3  # FAST_RETRY.attempts


def test_worst_status_wins_critical_over_unknown(world, run_cli, sandbox):
    expired, _ = world.issue(-1)
    world.add_instance("aaggregator", expired)
    token, _ = world.issue(100)
    world.add_instance("baggregator", token)
    sandbox.inject(host="management.azure.com", path="baggregator", status=500, times=None)
    result = run_cli("status", "--json", WATCHDOG_STAGED_SECRET="{name}-staged",
                     WATCHDOG_PREVIOUS_SECRET="{name}-previous")
    assert result.json["status"] == "CRITICAL" and result.code == 2


def test_human_output_is_short_and_aligned(world, run_cli):
    healthy(world, 10)
    result = run_cli("status")
    lines = result.out.splitlines()
    assert lines[0].startswith("pat-watchdog status: WARNING (1 instance")
    assert any(line.startswith("  expires    2026-12-08T06:00:00Z (10 days, keyvault)") for line in lines)
    assert len(lines) < 15

"""Rotation (README, "The rotation protocol") against the sandbox: validation, the swap, rollback, locks, recovery."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from pat_watchdog import cli
from pat_watchdog.core.secret import fingerprint
from tests.conftest import FAST_RETRY, NOW
from tests.e2e.conftest import (
    BEFORE_THE_WRITE, NAME, REFERENCE_VAULT, RECHECK_UNDER_THE_LOCK, STAGED, VERIFYING_SETTINGS, VERIFYING_THE_CANDIDATE,
    assert_rolled_back, assert_rotated, assert_safe_history, card_texts, card_title, scene, tagging, tags,
    titles,
)
from tests.leaks import fp

def test_rotation_in_the_window(world, run_cli, sandbox, channels):
    s = scene(world)
    result = run_cli("run", "--json", **channels)
    inst = result.instance(NAME)
    assert result.code == 0 and inst["status"] == "OK"
    assert inst["token"]["fingerprint"] == fingerprint(s.new) and inst["candidate"]["state"] == "current"
    assert len(sandbox.arm.writes) == 1
    assert_safe_history(sandbox, s)
    assert_rotated(sandbox, s)
    assert run_cli("run", **channels).code == 0 and len(sandbox.arm.writes) == 1  # nothing more to do


@pytest.mark.parametrize("case,reason", [
    ("revoked", "does not work"),
    ("other user", "another user"),
    ("missing scopes", "it lacks vso.identity vso.serviceendpoint_manage, which the token in place holds"),
    ("missing required", "missing required scopes: vso.work_write"),
    ("not later", "not later than the current token"),
    ("global", "global PAT"),
])
def test_a_bad_candidate_is_rejected_and_nothing_changes(world, run_cli, sandbox, channels, case, reason):
    old, _ = world.issue(5)
    world.add_instance(NAME, old)
    world.stage(old, days=5, tags={"watchdog-status": "current"})
    kwargs = {"revoked": {}, "other user": {"user_id": "3b2e9b4f-0000-4000-8000-000000000001"},
              "missing scopes": {"scope": "vso.work_full vso.project"}, "not later": {},
              "missing required": {"scope": "vso.work vso.identity vso.project vso.serviceendpoint_manage"},
              "global": {}}[case]
    days = 3 if case == "not later" else 365
    new, _ = world.issue(days, global_pat=case == "global", **kwargs)
    version = world.stage(new, days=days, scopes=None if case in ("missing scopes", "missing required", "global") else
                          "vso.identity vso.project vso.serviceendpoint_manage vso.work_full")
    if case == "revoked":
        sandbox.devops.revoke(new)
    result = run_cli("run", "--json", **channels)
    assert result.code == 0 and sandbox.arm.writes == []
    t = tags(sandbox, version)
    assert t["watchdog-status"] == "rejected" and reason in t["watchdog-reason"]
    assert any(title.startswith(f"WARNING: {NAME}") for title in titles(sandbox))
    assert "CANDIDATE_REJECTED" in [r["code"] for r in result.instance(NAME)["reasons"]]
    assert run_cli("rotate", "--force", **channels).code == 3  # rejected: nothing valid to rotate to


def test_rotate_outside_the_window_says_when_and_force_rotates(world, run_cli, sandbox, channels):
    s = scene(world, days_left=40)
    waiting = run_cli("rotate", **channels)
    assert waiting.code == 3 and "due in 26 days, on 2026-12-24T06:00:00Z" in waiting.out
    assert sandbox.arm.writes == []
    forced = run_cli("rotate", "--force", "--json", **channels)
    assert forced.code == 0
    assert_rotated(sandbox, s)


def test_rotate_with_nothing_staged_exits_3(world, run_cli, channels):
    old, _ = world.issue(5)
    world.add_instance(NAME, old)
    result = run_cli("rotate", "--force", **channels)
    assert result.code == 3 and "nothing valid is staged" in result.out


def test_rotation_off_never_writes(world, run_cli, sandbox, channels):
    scene(world)
    result = run_cli("run", **channels, WATCHDOG_ROTATION="off")
    assert result.code == 0 and sandbox.arm.writes == []
    assert not [r for r in sandbox.requests if r.method in ("PUT", "PATCH") and "staged" in r.path
                and b"applying" in r.body]


def test_dry_run_shows_the_rotation_and_changes_nothing(world, run_cli, sandbox, channels):
    s = scene(world)
    result = run_cli("run", "--dry-run", "--json", **channels)
    assert result.code == 0 and sandbox.arm.writes == [] and sandbox.teams.received == []
    assert {"kind": "rotate", "channel": None, "level": "INFO", "outcome": "planned",
            "detail": "5 days left, within WATCHDOG_ROTATE_WITHIN_DAYS=14"} in result.instance(NAME)["actions"]
    assert "watchdog-status" not in tags(sandbox, s.version)


def test_an_invalid_token_is_rotated_at_once(world, run_cli, sandbox, channels):
    s = scene(world, days_left=200)
    sandbox.devops.revoke(s.old)
    assert run_cli("run", **channels).code == 0
    assert_rotated(sandbox, s)


def test_arm_put_failing_every_time_leaves_the_old_token_and_the_next_run_retries(world, run_cli, sandbox, channels):
    s = scene(world)
    sandbox.inject(method="PUT", host="management.azure.com", status=500, times=None)
    result = run_cli("run", "--json", **channels)
    assert result.code == 1 and sandbox.arm.writes == []
    assert fp(sandbox.arm.settings(s.app)["Aggregator_VstsToken"]) == fp(s.old)
    assert "the settings re-read do not show the write" in result.out
    assert tags(sandbox, s.version)["watchdog-status"] == "applying" and sandbox.count(method="PUT",
                                                                                       path="config/appsettings") == 1
    sandbox.clear_faults()   # an outage is not a verdict: the candidate is not failed for good
    assert run_cli("run", now=NOW + timedelta(minutes=16), **channels).code == 0
    assert_rotated(sandbox, s)


def test_a_settings_put_whose_answer_is_lost_is_never_sent_twice(world, run_cli, sandbox, channels):
    """A PUT that timed out may still be applied (replacing every setting): never repeated blindly."""
    s = scene(world)
    put = sandbox.inject(method="PUT", path="config/appsettings", hang=3.5)   # FAST_RETRY reads 3 s at most
    first = run_cli("run", "--json", **channels)
    assert first.code == 1 and tags(sandbox, s.version)["watchdog-status"] == "applying"
    deadline = time.monotonic() + 10
    while not sandbox.arm.writes and time.monotonic() < deadline:   # ARM applies it after the answer was lost
        time.sleep(0.02)
    assert put.hits == 1 and sandbox.count(method="PUT", path="config/appsettings") == 1
    assert run_cli("run", now=NOW + timedelta(minutes=16), **channels).code == 0
    assert_rotated(sandbox, s)
    assert sandbox.count(method="PUT", path="config/appsettings") == 1


def test_arm_refusing_the_write_rolls_back_and_fails_the_candidate(world, run_cli, sandbox, channels):
    s = scene(world)
    sandbox.inject(method="PUT", host="management.azure.com", status=403, times=None)
    assert run_cli("run", "--json", **channels).code == 1
    assert_rolled_back(sandbox, s, "writing the app settings failed")
    assert sandbox.arm.writes == []


def test_an_unrelated_setting_changing_during_the_swap_is_rolled_back_and_kept(world, run_cli, sandbox, channels):
    s = scene(world)

    def someone_edits():
        sandbox.arm.set_settings(s.app, {**sandbox.arm.settings(s.app), "Rule_Owner": "team-b"})

    sandbox.inject(**VERIFYING_SETTINGS, action=someone_edits)
    result = run_cli("run", "--json", **channels)
    assert result.code == 1
    assert_rolled_back(sandbox, s, "other settings changed during the rotation: Rule_Owner")
    assert sandbox.arm.settings(s.app)["Rule_Owner"] == "team-b"  # their change is not lost


def test_a_setting_arm_dropped_on_the_write_is_restored_by_the_rollback(world, run_cli, sandbox, channels):
    """Review "rollback that restores what was": the rollback merged onto the fresh list, so the lost setting
    stayed lost, and the message said only that the previous token "was put back"."""
    s = scene(world)
    sandbox.inject(**VERIFYING_SETTINGS, action=lambda: arm_drops(sandbox, s.app, "Aggregator_Note"))
    result = run_cli("run", "--json", **channels)
    assert result.code == 1
    assert_rolled_back(sandbox, s, "other settings changed during the rotation: Aggregator_Note")
    assert sandbox.arm.settings(s.app) == s.original      # the dropped setting is back, with its value
    failed = next(r["message"] for r in result.instance(NAME)["reasons"] if r["code"] == "ROTATION_FAILED")
    said = f"previous token (fingerprint {fingerprint(s.old)}) put back; restored 1 setting missing since the " \
           "write: Aggregator_Note"
    assert said in failed and said in tags(sandbox, s.version)["watchdog-reason"]
    card = next(e for e in sandbox.teams.received if f"CRITICAL: {NAME}" in card_title(e))
    assert any(said in text for text in card_texts(card))


def arm_drops(sandbox, app: str, setting: str) -> None:
    """What ARM stored lacks a setting the PUT carried (seen by the first re-read after the write)."""
    stored = sandbox.arm.settings(app)
    del stored[setting]
    sandbox.arm.set_settings(app, stored)


def test_a_setting_arm_dropped_is_restored_when_the_new_token_is_kept(world, run_cli, sandbox, channels):
    s = scene(world, days_left=-1)     # the previous token is dead: the working new one stays
    sandbox.inject(**VERIFYING_SETTINGS, action=lambda: arm_drops(sandbox, s.app, "Aggregator_Note"))
    result = run_cli("run", "--json", **channels)
    assert result.code == 0 and sandbox.arm.settings(s.app) == {**s.original, "Aggregator_VstsToken": s.new}
    rotated = next(a["detail"] for a in result.instance(NAME)["actions"] if a["kind"] == "rotate")
    assert "kept despite: other settings changed during the rotation: Aggregator_Note; restored 1 setting " \
           "missing since the write: Aggregator_Note" in rotated


def test_a_token_fixed_by_hand_before_the_rollback_is_not_overwritten(world, run_cli, sandbox, channels):
    """Review: the put-back did not check that the setting still held the candidate (compare-and-swap)."""
    s = scene(world)
    by_hand, _ = world.issue(300)

    def candidate_dies_and_a_person_fixes_the_token():
        sandbox.devops.revoke(s.new)
        sandbox.arm.set_settings(s.app, {**sandbox.arm.settings(s.app), "Aggregator_VstsToken": by_hand})

    sandbox.inject(**VERIFYING_THE_CANDIDATE, action=candidate_dies_and_a_person_fixes_the_token)
    result = run_cli("run", "--json", **channels)
    assert result.code == 1 and len(sandbox.arm.writes) == 1           # the rotation's write, no rollback
    assert fp(sandbox.arm.settings(s.app)["Aggregator_VstsToken"]) == fp(by_hand)
    stopped = next(r["message"] for r in result.instance(NAME)["reasons"] if r["code"] == "ROTATION_STOPPED")
    assert f"changed by someone else after the write (it now holds a token with fingerprint " \
           f"{fingerprint(by_hand)}): left as it is, nothing put back" in stopped
    assert "watchdog-status" not in tags(sandbox, s.version)   # pending: the next run validates it again


def test_a_concurrent_token_change_stops_the_rotation_without_touching_it(world, run_cli, sandbox, channels):
    s = scene(world)
    by_hand, _ = world.issue(300)

    def configure_instance():
        sandbox.arm.set_settings(s.app, {**sandbox.arm.settings(s.app), "Aggregator_VstsToken": by_hand})

    sandbox.inject(**BEFORE_THE_WRITE, action=configure_instance)
    result = run_cli("run", "--json", **channels)
    assert result.code == 1 and sandbox.arm.writes == []
    assert fp(sandbox.arm.settings(s.app)["Aggregator_VstsToken"]) == fp(by_hand)
    assert "watchdog-status" not in tags(sandbox, s.version)  # pending again
    assert "ROTATION_STOPPED" in [r["code"] for r in result.instance(NAME)["reasons"]]


def test_candidate_failing_after_the_swap_is_rolled_back(world, run_cli, sandbox, channels):
    s = scene(world)
    sandbox.inject(**VERIFYING_SETTINGS, action=lambda: sandbox.devops.revoke(s.new))
    assert run_cli("run", **channels).code == 1
    assert_rolled_back(sandbox, s, "fails connectionData after the swap")
    assert_safe_history(sandbox, s)


def test_key_vault_unreachable_before_the_swap_postpones(world, run_cli, sandbox, channels):
    s = scene(world)
    sandbox.inject(**tagging("applying", s.version), status=503, times=None)
    result = run_cli("run", **channels)
    assert result.code == 1 and sandbox.arm.writes == []
    sandbox.clear_faults()
    assert run_cli("run", now=NOW + timedelta(minutes=1), **channels).code == 0
    assert_rotated(sandbox, s)


def test_key_vault_unreachable_after_the_swap_is_finished_by_the_next_run(world, run_cli, sandbox, channels):
    s = scene(world)
    sandbox.inject(**tagging("current", s.version), status=503, times=None)
    first = run_cli("run", "--json", **channels)
    assert first.code == 1 and fp(sandbox.arm.settings(s.app)["Aggregator_VstsToken"]) == fp(s.new)
    assert tags(sandbox, s.version)["watchdog-status"] == "applying"
    sandbox.clear_faults()
    second = run_cli("run", "--json", now=NOW + timedelta(minutes=1), **channels)
    assert second.code == 0 and "finished an interrupted rotation" in second.out
    assert_rotated(sandbox, s)
    assert_safe_history(sandbox, s)


def test_a_held_lock_blocks_a_second_rotation_until_its_lease_ends(world, run_cli, sandbox, channels, azurite):
    from pat_watchdog.adapters.retry import RetryPolicy
    from pat_watchdog.adapters.state_table import TableLedger
    from pat_watchdog.core.settings import StorageTarget
    from tests.azurite import expire_locks

    s = scene(world)
    ledger = TableLedger(StorageTarget(connection_string=channels["AzureWebJobsStorage"]),
                         channels["WATCHDOG_STATE_TABLE"], None, RetryPolicy())
    assert ledger.acquire(f"rotation~{NAME}", "someone-else", NOW, timedelta(minutes=10))
    blocked = run_cli("rotate", "--force", **channels)
    # not a failure: the other run is doing it (issue "Tried as a new user would", bug 4)
    assert blocked.code == 3 and "another run is rotating" in blocked.out and sandbox.arm.writes == []
    # The lease runs on the Table service's clock, not the caller's: let it run out there.
    expire_locks(channels["AzureWebJobsStorage"], channels["WATCHDOG_STATE_TABLE"])
    later = run_cli("rotate", "--force", now=NOW + timedelta(minutes=16), **channels)
    assert later.code == 0
    assert_rotated(sandbox, s)


def test_two_runs_at_once_rotate_once(world, sandbox, channels):
    s = scene(world)
    sandbox.latency = 0.02
    codes = []

    def one_run():
        import io
        codes.append(cli.main(["rotate", "--force"], env=world.env(**channels), now=lambda: NOW,
                              stdout=io.StringIO(), stderr=io.StringIO(), retry=FAST_RETRY))

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sandbox.arm.writes) == 1 and 0 in codes
    assert_rotated(sandbox, s)


def test_key_vault_reference_versioned_is_repointed(world, run_cli, sandbox, channels):
    old, _ = world.issue(5)
    ref_version = sandbox.vault.set_secret("aggregator-kv", "aggregator-pat", old,
                                           expires_on=NOW + timedelta(days=5))
    uri = f"{sandbox.vault.url('aggregator-kv')}/secrets/aggregator-pat"
    app = world.add_instance(NAME, f"@Microsoft.KeyVault(SecretUri={uri}/{ref_version})")
    new, _ = world.issue(365)
    world.stage(new, days=365)
    assert run_cli("run", **channels, **REFERENCE_VAULT).code == 0
    versions = sandbox.vault.versions("aggregator-kv", "aggregator-pat")
    assert [v["value"] == new for v in versions] == [False, True]
    setting = sandbox.arm.settings(app)["Aggregator_VstsToken"]
    assert setting == f"@Microsoft.KeyVault(SecretUri={uri}/{versions[1]['version']})"
    assert sandbox.arm.restarts == []


def test_key_vault_reference_versionless_restarts_the_app(world, run_cli, sandbox, channels):
    old, _ = world.issue(5)
    sandbox.vault.set_secret("aggregator-kv", "aggregator-pat", old, expires_on=NOW + timedelta(days=5))
    uri = f"{sandbox.vault.url('aggregator-kv')}/secrets/aggregator-pat"
    app = world.add_instance(NAME, f"@Microsoft.KeyVault(SecretUri={uri}/)")
    new, _ = world.issue(365)
    world.stage(new, days=365)
    assert run_cli("run", **channels, **REFERENCE_VAULT).code == 0
    assert fp(sandbox.vault.versions("aggregator-kv", "aggregator-pat")[-1]["value"]) == fp(new)
    assert sandbox.arm.writes == [] and [a.lower() for a in sandbox.arm.restarts] == [app.lower()]


def test_an_outage_while_verifying_keeps_the_candidate_applying_then_finishes(world, run_cli, sandbox, channels):
    s = scene(world, days_left=-1)           # the old token has already expired
    sandbox.inject(**VERIFYING_THE_CANDIDATE, status=503, times=None)
    first = run_cli("run", **channels)
    assert first.code == 1
    assert fp(sandbox.arm.settings(s.app)["Aggregator_VstsToken"]) == fp(s.new)      # not rolled back to a dead token
    assert tags(sandbox, s.version)["watchdog-status"] == "applying"
    sandbox.clear_faults()
    assert run_cli("run", now=NOW + timedelta(minutes=16), **channels).code == 0
    assert_rotated(sandbox, s)


def test_an_outage_during_recovery_is_not_a_verdict(world, run_cli, sandbox, channels):
    s = scene(world, days_left=-1)
    sandbox.inject(**tagging("current", s.version), status=503, times=None)
    assert run_cli("run", **channels).code == 1
    sandbox.clear_faults()
    sandbox.inject(host="dev.azure.com", path="connectionData", status=503, times=None)
    assert run_cli("run", now=NOW + timedelta(minutes=16), **channels).code == 1   # an instance not checked
    assert fp(sandbox.arm.settings(s.app)["Aggregator_VstsToken"]) == fp(s.new)
    assert tags(sandbox, s.version)["watchdog-status"] == "applying"
    sandbox.clear_faults()
    assert run_cli("run", now=NOW + timedelta(minutes=32), **channels).code == 0
    assert_rotated(sandbox, s)


def test_an_applying_version_is_reconciled_even_when_something_newer_is_staged(world, run_cli, sandbox, channels):
    s = scene(world)
    sandbox.inject(**tagging("current", s.version), status=503, times=None)
    run_cli("run", **channels)
    sandbox.clear_faults()
    newer, _ = world.issue(400)
    world.stage(newer, days=400)
    result = run_cli("run", "--json", now=NOW + timedelta(minutes=16), **channels)
    assert "finished an interrupted rotation" in result.out
    assert tags(sandbox, s.version)["watchdog-status"] == "current"


def test_rotate_with_only_the_current_token_staged_adopts_and_exits_3(world, run_cli, sandbox, channels):
    old, _ = world.issue(5)
    world.add_instance(NAME, old)
    version = world.stage(old, days=5)
    result = run_cli("rotate", "--force", "--json", **channels)
    assert result.code == 3 and tags(sandbox, version)["watchdog-status"] == "current"
    assert [a["kind"] for a in result.instance(NAME)["actions"] if a["outcome"] == "done"][-1] == "adopt"


def test_versionless_reference_rollback_makes_the_previous_token_the_newest_again(world, run_cli, sandbox, channels):
    old, _ = world.issue(5)
    sandbox.vault.set_secret("aggregator-kv", "aggregator-pat", old, expires_on=NOW + timedelta(days=5),
                             tags={"fingerprint": fingerprint(old)})
    uri = f"{sandbox.vault.url('aggregator-kv')}/secrets/aggregator-pat"
    world.add_instance(NAME, f"@Microsoft.KeyVault(SecretUri={uri}/)")
    new, _ = world.issue(365)
    version = world.stage(new, days=365)
    # the candidate dies right before the swap (a new secret version and a restart)
    sandbox.inject(**BEFORE_THE_WRITE, action=lambda: sandbox.devops.revoke(new))
    assert run_cli("run", **channels, **REFERENCE_VAULT).code == 1
    versions = sandbox.vault.versions("aggregator-kv", "aggregator-pat")
    assert fp(versions[-1]["value"]) == fp(old) and tags(sandbox, version)["watchdog-status"] == "failed"


def test_a_pat_pasted_into_the_token_type_setting_is_not_echoed(world, run_cli, sandbox):
    old, _ = world.issue(100)
    world.add_instance(NAME, old, extra={"Aggregator_VstsTokenType": old})
    result = run_cli("status", "--json")     # the world fixture's leak check covers every output
    assert "TOKEN_TYPE_INVALID" in [r["code"] for r in result.instance(NAME)["reasons"]]


def test_recovery_never_restores_the_broken_candidate_itself(world, run_cli, sandbox, channels):
    s = scene(world)
    sandbox.inject(**tagging("current", s.version), status=503, times=None)
    run_cli("run", **channels)
    sandbox.clear_faults()
    sandbox.devops.revoke(s.new)
    sandbox.inject(method="GET", path="aggregator-pat-previous/[0-9a-f]{32}", status=503, times=None)
    result = run_cli("run", now=NOW + timedelta(minutes=16), **channels)
    assert result.code == 1 and tags(sandbox, s.version)["watchdog-status"] == "applying"
    sandbox.clear_faults()
    assert run_cli("run", now=NOW + timedelta(minutes=32), **channels).code == 1   # rolled back now
    assert fp(sandbox.arm.settings(s.app)["Aggregator_VstsToken"]) == fp(s.old)
    assert tags(sandbox, s.version)["watchdog-status"] == "failed"


def test_an_outage_on_the_recheck_under_the_lock_changes_nothing(world, run_cli, sandbox, channels):
    s = scene(world)
    sandbox.inject(**RECHECK_UNDER_THE_LOCK, status=503, times=None)
    result = run_cli("run", **channels)
    assert result.code == 1 and "could not be read again under the rotation lock" in result.out
    assert sandbox.arm.writes == [] and "watchdog-status" not in tags(sandbox, s.version)


def test_an_arm_outage_while_verifying_is_not_a_rollback(world, run_cli, sandbox, channels):
    s = scene(world)
    sandbox.inject(**VERIFYING_SETTINGS, status=503, times=None)
    assert run_cli("run", **channels).code == 1
    assert tags(sandbox, s.version)["watchdog-status"] == "applying"
    assert fp(sandbox.arm.settings(s.app)["Aggregator_VstsToken"]) == fp(s.new)
    sandbox.clear_faults()
    assert run_cli("run", now=NOW + timedelta(minutes=16), **channels).code == 0
    assert_rotated(sandbox, s)


def test_a_disabled_applying_version_does_not_block_a_newer_one(world, run_cli, sandbox, channels):
    s = scene(world)
    sandbox.inject(**BEFORE_THE_WRITE, status=503, times=None)
    run_cli("run", **channels)
    sandbox.clear_faults()
    assert tags(sandbox, s.version)["watchdog-status"] == "applying"
    disable(sandbox, s.version)      # a person disables the half-done version by hand
    newer, _ = world.issue(400)
    version = world.stage(newer, days=400)
    assert run_cli("run", now=NOW + timedelta(minutes=16), **channels).code == 0
    assert tags(sandbox, version)["watchdog-status"] == "current"


def disable(sandbox, version: str) -> None:
    """A person disables a staged version, as `az keyvault secret set-attributes --enabled false`."""
    from azure.identity import ManagedIdentityCredential
    from azure.keyvault.secrets import SecretClient

    SecretClient(sandbox.vault.url("contoso-kv"), ManagedIdentityCredential()).update_secret_properties(
        STAGED, version, enabled=False)


def test_a_disabled_applying_version_not_yet_swapped_is_aborted_not_blocking(world, run_cli, sandbox, channels):
    """Review: a disabled `applying` version blocked the instance forever ("not reconciled yet")."""
    s = scene(world)
    sandbox.inject(**BEFORE_THE_WRITE, status=503, times=None)
    run_cli("run", **channels)
    sandbox.clear_faults()
    disable(sandbox, s.version)
    result = run_cli("run", "--json", now=NOW + timedelta(minutes=16), **channels)
    assert result.code == 0 and sandbox.arm.writes == []
    t = tags(sandbox, s.version)
    assert t["watchdog-status"] == "rejected" and t["watchdog-reason"].startswith("aborted: the version was disabled")
    assert result.instance(NAME)["candidate"]["state"] == "rejected"
    newer, _ = world.issue(400)
    version = world.stage(newer, days=400)
    assert run_cli("run", now=NOW + timedelta(minutes=32), **channels).code == 0
    assert tags(sandbox, version)["watchdog-status"] == "current"


def test_a_disabled_applying_version_aggregator_holds_is_aborted_and_rolled_back(world, run_cli, sandbox, channels):
    s = scene(world)
    sandbox.inject(**VERIFYING_THE_CANDIDATE, status=503, times=None)    # swapped, not verified: applying
    run_cli("run", **channels)
    sandbox.clear_faults()
    assert fp(sandbox.arm.settings(s.app)["Aggregator_VstsToken"]) == fp(s.new)
    disable(sandbox, s.version)
    result = run_cli("run", "--json", now=NOW + timedelta(minutes=16), **channels)
    assert result.code == 1 and sandbox.arm.settings(s.app) == s.original
    t = tags(sandbox, s.version)
    assert t["watchdog-status"] == "failed" and t["watchdog-reason"].startswith("aborted: the version was disabled")
    assert f"previous token (fingerprint {fingerprint(s.old)}) put back" in t["watchdog-reason"]


def test_a_run_that_lost_its_lock_writes_nothing_more(world, run_cli, sandbox, channels, azurite):
    """Fencing: a run suspended past its lease finds out before its next write, not after it."""
    from pat_watchdog.adapters.retry import RetryPolicy
    from pat_watchdog.adapters.state_table import TableLedger
    from pat_watchdog.core.settings import StorageTarget
    from tests.azurite import expire_locks

    s = scene(world)
    ledger = TableLedger(StorageTarget(connection_string=channels["AzureWebJobsStorage"]),
                         channels["WATCHDOG_STATE_TABLE"], None, RetryPolicy())

    def another_run_takes_over():   # this run's lease runs out while it is suspended; another takes the lock
        expire_locks(channels["AzureWebJobsStorage"], channels["WATCHDOG_STATE_TABLE"])
        assert ledger.acquire(f"rotation~{NAME}", "the-other-run", NOW, timedelta(minutes=15))

    sandbox.inject(**tagging("applying", s.version), action=another_run_takes_over)
    result = run_cli("run", "--json", **channels)
    assert sandbox.arm.writes == [] and "the rotation lock was lost" in result.out
    assert fp(sandbox.arm.settings(s.app)["Aggregator_VstsToken"]) == fp(s.old)


HTML = dict(host="dev.azure.com", path="connectionData", status=200, body=b"<html>sign in</html>",
            headers={"Content-Type": "text/html"}, times=None)


def test_a_sign_in_page_while_validating_postpones_and_the_next_run_rotates(world, run_cli, sandbox, channels):
    s = scene(world, days_left=-1)
    sandbox.inject(**HTML)
    first = run_cli("run", "--json", **channels)
    assert sandbox.arm.writes == [] and "watchdog-status" not in tags(sandbox, s.version)
    assert tags(sandbox, s.version)["watchdog-reason"].startswith("inconclusive 1/3")
    assert first.instance(NAME)["candidate"]["state"] == "pending"
    sandbox.clear_faults()
    assert run_cli("run", now=NOW + timedelta(minutes=16), **channels).code == 0
    assert_rotated(sandbox, s)


def test_three_runs_without_a_definitive_answer_reject_with_the_history(world, run_cli, sandbox, channels):
    s = scene(world, days_left=-1)
    sandbox.inject(**HTML)
    for hour in range(3):
        run_cli("run", now=NOW + timedelta(hours=hour), **channels)
    reason = tags(sandbox, s.version)
    assert reason["watchdog-status"] == "rejected" and "3 runs without a definitive answer" in reason["watchdog-reason"]
    assert sandbox.arm.writes == []


def test_a_working_replacement_beats_a_dead_token_whatever_else_the_user_holds(world, run_cli, sandbox, channels):
    """Found by the simulation: the dead token's expiry was taken from another PAT of the same user."""
    old, _ = world.issue(40)
    app = world.add_instance(NAME, old)
    world.issue(300)                          # the same user's PAT of another instance, valid much longer
    sandbox.devops.revoke(old)
    new, _ = world.issue(90)
    world.stage(new, days=90)
    assert run_cli("run", **channels).code == 0
    assert fp(sandbox.arm.settings(app)["Aggregator_VstsToken"]) == fp(new)


def test_a_dead_token_put_in_by_hand_gives_way_to_the_version_in_place_before_it(world, run_cli, sandbox, channels):
    """Found by the simulation (seed 13): a person's token replaced a rotated-in version, then was revoked;
    the version tagged `current` still worked but was never looked at again."""
    s = scene(world)
    assert run_cli("run", **channels).code == 0 and tags(sandbox, s.version)["watchdog-status"] == "current"
    by_hand, _ = world.issue(100)
    sandbox.arm.set_settings(s.app, {**sandbox.arm.settings(s.app), "Aggregator_VstsToken": by_hand})
    run_cli("run", now=NOW + timedelta(days=1), **channels)
    sandbox.devops.revoke(by_hand)
    dry = run_cli("run", "--dry-run", "--json", now=NOW + timedelta(days=2), **channels)
    planned = next(a["detail"] for a in dry.instance(NAME)["actions"] if a["kind"] == "rotate")
    assert f"version {s.version} was in place before (the watchdog put it there)" in planned
    result = run_cli("run", "--json", now=NOW + timedelta(days=2), **channels)
    assert result.code == 0 and fp(sandbox.arm.settings(s.app)["Aggregator_VstsToken"]) == fp(s.new)
    assert result.instance(NAME)["status"] == "OK" and tags(sandbox, s.version)["watchdog-status"] == "current"


def test_a_version_rejected_against_a_token_that_later_died_is_used_then(world, run_cli, sandbox, channels):
    """Found by the simulation (seeds 14, 17): rejected as "not later than the current token", which then died."""
    old, _ = world.issue(10)
    app = world.add_instance(NAME, old)
    world.stage(old, days=10, tags={"watchdog-status": "current"})
    new, _ = world.issue(8)
    version = world.stage(new, days=8)
    assert run_cli("run", **channels).code == 0                  # due, but the candidate ends first
    assert "not later than the current token" in tags(sandbox, version)["watchdog-reason"]
    sandbox.devops.revoke(old)
    dry = run_cli("run", "--dry-run", "--json", now=NOW + timedelta(days=1), **channels)
    planned = next(a for a in dry.instance(NAME)["actions"] if a["kind"] == "rotate")
    assert planned["outcome"] == "planned" and "rejected only against the token in place" in planned["detail"]
    assert run_cli("run", now=NOW + timedelta(days=1), **channels).code == 0
    assert fp(sandbox.arm.settings(app)["Aggregator_VstsToken"]) == fp(new)
    assert tags(sandbox, version)["watchdog-status"] == "current"


def test_a_disabled_version_is_not_tried_again_for_a_dead_token(world, run_cli, sandbox, channels):
    s = scene(world)
    assert run_cli("run", **channels).code == 0
    by_hand, _ = world.issue(100)
    sandbox.arm.set_settings(s.app, {**sandbox.arm.settings(s.app), "Aggregator_VstsToken": by_hand})
    sandbox.devops.revoke(by_hand)
    disable(sandbox, s.version)                 # a person took the old version out
    result = run_cli("run", "--json", now=NOW + timedelta(days=1), **channels)
    assert result.code == 0 and result.instance(NAME)["status"] == "CRITICAL"
    assert not [a for a in result.instance(NAME)["actions"] if a["kind"] == "rotate"]


def test_a_version_tried_again_for_a_dead_token_is_never_rotated_to_when_it_fails(world, run_cli, sandbox, channels):
    s = scene(world)
    assert run_cli("run", **channels).code == 0
    by_hand, _ = world.issue(100)
    sandbox.arm.set_settings(s.app, {**sandbox.arm.settings(s.app), "Aggregator_VstsToken": by_hand})
    for token in (by_hand, s.new):
        sandbox.devops.revoke(token)
    writes = len(sandbox.arm.writes)
    result = run_cli("run", "--json", now=NOW + timedelta(days=1), **channels)
    assert len(sandbox.arm.writes) == writes and fp(sandbox.arm.settings(s.app)["Aggregator_VstsToken"]) == fp(by_hand)
    t = tags(sandbox, s.version)
    assert t["watchdog-status"] == "rejected" and "does not work" in t["watchdog-reason"]
    assert result.instance(NAME)["status"] == "CRITICAL"
    patches = sandbox.count(method="PATCH", path=s.version)
    run_cli("run", now=NOW + timedelta(days=2), **channels)     # rejected for good: not tried every day
    assert sandbox.count(method="PATCH", path=s.version) == patches

"""Aggregator's own truth (docs/reference.md, "Reason codes"): what breaks rules while the token is fine, and what makes a
false alarm while the token is fine."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pat_watchdog.sandbox.arm_references import STATUSES
from tests.conftest import NOW
from tests.e2e.conftest import NAME, REFERENCE_VAULT, app_service_view, reference_instance, scene, titles

pytestmark = pytest.mark.usefixtures("sandbox")


def codes(inst: dict) -> list[str]:
    return [r["code"] for r in inst["reasons"]]


def healthy(world, *, days: float = 100, **extra) -> tuple[str, str]:
    token, auth = world.issue(days)
    app = world.add_instance(NAME, token, extra=extra)
    world.stage(token, days=days, tags={"watchdog-status": "current", "authorizationId": auth})
    return token, app


# ---------------------------------------------------------------------------------------------
# Aggregator_VstsTokenType, as Enum.TryParse reads it
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, works", [
    ("PAT", True), ("1", True), (" PAT ", True), ("Integrated, PAT", True),
    ("pat", False), ("Integrated", False), ("0", False), ("to-be-replaced", False), ("", False),
    ("\u0420\u0410\u0422", False), (None, False),
])
def test_every_token_type_form(world, run_cli, sandbox, value, works):
    _, app = healthy(world)
    settings = sandbox.arm.settings(app)
    if value is None:
        del settings["Aggregator_VstsTokenType"]
    else:
        settings["Aggregator_VstsTokenType"] = value
    sandbox.arm.set_settings(app, settings)
    result = run_cli("status", "--json")
    inst = result.instance(NAME)
    if works:
        assert (result.code, inst["status"]) == (0, "OK") and "TOKEN_TYPE_INVALID" not in codes(inst)
    else:
        assert (result.code, inst["status"]) == (2, "CRITICAL") and codes(inst)[0] == "TOKEN_TYPE_INVALID"
        assert "every rule fails" in inst["reasons"][0]["message"]


# ---------------------------------------------------------------------------------------------
# The reference as App Service resolves it, with Aggregator's identity
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [s for s in STATUSES if s != "Resolved"])
def test_every_reference_status_but_resolved_is_critical(world, run_cli, sandbox, status):
    _, app = reference_instance(world, sandbox)
    sandbox.arm.set_reference_status(app, "Aggregator_VstsToken", status, details=f"details of {status}")
    result = run_cli("status", "--json", **REFERENCE_VAULT)
    inst = result.instance(NAME)
    assert (result.code, inst["status"]) == (2, "CRITICAL")
    reason = next(r for r in inst["reasons"] if r["code"] == "REFERENCE_UNRESOLVED")
    assert f"App Service reports {status} (details of {status})" in reason["message"]
    assert inst["token"]["live"] is True          # the watchdog itself can read it: not the point


def test_a_resolved_reference_is_fine(world, run_cli, sandbox):
    reference_instance(world, sandbox)
    result = run_cli("status", "--json", **REFERENCE_VAULT)
    assert result.code == 0 and "REFERENCE_UNRESOLVED" not in codes(result.instance(NAME))


def test_a_versionless_rotation_is_verified_by_what_app_service_loaded(world, run_cli, sandbox, channels):
    _, app = reference_instance(world, sandbox, days=5)
    new, _ = world.issue(365)
    world.stage(new, days=365)
    result = run_cli("run", "--json", **channels, **REFERENCE_VAULT)
    assert result.code == 0 and result.instance(NAME)["candidate"]["state"] == "current"
    assert [a.lower() for a in sandbox.arm.restarts] == [app.lower()]
    newest = sandbox.vault.versions("aggregator-kv", "aggregator-pat")[-1]["version"]
    assert app_service_view(app).properties.active_version == newest


# ---------------------------------------------------------------------------------------------
# An expiry extended in place, and a stale Key Vault date
# ---------------------------------------------------------------------------------------------

def test_a_pat_extended_in_place_is_confirmed_and_the_record_corrected(world, run_cli, sandbox, channels):
    token, app = healthy(world, days=5)             # Key Vault says 5 days
    sandbox.devops.extend(token, NOW + timedelta(days=200))
    first = run_cli("run", "--json", **channels)
    inst = first.instance(NAME)
    assert first.code == 0 and inst["status"] == "OK" and inst["token"]["days_left"] == 200
    assert "EXPIRY_EXTENDED" in codes(inst) and sandbox.teams.received == [] and sandbox.arm.writes == []
    corrected = [a for a in inst["actions"] if a["kind"] == "correct"]
    assert [a["outcome"] for a in corrected] == ["done"]
    staged = sandbox.vault.versions("contoso-kv", "aggregator-pat-staged")[0]
    assert staged["expires_on"] == NOW + timedelta(days=200)
    second = run_cli("run", "--json", **channels)    # the record agrees now: quiet
    assert "EXPIRY_EXTENDED" not in codes(second.instance(NAME)) and second.code == 0


def test_a_stale_key_vault_date_without_a_listing_is_a_warning_never_expired(world, run_cli, sandbox):
    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    world.stage(token, days=-3, tags={"watchdog-status": "current"})   # the record says: expired
    sandbox.inject(host="vssps.dev.azure.com", status=401, times=None)  # no listing
    result = run_cli("status", "--json")
    inst = result.instance(NAME)
    assert (result.code, inst["status"]) == (1, "WARNING") and "EXPIRED" not in codes(inst)
    assert "EXPIRY_STALE" in codes(inst)


def test_a_healthy_instance_asks_the_listing_once_per_token_then_reads_the_record(world, run_cli, sandbox, storage):
    healthy(world, days=200)
    later = NOW + timedelta(days=5)                         # after the global-PAT cutoff
    assert run_cli("run", now=later, **storage).code == 0
    assert sandbox.count(host="vssps.dev.azure.com") == 1   # first seen: global? scopes? expiry?
    sandbox.reset_requests()
    status = run_cli("status", "--json", now=later, **storage)
    assert sandbox.count(host="vssps.dev.azure.com") == 0
    assert status.instance(NAME)["token"]["global"] is False


def test_a_global_pat_that_still_works_after_the_cutoff_is_critical(world, run_cli, sandbox, storage):
    """Microsoft postponed the retirement once: a global PAT Azure DevOps still accepts is asked about
    when first seen, remembered, and CRITICAL every day after 2026-12-01 (no listing call after the first)."""
    sandbox.devops.global_pat_cutoff = None                 # not enforced yet
    token, auth = world.issue(200, global_pat=True)
    world.add_instance(NAME, token)
    world.stage(token, days=200, tags={"watchdog-status": "current", "authorizationId": auth})
    later = NOW + timedelta(days=5)
    first = run_cli("run", "--json", now=later, **storage).instance(NAME)
    assert first["status"] == "CRITICAL" and "GLOBAL_PAT" in codes(first) and first["token"]["global"] is True
    sandbox.reset_requests()
    again = run_cli("status", "--json", now=later + timedelta(days=1), **storage).instance(NAME)
    assert again["status"] == "CRITICAL" and "GLOBAL_PAT" in codes(again)
    assert sandbox.count(host="vssps.dev.azure.com") == 0


def test_an_instance_in_the_warning_window_asks_the_listing_once(world, run_cli, sandbox):
    healthy(world, days=25)
    run_cli("status", now=NOW + timedelta(days=5))
    assert sandbox.count(host="vssps.dev.azure.com") == 1


# ---------------------------------------------------------------------------------------------
# The token setting changed behind the watchdog's back
# ---------------------------------------------------------------------------------------------

def test_a_reference_replaced_by_plain_text_is_told_once(world, run_cli, sandbox, channels):
    token, app = reference_instance(world, sandbox)
    assert run_cli("run", **channels, **REFERENCE_VAULT).code == 0        # remembers: a reference
    assert sandbox.teams.received == []
    plain = token                                   # configure.instance writes the cached PAT in plain text
    sandbox.arm.set_settings(app, {**sandbox.arm.settings(app), "Aggregator_VstsToken": plain})
    status = run_cli("status", "--json", **channels, **REFERENCE_VAULT).instance(NAME)
    changed = next(r for r in status["reasons"] if r["code"] == "TOKEN_SETTING_CHANGED")
    assert changed["level"] == "WARNING" and "was replaced by a plain-text token" in changed["message"]
    assert "configure.instance" in changed["message"] and sandbox.teams.received == []   # status sends nothing
    run_cli("run", **channels, **REFERENCE_VAULT)
    assert [t for t in titles(sandbox) if t == f"WARNING: {NAME}"] == [f"WARNING: {NAME}"]
    later = run_cli("run", "--json", now=NOW + timedelta(days=1), **channels, **REFERENCE_VAULT)
    assert "TOKEN_SETTING_CHANGED" not in codes(later.instance(NAME))
    assert len(sandbox.teams.received) == 1              # not repeated, no "resolved" notice


def test_another_token_put_in_by_hand_is_told_and_a_rotation_is_not(world, run_cli, sandbox, channels):
    s = scene(world)                                  # a replacement due: the watchdog rotates
    assert run_cli("run", **channels).code == 0
    after_rotation = run_cli("run", "--json", now=NOW + timedelta(hours=1), **channels).instance(NAME)
    assert "TOKEN_SETTING_CHANGED" not in codes(after_rotation)
    by_hand, _ = world.issue(300)
    sandbox.arm.set_settings(s.app, {**sandbox.arm.settings(s.app), "Aggregator_VstsToken": by_hand})
    inst = run_cli("status", "--json", now=NOW + timedelta(hours=2), **channels).instance(NAME)
    message = next(r["message"] for r in inst["reasons"] if r["code"] == "TOKEN_SETTING_CHANGED")
    assert "holds another token" in message

"""What each alert tells a person to do next, through decide() and the alert builder: true for the
situation it is sent in (a replacement already staged, a window already open, no staging vault, no
token setting, an empty one, a token type Aggregator cannot read)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from pat_watchdog.core import alerts as A
from pat_watchdog.core import fixes
from pat_watchdog.core.model import CandidateState, CandidateView, ExpiryFact, InstanceSnapshot, LiveCheck, Liveness
from pat_watchdog.core.policy import Policy, decide
from pat_watchdog.core.resource_ids import parse_resource_id
from pat_watchdog.core.settings import load_settings

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)
APP = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/aggregator-contoso"
       "/providers/Microsoft.Web/sites/contosoaggregator")
BASE = {"WATCHDOG_AGGREGATOR_APP": APP, "WATCHDOG_DEVOPS_ORG_URL": "https://dev.azure.com/contoso"}
STAGED = load_settings({**BASE, "WATCHDOG_KEY_VAULT_URL": "https://contoso-kv.vault.azure.net"})
NO_VAULT = load_settings(BASE)
FULL = ("vso.identity", "vso.project", "vso.serviceendpoint_manage", "vso.work_full")
WAITING = CandidateView("5f0c2a9e", CandidateState.PENDING, "99999999", datetime(2027, 11, 20, tzinfo=timezone.utc))


def snapshot(days: float | None = 30, *, candidate=CandidateView(), **changes) -> InstanceSnapshot:
    facts = () if days is None else (ExpiryFact("keyvault", NOW + timedelta(days=days), FULL),)
    snap = InstanceSnapshot(APP, "contosoaggregator", token_present=True, token_fingerprint="1a2b3c4d",
                            token_type="PAT", live=LiveCheck(Liveness.VALID, "u1"), facts=facts, candidate=candidate)
    return replace(snap, **changes)


def alerts(snap: InstanceSnapshot, settings=STAGED, now: datetime = NOW) -> dict[str, A.Alert]:
    plan = decide(snap, Policy.from_settings(settings, snap.name), now)
    return {alert.code: alert for alert in A.for_plan(plan, settings, now)}


def said(alert: A.Alert) -> str:
    return " ".join([alert.message, alert.next_step, alert.command or ""])


# -- 2. a replacement already staged is named, not asked for --------------------------------------

def test_the_30_day_warning_with_a_replacement_staged_says_when_it_goes_in():
    alert = alerts(snapshot(30, candidate=WAITING))["EXPIRES_SOON"]
    assert alert.next_step.startswith("A replacement is staged (version 5f0c2a9e, fingerprint 99999999, expires "
                                      "2027-11-20T00:00:00Z); it goes in on 2026-12-14T06:00:00Z")
    assert "Create a new PAT" not in said(alert) and alert.command is None


# -- 3. a window that is already open is not "14 days before expiry" -------------------------------

@pytest.mark.parametrize("candidate", [CandidateView(), WAITING], ids=["nothing staged", "staged"])
def test_once_the_window_is_open_it_goes_in_at_the_next_run_with_its_date(candidate):
    alert = alerts(snapshot(10, candidate=candidate), now=NOW)["EXPIRES_SOON"]
    assert "at the next run (2026-11-29T06:00:00Z)" in alert.next_step
    assert "14 days before expiry" not in said(alert) and "before expiry" not in alert.next_step


def test_the_next_run_follows_the_schedule():
    settings = replace(STAGED, schedule="0 30 7 * * 1")       # Mondays at 07:30
    alert = alerts(snapshot(10), settings)["EXPIRES_SOON"]
    assert "at the next run (2026-11-30T07:30:00Z)" in alert.next_step


# -- 4. no staging vault: no staging command ---------------------------------------------------

@pytest.mark.parametrize("snap, code", [(snapshot(10), "EXPIRES_SOON"), (snapshot(None), "EXPIRY_UNKNOWN"),
                                        (snapshot(-2, live=LiveCheck(Liveness.EXPIRED)), "EXPIRED")])
def test_without_a_staging_vault_the_next_step_is_configure_instance_or_the_portal(snap, code):
    alert = alerts(snap, NO_VAULT)[code]
    assert "az keyvault" not in said(alert) and "<vault>" not in said(alert) and alert.command is None
    if code == "EXPIRY_UNKNOWN":
        assert "WATCHDOG_PAT_EXPIRES_ON" in alert.next_step
    else:
        assert "aggregator-cli configure.instance" in alert.next_step and "Aggregator_VstsToken" in alert.next_step


# -- 5. a missing token setting: one next step, rotate --force ---------------------------------

@pytest.mark.parametrize("candidate", [CandidateView(), WAITING], ids=["nothing staged", "staged"])
def test_a_missing_token_setting_has_one_consistent_next_step(candidate):
    snap = snapshot(None, candidate=candidate, token_present=False, token_fingerprint=None,
                    missing_setting="Aggregator_VstsToken", live=LiveCheck(Liveness.UNKNOWN))
    alert = alerts(snap)["TOKEN_MISSING"]
    text = said(alert)
    assert text.count("pat-watchdog rotate --force") == 1 and "at once" not in text
    assert "never creates the setting by itself" not in text and "the next run" not in text
    assert "If WATCHDOG_TOKEN_SETTING=Aggregator_VstsToken is misspelt, correct it" in alert.next_step
    assert (alert.command is None) == (candidate is WAITING)


# -- 6. an empty token setting: named, with its own next step ----------------------------------

def test_an_empty_token_setting_is_named_and_replaced_at_the_next_run():
    snap = snapshot(None, token_present=False, token_fingerprint=None, live=LiveCheck(Liveness.UNKNOWN))
    alert = alerts(snap)["TOKEN_MISSING"]
    assert alert.message.startswith("the app setting Aggregator_VstsToken is empty")
    assert "at the next run (2026-11-29T06:00:00Z)" in alert.next_step and "rotate --force" not in alert.next_step
    assert "az keyvault secret set --vault-name contoso-kv --name aggregator-pat-staged" in alert.command


# -- 7. TOKEN_TYPE_INVALID: the doctor's exact command ----------------------------------------

def test_an_unreadable_token_type_gives_the_doctors_exact_command():
    alert = alerts(snapshot(100, token_type="pat"))["TOKEN_TYPE_INVALID"]
    doctor = fixes.app_setting(parse_resource_id(APP), "Aggregator_VstsTokenType", "PAT")
    assert alert.command == doctor == ("az functionapp config appsettings set -g aggregator-contoso -n "
                                       "contosoaggregator --settings Aggregator_VstsTokenType=PAT")


# -- the staging command itself ------------------------------------------------------------------

def test_the_staging_command_never_puts_the_pat_on_a_command_line():
    alert = alerts(snapshot(10))["EXPIRES_SOON"]
    assert alert.command == (
        'read -rs PAT && printf %s "$PAT" | az keyvault secret set --vault-name contoso-kv --name '
        'aggregator-pat-staged --file /dev/stdin --expires 2027-02-26T00:00:00Z '
        '--tags scopes="vso.identity vso.project vso.serviceendpoint_manage vso.work_full"')
    assert "expiring on 2027-02-26" in alert.next_step and "--value" not in alert.command


def test_a_replacement_is_asked_to_outlive_the_token_in_place():
    alert = alerts(snapshot(200, facts=(ExpiryFact("keyvault", NOW + timedelta(days=200), ("vso.work",)),)))
    command = alert["SCOPE_MISSING"].command
    assert "--expires 2027-06-17T00:00:00Z" in command        # the day after the current token's expiry
    assert "pat-watchdog rotate --force" in alert["SCOPE_MISSING"].next_step   # CRITICAL: not left to wait

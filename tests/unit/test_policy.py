"""The pure core: snapshot + policy + now -> status and reasons. Table-driven, clock injected."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from pat_watchdog.core.model import CandidateView, ExpiryFact, InstanceSnapshot, LiveCheck, Liveness, Note, Status
from pat_watchdog.core.policy import Policy, choose_expiry, days_left, decide, held_scopes_missing

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)
AFTER_CUTOFF = datetime(2026, 12, 2, 6, 0, tzinfo=timezone.utc)
FULL = ("vso.identity", "vso.project", "vso.serviceendpoint_manage", "vso.work_full")
POLICY = Policy()


def snap(days: float | None = 100, *, live=Liveness.VALID, source="keyvault", scopes=FULL, global_pat=False,
         candidate=CandidateView(), facts=None, notes=(), token=True, unreachable=None) -> InstanceSnapshot:
    if facts is None:
        facts = () if days is None else (ExpiryFact(source, NOW + timedelta(days=days), scopes, global_pat),)
    return InstanceSnapshot(
        app_id="/subscriptions/s/resourceGroups/aggregator-c/providers/Microsoft.Web/sites/caggregator",
        name="caggregator", token_present=token, token_fingerprint="1a2b3c4d" if token else None,
        token_digest=CURRENT_DIGEST if token else None,
        token_type="PAT", live=LiveCheck(live, user_id="u1", detail="detail"), facts=facts,
        candidate=candidate, notes=tuple(notes), unreachable=unreachable)


def codes(plan) -> list[str]:
    return [r.code for r in plan.reasons]


CURRENT_DIGEST = "1a2b3c4d" + "e" * 56
PENDING = CandidateView(version="v2", state="pending", fingerprint="99999999", digest="99999999" + "f" * 56,
                        expires_on=NOW + timedelta(days=365))

CASES = {
    "healthy, 100 days left": (snap(100), Status.OK, ["HEALTHY"]),
    "31 days left is still quiet": (snap(31), Status.OK, ["HEALTHY"]),
    "30 days: first warn threshold": (snap(30), Status.WARNING, ["EXPIRES_SOON"]),
    "14 days": (snap(14.5), Status.WARNING, ["EXPIRES_SOON"]),
    "7 days": (snap(7), Status.WARNING, ["EXPIRES_SOON"]),
    "3 days, nothing staged: critical": (snap(3), Status.CRITICAL, ["EXPIRES_CRITICAL"]),
    "3 days, replacement staged: warning": (snap(3, candidate=PENDING), Status.WARNING,
                                            ["EXPIRES_SOON", "CANDIDATE_STAGED", "ROTATION_DUE"]),
    # A token Azure DevOps still accepts is never EXPIRED, whatever date a source gives.
    "a listing date passed, the token still works": (snap(-1.25, source="devops"), Status.WARNING, ["EXPIRY_STALE"]),
    "a Key Vault date passed, the token still works": (snap(-1.25), Status.WARNING, ["EXPIRY_STALE"]),
    "expired per Azure DevOps": (snap(None, live=Liveness.EXPIRED), Status.CRITICAL, ["EXPIRED"]),
    "revoked / invalid": (snap(100, live=Liveness.INVALID), Status.CRITICAL, ["TOKEN_INVALID"]),
    "Azure DevOps unreachable": (snap(100, live=Liveness.UNKNOWN), Status.UNKNOWN, ["DEVOPS_UNREACHABLE"]),
    "missing a required scope": (snap(100, scopes=("vso.work", "vso.project")), Status.CRITICAL,
                                 ["SCOPE_MISSING"]),
    "missing a recommended scope": (snap(100, scopes=("vso.work_full", "vso.project")), Status.WARNING,
                                    ["SCOPE_RECOMMENDED_MISSING"]),
    "work items only: the rules run": (snap(100, scopes=("vso.work_write",)), Status.WARNING,
                                       ["SCOPE_RECOMMENDED_MISSING"]),
    "full access holds every scope": (snap(100, scopes=("app_token",)), Status.OK, ["HEALTHY"]),
    "scopes unknown: no scope reason": (snap(100, scopes=None), Status.OK, ["HEALTHY"]),
    "global PAT before 2026-12-01": (snap(100, global_pat=True), Status.WARNING, ["GLOBAL_PAT"]),
    "expiry unknown": (snap(None), Status.WARNING, ["EXPIRY_UNKNOWN"]),
    "token setting missing": (snap(None, token=False, live=Liveness.INVALID), Status.CRITICAL, ["TOKEN_MISSING"]),
    "ARM unreachable": (snap(unreachable=Note("ARM_UNREACHABLE", "HTTP 503")), Status.UNKNOWN, ["ARM_UNREACHABLE"]),
    "TAG_LIMIT note": (snap(100, notes=[Note("TAG_LIMIT", "v1 has 15 tags")]), Status.WARNING, ["TAG_LIMIT"]),
    "rejected candidate": (snap(100, candidate=CandidateView(version="v3", state="rejected", reason="expired")),
                           Status.WARNING, ["CANDIDATE_REJECTED"]),
    "candidate staged, outside the window": (snap(100, candidate=PENDING), Status.OK,
                                             ["HEALTHY", "CANDIDATE_STAGED"]),
    "invalid token with a candidate: rotate at once": (snap(100, live=Liveness.INVALID, candidate=PENDING),
                                                       Status.CRITICAL,
                                                       ["TOKEN_INVALID", "CANDIDATE_STAGED", "ROTATION_DUE"]),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_status_and_reasons(case):
    snapshot, status, expected = CASES[case]
    plan = decide(snapshot, POLICY, NOW)
    assert plan.status is status
    assert codes(plan) == expected
    assert all(r.message for r in plan.reasons)


def test_global_pat_is_critical_after_the_cutoff():
    plan = decide(snap(100, global_pat=True), POLICY, AFTER_CUTOFF)
    assert plan.status is Status.CRITICAL and codes(plan) == ["GLOBAL_PAT"]


@pytest.mark.parametrize("days,stage", [(30, "30"), (29, "30"), (10, "14"), (7, "7"), (1.5, "1"), (0.2, "1")])
def test_lowest_crossed_threshold_is_the_stage(days, stage):
    plan = decide(snap(days, candidate=PENDING), POLICY, NOW)
    soon = next(r for r in plan.reasons if r.code == "EXPIRES_SOON")
    assert soon.stage == stage and soon.condition == "EXPIRY"


@pytest.mark.parametrize("delta,expected", [(timedelta(days=48, hours=3), 48), (timedelta(hours=-30), -2),
                                            (timedelta(hours=1), 0), (timedelta(hours=-1), -1)])
def test_days_left_rounds_down(delta, expected):
    assert days_left(NOW + delta, NOW) == expected


def test_sources_disagree_earliest_wins_and_both_are_named():
    facts = (ExpiryFact("keyvault", NOW + timedelta(days=60), FULL),
             ExpiryFact("devops", NOW + timedelta(days=20), FULL, False))
    plan = decide(snap(facts=facts), POLICY, NOW)
    assert plan.token.expiry_source == "devops" and plan.token.days_left == 20
    disagree = next(r for r in plan.reasons if r.code == "EXPIRY_SOURCES_DISAGREE")
    assert "keyvault" in disagree.message and "devops" in disagree.message
    assert plan.status is Status.WARNING


def test_ambiguous_listing_never_overrides_key_vault():
    facts = (ExpiryFact("keyvault", NOW + timedelta(days=200), FULL),
             ExpiryFact("devops", NOW + timedelta(days=5), FULL, False, ambiguous=True))
    chosen, _ = choose_expiry(facts)
    assert chosen.source == "keyvault"


def test_ambiguous_listing_is_used_when_nothing_better_is_known():
    facts = (ExpiryFact("devops", NOW + timedelta(days=50), FULL, False, ambiguous=True, detail="2 active"),)
    plan = decide(snap(facts=facts), POLICY, NOW)
    assert plan.token.days_left == 50 and "EXPIRY_AMBIGUOUS" in codes(plan)


def test_candidate_equal_to_current_token_is_adopted_not_rotated():
    same = replace(PENDING, fingerprint="1a2b3c4d", digest=CURRENT_DIGEST)
    plan = decide(snap(2, candidate=same), POLICY, NOW)
    assert plan.adopt and not plan.rotate
    assert "EXPIRES_CRITICAL" in codes(plan)  # the "replacement" is the token itself


def test_a_candidate_that_only_shares_the_fingerprint_is_not_the_current_token():
    """The 8-digit fingerprint is in every alert: a value with the same one is found in CPU-minutes."""
    lookalike = replace(PENDING, fingerprint="1a2b3c4d", digest="1a2b3c4d" + "0" * 56)
    plan = decide(snap(2, candidate=lookalike), POLICY, NOW)
    assert not plan.adopt


def test_rotation_off_never_plans_a_rotation():
    plan = decide(snap(1, candidate=PENDING), replace(POLICY, rotation_enabled=False), NOW)
    assert not plan.rotate


def test_force_rotates_outside_the_window():
    assert decide(snap(200, candidate=PENDING), POLICY, NOW, force_rotation=True).rotate
    assert not decide(snap(200, candidate=PENDING), POLICY, NOW).rotate


def test_expiry_unknown_says_how_to_fix_it():
    message = next(r.message for r in decide(snap(None), replace(POLICY, vault_name="contoso-kv"), NOW).reasons)
    assert "az keyvault secret set --vault-name contoso-kv" in message and "WATCHDOG_PAT_EXPIRES_ON" in message


def test_expiry_unknown_without_a_staging_vault_prints_no_staging_command():
    message = next(r.message for r in decide(snap(None), POLICY, NOW).reasons)
    assert "az keyvault" not in message and "<vault>" not in message and "WATCHDOG_PAT_EXPIRES_ON" in message


def test_a_missing_or_empty_token_setting_is_named():
    missing = decide(replace(snap(None, token=False), missing_setting="Aggregator.VstsToken"), POLICY, NOW)
    empty = decide(snap(None, token=False), replace(POLICY, token_setting="Aggregator_VstsToken"), NOW)
    assert [(r.code, r.stage) for r in missing.reasons][:1] == [("TOKEN_MISSING", "missing")]
    assert "the app has no setting Aggregator.VstsToken" in missing.reasons[0].message
    assert [(r.code, r.stage) for r in empty.reasons][:1] == [("TOKEN_MISSING", "empty")]
    assert empty.reasons[0].message.startswith("the app setting Aggregator_VstsToken is empty (or only white space)")


def test_a_candidate_for_a_missing_setting_never_waits_for_a_window_it_would_never_use():
    plan = decide(replace(snap(None, token=False, candidate=PENDING), missing_setting="Aggregator_VstsToken"),
                  POLICY, NOW)
    staged = next(r.message for r in plan.reasons if r.code == "CANDIDATE_STAGED")
    assert "waits" not in staged and "pat-watchdog rotate --force" in staged and not plan.rotate


@pytest.mark.parametrize("held,missing", [
    (("app_token",), ()),
    (FULL, ()),
    (("vso.identity_manage", "vso.project_manage", "vso.serviceendpoint_manage", "vso.work_full"), ()),
    (("vso.identity", "vso.project", "vso.serviceendpoint", "vso.work_write"),
     ("vso.serviceendpoint_manage", "vso.work_full")),
    ((), FULL),
])
def test_scope_implication(held, missing):
    assert held_scopes_missing(held, FULL) == missing


def test_a_replacement_that_cannot_be_used_does_not_soften_critical():
    off = decide(snap(2, candidate=PENDING), replace(POLICY, rotation_enabled=False), NOW)
    assert off.status is Status.CRITICAL and "EXPIRES_CRITICAL" in codes(off)
    full = decide(snap(2, candidate=replace(PENDING, room=False)), POLICY, NOW)
    assert full.status is Status.CRITICAL and "TAG_LIMIT" in codes(full) and not full.rotate


def test_each_failed_rotation_is_its_own_condition():
    one = decide(snap(100, candidate=CandidateView(version="v1", state="failed", reason="x")), POLICY, NOW)
    two = decide(snap(100, candidate=CandidateView(version="v2", state="failed", reason="y")), POLICY, NOW)
    conditions = [r.condition for p in (one, two) for r in p.reasons if r.code == "ROTATION_FAILED"]
    assert conditions == ["ROTATION_FAILED:v1", "ROTATION_FAILED:v2"]


# -- a staged version handled before, tried again when the token in place is dead -----------------

DEAD = LiveCheck(Liveness.INVALID, detail="HTTP 401")
NOT_LATER = "it expires 2027-01-17T15:00:00Z, not later than the current token (2027-12-17T22:00:00Z)"


@pytest.mark.parametrize("live, state, fingerprint, reason, tried", [
    (DEAD, "current", "bbbbbbbb", None, True),                    # in place before, replaced by hand since
    (DEAD, "current", "aaaaaaaa", None, False),                   # the dead token itself
    (DEAD, "current", None, None, False),                         # which token it holds is unknown
    (DEAD, "rejected", "bbbbbbbb", NOT_LATER, True),
    (DEAD, "rejected", "bbbbbbbb", "the candidate belongs to another user than the current token", True),
    (DEAD, "rejected", "bbbbbbbb", "3 runs without a definitive answer from Azure DevOps, the last: 503", True),
    (DEAD, "rejected", "bbbbbbbb", "the candidate does not work (invalid: HTTP 401)", False),
    (DEAD, "rejected", "bbbbbbbb", "missing required scopes: vso.work_write", False),
    (DEAD, "rejected", "bbbbbbbb", "it lacks vso.identity, which the token in place holds (a rotation never "
                                   "narrows what works today; WATCHDOG_RECOMMENDED_SCOPES)", False),
    (DEAD, "failed", "bbbbbbbb", "fails connectionData after the swap", False),
    (LiveCheck(Liveness.EXPIRED), "current", "bbbbbbbb", None, True),
    (LiveCheck(Liveness.VALID), "current", "bbbbbbbb", None, False),                      # the token works
    (LiveCheck(Liveness.UNKNOWN), "rejected", "bbbbbbbb", NOT_LATER, False),              # an outage
    (LiveCheck(Liveness.INVALID, definitive=False), "current", "bbbbbbbb", None, False),  # a sign-in page
])
def test_a_version_kept_out_only_against_a_dead_token_is_tried_again(live, state, fingerprint, reason, tried):
    from pat_watchdog.core.candidates import revived
    from pat_watchdog.core.model import CandidateState

    cand = CandidateView("v2", CandidateState(state), fingerprint, NOW + timedelta(days=90), reason=reason,
                         digest=fingerprint * 8 if fingerprint else None)
    snap = InstanceSnapshot("app", "contosoaggregator", token_present=True, token_fingerprint="aaaaaaaa",
                            token_digest="a" * 64, live=live, candidate=cand)
    found = revived(snap, placed="v2")
    assert (found is not None) is tried
    if state == "current":      # a `current` tag the watchdog's record does not back is a claim: never revived
        assert revived(snap, placed="v1") is None and revived(snap) is None
    if tried:
        assert found[0].state == CandidateState.PENDING and found[0].version == "v2"
        plan = decide(replace(snap, candidate=found[0]), Policy(), NOW)
        assert plan.rotate

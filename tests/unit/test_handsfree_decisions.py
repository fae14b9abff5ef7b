"""`auto` rotation's pure decisions (pat_watchdog/core/handsfree.py): when to create, what, what to revoke."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pat_watchdog.core import handsfree as H
from pat_watchdog.core.model import CandidateState, CandidateView, InstancePlan, Status, TokenView
from pat_watchdog.core.record import CreatedRecord, CreatedState, Record
from pat_watchdog.core.tags import SecretVersion

NOW = datetime(2026, 11, 30, 6, tzinfo=timezone.utc)


def plan(*, days_left=10, live=True, state=CandidateState.NONE, fingerprint="aaaa1111", rotate=False) -> InstancePlan:
    token = TokenView(fingerprint, live, "user-1", NOW + timedelta(days=days_left) if days_left is not None else None,
                      days_left, "devops", ("vso.work_write",), False)
    return InstancePlan("/subscriptions/x/resourceGroups/g/providers/Microsoft.Web/sites/a", "a", Status.WARNING, (),
                        token, CandidateView(state=state, version="v1" if state != CandidateState.NONE else None),
                        rotate=rotate)


def version(name: str, *, days_ago: float, status=None, created=True, **tags) -> SecretVersion:
    base = {"authorizationId": f"auth-{name}", "fingerprint": f"fp-{name}"} if created else {"fingerprint": f"fp-{name}"}
    if created:
        base["created-by"] = "pat-watchdog"
    if status:
        base["watchdog-status"] = status
    return SecretVersion("aggregator-pat-staged", name, NOW - timedelta(days=days_ago), None, None, True,
                         {**base, **tags})


@pytest.mark.parametrize("kwargs, due", [
    (dict(days_left=10), "10 days left, within WATCHDOG_ROTATE_WITHIN_DAYS=14"),
    (dict(days_left=15), None),
    (dict(days_left=None), None),                                 # expiry unknown: nothing to time it by
    (dict(days_left=200, live=False), "the current token does not work"),
    (dict(days_left=5, state=CandidateState.PENDING), None),      # a person's replacement is used instead
    (dict(days_left=5, state=CandidateState.APPLYING), None),     # an interrupted rotation is finished first
    (dict(days_left=5, state=CandidateState.REJECTED), "5 days left, within WATCHDOG_ROTATE_WITHIN_DAYS=14"),
    (dict(days_left=5, rotate=True), None),
    (dict(days_left=5, fingerprint=None), None),                  # no token setting: never invent one
])
def test_creation_is_due_only_when_rotation_is_and_nothing_usable_is_staged(kwargs, due):
    assert H.creation_due(plan(**kwargs), 14) == due


def test_scopes_never_narrow_and_always_hold_the_required_ones():
    assert H.scopes_for(("vso.work_full", "vso.project"), ("vso.identity",), ("vso.work_write",)) == \
        "vso.work_full vso.project vso.work_write"
    assert H.scopes_for(None, ("vso.identity", "vso.work_full"), ("vso.work_write",)) == \
        "vso.identity vso.work_full vso.work_write"
    assert H.scopes_for(("app_token",), ("vso.identity",), ("vso.work_write",)) == "app_token"


def test_the_scopes_come_from_azure_devops_never_from_a_key_vault_tag():
    from pat_watchdog.core.model import ExpiryFact
    tag = ExpiryFact("keyvault", NOW, scopes=("app_token",))
    listed = ExpiryFact("devops", NOW, scopes=("vso.work_full",), matched_by="record")
    assert H.reported_scopes([tag, listed]) == ("vso.work_full",)
    assert H.reported_scopes([tag]) is None
    assert H.reported_scopes([ExpiryFact("devops", NOW, scopes=("app_token",), ambiguous=True)]) is None
    # An entry a person's tag picked (its authorizationId, its date) is theirs to point anywhere: not used.
    for claim in ("tag", "date", "setting", "guess", None):
        assert H.reported_scopes([ExpiryFact("devops", NOW, scopes=("app_token",), matched_by=claim)]) is None
    assert H.reported_scopes([ExpiryFact("devops", NOW, scopes=("vso.work",), matched_by="only")]) == ("vso.work",)


def test_display_names_name_the_instance_and_are_recognised():
    name = H.display_name("contosoaggregator", NOW)
    assert name == "pat-watchdog contosoaggregator 2026-11-30T0600Z"
    assert H.made_for(name, "contosoaggregator")
    assert not H.made_for(name, "contoso") and not H.made_for("aggregator", "contosoaggregator")


@pytest.mark.parametrize("code, policy, words", [
    ("accessDenied", True, "Restrict personal access token creation"),
    ("disablePatCreationPolicyViolation", True, "Restrict personal access token creation"),
    ("fullScopePatPolicyViolation", True, "full-scoped"),
    ("patLifespanPolicyViolation", True, "WATCHDOG_PAT_LIFETIME_DAYS"),
    ("globalPatPolicyViolation", True, "global"),
    ("invalidScope", False, "the next run tries again"),
])
def test_refusals_name_the_policy_and_the_next_step(code, policy, words):
    is_policy, text = H.refusal(code)
    assert is_policy is policy and words in text and text.startswith(code)


def test_a_403_is_the_creation_policy_and_the_status_is_said():
    assert H.refusal("AccessCheckException", 403) == (True, H.refusal("accessDenied")[1].replace(
        "accessDenied", "AccessCheckException (HTTP 403)"))
    assert H.refusal("patLifespanPolicyViolation", 400)[0]


def test_a_refused_lifetime_is_asked_again_at_the_usual_maxima_down_to_a_week():
    assert H.lifetimes(90) == [90, 60, 30, 14, 7]
    assert H.lifetimes(45) == [45, 30, 14, 7] and H.lifetimes(7) == [7] and H.lifetimes(3) == [3]


def test_a_capped_lifetime_is_noticed_beyond_a_day():
    asked = NOW + timedelta(days=90)
    assert H.capped(asked, NOW + timedelta(days=30))
    assert not H.capped(asked, asked - timedelta(hours=3)) and not H.capped(asked, None)


def made(name: str, *, days_ago: float, state=CreatedState.REPLACED, replaced_days_ago=None, revoked=False,
         recorded_id=True) -> CreatedRecord:
    return CreatedRecord(f"pat-watchdog a {name}", NOW - timedelta(days=days_ago), state,
                         f"auth-{name}" if recorded_id else None, f"fp-{name}" if recorded_id else None, name,
                         NOW - timedelta(days=replaced_days_ago) if replaced_days_ago is not None else None,
                         NOW if revoked else None)


def test_only_what_the_record_says_the_watchdog_created_is_revoked_never_a_tag():
    old = made("old", days_ago=100, replaced_days_ago=8)
    new = made("new", days_ago=8, state=CreatedState.CURRENT)
    unused = made("bad", days_ago=1, state=CreatedState.UNUSED)
    done = made("done", days_ago=300, replaced_days_ago=200, revoked=True)
    orphan = made("lost", days_ago=0, state=CreatedState.INTENDED, recorded_id=False)
    record = Record(created=(old, new, unused, done, orphan))
    due = H.due_for_revocation(record, "fp-new", NOW, 7)
    assert [(p.version, why.split(":")[0].split(" (")[0]) for p, why in due] == [
        ("old", "replaced on 2026-11-22, 7 days ago or more"), ("bad", "never used"), ("lost", "orphan")]
    assert [p.version for p, _ in H.due_for_revocation(record, "fp-new", NOW, 9)] == ["bad", "lost"]
    assert [p.version for p, _ in H.due_for_revocation(record, "fp-new", NOW, None)] == ["lost"]   # off
    assert "old" not in [p.version for p, _ in H.due_for_revocation(record, "fp-old", NOW, 7)]  # Aggregator holds it
    assert H.due_for_revocation(record, None, NOW, 7) == []                   # what it holds is unknown
    # Staged versions tagged as the watchdog's count for nothing: only the record does.
    assert H.due_for_revocation(Record(), "fp-new", NOW, 7) == []


def test_a_revocation_needs_the_listing_to_confirm_id_and_display_name():
    from pat_watchdog.adapters.pats import PatRecord
    pat = made("old", days_ago=100, replaced_days_ago=8)
    listed = PatRecord("AUTH-OLD", pat.display_name, None, None, "vso.work_full", ("acct",))
    assert H.confirmed(pat, [listed], "a") == listed
    assert H.confirmed(pat, [PatRecord("auth-old", "a person's PAT", None, None, "", None)], "a") is None
    assert H.confirmed(pat, [PatRecord("auth-other", pat.display_name, None, None, "", None)], "a") is None
    assert H.confirmed(pat, [listed], "b") is None                                 # another instance's name
    orphan = made("lost", days_ago=0, state=CreatedState.INTENDED, recorded_id=False)
    found = PatRecord("auth-9", orphan.display_name, None, None, "", None)
    assert H.confirmed(orphan, [found], "a") == found           # by the exact name recorded before the request
    assert H.confirmed(orphan, [PatRecord("auth-9", "pat-watchdog a other", None, None, "", None)], "a") is None


def test_a_created_pat_that_failed_stops_further_creation():
    assert H.created_and_failed(Record(created=(made("a", days_ago=3, state=CreatedState.CURRENT),
                                                made("b", days_ago=1, state=CreatedState.UNUSED)))).version == "b"
    assert H.created_and_failed(Record(created=(made("b", days_ago=3, state=CreatedState.UNUSED),
                                                made("c", days_ago=1, state=CreatedState.CURRENT)))) is None
    assert H.created_and_failed(Record()) is None
    assert H.created_and_failed(Record(created=(made("b", days_ago=1, state=CreatedState.UNUSED),)),
                                token_works=False) is None

"""`auto` rotation's pure decisions (pat_watchdog/core/handsfree.py): when to create, what, what to revoke."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pat_watchdog.core import handsfree as H
from pat_watchdog.core.model import CandidateState, CandidateView, InstancePlan, Status, TokenView
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
    listed = ExpiryFact("devops", NOW, scopes=("vso.work_full",))
    assert H.reported_scopes([tag, listed]) == ("vso.work_full",)
    assert H.reported_scopes([tag]) is None
    assert H.reported_scopes([ExpiryFact("devops", NOW, scopes=("app_token",), ambiguous=True)]) is None


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


def test_only_replaced_pats_the_watchdog_created_are_revoked_after_the_delay():
    old = version("old", days_ago=100, status="current", **{"rotated-at": "2026-08-22T06:00:00Z"})
    new = version("new", days_ago=8, status="current", **{"rotated-at": "2026-11-22T06:00:00Z"})
    person = version("person", days_ago=200, status="current", created=False,
                     **{"rotated-at": "2026-05-01T06:00:00Z"})
    rejected = version("bad", days_ago=1, status="rejected")
    done = version("done", days_ago=300, status="current", **{"rotated-at": "2026-02-01T06:00:00Z",
                                                               "revoked-at": "2026-05-08T06:00:00Z"})
    due = H.due_for_revocation([old, new, person, rejected, done], "fp-new", NOW, 7)
    assert [(v.version, why) for v, why in due] == [
        ("old", "replaced on 2026-11-22, 7 days ago or more"), ("bad", "never used (rejected)")]
    assert H.due_for_revocation([old, new], "fp-new", NOW, 9) == []            # replaced 8 days ago
    assert H.due_for_revocation([old, new], "fp-new", NOW, None) == []         # WATCHDOG_REVOKE_AFTER_DAYS=off
    assert H.due_for_revocation([old, new], "fp-old", NOW, 7) == []            # Aggregator still holds it
    assert H.due_for_revocation([old, new], None, NOW, 7) == []                # what it holds is unknown


def test_a_created_pat_that_failed_stops_further_creation():
    assert H.created_and_failed([version("a", days_ago=3, status="current"),
                                 version("b", days_ago=1, status="failed")]).version == "b"
    assert H.created_and_failed([version("b", days_ago=3, status="failed"),
                                 version("c", days_ago=1, status="current")]) is None
    assert H.created_and_failed([version("p", days_ago=1, status="rejected", created=False)]) is None
    assert H.created_and_failed([]) is None
    assert H.created_and_failed([version("b", days_ago=1, status="failed")], token_works=False) is None

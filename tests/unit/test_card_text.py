"""Every string of every card the product can build, walked: no backslash escape anywhere, nothing Teams
would read as markdown, outside text shown as typed, and our own words free of markdown.

Teams reads TextBlock text and fact titles and values as markdown and has shown backslash escapes
literally on mobile (microsoft/AdaptiveCards #5590, PR #7474; microsoft/Teams-AdaptiveCards-Mobile #58);
a TextRun's text is never read as markdown. The cards are built from every alertable reason code at
its level and at CRITICAL, over every kind of settings and plan, with hostile text in every place
outside text can reach (the instance, reason messages, staged versions and their reasons, error
bodies), plus the resolved, event, rotated, unchecked and doctor cards.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from pat_watchdog.core.record import Record
from pat_watchdog.adapters import teams
from pat_watchdog.core import alerts as A
from pat_watchdog.core import drift
from pat_watchdog.core import reasons as R
from pat_watchdog.core.model import (CandidateState, CandidateView, ExpiryFact, InstancePlan, InstanceSnapshot,
                                     LiveCheck, Liveness, Note, Reason, Status, SubscriptionView,
                                     TokenView)
from pat_watchdog.core.policy import EMPTY, MISSING, Policy, decide
from pat_watchdog.core.resource_ids import parse_resource_id
from pat_watchdog.core.settings import load_settings
from pat_watchdog.doctor.delivery import doctor_alert
from tests.cards import markdown_read, shows_as_typed, strings

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)
APP = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/aggregator-contoso"
       "/providers/Microsoft.Web/sites/contosoaggregator")
HOSTILE = ("*bold* and _it_", "[Reset your password](https://evil.example/login)", "# heading", "<b>b</b>",
           "back\\slash \\* \\_ \\[x\\]", "`code`", "&lt;b&gt; &amp;", "1. item", "> quote", "a\r\nBcc: x@evil.example",
           "~~gone~~ | a | b |", "![i](https://evil.example/i.png)")
OWN_SETTING = "_My_Token_"        # a setting name is outside text too: markdown would read it as emphasis
BASE = {"WATCHDOG_AGGREGATOR_APP": APP, "WATCHDOG_DEVOPS_ORG_URL": "https://dev.azure.com/contoso"}
VAULT = {"WATCHDOG_KEY_VAULT_URL": "https://contoso-kv.vault.azure.net"}
SETTINGS = {
    "staged rotation": load_settings({**BASE, **VAULT}),
    "no staging vault": load_settings(BASE),
    "rotation off": load_settings({**BASE, **VAULT, "WATCHDOG_ROTATION": "off"}),
    "auto rotation": load_settings({**BASE, **VAULT, "WATCHDOG_ROTATION": "auto",
                                    "WATCHDOG_SIGNIN_CLIENT_ID": "6f0c9a2e-5d4b-4c3a-9e8f-7a6b5c4d3e2f",
                                    "WATCHDOG_SIGNIN_SECRET": "{name}-signin"}),
    "a token setting of its own": load_settings({**BASE, **VAULT, "WATCHDOG_TOKEN_SETTING": OWN_SETTING}),
}
FULL = ("vso.identity", "vso.project", "vso.serviceendpoint_manage", "vso.work_full")


def token(days: float | None, live: bool | None = True, fingerprint: str | None = "1a2b3c4d") -> TokenView:
    expires = None if days is None else NOW + timedelta(days=days)
    left = None if days is None else int(days // 1)
    return TokenView(fingerprint, live, "u1", expires, left, None if days is None else "keyvault", FULL, False)


TOKENS = {"10 days left": token(10), "200 days left": token(200), "expiry unknown": token(None),
          "dead": token(-2, live=False), "no token setting": token(None, live=False, fingerprint=None)}


def candidates(hostile: str) -> dict[str, CandidateView]:
    return {"none": CandidateView(),
            "staged, waiting": CandidateView(hostile, CandidateState.PENDING, "99999999", NOW + timedelta(days=365)),
            "rejected": CandidateView(hostile, CandidateState.REJECTED, "99999999", None, hostile),
            "failed": CandidateView(hostile, CandidateState.FAILED, "99999999", None, hostile)}


ALERTABLE = [code for code in R.ALL.values() if code.condition is not None]


def every_reason_card():
    """(case, card, outside texts it was given) for every code x level x settings x token x candidate."""
    hostile = itertools.cycle(HOSTILE)
    for code, (s_name, settings), (t_name, view) in itertools.product(ALERTABLE, SETTINGS.items(), TOKENS.items()):
        for c_name, cand in candidates(next(hostile)).items():
            for level in dict.fromkeys((code.level, "CRITICAL")):
                text, name = next(hostile), next(hostile)
                stage = {R.TOKEN_MISSING.name: MISSING if view.fingerprint is None else EMPTY}.get(code.name, "14")
                reason = Reason(code.name, level, text, code.condition, stage)
                plan = InstancePlan(APP, name, Status.CRITICAL, (reason,), view, cand)
                alert = A.for_reason(reason, plan, settings, NOW)
                yield f"{code.name}/{level}/{s_name}/{t_name}/{c_name}", teams.card(alert), (text, name)


def pipeline_cards():
    """Alerts through decide(), with outside text where observation puts it: error bodies, reference
    details, a rejected version's reason tag, notes."""
    for hostile, settings in itertools.product(HOSTILE, SETTINGS.values()):
        snaps = [
            InstanceSnapshot(APP, hostile, token_present=True, token_fingerprint="1a2b3c4d", token_type="PAT",
                             live=LiveCheck(Liveness.INVALID, detail=hostile)),
            InstanceSnapshot(APP, "contosoaggregator", token_present=True, token_fingerprint="1a2b3c4d",
                             token_type=hostile, reference_status="AccessToKeyVaultDenied", reference_details=hostile,
                             live=LiveCheck(Liveness.VALID, "u1"),
                             facts=(ExpiryFact("keyvault", NOW + timedelta(days=2), (hostile,)),),
                             candidate=CandidateView(hostile, CandidateState.REJECTED, "9", None, hostile),
                             notes=(Note(R.TAG_LIMIT.name, hostile), Note(R.SIGNIN_REQUIRED.name, hostile))),
            InstanceSnapshot(APP, "contosoaggregator", missing_setting=hostile, live=LiveCheck(Liveness.UNKNOWN)),
            InstanceSnapshot(APP, "contosoaggregator", token_present=True, token_fingerprint="1a2b3c4d",
                             token_type="PAT", live=LiveCheck(Liveness.VALID, "u1"),
                             facts=(ExpiryFact("keyvault", NOW + timedelta(days=200), FULL),),
                             subscriptions=tuple(SubscriptionView(f"s{i}", hostile, "workitem.updated", hostile, status)
                                                 for i, status in enumerate(("disabledBySystem", "onProbation"))),
                             bypass_missing=((hostile, hostile),),
                             notes=(Note(R.TOKEN_SETTING_CHANGED.name, drift.describe(
                                 Record(form=f"reference {hostile}/secrets/x"), "1a2b3c4d", "plain", OWN_SETTING)),)),
        ]
        for snap in snaps:
            plan = decide(snap, Policy.from_settings(settings, snap.name), NOW)
            for alert in A.for_plan(plan, settings, NOW):   # some never echo a value (it may be a secret)
                yield f"pipeline/{alert.code}", teams.card(alert), ()


def other_cards():
    """The resolved, event (TOKEN_SETTING_CHANGED), rotated, unchecked and doctor cards."""
    for hostile in HOSTILE:
        plan = InstancePlan(APP, hostile, Status.OK, (R.reason(R.HEALTHY, hostile),), token(300), CandidateView())
        yield "resolved", teams.card(A.resolved(f"CANDIDATE_REJECTED:{hostile}", hostile, plan)), (hostile,)
        yield "resolved expiry", teams.card(A.resolved("EXPIRY", hostile, plan)), (hostile,)
        changed = R.reason(R.TOKEN_SETTING_CHANGED, hostile)
        yield "event", teams.card(A.event(plan, changed, f"TOKEN_SETTING_CHANGED:{hostile}")), (hostile,)
        told = drift.describe(Record(form=f"reference {hostile}/secrets/x"), "1a2b3c4d", "plain", OWN_SETTING)
        yield "event", teams.card(A.event(plan, R.reason(R.TOKEN_SETTING_CHANGED, told), "TOKEN_SETTING_CHANGED:x")), ()
        yield "rotated", teams.card(A.info(plan, f"ROTATED:{hostile}", "rotated", hostile)), (hostile,)
        yield "unchecked", teams.card(A.unchecked(parse_resource_id(APP), "pat-instances", NOW)), ()
        yield "doctor", teams.card(doctor_alert(SimpleNamespace(plans=[plan]))), (hostile,)


CARDS = [*every_reason_card(), *pipeline_cards(), *other_cards()]


def scrubbed(text: str) -> str:
    """`text` without the outside texts it shows as typed: what is left is the product's own words."""
    for value in sorted((*HOSTILE, OWN_SETTING), key=len, reverse=True):
        text = text.replace(value, "X")
    return text


def test_the_walk_covers_every_alertable_code_and_every_kind_of_card():
    cases = {case.split("/")[0] for case, _, _ in CARDS}
    assert {c.name for c in ALERTABLE} <= cases and len(ALERTABLE) >= 25
    assert {"resolved", "event", "rotated", "unchecked", "doctor"} <= cases and len(CARDS) > 3000


def test_no_card_has_text_that_teams_reads_as_markdown():
    found = [(case, markdown_read(card)) for case, card, _ in CARDS if markdown_read(card)]
    assert found == []


def test_no_card_string_carries_a_backslash_but_outside_text_as_typed():
    found = [(case, path, value) for case, card, _ in CARDS for path, value in strings(card)
             if "\\" in scrubbed(value)]
    assert found == []


def test_outside_text_is_shown_as_typed():
    missing = [(case, value) for case, card, outside in CARDS for value in outside
               if not any(value in text for text in teams.texts(card))]
    assert missing == []


def test_our_own_words_would_show_as_typed_even_as_markdown():
    """No backticks, emphasis or link syntax of our own: in a TextRun it would show as stray punctuation."""
    found = sorted({text for _, card, _ in CARDS for text in map(scrubbed, teams.texts(card))
                    if not shows_as_typed(text)})
    assert found == []


def test_the_walk_would_catch_a_backslash_escape_and_a_textblock():
    """The checks above can fail: the old cards (escaped TextBlocks and a FactSet) fail every one."""
    case, card, outside = next(c for c in CARDS if c[0].startswith("EXPIRES_SOON/WARNING/staged rotation"))
    old = {"type": "AdaptiveCard", "version": "1.4", "body": [
        {"type": "TextBlock", "text": "2026\\-12\\-18T06:00:00Z vso.work\\_full"},
        {"type": "FactSet", "facts": [{"title": "Instance", "value": "contoso\\*"}]}]}
    assert markdown_read(old) and any("\\" in scrubbed(v) for _, v in strings(old))
    assert not shows_as_typed("aggregator-cli `configure.instance`") and shows_as_typed(teams.texts(card)[-1])

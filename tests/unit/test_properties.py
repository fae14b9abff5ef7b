"""Property-based tests (hypothesis) for the pure code that reads outside input: whatever comes in,
it answers with a value or a ValueError naming what is expected, never anything else, and never
echoes a secret."""

from __future__ import annotations

from dataclasses import replace

import string
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pat_watchdog.adapters import teams
from pat_watchdog.core import alerts as A
from pat_watchdog.core import reasons as R
from pat_watchdog.core import setting_values as V
from pat_watchdog.core.model import CandidateView, InstancePlan, Status, TokenView
from pat_watchdog.core.errors import ConfigError
from pat_watchdog.core.listing import Entries, Match, active_entries, match_entry
from pat_watchdog.core.references import is_reference, not_allowed, parse_reference
from pat_watchdog.core.resource_ids import parse_resource_id
from pat_watchdog.core.secret import looks_like_pat
from pat_watchdog.core.settings import load_settings
from pat_watchdog.core.tags import MAX_TAG_VALUE, MAX_TAGS, TagLimitError, merge_tags
from pat_watchdog.core.text import one_line
from pat_watchdog.core.times import format_utc, parse_utc
from tests.cards import markdown_read, strings

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
APP = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/g/providers/Microsoft.Web/sites/a"
NOW = datetime(2026, 11, 28, tzinfo=timezone.utc)
_SETTINGS = load_settings({"WATCHDOG_AGGREGATOR_APP": APP, "WATCHDOG_DEVOPS_ORG_URL": "https://dev.azure.com/contoso",
                           "WATCHDOG_KEY_VAULT_URL": "https://contoso-kv.vault.azure.net"})
_TOKEN = TokenView("1a2b3c4d", True, "u1", NOW + timedelta(days=10), 10, "keyvault", ("vso.work_full",), False)
CARD_ALERT = A.for_reason(R.reason(R.EXPIRES_SOON, stage="14"), InstancePlan(APP, "a", Status.WARNING, (), _TOKEN,
                                                                             CandidateView()), _SETTINGS, NOW)
hostile = st.text(st.characters(codec="utf-8"), max_size=200) | st.sampled_from([
    "[x](https://evil.example)", "**bold** _it_", "<img src=x onerror=1>", "`code`", "# head", "![i](x)",
    "<https://evil.example>", "&lt;b&gt;", "a\r\nBcc: x@evil.example", "\\[not](a link)", "a\r    indented code", "title\n===",
    "1) item", "> quote", "***"])


@FAST
@given(hostile)
def test_a_card_shows_any_outside_text_as_typed_and_reads_none_as_markdown(text: str) -> None:
    """Outside text as the instance and the message: in TextRuns as typed, never where Teams reads
    markdown, and every backslash of the card is one of the text's own."""
    card = teams.card(replace(CARD_ALERT, instance=text, message=text))
    assert markdown_read(card) == [] and text in teams.texts(card)
    assert all("\\" not in (value.replace(text, "") if text else value) for _, value in strings(card))


@FAST
@given(hostile)
def test_one_line_has_no_line_break_or_control_character(text: str) -> None:
    line = one_line(text)
    assert "\r" not in line and "\n" not in line and all(c.isprintable() for c in line)


@FAST
@given(hostile)
def test_reference_parsing_answers_a_reference_or_a_value_error(text: str) -> None:
    try:
        ref = parse_reference("@Microsoft.KeyVault(" + text + ")")
    except ValueError as error:
        assert text not in str(error) or len(text) < 4
    else:
        assert ref.vault_url.startswith("https://") and ref.secret_name
    assert is_reference(text) is False or text.strip().lower().startswith("@microsoft.keyvault(")


@FAST
@given(st.sampled_from(["https://contoso-kv.vault.azure.net", "https://other.vault.azure.net"]),
       st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=20))
def test_a_reference_is_followed_only_to_allowed_vaults_and_never_to_own_secrets(vault: str, name: str) -> None:
    ref = parse_reference(f"@Microsoft.KeyVault(SecretUri={vault}/secrets/{name}/)")
    why = not_allowed(ref, ("https://contoso-kv.vault.azure.net",), ("aggregator-pat-staged", "aggregator-pat-previous"))
    allowed = vault.startswith("https://contoso-kv") and name.lower() not in ("aggregator-pat-staged",
                                                                             "aggregator-pat-previous")
    assert (why is None) is allowed


@FAST
@given(hostile)
def test_resource_ids_parse_or_say_what_is_expected(text: str) -> None:
    try:
        parsed = parse_resource_id(text)
    except ValueError as error:
        assert "expected" in str(error) or "is not a GUID" in str(error)
    else:
        assert str(parsed).lower() == text.strip().rstrip("/").lower()


@FAST
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30))])))
def test_times_round_trip_in_utc(moment: datetime) -> None:
    text = format_utc(moment)
    assert text.endswith("Z") and parse_utc(text) == moment.replace(microsecond=0)


@FAST
@given(hostile)
def test_time_parsing_answers_a_time_or_a_value_error(text: str) -> None:
    try:
        parsed = parse_utc(text)
    except ValueError:
        return
    assert parsed is None or parsed.tzinfo is not None


@FAST
@given(st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=400), max_size=20),
       st.dictionaries(st.text(min_size=1, max_size=10), st.none() | st.text(max_size=400), max_size=6))
def test_merged_tags_stay_within_key_vault_limits(existing: dict, changes: dict) -> None:
    try:
        merged = merge_tags(existing, changes)
    except TagLimitError:
        return
    assert len(merged) <= MAX_TAGS
    assert all(len(v) <= MAX_TAG_VALUE for k, v in merged.items() if k in changes)
    assert all(k not in merged for k, v in changes.items() if v is None)


SECRET_SHAPED = st.one_of(
    st.text("abcdefghijklmnopqrstuvwxyz234567", min_size=52, max_size=52),
    st.builds(lambda a, b: a + "AZDO" + b, st.text(string.ascii_letters + string.digits, min_size=76, max_size=76),
              st.text(string.ascii_letters + string.digits, min_size=4, max_size=4)),
    st.builds(lambda s: f"https://prod.logic.azure.com/workflows/x?sig={s}", st.text(string.ascii_letters, min_size=8)),
)


@FAST
@given(st.sampled_from(["WATCHDOG_PAT_AUTHORIZATION_ID", "WATCHDOG_PAT_EXPIRES_ON", "WATCHDOG_STATE_TABLE",
                        "WATCHDOG_ROTATION", "WATCHDOG_EMAIL_FROM", "AzureWebJobsStorage"]), SECRET_SHAPED)
def test_a_secret_pasted_into_any_setting_is_never_echoed(name: str, secret: str) -> None:
    env = {"WATCHDOG_AGGREGATOR_APP": APP, "WATCHDOG_DEVOPS_ORG_URL": "https://dev.azure.com/c", name: secret}
    try:
        load_settings(env)
    except ConfigError as error:
        assert secret not in str(error) and secret[:16] not in str(error)


@FAST
@given(SECRET_SHAPED)
def test_pats_have_a_pat_form(secret: str) -> None:
    assert looks_like_pat(secret) is (not secret.startswith("https://"))


@FAST
@given(hostile)
def test_setting_converters_raise_value_error_only(text: str) -> None:
    for convert in (V.schedule, V.day_list, V.https_url, V.https_base, V.emails, V.email, V.scopes,
                    V.connection_string, V.boolean, V.url_list):
        try:
            convert(text)
        except ValueError:
            pass


entries = st.lists(st.fixed_dictionaries({
    "authorizationId": st.uuids().map(str), "userId": st.sampled_from(["u1", "u2"]), "isValid": st.booleans(),
    "validTo": st.integers(-5, 400).map(lambda d: format_utc(NOW + timedelta(days=d))),
    "scope": st.just("vso.work_full"), "targetAccounts": st.just(["o"])}), max_size=8)


@FAST
@given(entries, st.data())
def test_a_listing_match_never_picks_an_excluded_or_dead_entry(listing: list, data) -> None:
    excluded = frozenset(e["authorizationId"] for e in listing if data.draw(st.booleans()))
    match = match_entry(listing, NOW, user_id="u1", exclude=excluded)
    if match.entry is not None:
        assert match.entry["authorizationId"] not in excluded
        assert match.entry["isValid"] and parse_utc(match.entry["validTo"]) > NOW and match.entry["userId"] == "u1"


def scanned(entries, now, *, authorization_id=None, user_id=None, known_expiry=None, exclude=frozenset(),
            others_expire=()) -> Match:
    """The matching as it was before the listing was indexed: every entry scanned on every call."""
    entries = [e for e in entries if str(e.get("authorizationId", "")).lower() not in exclude]
    if authorization_id:
        found = [e for e in entries if str(e.get("authorizationId", "")).lower() == authorization_id.lower()]
        return Match(found[0]) if found else Match(None, not_found=authorization_id)
    active = [e for e in entries if e.get("isValid", True) and (parse_utc(e.get("validTo")) or now) > now
              and (user_id is None or e.get("userId") in (None, user_id))]
    if known_expiry is not None:
        close = [e for e in active if abs(parse_utc(e["validTo"]) - known_expiry) <= timedelta(days=1)]
        if close:
            return Match(min(close, key=lambda e: abs(parse_utc(e["validTo"]) - known_expiry)))
    if len(active) > 1 and others_expire:
        narrowed = [e for e in active if all(abs(parse_utc(e["validTo"]) - when) > timedelta(days=1)
                                             for when in others_expire)]
        if len(narrowed) == 1:
            return Match(narrowed[0], ambiguous=True)
        active = narrowed or active
    if len(active) == 1:
        return Match(active[0])
    if active:
        return Match(min(active, key=lambda e: parse_utc(e["validTo"])), ambiguous=True)
    return Match(None)


@FAST
@given(entries, st.lists(st.tuples(st.sampled_from([None, "u1", "u2"]), st.integers(-1, 8),
                                   st.none() | st.integers(-5, 400), st.lists(st.integers(-5, 400), max_size=2),
                                   st.lists(st.integers(0, 7), max_size=3), st.booleans()), max_size=6))
def test_one_indexed_listing_answers_every_query_of_a_run_as_a_scan_does(listing: list, queries) -> None:
    """A run builds the index once and asks it for every instance: each answer is the scan's."""
    shared = Entries(listing)
    for user, pick, known, others, excluded, upper in queries:
        ids = [e["authorizationId"] for e in listing]
        wanted = ids[pick] if 0 <= pick < len(ids) else ("no-such-id" if pick >= 0 else None)
        query = dict(authorization_id=wanted.upper() if wanted and upper else wanted, user_id=user,
                     known_expiry=None if known is None else NOW + timedelta(days=known, hours=3),
                     exclude=frozenset(ids[i].lower() for i in excluded if i < len(ids)),
                     others_expire=tuple(NOW + timedelta(days=d) for d in others))
        assert replace(match_entry(shared, NOW, **query), how=None) == scanned(listing, NOW, **query)
        assert active_entries(shared, NOW, user, query["exclude"]) == \
            [e for e in scanned_active(listing, user) if e["authorizationId"].lower() not in query["exclude"]]


def scanned_active(listing: list, user) -> list:
    return [e for e in listing if e.get("isValid", True) and parse_utc(e["validTo"]) > NOW
            and (user is None or e.get("userId") in (None, user))]

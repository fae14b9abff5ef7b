"""Key Vault references, candidate selection and listing matching: pure helpers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pat_watchdog.core.listing import fact_from_entry, match_entry
from pat_watchdog.core.references import is_reference, parse_reference
from pat_watchdog.core.secret import Token, fingerprint
from pat_watchdog.core.candidates import select_candidate
from pat_watchdog.core.tags import SecretVersion, TagLimitError, merge_tags

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text,url,name,version", [
    ("@Microsoft.KeyVault(SecretUri=https://kv1.vault.azure.net/secrets/pat/0a1b)", "https://kv1.vault.azure.net", "pat", "0a1b"),
    ("@Microsoft.KeyVault(SecretUri=https://kv1.vault.azure.net/secrets/pat/)", "https://kv1.vault.azure.net", "pat", None),
    ("@Microsoft.KeyVault(VaultName=kv1;SecretName=pat)", "https://kv1.vault.azure.net", "pat", None),
    ("@Microsoft.KeyVault(VaultName=kv1;SecretName=pat;SecretVersion=77)", "https://kv1.vault.azure.net", "pat", "77"),
])
def test_key_vault_reference_syntaxes(text, url, name, version):
    assert is_reference(text)
    ref = parse_reference(text)
    assert (ref.vault_url, ref.secret_name, ref.version) == (url, name, version)


def test_vault_name_follows_the_sovereign_cloud():
    ref = parse_reference("@Microsoft.KeyVault(VaultName=kv1;SecretName=pat)", "https://management.usgovcloudapi.net")
    assert ref.vault_url == "https://kv1.vault.usgovcloudapi.net"


def test_malformed_reference_is_explained():
    with pytest.raises(ValueError, match="SecretUri"):
        parse_reference("@Microsoft.KeyVault(SecretUri=ftp://x/secrets)")


def version(v: str, days_ago: int, *, tags=None, enabled=True, expires=365, nbf=None) -> SecretVersion:
    return SecretVersion("aggregator-pat-staged", v, NOW - timedelta(days=days_ago),
                         NOW + timedelta(days=expires), nbf, enabled, tags or {})


def test_candidate_is_newest_eligible_by_creation_not_listing_order():
    versions = [version("b", 3), version("c", 1), version("a", 5)]
    cand = select_candidate(versions, NOW)
    assert (cand.version, cand.state, cand.superseded) == ("c", "pending", ("b", "a"))


@pytest.mark.parametrize("blocker", [dict(enabled=False), dict(expires=-1), dict(nbf=NOW + timedelta(days=1))])
def test_disabled_expired_or_not_yet_valid_versions_are_skipped(blocker):
    cand = select_candidate([version("old", 5), version("new", 1, **blocker)], NOW)
    assert cand.version == "old"


def test_untagged_versions_older_than_a_handled_one_are_never_picked():
    versions = [version("ancient", 30), version("rotated", 10, tags={"watchdog-status": "current"})]
    cand = select_candidate(versions, NOW)
    assert (cand.version, cand.state, cand.superseded) == ("rotated", "current", ("ancient",))


def test_nothing_staged():
    assert select_candidate([], NOW).state == "none"


def test_merge_tags_keeps_others_shortens_and_limits():
    merged = merge_tags({"scopes": "vso.work_full", "owner": "ops"}, {"watchdog-reason": "x" * 300, "owner": None})
    assert merged["scopes"] == "vso.work_full" and "owner" not in merged
    assert len(merged["watchdog-reason"]) == 256
    with pytest.raises(TagLimitError):
        merge_tags({f"t{i}": "v" for i in range(15)}, {"watchdog-status": "rejected"})


def entry(auth: str, days: int, user="u1", scope="vso.work_full", accounts=("org",)) -> dict:
    valid_to = (NOW + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.1033333Z")
    return {"authorizationId": auth, "userId": user, "validTo": valid_to, "scope": scope,
            "targetAccounts": list(accounts) if accounts is not None else None, "isValid": True}


def test_listing_match_by_authorization_id_and_not_found():
    entries = [entry("a1", 10), entry("a2", 90)]
    assert match_entry(entries, NOW, authorization_id="A2").entry["authorizationId"] == "a2"
    assert match_entry(entries, NOW, authorization_id="zz").not_found == "zz"


def test_listing_single_active_entry_of_the_user():
    entries = [entry("a1", 40), entry("x", 10, user="someone-else"), entry("old", -3)]
    match = match_entry(entries, NOW, user_id="u1")
    assert match.entry["authorizationId"] == "a1" and not match.ambiguous


def test_listing_several_active_entries_is_ambiguous_earliest_wins():
    match = match_entry([entry("a1", 300), entry("a2", 12)], NOW, user_id="u1")
    assert match.entry["authorizationId"] == "a2" and match.ambiguous


def test_listing_entry_within_a_day_of_a_known_expiry_is_the_match():
    match = match_entry([entry("a1", 300), entry("a2", 12)], NOW, user_id="u1",
                        known_expiry=NOW + timedelta(days=300, hours=5))
    assert match.entry["authorizationId"] == "a1" and not match.ambiguous


def test_global_pat_only_when_target_accounts_is_null():
    assert fact_from_entry(entry("a", 5, accounts=None)).global_pat is True
    assert fact_from_entry(entry("a", 5)).global_pat is False


def test_token_never_shows_its_value():
    token = Token("abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop")
    for text in (repr(token), str(token), f"{token}", "%s" % token):
        assert "abcdefghij" not in text and token.fingerprint in text
    assert token.fingerprint == fingerprint(token.reveal()) and len(token.fingerprint) == 8


def test_tokens_with_any_characters_compare_without_error():
    assert Token("päss-wörd") == Token("päss-wörd") and Token("päss-wörd") != Token("pass-word")


def test_an_inconclusive_count_in_a_tag_never_raises_and_stays_in_range():
    from pat_watchdog.core.tags import SecretVersion, inconclusive_count

    def version(reason):
        return SecretVersion("s", "v", None, None, None, True, {"watchdog-reason": reason} if reason else {})
    assert [inconclusive_count(version(r), 3) for r in
            ("inconclusive 2/3: 503", "inconclusive x/3", "inconclusive -5/3", "inconclusive 99/3", "other", None)] \
        == [2, 0, 0, 3, 0, 0]

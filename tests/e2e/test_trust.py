"""Trust boundaries (docs/reference.md, "What the watchdog trusts"): nobody steers the watchdog's powers through data it reads."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from pat_watchdog.core.secret import fingerprint
from tests.conftest import NOW
from tests.cards import markdown_read
from tests.e2e.conftest import NAME, STAGED, card_texts, scene, tagging
from tests.leaks import fp

READS = (("POST", "/config/appsettings/list"), ("POST", "/oauth2"), ("POST", "/token"))


def writes(sandbox) -> list:
    """Every request that could change something: any PUT/PATCH/DELETE, any POST but a settings read."""
    return [r for r in sandbox.requests
            if r.method in ("PUT", "PATCH", "DELETE")
            or (r.method == "POST" and not any(m == "POST" and p in r.path for m, p in READS))]


# ---------------------------------------------------------------------------------------------
# The confused deputy: an Aggregator setting pointing at the watchdog's own secrets
# ---------------------------------------------------------------------------------------------

def channel_secret(world, sandbox) -> tuple[str, str]:
    """The watchdog's Teams webhook kept as a secret in the channel vault, as the deployment does
    (its signature is in every world's leak check)."""
    webhook = sandbox.teams.url()
    sandbox.vault.set_secret("contoso-channels-kv", "teams-webhook-url", webhook)
    return webhook, f"{sandbox.vault.url('contoso-channels-kv')}/secrets/teams-webhook-url/"


@pytest.mark.parametrize("target", ["channel secret", "previous secret", "staged secret", "other vault"])
def test_a_reference_to_a_secret_the_watchdog_must_not_follow(world, run_cli, sandbox, channels, target):
    webhook, channel_uri = channel_secret(world, sandbox)
    old, _ = world.issue(300)
    world.stage(old, days=300, secret="aggregator-pat-previous")
    new, _ = world.issue(365)
    version = world.stage(new, days=365)                      # a replacement, due at once if followed
    sandbox.vault.set_secret("elsewhere-kv", "aggregator-pat", old)
    uri = {"channel secret": channel_uri,
           "previous secret": f"{sandbox.vault.url(world.vault)}/secrets/aggregator-pat-previous/",
           "staged secret": f"{sandbox.vault.url(world.vault)}/secrets/{STAGED}/",
           "other vault": f"{sandbox.vault.url('elsewhere-kv')}/secrets/aggregator-pat/"}[target]
    app = world.add_instance(NAME, f"@Microsoft.KeyVault(SecretUri={uri})")
    sandbox.reset_requests()
    result = run_cli("run", "--json", **channels)
    inst = result.instance(NAME)
    assert inst["status"] == "CRITICAL" and [r["code"] for r in inst["reasons"]] == ["REFERENCE_NOT_ALLOWED"]
    # nothing read there, nothing written to any vault or to Aggregator, the secret sent nowhere
    secret_reads = [r for r in sandbox.requests if r.method == "GET" and "/secrets/" in r.path
                    and not r.path.split("?")[0].endswith("/versions")]
    assert [r for r in secret_reads if "teams-webhook-url" in r.path or "aggregator-pat-previous" in r.path
            or "elsewhere-kv" in r.host or "channels-kv" in r.host] == []
    assert [r for r in writes(sandbox) if "vault.azure.net" in r.host] == [] and sandbox.arm.writes == []
    assert sandbox.count(host="dev.azure.com") == 0 or all(
        webhook not in json.dumps(r.headers) for r in sandbox.requests if "dev.azure.com" in r.host)
    assert "watchdog-status" not in next(v["tags"] for v in sandbox.vault.versions(world.vault, STAGED)
                                         if v["version"] == version)
    assert sandbox.arm.settings(app)["Aggregator_VstsToken"].startswith("@Microsoft.KeyVault(")
    assert sandbox.teams.received, "the CRITICAL alert still goes out"


def test_a_referenced_secret_that_is_not_a_pat_is_never_sent(world, run_cli, sandbox):
    sandbox.vault.set_secret(world.vault, "aggregator-pat", "not a token: a connection string;AccountKey=x")
    world.tokens.append("not a token: a connection string;AccountKey=x")
    world.add_instance(NAME, f"@Microsoft.KeyVault(SecretUri={sandbox.vault.url(world.vault)}/secrets/aggregator-pat/)")
    result = run_cli("status", "--json")
    assert [r["code"] for r in result.instance(NAME)["reasons"]] == ["REFERENCE_NOT_ALLOWED"]
    assert sandbox.count(host="dev.azure.com") == 0


def test_a_reference_to_a_listed_vault_is_followed(world, run_cli, sandbox):
    token, _ = world.issue(200)
    sandbox.vault.set_secret("aggregator-kv", "aggregator-pat", token, expires_on=NOW + timedelta(days=200))
    world.add_instance(NAME, f"@Microsoft.KeyVault(SecretUri={sandbox.vault.url('aggregator-kv')}/secrets/aggregator-pat/)")
    inst = run_cli("status", "--json", WATCHDOG_REFERENCE_VAULTS=sandbox.vault.url("aggregator-kv")).instance(NAME)
    assert inst["status"] == "OK" and inst["token"]["fingerprint"] == fingerprint(token)


# ---------------------------------------------------------------------------------------------
# `status` writes nothing, in every situation
# ---------------------------------------------------------------------------------------------

def _untagged_copy(world):
    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    world.stage(token, days=100)                 # no fingerprint tag yet: it is read, never tagged


def _pending_in_window(world):
    scene(world)


def _interrupted(world):
    s = scene(world)
    world.sandbox.inject(**tagging("current", s.version), status=503, times=None)
    return s


def _expired_with_replacement(world):
    scene(world, days_left=-2)


def _reference(world):
    token, _ = world.issue(50)
    world.sandbox.vault.set_secret(world.vault, "aggregator-pat", token)
    world.add_instance(NAME, f"@Microsoft.KeyVault(SecretUri={world.sandbox.vault.url(world.vault)}/secrets/aggregator-pat/)")
    new, _ = world.issue(365)
    world.stage(new, days=365)


SCENES = {"untagged copy of the current token": _untagged_copy, "replacement due": _pending_in_window,
          "expired, replacement staged": _expired_with_replacement, "versionless reference": _reference}


@pytest.mark.parametrize("name", SCENES)
def test_status_makes_no_write_request_of_any_kind(world, run_cli, sandbox, channels, name):
    SCENES[name](world)
    sandbox.reset_requests()
    result = run_cli("status", "--json", **channels)
    assert result.json["instances"], result.err
    assert writes(sandbox) == [] and sandbox.smtp.messages == [] and sandbox.teams.received == []


def test_status_after_an_interrupted_rotation_writes_nothing_either(world, run_cli, sandbox, channels):
    s = _interrupted(world)
    assert run_cli("run", **channels).code == 1            # leaves the candidate `applying`
    sandbox.clear_faults()
    sandbox.reset_requests()
    teams_before, mails_before = len(sandbox.teams.received), len(sandbox.smtp.messages)
    result = run_cli("status", "--json", now=NOW + timedelta(minutes=20), **channels)
    assert result.instance(NAME)["candidate"]["state"] == "applying"
    assert writes(sandbox) == [] and len(sandbox.teams.received) == teams_before
    assert len(sandbox.smtp.messages) == mails_before
    assert fp(sandbox.arm.settings(s.app)["Aggregator_VstsToken"]) == fp(s.new)


# ---------------------------------------------------------------------------------------------
# Hostile text from outside never turns into markdown or HTML in an alert
# ---------------------------------------------------------------------------------------------

HOSTILE = "[Reset your password](https://evil.example/login) **URGENT** <img src=x onerror=alert(1)> _now_"


def assert_inert(envelope: dict) -> None:
    """The hostile text is in the card as typed, in a TextRun, and nothing of the card is read as markdown."""
    assert any(HOSTILE in t for t in card_texts(envelope)), "the hostile text is not in the card as typed"
    assert markdown_read(envelope) == [], "Teams would read these as markdown"


def test_a_hostile_tag_and_error_body_stay_text_in_teams_and_email(world, run_cli, sandbox, channels):
    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    other, _ = world.issue(365)
    world.stage(other, days=365, tags={"watchdog-status": "rejected", "watchdog-reason": HOSTILE})
    sandbox.inject(host="dev.azure.com", path="connectionData", status=401, times=None,
                   headers={"X-TFS-ServiceError": HOSTILE.replace(" ", "%20") + "%0D%0ABcc:%20victim@evil.example"})
    run_cli("run", **channels)
    assert len(sandbox.teams.received) >= 2          # the rejected candidate and the invalid token
    for envelope in sandbox.teams.received:
        assert_inert(envelope)
    assert sandbox.smtp.messages
    for mail in sandbox.smtp.messages:
        assert "\n" not in mail["Subject"] and "Bcc" not in mail.keys()
        html = next(p for p in mail.walk() if p.get_content_type() == "text/html").get_content()
        assert "https://evil.example" not in html.split('href="')[-1] or 'href="https://evil' not in html
        assert "<img" not in html


# ---------------------------------------------------------------------------------------------
# Reference mode: moving a plain-text token into Key Vault by the same safe swap
# ---------------------------------------------------------------------------------------------

def test_migrate_to_reference_moves_the_token_into_the_staging_vault(world, run_cli, sandbox):
    token, _ = world.issue(100)
    app = world.add_instance(NAME, token)
    before = sandbox.arm.settings(app)
    result = run_cli("migrate-to-reference")
    assert result.code == 0 and "migrated" in result.out
    after = sandbox.arm.settings(app)
    uri = f"{sandbox.vault.url(world.vault)}/secrets/aggregator-pat/"
    assert after["Aggregator_VstsToken"] == f"@Microsoft.KeyVault(SecretUri={uri})"
    assert {k: v for k, v in after.items() if k != "Aggregator_VstsToken"} == \
        {k: v for k, v in before.items() if k != "Aggregator_VstsToken"}
    assert fp(sandbox.vault.versions(world.vault, "aggregator-pat")[-1]["value"]) == fp(token)
    inst = run_cli("status", "--json").instance(NAME)     # the staging vault may always be followed
    assert inst["token"]["fingerprint"] == fingerprint(token) and inst["token"]["live"] is True
    assert "REFERENCE_UNRESOLVED" not in [r["code"] for r in inst["reasons"]]


def test_migrate_puts_the_plain_token_back_when_app_service_cannot_resolve_it(world, run_cli, sandbox):
    token, _ = world.issue(100)
    app = world.add_instance(NAME, token)
    sandbox.arm.set_reference_status(app, "Aggregator_VstsToken", "AccessToKeyVaultDenied")
    result = run_cli("migrate-to-reference")
    assert result.code == 1 and "NOT migrated: App Service reports AccessToKeyVaultDenied" in result.out
    assert fp(sandbox.arm.settings(app)["Aggregator_VstsToken"]) == fp(token)


def test_migrate_refuses_the_watchdogs_own_secrets(world, run_cli):
    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    result = run_cli("migrate-to-reference", "--secret", "aggregator-pat-previous")
    assert result.code == 2 and "expected a dedicated secret" in result.err

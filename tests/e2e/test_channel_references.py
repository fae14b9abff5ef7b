"""A channel whose secret setting App Service could not resolve (docs/reference.md, "Reason codes",
CHANNEL_SETTING_UNRESOLVED): the app gets the literal `@Microsoft.KeyVault(...)` text, as on a first
start before the identity's grant on the channel vault has propagated. That channel fails, the other
still delivers, the run exits 1, and the doctor names the fix; nothing else stops."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import NOW
from tests.e2e.conftest import card_texts

NAME = "contosoaggregator"
CHANNEL_VAULT = "https://kv-patwdc-abc123.vault.azure.net"
TEAMS_REFERENCE = f"@Microsoft.KeyVault(SecretUri={CHANNEL_VAULT}/secrets/pat-watchdog-teams-webhook-url/)"
SMTP_REFERENCE = f"@Microsoft.KeyVault(SecretUri={CHANNEL_VAULT}/secrets/pat-watchdog-smtp-password/)"


def expiring(world) -> None:
    token, _ = world.issue(5)
    world.add_instance(NAME, token)


def reasons(result) -> dict[str, dict]:
    return {r["code"]: r for r in result.instance(NAME)["reasons"]}


def test_an_unresolved_teams_reference_fails_teams_only_and_email_tells_of_it(world, run_cli, sandbox, channels):
    expiring(world)
    result = run_cli("run", "--json", **{**channels, "WATCHDOG_TEAMS_WEBHOOK_URL": TEAMS_REFERENCE})
    assert result.code == 1, result.err
    broken = reasons(result)["CHANNEL_SETTING_UNRESOLVED"]
    assert broken["level"] == "CRITICAL" and result.instance(NAME)["status"] == "CRITICAL"
    assert "teams: WATCHDOG_TEAMS_WEBHOOK_URL" in broken["message"] and "EXPIRES_SOON" in reasons(result)
    outcomes = {(a["channel"], a["outcome"]) for a in result.instance(NAME)["actions"]}
    assert outcomes == {("teams", "failed"), ("email", "done")}
    failed = next(a for a in result.instance(NAME)["actions"] if a["channel"] == "teams")
    assert "WATCHDOG_TEAMS_WEBHOOK_URL is an unresolved Key Vault reference" in failed["detail"]
    assert sandbox.teams.received == [] and sandbox.count(host="logic.azure.com") == 0
    # Each condition is an alert of its own: the expiry, and the broken channel, both by email.
    mails = {m["Subject"]: m.get_body(("plain",)).get_content() for m in sandbox.smtp.messages}
    assert len(mails) == 2
    told = [text for subject, text in mails.items() if subject.startswith("[pat-watchdog] CRITICAL")]
    assert len(told) == 1 and "WATCHDOG_TEAMS_WEBHOOK_URL" in told[0]


def test_once_app_service_resolves_it_teams_gets_the_alert(world, run_cli, sandbox, channels):
    expiring(world)
    assert run_cli("run", **{**channels, "WATCHDOG_TEAMS_WEBHOOK_URL": TEAMS_REFERENCE}).code == 1
    later = run_cli("run", "--json", now=NOW + timedelta(hours=1), **channels)
    assert later.code == 0 and len(sandbox.teams.received) == 1   # the expiry; the channel is fine again
    assert "CHANNEL_SETTING_UNRESOLVED" not in reasons(later)


def test_an_unresolved_smtp_password_fails_email_only(world, run_cli, sandbox, channels):
    expiring(world)
    result = run_cli("run", "--json", **{**channels, "WATCHDOG_SMTP_PASSWORD": SMTP_REFERENCE})
    assert result.code == 1
    assert "email: WATCHDOG_SMTP_PASSWORD" in reasons(result)["CHANNEL_SETTING_UNRESOLVED"]["message"]
    assert {(a["channel"], a["outcome"]) for a in result.instance(NAME)["actions"]} == \
        {("teams", "done"), ("email", "failed")}
    assert len(sandbox.teams.received) == 2 and sandbox.smtp.messages == []   # the expiry, and the broken channel
    assert sum(any("WATCHDOG_SMTP_PASSWORD" in text for text in card_texts(card))
               for card in sandbox.teams.received) == 1


def test_status_reports_it_and_sends_nothing(world, run_cli, sandbox, channels):
    expiring(world)
    result = run_cli("status", "--json", **{**channels, "WATCHDOG_TEAMS_WEBHOOK_URL": TEAMS_REFERENCE})
    assert result.code == 2 and "CHANNEL_SETTING_UNRESOLVED" in reasons(result)
    assert sandbox.teams.received == [] and sandbox.smtp.messages == []


@pytest.mark.parametrize("setting, reference, check", [
    ("WATCHDOG_TEAMS_WEBHOOK_URL", TEAMS_REFERENCE, "channel.teams"),
    ("WATCHDOG_SMTP_PASSWORD", SMTP_REFERENCE, "channel.email"),
])
def test_the_doctor_names_the_channel_the_setting_and_the_fix(world, run_cli, sandbox, channels, setting, reference,
                                                              check):
    expiring(world)
    result = run_cli("doctor", "--json", **{**channels, setting: reference})
    found = {c["id"]: c for c in result.json["checks"]}
    assert result.code == 1 and found[check]["status"] == "FIX"
    assert setting in found[check]["message"] and "unresolved Key Vault reference" in found[check]["message"]
    assert found[check]["fix"] == (
        f"az role assignment create --assignee-object-id {sandbox.identity.object_id} --assignee-principal-type "
        'ServicePrincipal --role "Key Vault Secrets User" --scope '
        '"$(az keyvault show --name kv-patwdc-abc123 --query id -o tsv)"')
    other = "channel.email" if check == "channel.teams" else "channel.teams"
    assert found[other]["status"] == "OK"

"""Alerts end to end: Teams sink, SMTP with STARTTLS, ACS, the ledger in Azurite, days simulated."""

from __future__ import annotations

from datetime import timedelta
from html import unescape

import pytest
from azure.data.tables import TableClient

from tests.conftest import NOW
from tests.e2e.conftest import card_facts, card_texts, card_title
from tests.leaks import assert_no_leak

NAME = "contosoaggregator"


def sent(sandbox) -> list[tuple[str, str]]:
    """(channel, headline) of everything delivered so far, in order."""
    teams = [("teams", card_title(e).split(" ", 1)[1]) for e in sandbox.teams.received]
    mails = [("email", m["Subject"].removeprefix("[pat-watchdog] ")) for m in sandbox.smtp.messages]
    return teams + mails


def ledger_rows(storage) -> list[dict]:
    table = TableClient.from_connection_string(storage["AzureWebJobsStorage"], storage["WATCHDOG_STATE_TABLE"])
    return list(table.list_entities())


def test_forty_days_without_a_replacement(world, run_cli, sandbox, channels, storage):
    token, _ = world.issue(30)              # expires on day 30 at 06:00
    world.add_instance(NAME, token)
    sends: dict[int, list[str]] = {}
    for day in range(40):
        moment = NOW + timedelta(days=day)
        sandbox.clock = lambda moment=moment: moment
        if day == 35:                        # someone puts a working token in place by hand
            fresh, _ = world.issue(365)
            settings = sandbox.arm.settings(world.apps[0])
            sandbox.arm.set_settings(world.apps[0], {**settings, "Aggregator_VstsToken": fresh})
        before = len(sandbox.teams.received)
        result = run_cli("run", "--json", now=moment, **channels)
        assert result.code == 0, result.out
        new = [card_title(e) for e in sandbox.teams.received[before:]]
        if new:
            sends[day] = new
        if day in (0, 16, 31, 35):            # a second run the same day sends nothing new
            again = run_cli("run", now=moment + timedelta(hours=6), **channels)
            assert again.code == 0 and len(sandbox.teams.received) == before + len(new), again.out
    expected = {0: "WARNING", 16: "WARNING", 23: "WARNING", 27: "CRITICAL", 29: "CRITICAL",
                30: "CRITICAL", 31: "CRITICAL", 32: "CRITICAL", 33: "CRITICAL", 34: "CRITICAL",
                # the token put in by hand: told once (TOKEN_SETTING_CHANGED), and the expiry resolved
                35: ["WARNING", "INFO"]}
    assert {day: [t.split(" ")[1].rstrip(":") for t in titles] for day, titles in sends.items()} == \
        {day: level if isinstance(level, list) else [level] for day, level in expected.items()}
    assert len(sandbox.smtp.messages) == len(sandbox.teams.received) == 12
    subjects = [m["Subject"] for m in sandbox.smtp.messages]
    assert subjects[0] == f"[pat-watchdog] WARNING: {NAME}: the token expires soon"
    assert subjects[5] == f"[pat-watchdog] CRITICAL: {NAME}: the token has expired: every Aggregator rule fails"
    assert subjects[-1] == f"[pat-watchdog] INFO: {NAME}: resolved: expiry"
    for row in ledger_rows(storage):
        assert_no_leak(repr(row), world.tokens, where="ledger row")


def test_every_message_names_what_a_person_needs(world, run_cli, sandbox, channels):
    token, _ = world.issue(10)
    world.add_instance(NAME, token)
    world.stage(token, days=10, tags={"watchdog-status": "current"})
    assert run_cli("run", **channels).code == 0
    mail = sandbox.smtp.messages[0]
    plain = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    envelope = sandbox.teams.received[0]
    card = envelope["attachments"][0]["content"]
    facts = card_facts(envelope)
    fingerprint = facts["Token fingerprint"]
    assert facts == {"Instance": NAME, "Level": "WARNING", "Days left": "10", "Expires": "2026-12-08T06:00:00Z",
                     "Expiry source": "keyvault", "Token fingerprint": fingerprint}
    command = ('read -rs PAT && printf %s "$PAT" | az keyvault secret set --vault-name contoso-kv '
               '--name aggregator-pat-staged --file /dev/stdin --expires 2027-02-26T00:00:00Z')
    for text in (plain, unescape(html), " ".join(card_texts(envelope))):
        assert NAME in text and "2026-12-08T06:00:00Z" in text and fingerprint in text
        assert command in text and "keyvault" in text
    assert card["version"] == "1.4" and card["actions"][0]["url"].startswith("https://portal.azure.com/#@/resource/subscriptions/")
    assert mail["To"] == "aggregator-admins@contoso.com, oncall@contoso.com"


@pytest.mark.parametrize("scope, missing, level", [
    ("vso.work_full vso.project", "vso.identity vso.serviceendpoint_manage", "WARNING"),
    ("vso.work vso.project", "vso.work_write vso.identity vso.serviceendpoint_manage vso.work_full", "CRITICAL"),
])
def test_missing_scopes_are_listed(world, run_cli, sandbox, channels, scope, missing, level):
    token, _ = world.issue(200, scope=scope)
    world.add_instance(NAME, token)
    run_cli("run", **channels)
    assert card_facts(sandbox.teams.received[0])["Missing scopes"] == missing
    assert level in card_title(sandbox.teams.received[0])


def test_teams_down_email_still_arrives_and_teams_is_retried_next_run(world, run_cli, sandbox, channels):
    token, _ = world.issue(-1)
    world.add_instance(NAME, token)
    sandbox.inject(host="logic.azure.com", status=500, times=None)
    first = run_cli("run", "--json", **channels)
    assert first.code == 1 and len(sandbox.smtp.messages) == 1 and sandbox.teams.received == []
    outcomes = {(a["channel"], a["outcome"]) for a in first.instance(NAME)["actions"]}
    assert outcomes == {("teams", "failed"), ("email", "done")}
    assert sandbox.count(host="logic.azure.com") == 3  # FAST_RETRY.attempts
    sandbox.clear_faults()
    second = run_cli("run", "--json", now=NOW + timedelta(hours=1), **channels)
    assert second.code == 0 and len(sandbox.teams.received) == 1
    assert len(sandbox.smtp.messages) == 1  # email was recorded as sent: not repeated


def test_throttled_teams_and_a_busy_mail_server_are_retried(world, run_cli, sandbox, channels):
    token, _ = world.issue(-1)
    world.add_instance(NAME, token)
    sandbox.inject(host="logic.azure.com", status=429, headers={"Retry-After": "0"})
    sandbox.smtp.fail_next(1, code=451)
    result = run_cli("run", **channels)
    assert result.code == 0
    assert len(sandbox.teams.received) == 1 and len(sandbox.smtp.messages) == 1


def test_ledger_unreachable_sends_anyway(world, run_cli, sandbox, channels):
    token, _ = world.issue(-1)
    world.add_instance(NAME, token)
    dead = channels["AzureWebJobsStorage"].replace("TableEndpoint=http://127.0.0.1:", "TableEndpoint=http://127.0.0.1:1")
    dead = dead.split("TableEndpoint=")[0] + "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    result = run_cli("run", "--json", **{**channels, "AzureWebJobsStorage": dead})
    assert result.code == 0 and len(sandbox.teams.received) == 1 and len(sandbox.smtp.messages) == 1
    assert any("ledger unreachable" in e for e in result.json["errors"])


def test_dry_run_sends_nothing_and_says_what_it_would(world, run_cli, sandbox, channels):
    token, _ = world.issue(-1)
    world.add_instance(NAME, token)
    result = run_cli("run", "--dry-run", "--json", **channels)
    assert result.code == 0 and sandbox.teams.received == [] and sandbox.smtp.messages == []
    assert {(a["channel"], a["outcome"]) for a in result.instance(NAME)["actions"]} == \
        {("teams", "planned"), ("email", "planned")}


def test_status_shows_the_last_run(world, run_cli, channels):
    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    assert run_cli("status", "--json", **channels).json["last_run"] is None
    run_cli("run", **channels)
    last = run_cli("status", "--json", **channels).json["last_run"]
    assert last == {"generated_at": "2026-11-28T06:00:00Z", "command": "run", "status": "OK", "outcome": "ok"}


def test_email_through_azure_communication_services(world, run_cli, sandbox, storage):
    token, _ = world.issue(-1)
    world.add_instance(NAME, token)
    result = run_cli("run", **storage, WATCHDOG_ACS_ENDPOINT=sandbox.acs.url(),
                     WATCHDOG_EMAIL_TO="ops@contoso.com", WATCHDOG_EMAIL_FROM="DoNotReply@contoso.com")
    assert result.code == 0
    [message] = sandbox.acs.messages
    assert message["content"]["subject"] == f"[pat-watchdog] CRITICAL: {NAME}: the token has expired: every Aggregator rule fails"
    assert message["recipients"]["to"] == [{"address": "ops@contoso.com"}]
    assert "az keyvault secret set" in message["content"]["plainText"]
    assert_no_leak(repr(message), world.tokens, where="ACS message")


def test_a_source_outage_never_sends_a_false_resolved(world, run_cli, sandbox, channels):
    token, _ = world.issue(10)
    world.add_instance(NAME, token)
    world.stage(token, days=10, tags={"watchdog-status": "current"})
    assert run_cli("run", **channels).code == 0 and len(sandbox.teams.received) == 1
    sandbox.inject(host="contoso-kv.vault.azure.net", status=503, times=None)
    sandbox.devops.listing_status = 403
    later = run_cli("run", "--json", now=NOW + timedelta(hours=1), **channels)
    assert "KEYVAULT_UNAVAILABLE" in [r["code"] for r in later.instance(NAME)["reasons"]]
    assert not [t for t in sent(sandbox) if "resolved" in t[1]]


def test_status_creates_nothing_in_storage(world, run_cli, channels):
    from azure.data.tables import TableServiceClient

    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    run_cli("status", **channels)
    service = TableServiceClient.from_connection_string(channels["AzureWebJobsStorage"])
    assert channels["WATCHDOG_STATE_TABLE"] not in [t.name for t in service.list_tables()]


def test_an_instance_that_cannot_be_checked_alerts_then_resolves(world, run_cli, sandbox, channels):
    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    sandbox.inject(host="management.azure.com", status=503, times=None)
    first = run_cli("run", **channels)
    assert first.code == 0 and sent(sandbox) == [
        ("teams", f"WARNING: {NAME}"), ("email", f"WARNING: {NAME}: the Aggregator app settings could not be read")]
    sandbox.clear_faults()
    assert run_cli("run", now=NOW + timedelta(hours=1), **channels).code == 0
    assert sent(sandbox)[-1] == ("email", f"INFO: {NAME}: resolved: the watchdog could not check the instance")


def test_a_global_pat_staged_with_expiry_and_scopes_is_still_flagged(world, run_cli, sandbox, channels):
    token, _ = world.issue(200, global_pat=True)
    world.add_instance(NAME, token)
    world.stage(token, days=200, tags={"watchdog-status": "current"})
    result = run_cli("run", "--json", **channels)
    inst = result.instance(NAME)
    assert inst["token"]["global"] is True and "GLOBAL_PAT" in [r["code"] for r in inst["reasons"]]
    assert any("WARNING" in t for _, t in sent(sandbox))


def _next_step_of(envelope: dict) -> tuple[str, str | None]:
    """The next step and the command of a card, as Teams shows them."""
    texts = card_texts(envelope)
    step = texts[texts.index("Next step") + 1]
    command = texts[texts.index("Next step") + 2] if len(texts) > texts.index("Next step") + 2 else None
    return step, command


def test_an_empty_token_setting_is_named_with_its_own_next_step(world, run_cli, sandbox, channels):
    world.add_instance(NAME, "   ")
    new, _ = world.issue(100)
    assert run_cli("run", **channels).code == 0
    [envelope] = sandbox.teams.received
    assert "the app setting Aggregator_VstsToken is empty" in " ".join(card_texts(envelope))
    step, command = _next_step_of(envelope)
    assert "at the next run (" in step and command.startswith("read -rs PAT && printf")
    world.stage(new, days=100)
    result = run_cli("run", "--json", **channels)                  # the next run puts it in place
    assert result.instance(NAME)["status"] == "OK" and result.instance(NAME)["candidate"]["state"] == "current"


def test_a_missing_token_setting_tells_one_next_step_and_the_report_no_wait(world, run_cli, sandbox, channels):
    world.add_instance(NAME, None)
    new, _ = world.issue(100)
    world.stage(new, days=100)
    result = run_cli("run", "--json", **channels)
    staged = next(r["message"] for r in result.instance(NAME)["reasons"] if r["code"] == "CANDIDATE_STAGED")
    assert "waits" not in staged and "pat-watchdog rotate --force" in staged
    [envelope] = sandbox.teams.received
    text = " ".join(card_texts(envelope))
    assert text.count("pat-watchdog rotate --force") == 1 and "at once" not in text
    assert "never creates the setting by itself" not in text


def test_without_a_staging_vault_no_alert_prints_a_staging_command(world, run_cli, sandbox, channels):
    token, _ = world.issue(10)
    world.add_instance(NAME, token)
    assert run_cli("run", WATCHDOG_KEY_VAULT_URL="", **channels).code == 0
    assert sandbox.teams.received and sandbox.smtp.messages
    for envelope in sandbox.teams.received:
        text = " ".join(card_texts(envelope))
        assert "az keyvault" not in text and "<vault>" not in text and "configure.instance" in text
    for mail in sandbox.smtp.messages:
        assert "az keyvault" not in mail.get_body(("plain",)).get_content()


def test_an_unreadable_token_type_card_gives_the_doctors_command(world, run_cli, sandbox, channels):
    token, _ = world.issue(100)
    world.add_instance(NAME, token, extra={"Aggregator_VstsTokenType": "pat"})
    world.stage(token, days=100, tags={"watchdog-status": "current"})
    run_cli("run", **channels)
    doctor = next(c for c in run_cli("doctor", "--json", **channels).json["checks"]
                  if c["id"] == "instance.token_type")
    [envelope] = sandbox.teams.received
    assert _next_step_of(envelope)[1] == doctor["fix"] == (
        f"az functionapp config appsettings set -g aggregator-contoso -n {NAME} --settings Aggregator_VstsTokenType=PAT")

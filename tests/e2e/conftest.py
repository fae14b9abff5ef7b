"""Shared by the end-to-end tests: the alert channels, the rotation scene, and the protocol's steps.

Faults are placed by step (what a request is, and what came before it), never by counting calls:
an extra call elsewhere in a run must not move a fault to another step.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from datetime import timedelta

import pytest

from pat_watchdog.adapters import teams
from pat_watchdog.core.secret import fingerprint
from pat_watchdog.sandbox import Step
from tests.leaks import assert_no_leak, fp, track

NAME = "contosoaggregator"
STAGED, PREVIOUS = "aggregator-pat-staged", "aggregator-pat-previous"


@dataclass
class Scene:
    app: str
    old: str
    new: str
    version: str
    original: dict


def scene(world, *, days_left=5.0, candidate_days=365, scope=None, **stage) -> Scene:
    old, _ = world.issue(days_left)
    app = world.add_instance(NAME, old)
    world.stage(old, days=days_left, tags={"watchdog-status": "current"})
    new, _ = world.issue(candidate_days, **({"scope": scope} if scope else {}))
    version = world.stage(new, days=candidate_days, **stage)
    return Scene(app, old, new, version, world.sandbox.arm.settings(app))


def tags(sandbox, version: str) -> dict:
    return next(v["tags"] for v in sandbox.vault.versions("contoso-kv", STAGED) if v["version"] == version)


def card_texts(envelope: dict) -> list[str]:
    """Every text of a card, as Teams shows it: its TextRuns (the cards have no markdown text)."""
    return teams.texts(envelope["attachments"][0]["content"])


def card_title(envelope: dict) -> str:
    return card_texts(envelope)[0]


def card_facts(envelope: dict) -> dict[str, str]:
    """The facts of a card: title -> value (rows of two columns after the message)."""
    rows = envelope["attachments"][0]["content"]["body"][2]["items"]
    return {teams.texts(row["columns"][0])[0]: teams.texts(row["columns"][1])[0] for row in rows}


def titles(sandbox) -> list[str]:
    """`LEVEL: instance` of every Teams card received, in order."""
    return [card_title(e).split(" ", 1)[1] for e in sandbox.teams.received]


def assert_safe_history(sandbox, s: Scene) -> None:
    """At every write the token was the old or the new one (both working); nothing else changed."""
    others = {k: v for k, v in s.original.items() if k != "Aggregator_VstsToken"}
    for app_id, written in sandbox.arm.writes:
        assert app_id.lower() == s.app.lower()
        assert fp(written["Aggregator_VstsToken"]) in (fp(s.old), fp(s.new))
        assert {k: v for k, v in written.items() if k != "Aggregator_VstsToken"} == others


def assert_rotated(sandbox, s: Scene) -> None:
    settings = sandbox.arm.settings(s.app)
    assert fp(settings["Aggregator_VstsToken"]) == fp(s.new)
    assert {k: v for k, v in settings.items() if k != "Aggregator_VstsToken"} == \
        {k: v for k, v in s.original.items() if k != "Aggregator_VstsToken"}
    t = tags(sandbox, s.version)
    assert t["watchdog-status"] == "current" and t["fingerprint"] == fingerprint(s.new) and "rotated-at" in t
    previous = sandbox.vault.versions("contoso-kv", PREVIOUS)
    assert len(previous) == 1 and fp(previous[0]["value"]) == fp(s.old)
    assert previous[0]["tags"]["fingerprint"] == fingerprint(s.old) and previous[0]["tags"]["app"] == s.app
    assert titles(sandbox).count(f"INFO: {NAME}") == 1 and "rotated" in str(sandbox.teams.received[-1])


def assert_rolled_back(sandbox, s: Scene, reason: str) -> None:
    assert fp(sandbox.arm.settings(s.app)["Aggregator_VstsToken"]) == fp(s.old)
    t = tags(sandbox, s.version)
    assert t["watchdog-status"] == "failed" and reason in t["watchdog-reason"]
    assert f"CRITICAL: {NAME}" in titles(sandbox)


@pytest.fixture
def channels(sandbox, storage) -> dict:
    """Teams, email over SMTP and the state table, as a deployment would have them."""
    smtp = sandbox.smtp
    return {**storage, "WATCHDOG_TEAMS_WEBHOOK_URL": sandbox.teams.url(),
            "WATCHDOG_EMAIL_TO": "aggregator-admins@contoso.com, oncall@contoso.com",
            "WATCHDOG_EMAIL_FROM": "pat-watchdog@contoso.com",
            "WATCHDOG_SMTP_HOST": smtp.host, "WATCHDOG_SMTP_PORT": str(smtp.port),
            "WATCHDOG_SMTP_USERNAME": smtp.username, "WATCHDOG_SMTP_PASSWORD": smtp.password}


def tagging(status: str, version: str | None = None) -> dict:
    """The PATCH that sets a staged version's `watchdog-status` (rotation steps 3 and 6)."""
    return dict(method="PATCH", path=version, body_match=rf'"watchdog-status":\s*"{status}"')


# Aggregator's own vault, where the token setting's Key Vault reference points in the reference tests;
# the watchdog follows a reference there only when told (docs/reference.md, "What the watchdog trusts").
REFERENCE_VAULT = {"WATCHDOG_REFERENCE_VAULTS": "https://aggregator-kv.vault.azure.net"}


def reference_instance(world, sandbox, *, days: float = 100) -> tuple[str, str]:
    """An instance whose token setting is a versionless reference to Aggregator's own vault; (token, app)."""
    token, _ = world.issue(days)
    sandbox.vault.set_secret("aggregator-kv", "aggregator-pat", token, expires_on=world.now + timedelta(days=days))
    uri = f"{sandbox.vault.url('aggregator-kv')}/secrets/aggregator-pat/"
    return token, world.add_instance(NAME, f"@Microsoft.KeyVault(SecretUri={uri})")


def app_service_view(app: str):
    """What App Service reports for the token setting, asked with the real SDK."""
    from azure.identity import ManagedIdentityCredential
    from azure.mgmt.web import WebSiteManagementClient

    parts = app.split("/")
    web = WebSiteManagementClient(ManagedIdentityCredential(), parts[2])
    return web.web_apps.get_app_setting_key_vault_reference(parts[4], parts[8], "Aggregator_VstsToken")

SETTINGS_LIST = dict(method="POST", path="appsettings/list")
# The settings re-read right before the write: the first list after the candidate is tagged applying.
BEFORE_THE_WRITE = dict(SETTINGS_LIST, after=Step("PATCH", body=r'"watchdog-status":\s*"applying"'))
# The verification read: the first list after the settings were replaced.
VERIFYING_SETTINGS = dict(SETTINGS_LIST, after=Step("PUT", path="config/appsettings"))
CONNECTION_DATA = dict(host="dev.azure.com", path="connectionData")
# The candidate's check after the swap.
VERIFYING_THE_CANDIDATE = dict(CONNECTION_DATA, after=Step("PUT", path="config/appsettings"))
# The token's re-check under the rotation lock: the first liveness check after the staging vault was read.
RECHECK_UNDER_THE_LOCK = dict(CONNECTION_DATA, after=Step("GET", path="aggregator-pat-staged/versions"))


def kill_after(sandbox, world, env: dict, fault) -> str:
    """Start a real `pat-watchdog run`, wait until it reaches the request `fault` holds, kill it there
    (a run that dies right after the step before); return its output, which passes the leak check."""
    process = subprocess.Popen([sys.executable, "-m", "pat_watchdog", "run"], cwd=Path(__file__).resolve().parents[2],
                               env={**os.environ, **world.env(**env)}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while fault.hits == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fault.hits == 1, f"the run never reached the step (exit {process.poll()})"
    process.kill()
    output = process.communicate(timeout=10)[0].decode()
    assert_no_leak(output, track(world), where="killed run output")
    return output

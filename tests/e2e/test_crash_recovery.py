"""Kill `pat-watchdog run` right after each rotation step, run again, and check where things end.

The run is a real child process; the sandbox holds the request that follows step N until the
test kills the process, then drops it. The next run must finish the rotation, and at every
moment Aggregator held the old or the new token (both working) with every other setting intact.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pat_watchdog.sandbox import Step
from tests.e2e.conftest import (
    BEFORE_THE_WRITE, NAME, REFERENCE_VAULT, VERIFYING_SETTINGS, app_service_view, assert_rotated, assert_safe_history,
    kill_after, reference_instance, scene, tagging, tags,
)
from tests.azurite import expire_locks
from tests.leaks import fp

ROOT = Path(__file__).resolve().parents[2]

# The request that comes right after each step: holding it = dying right after the step.
AFTER_STEP = {
    "1 validated": dict(method="PUT", path="secrets/aggregator-pat-previous"),
    "2 previous saved": tagging("applying", "{version}"),
    "3 tagged applying": BEFORE_THE_WRITE,
    "4 settings replaced": VERIFYING_SETTINGS,
    "5 verified": tagging("current", "{version}"),
    "6 tagged current": dict(method="POST", host="logic.azure.com",          # the "rotated" notice
                             after=Step("PATCH", path="{version}", body=r'"watchdog-status":\s*"current"')),
}
# Where the dead run left things: (token in Aggregator, candidate's watchdog-status, previous saved)
LEFT = {"1 validated": ("old", None, False), "2 previous saved": ("old", None, True),
        "3 tagged applying": ("old", "applying", True), "4 settings replaced": ("new", "applying", True),
        "5 verified": ("new", "applying", True), "6 tagged current": ("new", "current", True)}


def at_version(where: dict, version: str) -> dict:
    """The step's matchers with the scene's staged version filled in."""
    def fill(value):
        if isinstance(value, Step):
            return Step(value.method, value.host, fill(value.path), value.body)
        return value.format(version=version) if isinstance(value, str) and "{version}" in value else value
    return {key: fill(value) for key, value in where.items()}


@pytest.mark.parametrize("step", AFTER_STEP, ids=list(AFTER_STEP))
def test_a_run_killed_after_each_step_is_finished_by_the_next(world, run_cli, sandbox, channels, step):
    sandbox.clock = lambda: datetime.now(timezone.utc)   # the child process runs on the real clock
    s = scene(world)
    fault = sandbox.inject(hang=60, drop=True, **at_version(AFTER_STEP[step], s.version))
    kill_after(sandbox, world, channels, fault)
    token, status, saved = LEFT[step]
    assert fp(sandbox.arm.settings(s.app)["Aggregator_VstsToken"]) == fp({"old": s.old, "new": s.new}[token])
    assert tags(sandbox, s.version).get("watchdog-status") == status
    assert bool(sandbox.vault.versions("contoso-kv", "aggregator-pat-previous")) is saved
    assert sandbox.teams.received == []
    sandbox.clear_faults()
    later = datetime.now(timezone.utc) + timedelta(minutes=16)
    # the dead run's lock lease has ended, on the Table service's clock (which the lease runs on)
    expire_locks(channels["AzureWebJobsStorage"], channels["WATCHDOG_STATE_TABLE"])
    sandbox.clock = lambda: later
    result = run_cli("run", "--json", now=later, **channels)
    assert result.code == 0, result.out
    assert_rotated(sandbox, s)
    assert_safe_history(sandbox, s)
    assert result.instance(NAME)["candidate"]["state"] == "current"


def killed_before_the_restart(world, sandbox, channels) -> tuple[str, str, str, list, datetime]:
    """A versionless-reference rotation whose run died after storing the new secret version, before the
    restart; returns (app, new token, staged version, the referenced secret's versions, a later moment)."""
    sandbox.clock = lambda: datetime.now(timezone.utc)
    _, app = reference_instance(world, sandbox, days=5)
    new, _ = world.issue(365)
    version = world.stage(new, days=365)
    fault = sandbox.inject(method="POST", path="/restart", hang=60, drop=True)
    kill_after(sandbox, world, {**channels, **REFERENCE_VAULT}, fault)
    stored = sandbox.vault.versions("aggregator-kv", "aggregator-pat")
    assert fp(stored[-1]["value"]) == fp(new) and tags(sandbox, version)["watchdog-status"] == "applying"
    assert app_service_view(app).properties.active_version == stored[0]["version"]   # still the old token
    sandbox.clear_faults()
    later = datetime.now(timezone.utc) + timedelta(minutes=16)
    expire_locks(channels["AzureWebJobsStorage"], channels["WATCHDOG_STATE_TABLE"])
    sandbox.clock = lambda: later
    return app, new, version, stored, later


def test_a_run_killed_before_restarting_for_a_versionless_reference_is_finished_with_the_restart(
        world, run_cli, sandbox, channels):
    """Review: recovery through a versionless reference finished without the restart, so App Service kept
    the old token (a versionless reference is fetched again only on restart, else within 24 hours)."""
    app, new, version, stored, later = killed_before_the_restart(world, sandbox, channels)
    result = run_cli("run", "--json", now=later, **channels, **REFERENCE_VAULT)
    assert result.code == 0 and "finished an interrupted rotation" in result.out
    assert [a.lower() for a in sandbox.arm.restarts] == [app.lower()]
    view = app_service_view(app).properties
    assert view.status == "Resolved" and view.active_version == stored[-1]["version"]
    assert tags(sandbox, version)["watchdog-status"] == "current" and sandbox.arm.writes == []


def test_a_versionless_reference_app_service_cannot_resolve_after_the_restart_is_rolled_back(
        world, run_cli, sandbox, channels):
    app, new, version, stored, later = killed_before_the_restart(world, sandbox, channels)
    sandbox.arm.set_reference_status(app, "Aggregator_VstsToken", "AccessToKeyVaultDenied")
    result = run_cli("run", "--json", now=later, **channels, **REFERENCE_VAULT)
    assert result.code == 1 and len(sandbox.arm.restarts) == 2      # to load the new token, then the old one
    t = tags(sandbox, version)
    assert t["watchdog-status"] == "failed" and "AccessToKeyVaultDenied" in t["watchdog-reason"]
    assert fp(sandbox.vault.versions("aggregator-kv", "aggregator-pat")[-1]["value"]) == fp(stored[0]["value"])

"""Kill `pat-watchdog run` right after each rotation step, run again, and check where things end.

The run is a real child process; the sandbox holds the request that follows step N until the
test kills the process, then drops it. The next run must finish the rotation, and at every
moment Aggregator held the old or the new token (both working) with every other setting intact.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.e2e.test_rotation import NAME, assert_rotated, assert_safe_history, scene, tags
from tests.leaks import assert_no_leak, fp

ROOT = Path(__file__).resolve().parents[2]

# The request that comes right after each step: holding it = dying right after the step.
AFTER_STEP = {
    "1 validated": dict(method="GET", path="aggregator-pat-previous/versions"),
    "2 previous saved": dict(method="PATCH", path="{version}", nth=2),       # 1st PATCH: fingerprint tag
    # Lists: 1 observing, 2 observing again under the rotation lock, 3 right before the PUT, 4 verifying.
    "3 tagged applying": dict(method="POST", path="appsettings/list", nth=3),
    "4 settings replaced": dict(method="POST", path="appsettings/list", nth=4),
    "5 verified": dict(method="PATCH", path="{version}", nth=3),             # the `current` tag
    "6 tagged current": dict(method="POST", host="logic.azure.com"),          # the "rotated" notice
}
# Where the dead run left things: (token in Aggregator, candidate's watchdog-status, previous saved)
LEFT = {"1 validated": ("old", None, False), "2 previous saved": ("old", None, True),
        "3 tagged applying": ("old", "applying", True), "4 settings replaced": ("new", "applying", True),
        "5 verified": ("new", "applying", True), "6 tagged current": ("new", "current", True)}


@pytest.fixture
def channels(sandbox, storage):
    return {**storage, "WATCHDOG_TEAMS_WEBHOOK_URL": sandbox.teams.url()}


def kill_after(sandbox, world, env: dict, fault) -> str:
    """Start a real `run`, wait until it reaches the held request, kill it; return its output."""
    child_env = {**os.environ, **world.env(**env)}
    process = subprocess.Popen([sys.executable, "-m", "pat_watchdog", "run"], cwd=ROOT, env=child_env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while fault.hits == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fault.hits == 1, f"the run never reached the step (exit {process.poll()})"
    process.kill()
    output = process.communicate(timeout=10)[0].decode()
    assert_no_leak(output, world.tokens, where="killed run output")
    return output


@pytest.mark.parametrize("step", AFTER_STEP, ids=list(AFTER_STEP))
def test_a_run_killed_after_each_step_is_finished_by_the_next(world, run_cli, sandbox, channels, step):
    sandbox.clock = lambda: datetime.now(timezone.utc)   # the child process runs on the real clock
    s = scene(world)
    where = {k: (v.format(version=s.version) if isinstance(v, str) else v) for k, v in AFTER_STEP[step].items()}
    fault = sandbox.inject(hang=60, drop=True, **where)
    kill_after(sandbox, world, channels, fault)
    token, status, saved = LEFT[step]
    assert fp(sandbox.arm.settings(s.app)["Aggregator_VstsToken"]) == fp({"old": s.old, "new": s.new}[token])
    assert tags(sandbox, s.version).get("watchdog-status") == status
    assert bool(sandbox.vault.versions("contoso-kv", "aggregator-pat-previous")) is saved
    assert sandbox.teams.received == []
    sandbox.clear_faults()
    later = datetime.now(timezone.utc) + timedelta(minutes=16)  # the dead run's lock lease has ended
    sandbox.clock = lambda: later
    result = run_cli("run", "--json", now=later, **channels)
    assert result.code == 0, result.out
    assert_rotated(sandbox, s)
    assert_safe_history(sandbox, s)
    assert result.instance(NAME)["candidate"]["state"] == "current"

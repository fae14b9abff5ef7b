"""Whatever happens in any step of `act`, every alert the plan holds is still sent: each step is made to
raise in turn (an unexpected error of the watchdog's own), and the cards and mails are counted."""

from __future__ import annotations

import pytest

from pat_watchdog import act, handsfree, rotation, swap, validation
from pat_watchdog.sandbox.entra_shapes import SIGNIN_CLIENT
from pat_watchdog.sandbox.seed import USER_ID
from tests.e2e.conftest import NAME

ROTATING = [(act, "_locked"), (rotation.Rotation, "run"), (validation.CandidateCheck, "validate"),
            (swap.SettingsSwap, "to"), (act, "_record_outcome"), (act, "_redecide"), (act, "_reenable"),
            (act, "_remember"), (act, "_correct_expiry")]
# The notices are alerts themselves: when one cannot be built, the plan's own alerts still go out.
ADOPTING = [(act, "_adopt"), (act, "_rotated_notice"), (act, "_drift_notice")]
EXPIRED = [(act, "_revive"), (act, "_remember"), (act, "_correct_expiry")]
CREATING = [(act, "_create"), (handsfree.HandsFree, "after"), (handsfree.HandsFree, "create_then_rotate")]


class Raiser:
    """Stands in for one of the watchdog's own steps: records that it ran, then fails like a bug would."""

    def __init__(self):
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        raise RuntimeError("a bug in this step")


def scenario(kind: str, world, sandbox, run_cli, channels) -> dict:
    if kind == "rotating":                       # expired, a valid replacement staged: rotated at once
        old, _ = world.issue(-1)
        world.add_instance(NAME, old)
        new, _ = world.issue(200)
        world.stage(new, days=200)
        return {}
    if kind == "expired":                        # expired, nothing staged: CRITICAL
        old, _ = world.issue(-1)
        world.add_instance(NAME, old)
        return {}
    if kind == "adopting":                       # 2 days left, the current token staged: adopted
        token, _ = world.issue(2)
        world.add_instance(NAME, token)
        world.stage(token, days=2)
        return {}
    token, _ = world.issue(2)                    # auto: nothing staged, a sign-in stored: created
    world.add_instance(NAME, token)
    oid = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
    sandbox.entra.add_user(oid, "aggregator-admin@contoso.com", USER_ID)
    sandbox.entra.auto_approve, sandbox.entra.poll_interval = oid, 0
    auto = {"WATCHDOG_ROTATION": "auto", "WATCHDOG_SIGNIN_CLIENT_ID": SIGNIN_CLIENT}
    assert run_cli("login", **channels, **auto).code == 0
    return auto


@pytest.mark.parametrize("kind, owner, step", [("rotating", o, s) for o, s in ROTATING]
                         + [("adopting", o, s) for o, s in ADOPTING] + [("expired", o, s) for o, s in EXPIRED]
                         + [("creating", o, s) for o, s in CREATING],
                         ids=lambda v: v if isinstance(v, str) else getattr(v, "__name__", "?"))
def test_a_step_that_raises_never_costs_an_alert(world, sandbox, run_cli, channels, monkeypatch, kind, owner, step):
    extra = scenario(kind, world, sandbox, run_cli, channels)
    raiser = Raiser()
    monkeypatch.setattr(owner, step, raiser)
    result = run_cli("run", "--json", **channels, **extra)
    inst = result.instance(NAME)
    assert raiser.calls >= 1, f"{step} never ran in this scenario: the test would prove nothing"
    assert result.code == 1                      # the run fails: the failed-run monitor sees it
    assert any(a["kind"] == "error" and a["outcome"] == "failed" for a in inst["actions"]), inst["actions"]
    alerts = [a for a in inst["actions"] if a["kind"] == "alert"]
    assert alerts and all(a["outcome"] == "done" for a in alerts), alerts
    assert len(sandbox.teams.received) >= 1 and len(sandbox.smtp.messages) >= 1
    assert {a["channel"] for a in alerts} == {"teams", "email"}

"""Table-driven tests of the pure code that only end-to-end runs reached before: the alert dedup
decision (as Alertmanager tests `needsUpdate`), blind spots, next-step texts, exit codes, and the
bounded retry loop with an injected clock and sleep."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from pat_watchdog import cli
from pat_watchdog.adapters.retry import Retryable, RetryPolicy, with_retries
from pat_watchdog.core import alerts as A
from pat_watchdog.core import reasons as R
from pat_watchdog.core.dedup import Entry, blind, needs_update, resolved_entry, sent_entry
from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.model import (Action, ActionKind, ActionOutcome, CandidateView, InstancePlan, Mode,
                                     Reason, Status, TokenView)
from pat_watchdog.core.settings import load_settings
from pat_watchdog.watchdog import RunResult

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)
APP = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/aggregator-c/providers/Microsoft.Web/sites/caggregator"
SETTINGS = load_settings({"WATCHDOG_AGGREGATOR_APP": APP, "WATCHDOG_DEVOPS_ORG_URL": "https://dev.azure.com/contoso",
                          "WATCHDOG_KEY_VAULT_URL": "https://contoso-kv.vault.azure.net"})
TOKEN = TokenView("1a2b3c4d", True, "u1", NOW + timedelta(days=10), 10, "keyvault", ("vso.work_full",), False)


def plan(*reasons: Reason, token: TokenView = TOKEN, status: Status = Status.WARNING,
         actions: tuple[Action, ...] = ()) -> InstancePlan:
    return InstancePlan(APP, "caggregator", status, tuple(reasons), token, CandidateView(), actions=actions)


def alert(level: str = "WARNING", stage: str | None = "14", condition: str = "EXPIRY") -> A.Alert:
    reason = R.reason(R.EXPIRES_SOON, level=level, condition=condition, stage=stage)
    return A.for_reason(reason, plan(reason), SETTINGS, NOW)


def entry(level: str = "WARNING", stage: str | None = "14", hours_ago: float = 1, active: bool = True) -> Entry:
    return Entry("caggregator", "EXPIRY", "teams", level, stage, NOW - timedelta(hours=hours_ago), "m", active)


# ---------------------------------------------------------------------------------------------
# needs_update: (ledger entry, alert, now) -> why it goes out, or None to stay quiet
# ---------------------------------------------------------------------------------------------

DEDUP = {
    "first time": (None, alert(), "new"),
    "resolved before, firing again": (entry(active=False), alert(), "new"),
    "level rose": (entry("WARNING", "ROTATION"), alert("CRITICAL", "ROTATION"), "level rose from WARNING"),
    "a lower threshold crossed": (entry(stage="14"), alert(stage="7"), "threshold crossed"),
    "another stage of a condition": (entry(stage="EXPIRED"), alert(stage="INVALID"), "condition changed"),
    "same threshold, an hour later": (entry(stage="14", hours_ago=1), alert(stage="14"), None),
    "same threshold, days later: thresholds are sent once": (entry(stage="14", hours_ago=72), alert(stage="14"), None),
    "unchanged, under the repeat interval": (entry(stage=None, hours_ago=19), alert(stage=None), None),
    "unchanged, repeat interval reached": (entry(stage=None, hours_ago=20), alert(stage=None), "unchanged for 20 h"),
    "level fell: waits for the repeat": (entry("CRITICAL", None, 2), alert("WARNING", None), None),
    "level fell, repeat reached": (entry("CRITICAL", None, 21), alert("WARNING", None), "unchanged for 20 h"),
    "stage cleared to none is no change": (entry(stage="EXPIRED", hours_ago=1), alert(stage=None), None),
}


@pytest.mark.parametrize("before, firing, expected", DEDUP.values(), ids=DEDUP.keys())
def test_needs_update(before: Entry | None, firing: A.Alert, expected: str | None) -> None:
    assert needs_update(before, firing, NOW, repeat_hours=20) == expected


def test_sent_and_resolved_entries_carry_the_time_and_the_state() -> None:
    sent = sent_entry(alert(), "email", NOW)
    assert (sent.key, sent.level, sent.stage, sent.sent_at, sent.active) == \
        (("caggregator", "EXPIRY", "email"), "WARNING", "14", NOW, True)
    later = NOW + timedelta(days=1)
    closed = resolved_entry(sent, later)
    assert (closed.active, closed.sent_at, closed.key) == (False, later, sent.key)


# ---------------------------------------------------------------------------------------------
# blind: what a run could not see is never resolved
# ---------------------------------------------------------------------------------------------

UNKNOWN_EXPIRY = replace(TOKEN, expires_on=None, days_left=None, expiry_source=None)
BLIND = {
    "DevOps down: nothing is known to have cleared": (plan(R.reason(R.DEVOPS_UNREACHABLE)), "EXPIRY", True),
    "ARM down": (plan(R.reason(R.ARM_UNREACHABLE)), "SCOPE_MISSING", True),
    "reference unresolved": (plan(R.reason(R.KEYVAULT_REFERENCE_UNRESOLVED)), "GLOBAL_PAT", True),
    "expiry seen": (plan(), "EXPIRY", False),
    "expiry unknown, token works": (plan(token=UNKNOWN_EXPIRY), "EXPIRY", True),
    "expiry unknown, token dead: the expiry condition did clear": (
        plan(token=replace(UNKNOWN_EXPIRY, live=False)), "EXPIRY", False),
    "scopes unknown": (plan(token=replace(TOKEN, scopes=None)), "SCOPE_MISSING", True),
    "scopes seen": (plan(), "SCOPE_MISSING", False),
    "global unknown before the cutoff": (plan(token=replace(TOKEN, global_pat=None)), "GLOBAL_PAT", True),
    "listing down hides PAT_NOT_IN_LISTING": (
        plan(R.reason(R.LISTING_UNAVAILABLE)), "PAT_NOT_IN_LISTING", True),
    "listing up": (plan(), "PAT_NOT_IN_LISTING", False),
    "vault down hides a rejected candidate": (
        plan(R.reason(R.KEYVAULT_UNAVAILABLE)), "CANDIDATE_REJECTED:v2", True),
    "vault down does not hide expiry": (plan(R.reason(R.KEYVAULT_UNAVAILABLE)), "EXPIRY", False),
    "vault up: a rejection can clear": (plan(), "CANDIDATE_REJECTED:v2", False),
}


@pytest.mark.parametrize("seen, condition, expected", BLIND.values(), ids=BLIND.keys())
def test_blind(seen: InstancePlan, condition: str, expected: bool) -> None:
    assert blind(seen, condition, NOW) is expected


def test_after_the_cutoff_an_unknown_global_flag_still_clears_nothing() -> None:
    """Microsoft postponed the global PAT cutoff once: a working token is not taken for organization-scoped."""
    unknown = plan(token=replace(TOKEN, global_pat=None))
    assert blind(unknown, "GLOBAL_PAT", datetime(2026, 12, 2, tzinfo=timezone.utc)) is True
    assert blind(plan(token=replace(TOKEN, global_pat=False)), "GLOBAL_PAT",
                 datetime(2026, 12, 2, tzinfo=timezone.utc)) is False


# ---------------------------------------------------------------------------------------------
# alerts: what a person is told to do next
# ---------------------------------------------------------------------------------------------

STAGE = ('read -rs PAT && printf %s "$PAT" | az keyvault secret set --vault-name contoso-kv '
         '--name aggregator-pat-staged --file /dev/stdin --expires 2027-02-26T00:00:00Z '
         '--tags scopes="vso.identity vso.project vso.serviceendpoint_manage vso.work_full"')
NEXT_STEP = {
    R.EXPIRES_SOON.name: ("Create a new PAT in Azure DevOps for https://dev.azure.com/contoso", STAGE),
    R.EXPIRY_UNKNOWN.name: ("Stage the CURRENT token with its expiry", 'read -rs PAT && read -r EXPIRES && printf'),
    R.CANDIDATE_REJECTED.name: ("Fix what the rejection names", STAGE),
    R.ROTATION_FAILED.name: ("The rotation was rolled back: the reason says what was put back", STAGE),
    R.TAG_LIMIT.name: ("Remove tags from that version", None),
    R.KEYVAULT_UNAVAILABLE.name: ("Check the watchdog's access", None),
    R.TOKEN_TYPE_INVALID.name: ("Set Aggregator_VstsTokenType to PAT with the command below",
                                "az functionapp config appsettings set -g aggregator-c -n caggregator "
                                "--settings Aggregator_VstsTokenType=PAT"),
    R.PAT_NOT_IN_LISTING.name: ("Correct or remove WATCHDOG_PAT_AUTHORIZATION_ID", None),
    R.SIGNIN_REQUIRED.name: ("Sign in again with the command below", "pat-watchdog login"),
}


@pytest.mark.parametrize("code, expected", NEXT_STEP.items(), ids=NEXT_STEP.keys())
def test_every_alert_says_what_to_do_next(code: str, expected: tuple[str, str | None]) -> None:
    step, command = expected
    made = A.for_reason(R.reason(R.ALL[code]), plan(), SETTINGS, NOW)
    assert made.next_step.startswith(step)
    if command is None:
        assert made.command is None
    else:
        assert command in made.command


def test_without_rotation_the_next_step_is_aggregator_cli() -> None:
    settings = replace(SETTINGS, rotation="off")
    made = A.for_reason(R.reason(R.EXPIRES_SOON), plan(), settings, NOW)
    assert "aggregator-cli configure.instance" in made.next_step and "stage it" not in made.next_step
    assert made.command is None


def test_a_replacement_goes_in_at_the_next_run_once_the_window_is_open_else_on_its_date() -> None:
    critical = A.for_reason(R.reason(R.EXPIRES_CRITICAL), plan(), SETTINGS, NOW)
    in_window = A.for_reason(R.reason(R.EXPIRES_SOON), plan(), SETTINGS, NOW)
    early = A.for_reason(R.reason(R.EXPIRES_SOON), plan(token=replace(TOKEN, expires_on=NOW + timedelta(days=20),
                                                                          days_left=20)), SETTINGS, NOW)
    assert critical.next_step.endswith("puts it in place at the next run (2026-11-29T06:00:00Z).")
    assert in_window.next_step.endswith("puts it in place at the next run (2026-11-29T06:00:00Z).")
    assert early.next_step.endswith("puts it in place on 2026-12-04T06:00:00Z.")   # 15.0 days left on 12-03: 14 on 12-04


def test_one_alert_per_condition_and_unknown_told_as_warning() -> None:
    made = A.for_plan(plan(R.reason(R.EXPIRES_SOON, stage="14"), R.reason(R.EXPIRED),
                           R.reason(R.DEVOPS_UNREACHABLE), R.reason(R.HEALTHY)), SETTINGS, NOW)
    assert [(a.condition, a.level) for a in made] == [("EXPIRY", "WARNING"), ("UNCHECKED", "WARNING")]


# ---------------------------------------------------------------------------------------------
# exit codes of every command
# ---------------------------------------------------------------------------------------------

def rotation(outcome: ActionOutcome) -> Action:
    return Action.rotation(outcome, "INFO", "x")


def result(status: Status, *actions: Action, reasons: tuple[Reason, ...] = ()) -> RunResult:
    one = plan(*reasons, status=status, actions=actions)
    return RunResult({"status": status.value}, (one,))


ALERT_FAILED = Action(ActionKind.ALERT, "teams", "WARNING", ActionOutcome.FAILED, "x")
EXIT = {
    "status OK": ("status", Mode.STATUS, result(Status.OK), 0),
    "status WARNING": ("status", Mode.STATUS, result(Status.WARNING), 1),
    "status CRITICAL": ("status", Mode.STATUS, result(Status.CRITICAL), 2),
    "status UNKNOWN": ("status", Mode.STATUS, result(Status.UNKNOWN), 3),
    "run, all done": ("run", Mode.RUN, result(Status.CRITICAL, rotation(ActionOutcome.DONE)), 0),
    "run, an alert failed": ("run", Mode.RUN, result(Status.OK, ALERT_FAILED), 1),
    "run, rotation rolled back": ("run", Mode.RUN, result(Status.CRITICAL, rotation(ActionOutcome.FAILED)), 1),
    "run, rejected candidate": ("run", Mode.RUN, result(Status.WARNING, rotation(ActionOutcome.SKIPPED)), 0),
    "run --dry-run with a failure planned": ("run", Mode.DRY_RUN, result(Status.CRITICAL, ALERT_FAILED), 0),
    "rotate, rotated": ("rotate", Mode.ROTATE, result(Status.OK, rotation(ActionOutcome.DONE)), 0),
    "rotate, rolled back": ("rotate", Mode.ROTATE, result(Status.CRITICAL, rotation(ActionOutcome.FAILED)), 1),
    "rotate, nothing valid": ("rotate", Mode.ROTATE, result(Status.WARNING, rotation(ActionOutcome.SKIPPED)), 3),
    "rotate, nothing at all": ("rotate", Mode.ROTATE, result(Status.OK), 3),
    "rotate, instance unchecked": ("rotate", Mode.ROTATE, result(Status.UNKNOWN), 1),
    "rotate, vault unreadable": ("rotate", Mode.ROTATE,
                                 result(Status.WARNING, reasons=(R.reason(R.KEYVAULT_UNAVAILABLE),)), 1),
}


@pytest.mark.parametrize("command, mode, outcome, expected", EXIT.values(), ids=EXIT.keys())
def test_exit_codes(command: str, mode: Mode, outcome: RunResult, expected: int) -> None:
    assert cli.exit_code(command, mode, outcome) == expected


def test_configuration_errors_exit_per_command() -> None:
    assert cli.CONFIG_EXIT == {"status": 3, "run": 2, "rotate": 2}


# ---------------------------------------------------------------------------------------------
# the one bounded retry loop, with an injected clock and sleep
# ---------------------------------------------------------------------------------------------

class FakeTime:
    def __init__(self) -> None:
        self.now, self.slept = 0.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Answer:
    def __init__(self, status: int, retry_after: str | None = None) -> None:
        self.status_code, self.retry_after = status, retry_after


def attempts(*outcomes):
    """An attempt function that fails with each Retryable in turn, then returns the rest."""
    queue = list(outcomes)

    def attempt():
        item = queue.pop(0)
        if isinstance(item, Retryable):
            raise item
        return item
    return attempt


POLICY = RetryPolicy(attempts=4, backoff=1.0, backoff_max=10.0, total=60.0, read_timeout=30.0)


def test_retries_back_off_exponentially_then_succeed() -> None:
    fake = FakeTime()
    got = with_retries(attempts(Retryable("a"), Retryable("b"), "ok"), system="X", policy=POLICY,
                       sleep=fake.sleep, clock=fake.clock)
    assert got == "ok" and fake.slept == [1.0, 2.0]


def test_retry_after_wins_but_is_capped_by_the_read_timeout() -> None:
    fake = FakeTime()
    with_retries(attempts(Retryable("429", Answer(429, "5")), Retryable("429", Answer(429, "999")), "ok"),
                 system="X", policy=POLICY, sleep=fake.sleep, clock=fake.clock,
                 retry_after=lambda answer: answer.retry_after if answer else None)
    assert fake.slept == [5.0, 30.0]


def test_the_last_attempt_raises_with_the_last_problem_and_status() -> None:
    fake = FakeTime()
    with pytest.raises(ServiceError) as failed:
        with_retries(attempts(*[Retryable("HTTP 503 from x", Answer(503))] * 4), system="Teams", policy=POLICY,
                     sleep=fake.sleep, clock=fake.clock)
    assert str(failed.value) == "Teams: HTTP 503 from x after 4 attempts" and failed.value.status == 503
    assert fake.slept == [1.0, 2.0, 4.0]


def test_no_pause_runs_past_the_total_budget() -> None:
    fake = FakeTime()
    tight = replace(POLICY, attempts=10, backoff=8.0, backoff_max=20.0, total=30.0)
    with pytest.raises(ServiceError, match="after 3 attempts"):
        with_retries(attempts(*[Retryable("down")] * 10), system="X", policy=tight, sleep=fake.sleep,
                     clock=fake.clock)
    assert fake.slept == [8.0, 16.0] and fake.now <= tight.total


def test_a_permanent_failure_is_not_retried() -> None:
    fake = FakeTime()

    def refuse():
        raise ServiceError("SMTP", "SMTP 550")

    with pytest.raises(ServiceError, match="SMTP 550"):
        with_retries(refuse, system="SMTP", policy=POLICY, sleep=fake.sleep, clock=fake.clock)
    assert fake.slept == []

"""Deadlines (adapters/deadlines.py, adapters/retry.py): nested bounds, the retry loop and the azure-core
policy under an injected clock; the run's bound against host.json's functionTimeout."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from azure.core.exceptions import ServiceRequestError

from pat_watchdog.adapters import deadlines
from pat_watchdog.adapters.deadlines import DeadlinePassed, SdkDeadline
from pat_watchdog.adapters.retry import Retryable, RetryPolicy, with_retries
from pat_watchdog.core.errors import ServiceError

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_tightest_deadline_of_the_chain_binds_and_is_the_one_cut():
    clock = Clock()
    assert deadlines.current() is None and deadlines.left() is None
    with deadlines.within(150, "the instance", clock=clock) as instance:
        with deadlines.within(60, "the retries", clock=clock), deadlines.within(30, "one call", clock=clock) as one:
            assert one.left() == 30 and one.binding().what == "one call"
        clock.now += 130                # a call begun 130 s into the instance has 20 s left, not 30
        with deadlines.within(60, "the retries", clock=clock), deadlines.within(30, "one call", clock=clock) as one:
            assert one.left() == 20 and one.binding() is instance and one.fired() is None
            assert one.cut() is instance and one.fired() is instance and instance.passed
        assert deadlines.current() is instance
    assert deadlines.current() is None


def test_retries_stop_before_a_pause_would_pass_an_outer_deadline_and_say_which():
    clock = Clock()
    policy = RetryPolicy(attempts=5, backoff=4.0, backoff_max=8.0, total=60.0)

    def fails():
        clock.now += 1
        raise Retryable("HTTP 503 from x")

    with deadlines.within(6, "one instance's 6 s", clock=clock) as instance, pytest.raises(ServiceError) as stopped:
        with_retries(fails, system="X", policy=policy, sleep=clock.sleep, clock=clock)
    assert str(stopped.value) == ("X: HTTP 503 from x; no time left for another try (one instance's 6 s) after 2 "
                                  "attempts")
    assert instance.passed and clock.now == 100 + 1 + 4 + 1


class Next:
    """What follows the policy in the pipeline: records the deadline each try had, or fails."""

    def __init__(self, clock: Clock, spend: float = 0.0, fail: bool = False):
        self.clock, self.spend, self.fail, self.left = clock, spend, fail, []

    def send(self, request):
        self.left.append(deadlines.left())
        self.clock.now += self.spend
        if self.fail:
            deadlines.current().cut()
            raise ServiceRequestError("read timed out")
        return "answer"


def test_the_sdk_policy_bounds_each_try_and_every_try_of_one_operation():
    clock = Clock()
    policy = SdkDeadline(30, 60, clock=clock)
    policy.next = Next(clock, spend=25)
    request = SimpleNamespace(context={})
    assert [policy.send(request), policy.send(request)] == ["answer", "answer"]
    assert policy.next.left == [30, 30]
    assert policy.send(request) == "answer" and policy.next.left[-1] == 10   # 50 s spent of the operation's 60
    with pytest.raises(DeadlinePassed, match=r"not sent: the deadline passed \(the 60 s of a call's retries\)"):
        policy.send(request)
    policy.next = Next(clock, fail=True)
    with pytest.raises(DeadlinePassed, match=r"no complete answer within one call's 30 s \(answer included\)"):
        policy.send(SimpleNamespace(context={}))


def test_the_run_ends_before_the_functions_timeout_with_room_to_act():
    timeout = json.loads((ROOT / "host.json").read_text())["functionTimeout"]
    hours, minutes, seconds = (int(part) for part in re.fullmatch(r"(\d+):(\d+):(\d+)", timeout).groups())
    limit = hours * 3600 + minutes * 60 + seconds
    policy = RetryPolicy()
    assert policy.run <= limit - 60                     # a minute left for the last alerts and the report
    assert policy.instance < policy.run - policy.acting and policy.acting >= policy.total * 2
    assert policy.call == 30 and policy.total == 60 and policy.instance == 150     # docs/reference.md
    assert replace(policy, run=1).run == 1               # injectable: tests scale the bounds down

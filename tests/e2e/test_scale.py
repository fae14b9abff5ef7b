"""Many instances (README, "Many instances"): discovery, isolation, throttling, fan-out, the status endpoint, the metric."""

from __future__ import annotations

import json
import time

import azure.functions as func
import pytest
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from pat_watchdog import functions
from pat_watchdog.functions import RunFailed
from pat_watchdog.adapters.retry import RetryPolicy
from pat_watchdog.sandbox.seed import SUBSCRIPTION
from tests.conftest import FAST_RETRY, NOW
from tests.e2e.conftest import card_title
from tests.e2e.test_run import fresh_functions
from tests.leaks import assert_no_leak

OTHER_SUB = "0f6b4c2e-7d1a-4e35-9a8b-2c3d4e5f6a7b"
PER_NAME = {"WATCHDOG_STAGED_SECRET": "{name}-pat-staged", "WATCHDOG_PREVIOUS_SECRET": "{name}-pat-previous"}


def healthy(world, name: str, **kwargs) -> str:
    token, _ = world.issue(200)
    app = world.add_instance(name, token, **kwargs)
    world.stage(token, days=200, secret=f"{name}-pat-staged", tags={"watchdog-status": "current"})
    return app


def test_discovery_finds_tagged_and_name_matched_function_apps_only(world, run_cli, sandbox):
    sandbox.arm.page_size = 2  # three pages: every page must be followed
    for name in ("alphaaggregator", "betaaggregator", "gammaaggregator"):
        healthy(world, name, group="rules-prod")                    # tagged aggregatorVersion
    healthy(world, "deltaaggregator", tags={})                      # untagged, aggregator-delta group
    sandbox.arm.add_site(SUBSCRIPTION, "rules-prod", "billing-api", {"Aggregator_VstsToken": "x"}, tags={})
    sandbox.arm.add_site(SUBSCRIPTION, "aggregator-web", "storefront", {}, tags={}, kind="app,linux")
    sandbox.arm.assign_aggregator_role(f"/subscriptions/{SUBSCRIPTION}")   # deploy.md, across a subscription
    result = run_cli("status", "--json", WATCHDOG_AGGREGATOR_APP=f"/subscriptions/{SUBSCRIPTION}", **PER_NAME)
    assert sorted(i["name"] for i in result.json["instances"]) == \
        ["alphaaggregator", "betaaggregator", "deltaaggregator", "gammaaggregator"]
    assert result.code == 0
    assert sandbox.count(method="GET", path=r"providers/Microsoft\.Web/sites\?") + \
        sandbox.count(method="GET", path=r"skipToken") >= 3


def test_forms_mix_and_duplicates_are_watched_once(world, run_cli, sandbox):
    a = healthy(world, "alphaaggregator", group="rules-prod")
    healthy(world, "betaaggregator", group="rules-test")
    token, _ = world.issue(200)
    sandbox.arm.add_site(OTHER_SUB, "aggregator-gamma", "gammaaggregator",
                         {"Aggregator_VstsToken": token, "Aggregator_VstsTokenType": "PAT"})
    world.stage(token, days=200, secret="gammaaggregator-pat-staged", tags={"watchdog-status": "current"})
    for scope in (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rules-prod", f"/subscriptions/{OTHER_SUB}",
                  f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rules-test"):
        sandbox.arm.assign_aggregator_role(scope)
    targets = "\n".join([a, f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rules-prod",
                         f"/subscriptions/{OTHER_SUB}", f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rules-test"])
    result = run_cli("status", "--json", WATCHDOG_AGGREGATOR_APP=targets, **PER_NAME)
    assert sorted(i["name"] for i in result.json["instances"]) == ["alphaaggregator", "betaaggregator",
                                                                    "gammaaggregator"]


def test_discovery_scope_without_name_placeholder_is_a_configuration_error(world, run_cli):
    result = run_cli("status", WATCHDOG_AGGREGATOR_APP=f"/subscriptions/{SUBSCRIPTION}")
    assert result.code == 3 and "WATCHDOG_STAGED_SECRET" in result.err and "{name}" in result.err


def test_a_hanging_instance_is_unknown_while_the_others_complete(world, sandbox):
    from pat_watchdog import cli
    import io

    for i in range(6):
        healthy(world, f"team{i}aggregator")
    # Far longer than the read timeout: a run that waited for it would see the instance OK, not UNKNOWN.
    sandbox.inject(method="POST", path="team3aggregator", hang=60, drop=True, times=None)
    out = io.StringIO()
    code = cli.main(["status", "--json"], env=world.env(**PER_NAME), now=lambda: NOW, stdout=out,
                    stderr=io.StringIO(), retry=RetryPolicy(attempts=2, backoff=0.01, read_timeout=0.3, total=3))
    report = json.loads(out.getvalue())
    statuses = {i["name"]: i["status"] for i in report["instances"]}
    assert statuses.pop("team3aggregator") == "UNKNOWN" and set(statuses.values()) == {"OK"}
    assert code == 3


def test_arm_throttling_slows_the_run_instead_of_failing_it(world, run_cli, sandbox):
    healthy(world, "alphaaggregator")
    sandbox.inject(method="POST", host="management.azure.com", status=429, headers={"Retry-After": "1"})
    sandbox.inject(method="POST", host="management.azure.com", nth=2,  # the retry's answer
                   headers={"x-ms-ratelimit-remaining-subscription-reads": "19"})
    started = time.monotonic()
    result = run_cli("status", "--json", **PER_NAME)
    assert result.code == 0 and time.monotonic() - started >= 1.2  # Retry-After 1 s + a 0.25 s pause
    assert sandbox.count(method="POST", host="management.azure.com") == 2


def test_fan_out_queues_one_message_per_instance_and_each_is_handled(world, sandbox, storage, azurite, log_tap):
    apps = [healthy(world, f"team{i}aggregator") for i in range(3)]
    env = world.env(**storage, **PER_NAME, WATCHDOG_FANOUT_QUEUE="pat-instances")
    assert functions.on_timer(past_due=False, env=env, now=NOW, retry=FAST_RETRY) == {"queued": 3}
    queue = QueueClient.from_connection_string(storage["AzureWebJobsStorage"], "pat-instances",
                                               message_decode_policy=TextBase64DecodePolicy())
    bodies = [m.content for m in queue.receive_messages(messages_per_page=10, visibility_timeout=5)]
    assert sorted(json.loads(b)["app"] for b in bodies) == sorted(apps)
    assert sandbox.count(host="dev.azure.com") == 0  # the timer only queued
    for body in bodies:
        assert_no_leak(body, world.tokens, where="queue message")
        report = functions.on_queue_message(body, env=env, now=NOW, retry=FAST_RETRY)
        assert [i["status"] for i in report["instances"]] == ["OK"]
    assert log_tap.text().count("pat_days_left instance=team") == 3


def test_a_failing_instance_raises_for_a_retry_and_its_poison_message_alerts(world, sandbox, storage):
    app = healthy(world, "team0aggregator")
    env = world.env(**storage, **PER_NAME, WATCHDOG_FANOUT_QUEUE="pat-instances",
                    WATCHDOG_TEAMS_WEBHOOK_URL=sandbox.teams.url())
    sandbox.inject(method="POST", path="team0aggregator", status=503, times=None)
    body = json.dumps({"app": app, "queued_at": "2026-11-28T06:00:00Z"})
    for attempt in (1, 2, 3):
        with pytest.raises(RunFailed, match="could not check team0aggregator"):
            functions.on_queue_message(body, dequeue_count=attempt, env=env, now=NOW, retry=FAST_RETRY)
    titles = [card_title(c) for c in sandbox.teams.received]
    assert [t.split(" ", 1)[1] for t in titles] == ["WARNING: team0aggregator"]  # could not check: once
    assert functions.on_poison_message(body, env=env, now=NOW, retry=FAST_RETRY) == 1
    content = sandbox.teams.received[-1]["attachments"][0]["content"]
    assert card_title(sandbox.teams.received[-1]).endswith("CRITICAL: team0aggregator")
    assert "poison" in json.dumps(content)


def test_fan_out_bindings(monkeypatch):
    monkeypatch.setenv("WATCHDOG_FANOUT_QUEUE", "pat-instances")
    found = {f.get_function_name(): f.get_bindings()[0] for f in fresh_functions()}
    assert found["watchdog_instance"].type == "queueTrigger"
    assert found["watchdog_instance"].queue_name == "%WATCHDOG_FANOUT_QUEUE%"
    assert found["watchdog_instance_poison"].queue_name == "%WATCHDOG_FANOUT_QUEUE%-poison"
    monkeypatch.delenv("WATCHDOG_FANOUT_QUEUE")
    assert "watchdog_instance" not in {f.get_function_name() for f in fresh_functions()}


def test_status_endpoint_returns_the_last_report(world, run_cli, storage, monkeypatch, sandbox):
    healthy(world, "alphaaggregator")
    status = {f.get_function_name(): f for f in fresh_functions()}["watchdog_status"]
    binding = status.get_bindings()[0]
    assert binding.type == "httpTrigger" and binding.route == "status" and [getattr(m, "value", m) for m in binding.methods] == ["GET"]
    assert str(binding.auth_level).lower().endswith("function")
    for key, value in world.env(**storage, **PER_NAME).items():
        monkeypatch.setenv(key, value)
    request = func.HttpRequest("GET", "/api/status", body=b"")
    assert status.get_user_function()(request).status_code == 404
    run_cli("run", **storage, **PER_NAME)
    response = status.get_user_function()(request)
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_body().decode()
    report = json.loads(body)
    assert report["command"] == "run" and report["instances"][0]["name"] == "alphaaggregator"
    assert_no_leak(body, world.tokens, where="status endpoint")
    monkeypatch.delenv("AzureWebJobsStorage")
    assert status.get_user_function()(request).status_code == 503


BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"   # what a browser sends


def test_status_endpoint_serves_the_status_page_to_a_browser(world, run_cli, storage, monkeypatch):
    healthy(world, "alphaaggregator")
    expired, _ = world.issue(-2)
    world.add_instance("betaaggregator", expired)
    status = {f.get_function_name(): f for f in fresh_functions()}["watchdog_status"].get_user_function()
    for key, value in world.env(**storage, **PER_NAME).items():
        monkeypatch.setenv(key, value)

    def get(headers=None, params=None) -> func.HttpResponse:
        response = status(func.HttpRequest("GET", "/api/status", body=b"", headers=headers or {}, params=params or {}))
        assert_no_leak(response.get_body().decode(), world.tokens, where="status endpoint")
        return response

    before = get({"Accept": BROWSER})       # no run yet: said as a page too
    assert before.status_code == 404 and before.mimetype == "text/html"
    assert "no run recorded yet" in before.get_body().decode()
    assert before.headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    run_cli("run", **storage, **PER_NAME)
    run_cli("run", **storage, **PER_NAME)
    for asked in (get({"Accept": BROWSER}), get(params={"format": "html"}), get({"Accept": "application/json"},
                                                                                 {"format": "html"})):
        assert asked.status_code == 200 and asked.mimetype == "text/html"
        assert asked.headers["Content-Type"] == "text/html; charset=utf-8"
        assert asked.headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"
        assert asked.headers["Referrer-Policy"] == "no-referrer"
        page = asked.get_body().decode()
        assert page.startswith("<!DOCTYPE html>") and "<script" not in page
        assert page.index("betaaggregator") < page.index("alphaaggregator")      # worst first
        assert "2 instances:" in page and page.count('class="sq ') == 2          # the two runs
        assert "Report of <b>run at 2026-11-28 06:00 UTC" in page
    for json_asked in (get(), get({"Accept": "*/*"}), get({"Accept": "application/json, text/html;q=0.5"}),
                       get({"Accept": BROWSER}, {"format": "json"})):
        assert json_asked.status_code == 200 and json_asked.mimetype == "application/json"
        assert "Content-Security-Policy" not in json_asked.headers
        assert json.loads(json_asked.get_body())["command"] == "run"


def test_the_token_listing_is_asked_once_per_user_and_run(world, run_cli, sandbox):
    for i in range(5):
        healthy(world, f"team{i}aggregator")      # one service account's PATs, one per instance
    other, _ = world.issue(200, user_id="3b2e9b4f-0000-4000-8000-000000000002")
    world.add_instance("soloaggregator", other)
    result = run_cli("status", "--json", **PER_NAME)   # before 2026-12-01: the listing tells global PATs
    assert {i["token"]["global"] for i in result.json["instances"]} == {False}
    assert sandbox.count(host="vssps.dev.azure.com") == 2


def test_a_failing_listing_is_asked_once_per_user_not_once_per_instance(world, run_cli, sandbox):
    for i in range(6):
        healthy(world, f"team{i}aggregator")
    sandbox.inject(host="vssps.dev.azure.com", status=503, times=None)
    result = run_cli("status", "--json", **PER_NAME)
    assert {i["status"] for i in result.json["instances"]} == {"OK"}
    assert sandbox.count(host="vssps.dev.azure.com") == 3   # one call's attempts (FAST_RETRY), shared

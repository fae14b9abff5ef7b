"""`run`, `run --dry-run`, configuration errors, and the Azure Function around the same code."""

from __future__ import annotations

import io

from datetime import timedelta

import azure.functions as func
import pytest

from pat_watchdog import cli
from pat_watchdog.functions import RunFailed
from tests.conftest import FAST_RETRY, NOW

NAME = "contosoaggregator"


def writes(sandbox):
    return [(r.method, r.host, r.path.split("?")[0]) for r in sandbox.requests if r.method in ("PUT", "PATCH")]


def test_run_adopts_a_staged_copy_of_the_current_token(world, run_cli, sandbox):
    token, _ = world.issue(40)
    world.add_instance(NAME, token)
    version = world.stage(token, days=40)
    result = run_cli("run", "--json")
    inst = result.instance(NAME)
    assert result.code == 0 and inst["candidate"]["state"] == "current"
    # The protocol's one transition, and nothing else: what was verified goes to the state table.
    assert sandbox.vault.versions("contoso-kv", "aggregator-pat-staged")[0]["tags"] == {
        "scopes": "vso.identity vso.project vso.serviceendpoint_manage vso.work_full", "watchdog-status": "current"}
    assert {r["code"] for r in inst["reasons"]} == {"HEALTHY", "CANDIDATE_STAGED"}
    assert [a["outcome"] for a in inst["actions"]] == ["done"]
    assert version == inst["candidate"]["version"]


def test_second_run_reads_no_secret_value_and_writes_nothing_to_key_vault(world, run_cli, sandbox, storage):
    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    world.stage(token, days=100, tags={"watchdog-status": "current"})
    run_cli("run", **storage)
    assert sandbox.count(method="PATCH") == sandbox.count(method="PUT", host="vault") == 0
    sandbox.reset_requests()
    result = run_cli("run", "--json", **storage)
    assert result.code == 0
    value_reads = [r for r in sandbox.requests if ".vault." in r.host and r.method == "GET"
                   and "/versions" not in r.path]
    assert value_reads == []  # the record of the first run spares reading every version's value
    assert sandbox.count(method="PATCH") == sandbox.count(method="PUT", host="vault") == 0


@pytest.mark.parametrize("days_after,expected", [(0, 3 + 2), (5, 3 + 2)])
def test_healthy_run_costs_three_requests_per_instance(world, run_cli, sandbox, storage, days_after, expected):
    """ARM list, connectionData, Key Vault versions: the listing was asked once, when the token was first
    seen (whether it is global, its scopes and expiry), and its answer is in the watchdog's record. Plus,
    once per run, the organization's service hook subscriptions, and the site's host names (one GET: this
    instance is named directly; discovery's listing carries them, see test_scale)."""
    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    world.stage(token, days=100, tags={"watchdog-status": "current"})
    moment = NOW + timedelta(days=days_after)
    sandbox.clock = lambda: moment
    run_cli("run", now=moment, **storage)
    sandbox.reset_requests()
    run_cli("run", now=moment, **storage)
    service = [(r.method, r.host, r.path.split("?")[0]) for r in sandbox.requests
               if r.host != "127.0.0.1" and r.status != 401]
    assert len(service) == expected, service
    assert [p for m, h, p in service if "hooks/subscriptions" in p] == ["/contoso/_apis/hooks/subscriptions"]


def test_dry_run_changes_nothing_and_exits_0(world, run_cli, sandbox):
    token, _ = world.issue(2)
    world.add_instance(NAME, token)
    world.stage(token, days=2)
    result = run_cli("run", "--dry-run", "--json",
                     WATCHDOG_TEAMS_WEBHOOK_URL=sandbox.teams.url())
    inst = result.instance(NAME)
    assert result.code == 0 and writes(sandbox) == []
    assert {a["outcome"] for a in inst["actions"]} == {"planned"}
    assert any(a["kind"] == "alert" and a["channel"] == "teams" and a["level"] == "CRITICAL"
               for a in inst["actions"])
    assert sandbox.teams.received == []


@pytest.mark.parametrize("command,expected", [(["status"], 3), (["run"], 2), (["run", "--dry-run"], 2),
                                              (["rotate"], 2)])
def test_configuration_errors_name_every_setting(command, expected):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(command, env={"WATCHDOG_WARN_DAYS": "30,14,seven",
                                  "WATCHDOG_DEVOPS_ORG_URL": "https://dev.azure.com/contoso"},
                    stdout=out, stderr=err)
    assert code == expected and out.getvalue() == ""
    assert "WATCHDOG_AGGREGATOR_APP is required" in err.getvalue()
    assert "WATCHDOG_WARN_DAYS='30,14,seven': expected comma-separated whole days" in err.getvalue()


def fresh_functions():
    """What the Functions worker indexes, from a fresh import (get_functions() is not re-entrant)."""
    import importlib
    import sys

    sys.modules.pop("function_app", None)
    return importlib.import_module("function_app").app.get_functions()


def test_function_binding_is_the_timer_of_the_design():
    functions = fresh_functions()
    assert [f.get_function_name() for f in functions] == ["watchdog_timer", "watchdog_status", "watchdog_doctor"]
    binding = functions[0].get_bindings()[0]
    assert binding.type == "timerTrigger" and binding.schedule == "%WATCHDOG_SCHEDULE%"
    assert binding.run_on_startup is False and binding.use_monitor is True


def _invoke_timer(world, monkeypatch, past_due: bool, **env):
    body = fresh_functions()[0].get_user_function()
    from pat_watchdog import functions as module

    original = module.on_timer
    monkeypatch.setattr(module, "on_timer", lambda past_due: original(
        past_due=past_due, env=world.env(**env), now=NOW, retry=FAST_RETRY))
    body(func.timer.TimerRequest(past_due=past_due))


def test_function_body_runs_the_same_code_and_logs_past_due(world, log_tap, sandbox, monkeypatch):
    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    world.stage(token, days=100)
    _invoke_timer(world, monkeypatch, True)
    text = log_tap.text()
    assert "timer fired (past_due=True)" in text and "pat-watchdog run: OK" in text
    assert sandbox.vault.versions("contoso-kv", "aggregator-pat-staged")[0]["tags"]["watchdog-status"] == "current"


def test_function_raises_when_an_action_failed(world, sandbox, monkeypatch):
    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    world.stage(token, days=100)
    sandbox.inject(method="PATCH", host="vault.azure.net", status=503, times=None)
    with pytest.raises(RunFailed, match="1 action\\(s\\) failed"):
        _invoke_timer(world, monkeypatch, False)


def test_importing_function_app_does_no_network_io(sandbox):
    import importlib
    import sys

    sys.modules.pop("function_app", None)
    before = len(sandbox.requests)
    importlib.import_module("function_app")
    assert len(sandbox.requests) == before and sandbox.proxy_refused == []

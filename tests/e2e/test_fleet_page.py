"""The fleet on a terminal and in a file: `status --html FILE` against the sandbox (the page of the report
`status` computed, the last runs read from the state table, the Nagios exit code kept), and the progress
line of `status` and `run` over more than 20 instances (only on a terminal, never in `--json`'s stdout)."""

from __future__ import annotations

import io
import json
import re

from pat_watchdog import cli
from tests import leaks
from tests.azurite import table_client
from tests.conftest import FAST_RETRY, NOW
from tests.leaks import assert_no_leak
from tests.unit.test_progress import Terminal

PER_NAME = {"WATCHDOG_STAGED_SECRET": "{name}-pat-staged", "WATCHDOG_PREVIOUS_SECRET": "{name}-pat-previous"}


def healthy(world, name: str, days: int = 200) -> None:
    token, _ = world.issue(days)
    world.add_instance(name, token)
    world.stage(token, days=days, secret=f"{name}-pat-staged", tags={"watchdog-status": "current"})


def fleet(world) -> None:
    healthy(world, "alphaaggregator")
    healthy(world, "betaaggregator", days=10)
    expired, _ = world.issue(-3)
    world.add_instance("gammaaggregator", expired)


def headers(storage) -> int:
    client = table_client(storage["AzureWebJobsStorage"], storage["WATCHDOG_STATE_TABLE"])
    return len(list(client.query_entities("PartitionKey eq 'run'", select=["RowKey"])))


def test_status_html_writes_the_page_of_its_report_with_the_last_runs(world, run_cli, storage, tmp_path):
    fleet(world)
    for _ in range(3):
        run_cli("run", **storage, **PER_NAME)
    path = tmp_path / "fleet.html"
    result = run_cli("status", "--html", str(path), **storage, **PER_NAME)
    assert result.code == 2                                 # CRITICAL: the Nagios code, page or not
    assert result.out.startswith("pat-watchdog status: CRITICAL")
    assert f"status page written to {path}" in result.err
    page = path.read_text(encoding="utf-8")
    assert_no_leak(page, world.tokens, where="status page")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    order = [page.index(f">{name}</a>") for name in ("gammaaggregator", "betaaggregator", "alphaaggregator")]
    assert order == sorted(order)                           # worst first
    assert "Report of <b>status at 2026-11-28 06:00 UTC" in page
    assert "3 instances:" in page and ">1 OK</span>" in page and ">1 WARNING</span>" in page
    assert page.count('class="sq ') == 3                    # the three runs, read from the table
    assert headers(storage) == 3                            # status wrote no run


def test_status_html_with_json_keeps_stdout_one_document(world, run_cli, tmp_path):
    fleet(world)
    path = tmp_path / "fleet.html"
    result = run_cli("status", "--json", "--html", str(path), **PER_NAME)
    assert json.loads(result.out)["status"] == "CRITICAL" and result.code == 2
    assert "no run recorded yet" in path.read_text(encoding="utf-8")     # no state table: no history


def test_a_page_that_cannot_be_written_is_said_and_exits_unknown(world, run_cli, tmp_path):
    healthy(world, "alphaaggregator")
    result = run_cli("status", "--html", str(tmp_path / "missing" / "fleet.html"), **PER_NAME)
    assert result.code == 3 and "the status page could not be written to" in result.err
    assert result.out.startswith("pat-watchdog status: OK")


def test_an_unreadable_history_still_gives_the_page(world, run_cli, tmp_path, azurite):
    healthy(world, "alphaaggregator")
    path = tmp_path / "fleet.html"
    dead = {"AzureWebJobsStorage": azurite.connection_string.replace(f":{azurite.ports['table']}/", ":1/"),
            "WATCHDOG_STATE_TABLE": "nosuchtable"}
    result = run_cli("status", "--html", str(path), **dead, **PER_NAME)
    assert result.code == 0 and "the run history could not be read" in path.read_text(encoding="utf-8")


def run_on(world, stderr, *argv: str, **env: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), env=world.env(**PER_NAME, **env), now=lambda: NOW, stdout=out, stderr=stderr,
                    retry=FAST_RETRY)
    leaks.track(world)
    assert_no_leak(out.getvalue() + stderr.getvalue(), world.tokens, where="output")
    return code, out.getvalue()


PROGRESS = re.compile(r"\robserved (\d+) of (\d+) found(\.\.\.)? *")


def test_progress_on_a_terminal_over_more_than_20_instances(world, sandbox):
    for i in range(24):
        healthy(world, f"team{i:02d}aggregator")
    sandbox.latency = 0.02          # the run lasts long enough for a line before the last
    for command in (["status"], ["run", "--local-lock"], ["status", "--json"]):
        terminal = Terminal()
        code, out = run_on(world, terminal, *command)
        drawn = terminal.getvalue()
        lines = PROGRESS.findall(drawn)
        assert code == 0 and lines, (command, drawn)
        assert lines[0][1] == "21" and lines[-1] == ("24", "24", "")      # the first past 20; the last, whole
        assert drawn.endswith("\n") and drawn.count("\n") == 1
        assert "observed" not in out
        if "--json" in command:
            assert len(json.loads(out)["instances"]) == 24               # stdout: one JSON document


def test_no_progress_on_a_pipe_for_20_instances_or_with_verbose_logs(world):
    for i in range(21):
        healthy(world, f"team{i:02d}aggregator")
    _, _ = run_on(world, pipe := io.StringIO(), "status")
    assert "observed" not in pipe.getvalue()
    _, _ = run_on(world, loud := Terminal(), "-v", "status")
    assert "observed" not in loud.getvalue() and "pat_days_left" in loud.getvalue()
    world.apps.pop()
    _, _ = run_on(world, few := Terminal(), "status")
    assert few.getvalue() == ""

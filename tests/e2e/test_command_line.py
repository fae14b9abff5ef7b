"""The command line itself: usage errors, settings that name nothing, -v, and stdout under --json."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pat_watchdog import cli
from tests.e2e.conftest import NAME
from tests.leaks import assert_no_leak, track

ROOT = Path(__file__).resolve().parents[2]
ORG = {"WATCHDOG_DEVOPS_ORG_URL": "https://dev.azure.com/contoso"}


def main(*argv: str, env: dict | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), env=ORG if env is None else env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def console(world, *argv: str) -> subprocess.CompletedProcess:
    """`python -m pat_watchdog ...` as a person runs it (the console script's own entry point)."""
    done = subprocess.run([sys.executable, "-m", "pat_watchdog", *argv], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **world.env()}, timeout=120, check=False)
    for where, text in (("stdout", done.stdout), ("stderr", done.stderr)):
        assert_no_leak(text, track(world), where=where)
    return done


@pytest.mark.parametrize("value", [" , , ", ",", "\n,\n", " ,\n , "])
@pytest.mark.parametrize("command, expected", [("status", 3), ("run", 2), ("rotate", 2), ("doctor", 2)])
def test_a_target_list_of_only_separators_is_a_configuration_error_naming_the_setting(value, command, expected):
    code, out, err = main(command, env={**ORG, "WATCHDOG_AGGREGATOR_APP": value})
    assert code == expected, (out, err)
    assert "WATCHDOG_AGGREGATOR_APP=" in err and "names no instance" in err
    assert out == "" or command == "doctor"       # the doctor lists what it checked on stdout


USAGE = {
    "status with a misspelt flag": (["status", "--jsn"], 3, "unrecognized arguments: --jsn"),
    "status with a stray word": (["status", "now"], 3, "unrecognized arguments: now"),
    "a flag before status": (["--quiet", "status"], 3, "unrecognized arguments: --quiet"),
    "run with a misspelt flag": (["run", "--dryrun"], 2, "unrecognized arguments: --dryrun"),
    "rotate with a misspelt flag": (["rotate", "--froce"], 2, "unrecognized arguments: --froce"),
    "doctor with a misspelt flag": (["doctor", "--sned"], 2, "unrecognized arguments: --sned"),
    "login without the instance's name": (["login", "--instance"], 2, "expected one argument"),
    "no command at all": ([], 2, "the following arguments are required"),
}


@pytest.mark.parametrize("argv, expected, said", USAGE.values(), ids=USAGE.keys())
def test_a_usage_error_exits_as_the_commands_configuration_error_does(argv, expected, said):
    code, out, err = main(*argv)
    assert code == expected and said in err and err.startswith("usage: pat-watchdog") and out == ""


def test_status_json_with_a_usage_error_still_prints_a_report_that_says_why():
    code, out, err = main("status", "--json", "--jsn")
    report = json.loads(out)
    assert code == 3 and report["status"] == "UNKNOWN" and report["instances"] == []
    assert report["errors"] == ["invalid command line: unrecognized arguments: --jsn"]


def test_the_console_script_exits_3_for_a_status_usage_error(world):
    done = console(world, "status", "--jsn")
    assert done.returncode == 3 and "unrecognized arguments: --jsn" in done.stderr and done.stdout == ""


def test_verbose_logs_progress_to_stderr_and_run_json_keeps_stdout_one_document(world):
    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    world.stage(token, days=100)
    loud = console(world, "-v", "run", "--json")
    assert loud.returncode == 0, loud.stderr[-2000:]
    report = json.loads(loud.stdout)                     # one JSON document, nothing else on stdout
    assert report["status"] == "OK" and [i["name"] for i in report["instances"]] == [NAME]
    assert f"INFO pat_watchdog.watchdog: pat_days_left instance={NAME} days_left=" in loud.stderr
    quiet = console(world, "run", "--json")
    assert json.loads(quiet.stdout)["status"] == "OK" and "INFO " not in quiet.stderr


def test_verbose_in_process_logs_to_the_stderr_it_is_given(world, run_cli):
    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    loud = run_cli("-v", "status", "--json")
    assert json.loads(loud.out)["instances"] and f"pat_days_left instance={NAME}" in loud.err
    assert "pat_days_left" not in run_cli("status", "--json").err

"""The watchdog's own monitoring can tell the truth: successes reach Application Insights, and the
alert queries name functions that exist.

Microsoft Learn, "Configure monitoring for Azure Functions": the `requests` table is written from
the Host.Results log category at Information; "If you filter at Warning or above, you won't see
any of this data". A success-based alert over a host.json that filters Host.Results never resolves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LEVELS = ["Trace", "Debug", "Information", "Warning", "Error", "Critical", "None"]


def requests_logged(host: dict) -> list[str]:
    """Problems that keep function invocations out of the `requests` table; empty when they reach it."""
    levels = (host.get("logging") or {}).get("logLevel") or {}
    # The most specific category prefix wins (Microsoft.Extensions.Logging filter rules).
    for category in ("Host.Results", "Host", "default"):
        if category in levels:
            level = levels[category]
            if level not in LEVELS:
                return [f"logLevel {category}={level!r} is not a log level"]
            if LEVELS.index(level) > LEVELS.index("Information"):
                return [f"Host.Results is filtered at {level} (through {category!r}): successful runs never "
                        "reach the requests table"]
            return []
    return []


def test_host_json_keeps_host_results_at_information() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert requests_logged(host) == []
    assert host["logging"]["logLevel"]["Host.Results"] == "Information"


@pytest.mark.parametrize("levels, expected", [
    ({"default": "Warning", "Function": "Information"}, "filtered at Warning (through 'default')"),
    ({"default": "Information", "Host.Results": "Error"}, "filtered at Error (through 'Host.Results')"),
    ({"default": "Warning", "Host": "Warning"}, "filtered at Warning (through 'Host')"),
    ({"default": "Warning", "Host.Results": "Informational"}, "is not a log level"),
])
def test_a_host_json_that_hides_successes_is_caught(levels: dict, expected: str) -> None:
    problems = requests_logged({"logging": {"logLevel": levels}})
    assert len(problems) == 1 and expected in problems[0]


def function_names() -> set[str]:
    """Every function name function_app.py can register (the queue ones only exist with fan-out)."""
    return set(re.findall(r"^\s*def (\w+)\(", (ROOT / "function_app.py").read_text(), re.MULTILINE))


def test_the_alert_queries_read_requests_of_functions_that_exist() -> None:
    main = (ROOT / "infra" / "main.bicep").read_text()
    alerts = (ROOT / "infra" / "app" / "alerts.bicep").read_text()
    defaults = dict(re.findall(r"param (\w+FunctionName) string = '(\w+)'", main))
    assert set(defaults) == {"timerFunctionName", "poisonFunctionName"}
    assert set(defaults.values()) <= function_names()
    queries = re.findall(r"query: '(.*)'", alerts)
    assert len(queries) == 2 and all(q.startswith("requests |") for q in queries)
    failed, missing = queries
    # a failed timer run or a poison item, never a retried fan-out attempt or a /api/status answer
    assert '${timerFunctionName}" and success == false' in failed and "${poisonFunctionName}" in failed
    assert "watchdog_status" not in failed and "watchdog_instance\"" not in failed
    assert "ago(26h)" in missing and "success == true" in missing

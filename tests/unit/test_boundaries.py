"""The layout is the architecture: a boundary crossed by an import fails here.

- core/ is pure: no SDK, no HTTP, no SMTP, no adapter or orchestration module, and no clock.
- adapters/ talk to one outside system each; they import core/ and each other's shared helpers
  (retry, sdk_errors), never the orchestration on top.
- Nothing in the product imports the sandbox, except the `demo` entry point that runs it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pat_watchdog"
OUTSIDE = ("azure", "requests", "urllib3", "smtplib", "ssl", "socket", "http", "aiosmtpd", "msal")
ORCHESTRATION = ("observe", "act", "rotation", "swap", "watchdog", "dispatch", "bootstrap", "ports",
                 "cli", "functions", "demo", "__main__")
CLOCK = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
         ("time", "time"), ("time", "monotonic"), ("time", "perf_counter"), ("time", "sleep")}


def imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from pat_watchdog import observe` names the module in the alias, not in `module`
            found += [f"{node.module}.{alias.name}" for alias in node.names] if node.module == "pat_watchdog" \
                else [node.module]
    return found


def clock_reads(tree: ast.AST) -> list[str]:
    return [f"{node.value.id}.{node.attr}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in CLOCK]


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "pat_watchdog" or len(parts) < 2:
        return "outside"
    return parts[1] if parts[1] in ("core", "adapters", "sandbox") else "orchestration"


def violations(module: str, source: str) -> list[str]:
    """What `module` (dotted name) does that its layer forbids."""
    tree = ast.parse(source)
    own, problems = layer(module), []
    for name in imports(tree):
        top, target = name.split(".")[0], layer(name)
        if own == "core":
            if top in OUTSIDE:
                problems.append(f"{module} imports {name}: core/ is pure")
            elif target in ("adapters", "orchestration", "sandbox"):
                problems.append(f"{module} imports {name}: core/ imports only core/")
        elif own == "adapters" and target in ("orchestration", "sandbox"):
            problems.append(f"{module} imports {name}: adapters never import the orchestration or the sandbox")
        elif own == "orchestration" and target == "sandbox" and module != "pat_watchdog.demo":
            problems.append(f"{module} imports {name}: the product never imports the sandbox")
    if own == "core":
        problems += [f"{module} reads the clock ({read}): core/ takes `now` as an argument"
                     for read in clock_reads(tree)]
    return problems


def product_modules() -> dict[str, str]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        modules[".".join(relative.parts).removesuffix(".__init__")] = path.read_text()
    return modules


def test_every_module_keeps_to_its_layer() -> None:
    modules = product_modules()
    assert {"pat_watchdog.core.policy", "pat_watchdog.adapters.arm", "pat_watchdog.observe"} <= set(modules)
    problems = [p for name, source in modules.items() for p in violations(name, source)]
    assert problems == []


@pytest.mark.parametrize("module, source, expected", [
    ("pat_watchdog.core.policy", "import requests", "core/ is pure"),
    ("pat_watchdog.core.policy", "from azure.core.exceptions import AzureError", "core/ is pure"),
    ("pat_watchdog.core.alerts", "from pat_watchdog.adapters.retry import RetryPolicy", "core/ imports only core/"),
    ("pat_watchdog.core.model", "from pat_watchdog import observe", "core/ imports only core/"),
    ("pat_watchdog.core.policy", "from datetime import datetime\nx = datetime.now()", "reads the clock"),
    ("pat_watchdog.core.dedup", "import time\nt = time.monotonic()", "reads the clock"),
    ("pat_watchdog.adapters.arm", "from pat_watchdog.observe import Observed", "never import the orchestration"),
    ("pat_watchdog.watchdog", "from pat_watchdog.sandbox import Sandbox", "never imports the sandbox"),
])
def test_a_wrong_import_is_caught(module: str, source: str, expected: str) -> None:
    problems = violations(module, source)
    assert len(problems) == 1 and expected in problems[0]


def test_the_demo_alone_may_start_the_sandbox() -> None:
    assert violations("pat_watchdog.demo", "from pat_watchdog.sandbox import Sandbox") == []

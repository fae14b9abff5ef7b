"""Shared fixtures: the sandbox world, the CLI runner, and the one leak assertion every output passes."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest

from urllib.parse import parse_qs, urlsplit

from pat_watchdog import cli, log_setup
from pat_watchdog.adapters.retry import RetryPolicy
from pat_watchdog.sandbox import Sandbox
from pat_watchdog.sandbox.seed import World
from tests.azurite import Azurite
from tests.deployed_roles import deployed_roles
from tests import leaks
from tests.leaks import LogTap, assert_no_leak, sandbox_outputs

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)
# Same bounds as production, shorter pauses: tests never wait on wall time for backoff.
FAST_RETRY = RetryPolicy(attempts=3, backoff=0.01, backoff_max=0.05, total=10, read_timeout=3)


@pytest.fixture(scope="session")
def azurite():
    """One emulator for the session; tests isolate themselves with their own table names."""
    emulator = Azurite()
    yield emulator
    emulator.stop()


@pytest.fixture
def storage(azurite, request):
    """Settings for a fresh state table in Azurite."""
    table = "t" + "".join(ch for ch in request.node.name if ch.isalnum())[-40:] + str(id(request) % 10000)
    return {"AzureWebJobsStorage": azurite.connection_string, "WATCHDOG_STATE_TABLE": table}


@pytest.fixture
def log_tap():
    """Every log record of the process, formatted with its traceback, for the leak check."""
    tap = LogTap()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(tap)
    root.setLevel(logging.DEBUG)
    # The SDK and HTTP loggers at DEBUG too: the leak check sees what the most verbose run would log.
    loud = {name: logging.getLogger(name).level for name in log_setup.QUIET}
    for name in loud:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield tap
    root.removeHandler(tap)
    root.setLevel(old_level)
    for name, level in loud.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def sandbox_roles(request):
    """The roles the sandbox grants: the deployed ones, or (indirect parametrization) others."""
    return getattr(request, "param", None) or deployed_roles()


@pytest.fixture
def sandbox(monkeypatch, sandbox_roles):
    with Sandbox(clock=lambda: NOW, roles=sandbox_roles) as sb:
        for key, value in sb.env().items():
            monkeypatch.setenv(key, value)
        yield sb


@pytest.fixture
def world(sandbox, log_tap):
    """A seeded world; at teardown, nothing the product sent or logged contains any token."""
    w = World(sandbox)
    # Not only the PATs: the Teams webhook's signature and the SMTP password are secrets too.
    w.tokens.extend([parse_qs(urlsplit(sandbox.teams.url()).query)["sig"][0], sandbox.smtp.password])
    leaks.TRACKED.append(w.tokens)
    yield w
    leaks.track(w)
    assert_no_leak(log_tap.text(), w.tokens, where="logs")
    for where, text in sandbox_outputs(sandbox):
        assert_no_leak(text, w.tokens, where=where)
    assert not sandbox.errors, f"sandbox handler errors: {sandbox.errors!r}"


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def json(self) -> dict:
        return json.loads(self.out)

    def instance(self, name: str) -> dict:
        return next(i for i in self.json["instances"] if i["name"] == name)


@pytest.fixture
def run_cli(world):
    """Run `pat-watchdog ...` in-process against the world, at NOW; outputs pass the leak check."""
    def run(*argv: str, now: datetime = NOW, **overrides: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(list(argv), env=world.env(**overrides), now=lambda: now, stdout=out, stderr=err,
                        retry=FAST_RETRY)
        result = CliResult(code, out.getvalue(), err.getvalue())
        leaks.track(world)
        assert_no_leak(result.out, world.tokens, where="stdout")
        assert_no_leak(result.err, world.tokens, where="stderr")
        return result
    return run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing assertion may show a compared value: never let it be a token."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and leaks.TRACKED:
        report.longrepr = leaks.scrub(str(report.longrepr))
        report.sections = [(name, leaks.scrub(text)) for name, text in report.sections]

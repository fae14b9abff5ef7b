"""Fixtures of the sandbox fidelity tests: one sandbox per module, its environment per test."""

from __future__ import annotations

import pytest
from azure.identity import ManagedIdentityCredential

from pat_watchdog.sandbox import Sandbox
from tests.deployed_roles import deployed_roles
from tests.sandbox.support import NOW


@pytest.fixture(scope="module")
def running():
    """One sandbox for the module (starting one is cheap, stopping costs a poll interval)."""
    with Sandbox(clock=lambda: NOW, roles=deployed_roles()) as sb:
        yield sb


@pytest.fixture
def sb(running, monkeypatch):
    """The sandbox with its environment applied and per-test state reset."""
    for key, value in running.env().items():
        monkeypatch.setenv(key, value)
    for key in ("MSI_ENDPOINT", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT", "AZURE_CLIENT_ID"):
        monkeypatch.delenv(key, raising=False)
    running.clock = lambda: NOW
    running.latency = 0.0
    running.clear_faults()
    running.reset_requests()
    yield running
    running.clear_faults()
    running.devops.scope_denial_status = 401
    assert running.errors == []


@pytest.fixture
def cred(sb):
    """App Service flavour of ManagedIdentityCredential, reading the sandbox env."""
    return ManagedIdentityCredential()

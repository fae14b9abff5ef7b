"""The ports of one run: what the orchestration needs from each outside system, as Protocols.

The adapters in `adapters/` implement them; `bootstrap.py` wires the real ones, tests and the
demo point the same adapters at the sandbox.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Literal, Protocol

from pat_watchdog.core.alerts import Alert
from pat_watchdog.core.dedup import Entry
from pat_watchdog.core.model import LiveCheck
from pat_watchdog.core.record import Record
from pat_watchdog.core.resource_ids import ResourceId
from pat_watchdog.core.secret import Token
from pat_watchdog.core.tags import SecretVersion
from pat_watchdog.records import RecordBook


class AppSettings(Protocol):
    """The Aggregator Function Apps, through Azure Resource Manager (adapters/arm.py)."""

    def list_settings(self, app: ResourceId) -> dict[str, str]: ...
    def site_name(self, app: ResourceId) -> str: ...
    def is_aggregator_site(self, app: ResourceId) -> bool: ...
    def reference_status(self, app: ResourceId, setting: str): ...
    def host_names(self, app: ResourceId) -> tuple[str, ...]: ...
    def replace_settings(self, app: ResourceId, settings: dict[str, str]) -> dict[str, str]: ...
    def restart(self, app: ResourceId) -> None: ...
    def close(self) -> None: ...


class SecretStore(Protocol):
    """One Key Vault (adapters/keyvault.py)."""

    url: str

    def versions(self, name: str) -> list[SecretVersion]: ...
    def read(self, name: str, version: str | None = None) -> tuple[Token, SecretVersion]: ...
    def set_tags(self, version: SecretVersion, changes: dict) -> SecretVersion: ...
    def set_expiry(self, name: str, version: str, expires_on: datetime) -> SecretVersion: ...
    def store(self, name: str, token: Token, *, tags: dict, expires_on: datetime | None = None,
              content_type: str = "Azure DevOps PAT") -> SecretVersion: ...


class SecretStores(Protocol):
    def get(self, url: str) -> SecretStore: ...
    def close(self) -> None: ...


class Listing(Protocol):
    entries: tuple[dict, ...]
    unavailable: str | None


class TokenService(Protocol):
    """Azure DevOps for one organization (adapters/devops.py)."""

    def check_live(self, token: Token) -> LiveCheck: ...
    def list_tokens(self, token: Token) -> Listing: ...


class Listings(Protocol):
    """One token listing per user and run."""

    def get(self, user_id: str | None, fetch: Callable[[], Listing]) -> Listing: ...


class StateStore(Protocol):
    """Alert ledger, run history and rotation locks (adapters/state_table.py).

    A lock's lease runs on the store's clock (the Table service's), never on the caller's: `now`
    is not trusted. `acquire` returns a fencing token (truthy) or False; before each write under
    the lock, `holds(key, owner, token)` says whether the lock is still this owner's, unchanged
    and with lease left (False when that cannot be confirmed).
    """

    shared: bool        # whether its lock holds across processes and machines

    def active(self) -> dict[tuple, Entry]: ...
    def record(self, entry: Entry) -> None: ...
    def add_run(self, report: dict) -> None: ...
    def last_run(self) -> dict | None: ...
    def recent_runs(self, count: int = 30) -> list[dict]: ...   # {generated_at, command, status, outcome}
    def acquire(self, key: str, owner: str, now: datetime, lease: timedelta) -> str | Literal[False]: ...
    def holds(self, key: str, owner: str, fence: str) -> bool: ...
    def release(self, key: str, owner: str) -> None: ...
    def memories(self) -> dict[str, Record]: ...
    def memory(self, key: str) -> Record | None: ...
    def with_form(self, form: str) -> list[str]: ...
    def holding(self, digest: str) -> list[str]: ...
    def remember(self, key: str, record: Record) -> None: ...


class Channel(Protocol):
    """An alert channel (adapters/teams.py, adapters/email.py); one failing never stops another."""

    name: str

    def send(self, alert: Alert) -> None:
        """Deliver or raise ServiceError; retries are the channel's own, bounded."""


class _OncePerRun:
    """The default `once` cache when none is wired: asks every time (tests that build Ports by hand)."""

    def get(self, key, fetch):
        return fetch()


@dataclass
class Ports:
    """The adapters of one run, shared by all instances (one credential, one token per resource)."""

    apps: AppSettings
    vaults: SecretStores
    devops: TokenService
    listings: Listings
    ledger: StateStore
    channels: list[Channel] = field(default_factory=list)
    credential: object = None       # azure.core TokenCredential: for the fan-out queue client
    rules: object = None            # adapters.devops_rules.DevOpsRules: hooks and permissions
    pats: object = None             # adapters.pats.PatLifecycle: `auto` rotation's PAT creation and revocation
    signins: dict = field(default_factory=dict)   # `auto` rotation: each sign-in used once per run
    once: Listings = field(default_factory=lambda: _OncePerRun())   # answers shared by every instance of a run
    close_session: Callable[[], None] = lambda: None
    started: float = field(default_factory=time.monotonic)
    records: RecordBook = None      # what the watchdog verified itself, per instance (read once per run)

    def __post_init__(self) -> None:
        if self.records is None:
            self.records = RecordBook(self.ledger)

    def elapsed(self) -> timedelta:
        """Time since the run began: `now` is the run's start, a lock must carry the time it is taken."""
        return timedelta(seconds=time.monotonic() - self.started)

    def close(self) -> None:
        self.apps.close()
        self.vaults.close()
        self.close_session()

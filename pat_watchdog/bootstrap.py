"""The composition root: the real adapters of one run, sharing one credential and one HTTP session."""

from __future__ import annotations

import logging

from azure.core.credentials import TokenCredential

from pat_watchdog.adapters.arm import AggregatorApps
from pat_watchdog.adapters.devops import DevOps, ListingCache
from pat_watchdog.adapters.devops_rules import DevOpsRules
from pat_watchdog.adapters.email import AcsChannel, SmtpChannel
from pat_watchdog.adapters.keyvault import Vaults
from pat_watchdog.adapters.pats import PatLifecycle
from pat_watchdog.adapters.retry import RetryPolicy, new_session
from pat_watchdog.adapters.state_table import open_ledger
from pat_watchdog.adapters.teams import TeamsChannel
from pat_watchdog.core.errors import ConfigError, ServiceError
from pat_watchdog.core.settings import Settings, Unresolved
from pat_watchdog.ports import Channel, Ports, StateStore
from pat_watchdog.records import RecordBook

log = logging.getLogger(__name__)


def default_credential() -> TokenCredential:
    """Managed identity in Azure (AZURE_CLIENT_ID picks a user-assigned one), Azure CLI on a laptop."""
    from azure.identity import DefaultAzureCredential
    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def open_ports(settings: Settings, credential: TokenCredential | None = None,
               retry: RetryPolicy | None = None, ledger: StateStore | None = None) -> Ports:
    """Every adapter of one run."""
    retry = retry or RetryPolicy()
    owned: list = []            # what this run opened, it closes; what the caller gave stays open
    if credential is None:
        credential = default_credential()
        owned.append(credential)
    try:
        if ledger is None:
            ledger = open_ledger(settings, credential, retry)
            owned.append(ledger)
    except ValueError as error:  # the storage SDK refused what the settings' own check let through
        raise ConfigError([f"AzureWebJobsStorage: the storage client cannot use it ({type(error).__name__}): "
                           "expected a storage connection string or AzureWebJobsStorage__accountName"]) from None
    session = new_session(settings.concurrency)
    pool = max(10, settings.concurrency)    # azure-core's own pool holds 10
    return Ports(apps=AggregatorApps(credential, settings.arm_endpoint, retry, pool_size=pool,
                                      named=settings.targets),
                 vaults=Vaults(credential, retry, pool),
                 devops=DevOps(session, settings.devops_org_url, settings.vssps_url, retry),
                 listings=ListingCache(),
                 ledger=ledger,
                 channels=open_channels(settings, session, credential, retry),
                 credential=credential, close_session=lambda: _close(session, *owned),
                 rules=DevOpsRules(session, settings.devops_org_url, retry), once=ListingCache(),
                 pats=PatLifecycle(session, settings.devops_org_url, settings.vssps_url, retry),
                 records=RecordBook(ledger, tuple(t.key for t in settings.targets)
                                    if all(t.is_site for t in settings.targets) else None))


def _close(*resources) -> None:
    """Close the run's HTTP session, and the ledger and credential when the run opened them (a warm
    Functions worker runs many times: left open, their connections pile up)."""
    for resource in resources:
        close = getattr(resource, "close", None)
        if close is not None:
            try:
                close()
            except Exception as error:  # noqa: BLE001 - closing must never fail a finished run
                log.debug("closing %s: %s", type(resource).__name__, error)


class UnresolvedChannel:
    """A channel whose secret setting holds an unresolved Key Vault reference: every send fails, naming
    the setting (the reference text is not sent anywhere as a URL or a password)."""

    def __init__(self, unresolved: Unresolved) -> None:
        self.name, self.setting, self.reference = unresolved.channel, unresolved.setting, unresolved.reference

    def send(self, alert) -> None:
        raise ServiceError("App Service", f"{self.setting} is an unresolved Key Vault reference (its text came "
                           "instead of the secret): nothing can be sent on this channel until it resolves")


def open_channels(settings: Settings, session, credential, retry: RetryPolicy) -> list[Channel]:
    """Teams and email, as configured; each isolated from the others."""
    channels: list[Channel] = []
    broken = {u.channel: UnresolvedChannel(u) for u in settings.unresolved_channels()}
    if "teams" in broken:
        channels.append(broken["teams"])
    elif settings.teams_webhook_url:
        channels.append(TeamsChannel(settings.teams_webhook_url, session, retry))
    if settings.email_to and settings.acs_endpoint:
        channels.append(AcsChannel(settings, credential, retry))
    elif settings.email_to:
        channels.append(broken.get("email") or SmtpChannel(settings, retry))
    return channels

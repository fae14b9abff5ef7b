"""One run: observe every instance, decide, act, report (README, "What it does")."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime

from azure.core.credentials import TokenCredential

from pat_watchdog import aggregator, report
from pat_watchdog import reasons as R
from pat_watchdog.act import DRY_RUN, ROTATE, RUN, STATUS, act  # noqa: F401 (the modes, for callers)
from pat_watchdog.act import WRITES as _WRITES
from pat_watchdog.aggregator import AggregatorApps
from pat_watchdog.errors import ServiceError
from pat_watchdog.http import RetryPolicy, new_session
from pat_watchdog.ledger import open_ledger
from pat_watchdog.notify.dispatch import Outbox
from pat_watchdog.notify.email import AcsChannel, SmtpChannel
from pat_watchdog.notify.teams import TeamsChannel
from pat_watchdog.model import Action, InstancePlan, InstanceSnapshot, Note
from pat_watchdog.observe import Observed, Ports, observe
from pat_watchdog.policy import Policy, decide
from pat_watchdog.resource_ids import ResourceId
from pat_watchdog.settings import Settings
from pat_watchdog.vault import Vaults

log = logging.getLogger(__name__)


def default_credential() -> TokenCredential:
    """Managed identity in Azure (AZURE_CLIENT_ID picks a user-assigned one), Azure CLI on a laptop."""
    from azure.identity import DefaultAzureCredential
    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def open_ports(settings: Settings, credential: TokenCredential | None = None,
               retry: RetryPolicy | None = None, ledger=None) -> Ports:
    """The composition root: every adapter of one run, sharing one credential."""
    retry = retry or RetryPolicy()
    credential = credential or default_credential()
    session = new_session(settings.concurrency)
    return Ports(AggregatorApps(credential, settings.arm_endpoint, retry), Vaults(credential, retry),
                 session, retry, ledger=ledger or open_ledger(settings, credential, retry),
                 channels=open_channels(settings, session, credential, retry), credential=credential)


def open_channels(settings: Settings, session, credential, retry: RetryPolicy) -> list:
    """Teams and email, as configured; each isolated from the others."""
    channels = []
    if settings.teams_webhook_url:
        channels.append(TeamsChannel(settings.teams_webhook_url, session, retry))
    if settings.email_to and settings.acs_endpoint:
        channels.append(AcsChannel(settings, credential, retry))
    elif settings.email_to:
        channels.append(SmtpChannel(settings, retry))
    return channels


@dataclass(frozen=True)
class RunResult:
    report: dict
    plans: tuple[InstancePlan, ...]

    @property
    def failed_actions(self) -> int:
        return sum(1 for p in self.plans for a in p.actions if a.outcome == "failed")


def _outbox(ports: Ports, settings: Settings, mode: str) -> Outbox:
    """Read the ledger once per run; when it cannot be read, alerts go out anyway."""
    outbox = Outbox(ports.channels, ports.ledger, None, settings.repeat_hours, send=mode in _WRITES)
    try:
        outbox.active = ports.ledger.active()
    except ServiceError as error:
        outbox.problems.append(f"alert ledger unreachable, alerts sent without deduplication: {error}")
    return outbox


def resolve_targets(settings: Settings, ports: Ports) -> tuple[list[ResourceId], list[str]]:
    """Sites named directly plus those discovered in subscriptions and groups; duplicates once."""
    found: dict[str, ResourceId] = {}
    errors: list[str] = []
    for target in settings.targets:
        try:
            sites = [target] if target.is_site else aggregator.discover(ports.apps, target)
        except ServiceError as error:
            errors.append(f"discovery in {target} failed: {error}")
            continue
        for site in sites:
            found.setdefault(site.key, site)
    return list(found.values()), errors


def run_once(settings: Settings, mode: str, now: datetime, *, ports: Ports | None = None,
             credential: TokenCredential | None = None, retry: RetryPolicy | None = None,
             force: bool = False, ledger=None) -> RunResult:
    """Observe, decide and (unless `status` or `dry-run`) act; never raises for one instance."""
    own = ports is None
    ports = ports or open_ports(settings, credential, retry, ledger)
    try:
        targets, errors = resolve_targets(settings, ports)
        observed = _observe_all(targets, settings, ports, now, write=mode in _WRITES)
        plans = [decide(o.snapshot, Policy.from_settings(settings, o.app.site), now, force_rotation=force)
                 for o in observed]
        outbox = _outbox(ports, settings, mode)
        plans = [_act_safely(plan, obs, settings, ports, mode, outbox, now)
                 for plan, obs in zip(plans, observed, strict=True)]
        result = RunResult(report.build(plans, now, command=mode, errors=errors, problems=outbox.problems),
                           tuple(plans))
        _record(result, ports, mode)
    finally:
        if own:
            ports.close()
    for plan in plans:
        # A log record per instance; Application Insights keeps custom_dimensions, and the
        # message itself parses in Kusto (README "Monitoring").
        log.info("pat_days_left instance=%s days_left=%s status=%s", plan.name, plan.token.days_left,
                 plan.status.value, extra={"custom_dimensions": {
                     "instance": plan.name, "app": plan.app_id, "status": plan.status.value,
                     "pat_days_left": plan.token.days_left, "fingerprint": plan.token.fingerprint}})
    return result


def _act_safely(plan: InstancePlan, obs: Observed, settings, ports, mode, outbox, now) -> InstancePlan:
    """One instance's unexpected error is reported as a failed action; the others still act."""
    try:
        return act(plan, obs, settings, ports, mode, outbox, now)
    except Exception as error:  # noqa: BLE001 - isolation is the point
        log.exception("acting on %s failed", plan.name)
        failure = Action("error", None, "CRITICAL", "failed", f"unexpected {type(error).__name__}: {error}")
        return replace(plan, actions=plan.actions + (failure,))


def _record(result: RunResult, ports: Ports, mode: str) -> None:
    """Run history for `run`/`rotate`; `status` shows the last one and writes nothing."""
    if mode in _WRITES:
        result.report["outcome"] = "failed" if result.failed_actions else "ok"
        try:
            ports.ledger.add_run(result.report)
        except ServiceError as error:
            result.report["errors"].append(f"run history not written: {error}")
        return
    try:
        last = ports.ledger.last_run()
    except ServiceError as error:
        result.report["errors"].append(f"run history unreadable: {error}")
        return
    result.report["last_run"] = last and {k: last.get(k) for k in ("generated_at", "command", "status", "outcome")}


def _observe_all(targets, settings, ports, now, *, write) -> list[Observed]:
    def one(app: ResourceId) -> Observed:
        try:
            return observe(app, settings, ports, now, write=write)
        except Exception as error:  # one instance must never fail the others
            log.exception("observing %s failed", app.site)
            note = Note(R.ARM_UNREACHABLE.name, f"unexpected {type(error).__name__} while observing: {error}")
            return Observed(InstanceSnapshot(str(app), app.site, unreachable=note), app)

    with ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="observe") as pool:
        return list(pool.map(one, targets))

"""One run: observe every instance, decide, act, report (DESIGN section 2)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime

from azure.core.credentials import TokenCredential

from pat_watchdog import aggregator, report
from pat_watchdog.aggregator import AggregatorApps
from pat_watchdog.errors import ServiceError
from pat_watchdog.http import RetryPolicy, new_session
from pat_watchdog.model import Action, InstancePlan, InstanceSnapshot, Note
from pat_watchdog.observe import Observed, Ports, observe
from pat_watchdog.policy import Policy, decide
from pat_watchdog.resource_ids import ResourceId
from pat_watchdog.settings import Settings
from pat_watchdog.vault import STATUS_TAG, Vaults

log = logging.getLogger(__name__)

STATUS, RUN, DRY_RUN, ROTATE = "status", "run", "dry-run", "rotate"
_WRITES = (RUN, ROTATE)


def default_credential() -> TokenCredential:
    """Managed identity in Azure (AZURE_CLIENT_ID picks a user-assigned one), Azure CLI on a laptop."""
    from azure.identity import DefaultAzureCredential
    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def open_ports(settings: Settings, credential: TokenCredential | None = None,
               retry: RetryPolicy | None = None) -> Ports:
    """The composition root: every adapter of one run, sharing one credential."""
    retry = retry or RetryPolicy()
    credential = credential or default_credential()
    return Ports(AggregatorApps(credential, settings.arm_endpoint, retry), Vaults(credential, retry),
                 new_session(settings.concurrency), retry)


@dataclass(frozen=True)
class RunResult:
    report: dict
    plans: tuple[InstancePlan, ...]

    @property
    def failed_actions(self) -> int:
        return sum(1 for p in self.plans for a in p.actions if a.outcome == "failed")


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
             force: bool = False) -> RunResult:
    """Observe, decide and (unless `status` or `dry-run`) act; never raises for one instance."""
    own = ports is None
    ports = ports or open_ports(settings, credential, retry)
    try:
        targets, errors = resolve_targets(settings, ports)
        observed = _observe_all(targets, settings, ports, now, write=mode in _WRITES)
        plans = [decide(o.snapshot, Policy.from_settings(settings, o.app.site), now, force_rotation=force)
                 for o in observed]
        plans = [_act(plan, obs, settings, ports, mode) for plan, obs in zip(plans, observed)]
    finally:
        if own:
            ports.close()
    for plan in plans:
        log.info("pat_days_left", extra={"custom_dimensions": {
            "instance": plan.name, "app": plan.app_id, "status": plan.status.value,
            "pat_days_left": plan.token.days_left, "fingerprint": plan.token.fingerprint}})
    return RunResult(report.build(plans, now, command=mode, errors=errors), tuple(plans))


def _observe_all(targets, settings, ports, now, *, write) -> list[Observed]:
    def one(app: ResourceId) -> Observed:
        try:
            return observe(app, settings, ports, now, write=write)
        except Exception as error:  # one instance must never fail the others
            log.exception("observing %s failed", app.site)
            note = Note("ARM_UNREACHABLE", f"unexpected {type(error).__name__} while observing: {error}")
            return Observed(InstanceSnapshot(str(app), app.site, unreachable=note), app)

    with ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="observe") as pool:
        return list(pool.map(one, targets))


def _channels(settings: Settings) -> list[str]:
    return [name for name, on in (("teams", settings.teams_webhook_url), ("email", settings.email_to)) if on]


def _act(plan: InstancePlan, obs: Observed, settings: Settings, ports: Ports, mode: str) -> InstancePlan:
    actions = [Action("alert", channel, r.level, "planned", r.message, r.condition)
               for r in plan.reasons if r.condition and r.level in ("WARNING", "CRITICAL")
               for channel in _channels(settings)]
    candidate = plan.candidate
    if plan.adopt:
        actions.append(_adopt(plan, obs, settings, ports, mode))
        if actions[-1].outcome == "done":
            candidate = replace(candidate, state="current")
    if plan.rotate:
        actions.append(Action("rotate", None, "INFO", "planned", plan.rotate_why or "rotation due"))
    return replace(plan, actions=tuple(actions), candidate=candidate)


def _adopt(plan: InstancePlan, obs: Observed, settings: Settings, ports: Ports, mode: str) -> Action:
    version = next(v for v in obs.staged if v.version == plan.candidate.version)
    detail = f"staged version {version.version} equals the current token: tagged {STATUS_TAG}=current"
    if mode not in _WRITES:
        return Action("rotate", None, "INFO", "planned", detail)
    try:
        ports.vaults.get(settings.key_vault_url).set_tags(version, {STATUS_TAG: "current"})
    except ServiceError as error:
        return Action("rotate", None, "WARNING", "failed", f"adopting {version.version}: {error}")
    return Action("rotate", None, "INFO", "done", detail)

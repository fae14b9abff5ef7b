"""One run: observe every instance, decide, act, report (README, "What it does")."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Iterator

from pat_watchdog.act import act
from pat_watchdog.adapters import arm, deadlines
from pat_watchdog.adapters.retry import RetryPolicy
from pat_watchdog.bootstrap import open_ports
from pat_watchdog.core import reasons as R
from pat_watchdog.core import report
from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.model import (Action, ActionKind, ActionOutcome, CandidateState, InstancePlan,
                                     InstanceSnapshot, Mode, Note)
from pat_watchdog.core.policy import Policy, decide
from pat_watchdog.core.resource_ids import ResourceId
from pat_watchdog.core.settings import Settings
from pat_watchdog.dispatch import Outbox, dispatch
from pat_watchdog.observe import Observed, observe
from pat_watchdog.ports import Ports

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    report: dict
    plans: tuple[InstancePlan, ...]
    channels: int = 0               # alert channels configured: 0 means nobody hears of a failure

    @property
    def failed_actions(self) -> int:
        return sum(1 for p in self.plans for a in p.actions if a.outcome == ActionOutcome.FAILED)


def _outbox(ports: Ports, settings: Settings, mode: Mode) -> Outbox:
    """Read the ledger once per run; when it cannot be read, alerts go out anyway."""
    outbox = Outbox(ports.channels, ports.ledger, None, settings.repeat_hours, send=mode.writes)
    try:
        outbox.active = ports.ledger.active()
    except ServiceError as error:
        outbox.problems.append(f"alert ledger unreachable, alerts sent without deduplication: {error}")
    return outbox


def resolve_targets(settings: Settings, ports: Ports) -> tuple[list[ResourceId], list[str]]:
    """Sites named directly plus those discovered in subscriptions and groups; duplicates once."""
    errors: list[str] = []
    return list(iter_targets(settings, ports, errors)), errors


def iter_targets(settings: Settings, ports: Ports, errors: list[str]) -> Iterator[ResourceId]:
    """The targets as ARM's listing pages arrive, so a run observes the first page's instances while
    the next is fetched; duplicates once. A failed discovery is added to `errors` (what it found
    before failing is still watched)."""
    seen: set[str] = set()
    for target in settings.targets:
        try:
            for page in ([target],) if target.is_site else arm.discover_pages(ports.apps, target):
                for site in page:
                    if site.key not in seen:
                        seen.add(site.key)
                        yield site
        except ServiceError as error:
            errors.append(f"discovery in {target} failed: {error}")
        except Exception as error:  # noqa: BLE001 - an answer nobody foresaw fails its discovery, not the run
            log.exception("discovery in %s failed", target)
            errors.append(f"discovery in {target} failed: unexpected {type(error).__name__}")


def run_once(settings: Settings, mode: Mode, now: datetime, *, ports: Ports | None = None,
             credential=None, retry: RetryPolicy | None = None,
             force: bool = False, ledger=None, local_lock: bool = False, progress=None) -> RunResult:
    """Observe, decide and (unless `status` or `dry-run`) act; never raises for one instance. `progress`
    (progress.Progress) counts the instances found and observed."""
    own = ports is None
    ports = ports or open_ports(settings, credential, retry, ledger)
    limits = retry or RetryPolicy()
    try:
        errors: list[str] = []
        # Observing (discovery included) ends `acting` seconds before the run's end: the rest of the run
        # acts and alerts on what was observed (docs/reference.md, "Answers and deadlines").
        observing = limits.run - (limits.acting if mode.writes else 0) - (time.monotonic() - ports.started)
        with deadlines.within(observing, f"the run's {limits.run:g} s (host.json functionTimeout, less "
                              f"{limits.acting if mode.writes else 0:g} s kept for acting)") as deadline:
            observed = _observe_all(iter_targets(settings, ports, errors), settings, ports, now,
                                    write=mode.writes, limits=limits, deadline=deadline, progress=progress)
        _refuse_shared_references(observed)
        plans = [decide(o.snapshot, Policy.from_settings(settings, o.app.site), now, force_rotation=force)
                 for o in observed]
        outbox = _outbox(ports, settings, mode)
        late = ports.started + limits.run   # past it, an instance gets its alerts only
        plans = [_act_safely(plan, obs, settings, ports, mode, outbox, now, local_lock, late=late)
                 for plan, obs in zip(plans, observed, strict=True)]
        del observed    # every instance's settings and staged versions: the report needs only the plans
        result = RunResult(report.build(plans, now, command=mode, errors=errors, problems=outbox.problems),
                           tuple(plans), len(ports.channels))
        _record(result, ports, mode)
    finally:
        if own:
            ports.close()
    for plan in plans:
        # A log record per instance; Application Insights keeps custom_dimensions, and the
        # message itself parses in Kusto (docs/reference.md, "Monitoring").
        log.info("pat_days_left instance=%s days_left=%s status=%s", plan.name, plan.token.days_left,
                 plan.status.value, extra={"custom_dimensions": {
                     "instance": plan.name, "app": plan.app_id, "status": plan.status.value,
                     "pat_days_left": plan.token.days_left, "fingerprint": plan.token.fingerprint}})
    return result


def _act_safely(plan: InstancePlan, obs: Observed, settings, ports, mode, outbox, now, local_lock, *,
                late: float = float("inf")) -> InstancePlan:
    """One instance's unexpected error is reported as a failed action; the others still act. Past the
    run's deadline (`late`, monotonic) an instance gets its alerts and nothing else, so the run ends
    before the Functions host stops it."""
    if time.monotonic() >= late:
        return _alerts_only(plan, settings, outbox, now)
    try:
        acted = act(plan, obs, settings, ports, mode, outbox, now, local_lock=local_lock)
        internal = [r for r in plan.reasons if r.code == R.INTERNAL_ERROR.name]
        if internal and mode.writes:   # the run fails, so the failed-run monitor sees it
            acted = replace(acted, actions=acted.actions + (Action(ActionKind.ERROR, None, "WARNING",
                                                                   ActionOutcome.FAILED, internal[0].message),))
        return acted
    except Exception as error:  # noqa: BLE001 - isolation is the point
        log.exception("acting on %s failed", plan.name)
        failure = Action(ActionKind.ERROR, None, "CRITICAL", ActionOutcome.FAILED,
                         f"unexpected {type(error).__name__}: {error}")
        return replace(plan, actions=plan.actions + (failure,))


def _alerts_only(plan: InstancePlan, settings, outbox, now) -> InstancePlan:
    actions = dispatch(plan, settings, outbox, now)
    if plan.rotate or plan.adopt or plan.candidate.state == CandidateState.APPLYING:
        actions.append(Action.rotation(ActionOutcome.SKIPPED, "INFO", "not done: the run passed its deadline "
                                       "before this instance's turn to act; the next run does it"))
    return replace(plan, actions=plan.actions + tuple(actions))


def _refuse_shared_references(observed: list[Observed]) -> None:
    """Instances that would share a secret: two apps of one site name ({name} secrets), or two token settings
    naming one secret. A rotation of either would write the other's token (docs/reference.md, "What the
    watchdog trusts"): all are REFERENCE_NOT_ALLOWED, nothing is rotated or written."""
    by_name: dict[str, list[Observed]] = {}
    by_secret: dict[tuple[str, str], list[Observed]] = {}
    for obs in observed:
        by_name.setdefault(obs.app.site.lower(), []).append(obs)
        if obs.reference is not None and not obs.snapshot.unreachable:
            by_secret.setdefault((obs.reference.vault_url.rstrip("/").lower(), obs.reference.secret_name.lower()),
                                 []).append(obs)
    for sharing in by_name.values():
        where = ", ".join(sorted(o.app.resource_group or "?" for o in sharing))
        _refuse(sharing, f"{len(sharing)} watched apps are named {sharing[0].app.site} (in {where}): their {{name}} "
                "secrets would be one and the same, so a replacement staged for one could be rotated into the "
                "other. Watch them with separate watchdogs, or rename one")
    for (vault, secret), sharing in by_secret.items():
        _refuse(sharing, f"the token settings of {', '.join(sorted(o.app.site for o in sharing))} all point at the "
                f"secret {secret} of {vault}: a rotation of one would write the others' token. Give each instance "
                "a secret of its own")


def _refuse(sharing: list[Observed], why: str) -> None:
    if len(sharing) < 2:
        return
    for obs in sharing:
        obs.current = None
        obs.snapshot = replace(obs.snapshot, unreachable=Note(R.REFERENCE_NOT_ALLOWED.name,
                                                              f"{why}; nothing is rotated or written"))


def _record(result: RunResult, ports: Ports, mode: Mode) -> None:
    """Run history for `run`/`rotate`; `status` shows the last one and writes nothing."""
    if mode.writes:
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


def _observe_all(targets: Iterator[ResourceId], settings, ports, now, *, write, limits: RetryPolicy,
                 deadline: deadlines.Deadline, progress=None) -> list[Observed]:
    """Every target, `settings.concurrency` at a time, in the order they come (the pool starts on the
    first while the rest are still being listed). Each observation ends within `limits.instance` and
    before the run's `deadline`; one begun too late is not observed (DEADLINE_EXCEEDED)."""
    def one(app: ResourceId) -> Observed:
        if deadline.left() <= 0:
            note = Note(R.DEADLINE_EXCEEDED.name, f"not observed: {deadline.what} had passed before its turn")
            return Observed(InstanceSnapshot(str(app), app.site, unreachable=note), app)
        bound = (deadline.left(), deadline.what) if deadline.left() < limits.instance else \
            (limits.instance, f"one instance's {limits.instance:g} s")
        with deadlines.within(*bound) as mine:    # a thread of its own: the run's deadline is not inherited
            try:
                found = observe(app, settings, ports, now, write=write)
            except Exception as error:  # one instance must never fail the others
                log.exception("observing %s failed", app.site)
                note = Note(R.INTERNAL_ERROR.name, f"unexpected {type(error).__name__} while observing")
                found = Observed(InstanceSnapshot(str(app), app.site, unreachable=note), app)
        return _overran(found, mine) if mine.passed or mine.left() <= 0 else found

    if progress is not None:
        one, targets = progress.tallied(one), progress.counted(targets)
    with ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="observe") as pool:
        return list(pool.map(one, targets))


def _overran(found: Observed, mine: deadlines.Deadline) -> Observed:
    """An observation cut by its deadline: UNKNOWN DEADLINE_EXCEEDED, with everything it did learn."""
    what = (f"the check of this instance stopped at {mine.what}: what was known by then is reported, the rest "
            "waits for the next run")
    snap = found.snapshot
    if snap.unreachable:
        cut = Note(R.DEADLINE_EXCEEDED.name, f"{what} ({snap.unreachable.message})")
        found.snapshot = replace(snap, unreachable=cut)
    else:
        found.snapshot = replace(snap, notes=snap.notes + (Note(R.DEADLINE_EXCEEDED.name, what),))
    return found

"""Act on one instance's plan: finish or undo an interrupted rotation, adopt, rotate, alert."""

from __future__ import annotations

import logging
import math

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from pat_watchdog.core import alerts as A
from pat_watchdog.core import drift
from pat_watchdog.core import handsfree as H
from pat_watchdog.core.candidates import revived, scopes_tag
from pat_watchdog.core import reasons as R
from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.model import (Action, ActionKind, ActionOutcome, CandidateState, CandidateView, InstancePlan,
                                     Mode,
                                     Liveness, Note, RotationState)
from pat_watchdog.dispatch import Outbox, dispatch
from pat_watchdog.observe import Observed, Ports, observe
from pat_watchdog.core.policy import Policy, decide, rotation_opens
from pat_watchdog.core.timer import next_run
from pat_watchdog.handsfree import HandsFree
from pat_watchdog.hooks import observe_hooks, reenable
from pat_watchdog.rotation import Outcome, Rotation
from pat_watchdog.core.settings import Settings
from pat_watchdog.core.record import CreatedState
from pat_watchdog.core.tags import REASON_TAG, ROTATED_TAG, STATUS_TAG, TagLimitError, has_room, tag_time
from pat_watchdog.core.times import format_utc

log = logging.getLogger(__name__)
# Longer than a rotation can take (about 11 outside calls, each bounded to 60 s of retries);
# a dead run's lock expires after it.
LEASE = timedelta(minutes=15)
RECENT = timedelta(days=7)          # a "rotated" notice missed by a dead run is still sent this long


@dataclass
class _Acting:
    """One instance's plan and actions while its steps run: whatever a step raises, what came before stands."""

    plan: InstancePlan
    actions: list[Action] = field(default_factory=list)
    outcome: Outcome | None = None
    reenabled: int = 0


def act(plan: InstancePlan, obs: Observed, settings: Settings, ports: Ports, mode: Mode,
        outbox: Outbox, now: datetime, *, local_lock: bool = False) -> InstancePlan:
    """Carry out the plan; the returned plan is re-decided when a rotation changed the state. Every alert
    of the plan is sent whatever any step does (an unexpected error included: it is a failed action).

    `local_lock`: rotate even when the lock is only in this process (no state table configured).
    """
    acting = _Acting(plan)
    extra: list[A.Alert] = []
    try:
        _steps(acting, obs, settings, ports, mode, now, local_lock)
    except Exception as error:  # noqa: BLE001 - the alerts below go out whatever a step did
        _unexpected(acting, error)
    try:
        extra = _rotated_notice(acting.plan, obs, acting.outcome, now, acting.reenabled) + _drift_notice(acting.plan)
    except Exception as error:  # noqa: BLE001 - the plan's own alerts still go out
        _unexpected(acting, error)
    # The "rotated" notice also resolves what the rotation fixed: no separate "resolved" mails.
    sent = dispatch(acting.plan, settings, outbox, now, extra=extra)
    return replace(acting.plan, actions=tuple(sent + acting.actions))


def _unexpected(acting: _Acting, error: Exception) -> None:
    log.exception("acting on %s failed", acting.plan.name)
    acting.actions.append(Action(ActionKind.ERROR, None, "CRITICAL", ActionOutcome.FAILED,
                                 f"unexpected {type(error).__name__} while acting on this instance; the alerts "
                                 "of its plan were still sent"))


def _steps(acting: _Acting, obs: Observed, settings: Settings, ports: Ports, mode: Mode, now: datetime,
           local_lock: bool) -> None:
    lock_ok = local_lock or ports.ledger.shared
    actions = acting.actions
    outcome: Outcome | None = None
    plan = acting.plan
    if not (plan.rotate or plan.adopt):
        plan = acting.plan = _revive(plan, obs, settings, now)
    cand = plan.candidate
    hands_free = HandsFree(plan, obs, settings, ports, now) if settings.auto and not obs.snapshot.unreachable \
        else None
    creating: str | None = None
    if cand.state == CandidateState.APPLYING:
        outcome = _locked(plan, obs, settings, ports, mode, now, actions, "finish the interrupted rotation",
                          lambda rot: rot.reconcile(cand.version), lock_ok)
    elif plan.adopt:
        actions.append(_adopt(plan, obs, settings, ports, mode))
        if actions[-1].outcome == ActionOutcome.DONE:
            plan = acting.plan = replace(plan, candidate=replace(cand, state=CandidateState.CURRENT))
    elif plan.rotate:
        outcome = _locked(plan, obs, settings, ports, mode, now, actions, plan.rotate_why or "rotation due",
                          lambda rot: rot.run(cand.version), lock_ok)
    elif hands_free and (creating := H.creation_due(plan, settings.rotate_within_days)):
        outcome = _create(hands_free, plan, obs, settings, ports, mode, now, actions, creating, lock_ok)
    elif mode == Mode.ROTATE:
        actions.append(_not_rotating(plan, settings, now))
    acting.outcome = outcome
    if outcome is not None:
        plan = acting.plan = _redecide(plan, obs, outcome, settings, now)
        _record_outcome(obs, outcome, ports, mode, now)
    if hands_free:
        try:
            plan = acting.plan = hands_free.after(plan, mode, created=bool(creating))
        finally:    # what was created (or revoked) before it was rotated in
            actions[:0] = hands_free.actions
    plan, reenabled = _reenable(plan, obs, settings, ports, mode, outcome, now)
    acting.plan = plan
    actions += reenabled
    acting.reenabled = sum(1 for a in reenabled if a.outcome == ActionOutcome.DONE)
    if mode.writes and plan.token.fingerprint and not obs.snapshot.unreachable:
        _remember(obs, plan, ports)
    actions += _correct_expiry(plan, obs, settings, ports, mode)


def _locked(plan, obs, settings, ports, mode, now, actions, why: str, step, lock_ok: bool) -> Outcome | None:
    """Run `step` under the instance's rotation lock (the timer and a person's `rotate` at once)."""
    if not mode.writes:
        actions.append(Action.rotation(ActionOutcome.PLANNED, "INFO", why))
        return None
    if not lock_ok:  # a laptop without the Function's state table could race the timer: two PUTs
        actions.append(Action.rotation(ActionOutcome.FAILED, "WARNING", f"{why}, but not rotated: no shared "
                                       "rotation lock. Set AzureWebJobsStorage__accountName to the Function's "
                                       "storage account (docs/deploy.md), or pass --local-lock when no other run "
                                       "can rotate this instance"))
        return None
    key, owner = f"rotation~{plan.name}", uuid.uuid4().hex   # one owner per attempt, even in one process
    try:
        fence = ports.ledger.acquire(key, owner, now + ports.elapsed(), LEASE)
        if not fence:
            actions.append(Action.rotation(ActionOutcome.SKIPPED, "INFO", "another run is rotating this instance "
                                           "now (it holds the rotation lock); its outcome shows in the next run"))
            return None
    except ServiceError as error:
        actions.append(Action.rotation(ActionOutcome.FAILED, "WARNING", f"rotation lock unavailable, nothing "
                              f"changed: {error}"))
        return None
    try:
        fresh = observe(obs.app, settings, ports, now, write=False)  # under the lock: the state now
        if fresh.snapshot.unreachable or fresh.snapshot.live.state is Liveness.UNKNOWN or \
                any(n.code == R.KEYVAULT_UNAVAILABLE.name for n in fresh.snapshot.notes):
            actions.append(Action.rotation(ActionOutcome.FAILED, "WARNING", "the state could not be read again under "
                                  "the rotation lock; nothing changed, the next run retries"))
            return None
        if _changed(obs, fresh):
            actions.append(Action.rotation(ActionOutcome.SKIPPED, "INFO", "another run changed the staged version or "
                                  "the token meanwhile; nothing done"))
            return None
        outcome = step(Rotation(fresh, settings, ports, now, create_setting=plan.create_setting,
                                lock=(key, owner, fence), forced=plan.forced))
    finally:
        ports.ledger.release(key, owner)
    obs.snapshot, obs.staged, obs.current = fresh.snapshot, fresh.staged, fresh.current
    obs.digests, obs.record = fresh.digests, ports.records.get(obs.app.key)
    if outcome is not None:     # None: a step that decided not to rotate says why in its own actions
        actions.append(_rotation_action(outcome))
    return outcome


def _create(hands_free: HandsFree, plan, obs, settings, ports, mode, now, actions, why: str, lock_ok) -> Outcome | None:
    """`auto` rotation with nothing usable staged: create, stage and rotate under the lock (docs/reference.md,
    "Hands-free rotation")."""
    if not mode.writes:
        hands_free.check_presence()
        actions.append(Action(ActionKind.CREATE, None, "INFO", ActionOutcome.PLANNED,
                              f"create a replacement PAT and rotate it in: {why}"))
        return None
    return _locked(plan, obs, settings, ports, mode, now, actions, f"create a replacement: {why}",
                   lambda rot: hands_free.create_then_rotate(rot, why), lock_ok)


def _revive(plan: InstancePlan, obs: Observed, settings: Settings, now: datetime) -> InstancePlan:
    """The token in place is dead and the newest staged version was kept out only against it (or was in
    place before): plan its rotation again; it is validated like any candidate (core/candidates.revived)."""
    found = revived(obs.snapshot, obs.record.placed[0] if obs.record.placed else None)
    if found is None or not any(v.version == found[0].version and v.enabled for v in obs.staged):
        return plan          # a disabled version cannot even be read: a person took it out
    view, why = found
    again = decide(replace(obs.snapshot, candidate=view), Policy.from_settings(settings, obs.app.site), now)
    return replace(again, rotate_why=f"{again.rotate_why}; {why}") if again.rotate else plan


def _drift_notice(plan: InstancePlan) -> list[A.Alert]:
    """TOKEN_SETTING_CHANGED is told once, as an event: the next run remembers the new state."""
    return [A.event(plan, reason, f"{reason.code}:{plan.token.fingerprint}")
            for reason in plan.reasons if reason.code == R.TOKEN_SETTING_CHANGED.name]


def _remember(obs: Observed, plan: InstancePlan, ports: Ports) -> None:
    """The record of what this run verified (the state table; nothing goes to Key Vault)."""
    form = drift.form_of(obs.snapshot.key_vault_reference)
    digest = obs.snapshot.token_digest
    obs.record = ports.records.update(obs.app.key, lambda r: r.seen_setting(plan.token.fingerprint, form, digest))
    try:
        ports.records.write(obs.app.key)
    except ServiceError as error:
        log.warning("what this run verified of %s is not recorded: %s", plan.name, error)


def _record_outcome(obs: Observed, outcome: Outcome, ports: Ports, mode: Mode, now: datetime) -> None:
    """A rotation's end in the record: the version put in place, and a created PAT's fate."""
    if not mode.writes or outcome.version is None:
        return
    digest = outcome.digest or obs.digests.get(outcome.version)
    if digest is None:
        return

    def change(record):
        if outcome.state in (RotationState.CURRENT, RotationState.FAILED, RotationState.REJECTED,
                             RotationState.STOPPED) and record.applying == outcome.version:
            record = replace(record, applying=None)        # the rotation it names has ended
        if outcome.state == RotationState.CURRENT:
            return record.put_in_place(outcome.version, digest, now)
        made = record.created_pat(digest=digest)
        placed = record.placed is not None and record.placed[1] == digest
        if outcome.state in (RotationState.REJECTED, RotationState.FAILED) and made is not None \
                and made.state not in (CreatedState.CURRENT, CreatedState.REPLACED) and not placed:
            return record.update_created(made.display_name, state=CreatedState.UNUSED)   # never held by Aggregator
        return record
    obs.record = ports.records.update(obs.app.key, change)
    try:
        ports.records.write(obs.app.key)
    except ServiceError as error:
        log.warning("the rotation of %s is not recorded: %s", obs.app.site, error)


def _correct_expiry(plan: InstancePlan, obs: Observed, settings: Settings, ports: Ports, mode: Mode) -> list[Action]:
    """An extended PAT: bring the staging vault's `expires` record in line with Azure DevOps (`run` only)."""
    confirmed = plan.token.expires_on
    if confirmed is None or R.EXPIRY_EXTENDED.name not in {r.code for r in plan.reasons}:
        return []
    if not any(f.source == "devops" and not f.ambiguous and f.expires_on == confirmed for f in obs.snapshot.facts):
        return []       # only Azure DevOps' answer for an entry matched without contradiction is written back
    actions = []
    for fact in obs.snapshot.facts:
        if fact.source != "keyvault" or not fact.secret or not fact.expires_on or fact.expires_on >= confirmed \
                or fact.secret[0] != settings.key_vault_url:
            continue
        vault_url, name, version = fact.secret
        detail = f"Key Vault {name}/{version}: expires {format_utc(fact.expires_on)} -> {format_utc(confirmed)}"
        outcome = ActionOutcome.PLANNED
        if mode.writes:
            try:
                ports.vaults.get(vault_url).set_expiry(name, version, confirmed)
                outcome = ActionOutcome.DONE
            except ServiceError as error:
                outcome, detail = ActionOutcome.FAILED, f"{detail}: {error}"
        actions.append(Action(ActionKind.CORRECT, None, "INFO", outcome, detail))
    return actions


def _changed(before: Observed, after: Observed) -> bool:
    a, b = before.snapshot, after.snapshot
    return (a.candidate.version, a.candidate.state, a.token_digest, a.live.state) != \
        (b.candidate.version, b.candidate.state, b.token_digest, b.live.state)


def _rotation_action(outcome: Outcome) -> Action:
    if outcome.state == RotationState.CURRENT:
        prefix = "finished an interrupted rotation: " if outcome.recovered else ""
        return Action.rotation(ActionOutcome.DONE, "WARNING" if outcome.warning else "INFO", prefix + outcome.detail)
    if outcome.state == RotationState.REJECTED:
        return Action.rotation(ActionOutcome.SKIPPED,
                               "WARNING", f"candidate {outcome.version} rejected: {outcome.detail}")
    level = "CRITICAL" if outcome.state in (RotationState.FAILED, RotationState.UNRECORDED) else "WARNING"
    return Action.rotation(ActionOutcome.FAILED, level, outcome.detail)


def _redecide(plan: InstancePlan, obs: Observed, outcome: Outcome, settings: Settings, now) -> InstancePlan:
    """The plan for the state after the rotation attempt (the report shows where things ended)."""
    snap, cand = obs.snapshot, obs.snapshot.candidate
    if outcome.state in (RotationState.CURRENT, RotationState.UNRECORDED):  # Aggregator uses the candidate now
        version = next((v for v in obs.staged if v.version == outcome.version), None)
        done = outcome.state == RotationState.CURRENT
        now_current = CandidateView(outcome.version, CandidateState.CURRENT if done else CandidateState.APPLYING,
                                    outcome.fingerprint,
                                    version.expires_on if version else None,
                                    reason=None if done else outcome.detail[:256], digest=outcome.digest)
        # The state after the swap: the setting holds the candidate, whatever it held before.
        snap = replace(snap, token_present=True, missing_setting=None, token_fingerprint=outcome.fingerprint,
                       token_digest=outcome.digest,
                       live=outcome.live, facts=outcome.facts, notes=(), candidate=now_current)
    elif outcome.state in (RotationState.REJECTED, RotationState.FAILED):
        snap = replace(snap, candidate=_handled(cand, outcome, obs))
        if outcome.token is not None:     # rolled back: the setting holds the token put back
            snap = replace(snap, token_fingerprint=outcome.token.fingerprint, token_digest=outcome.token.digest)
    elif outcome.state == RotationState.STOPPED:
        snap = replace(snap, notes=snap.notes + (Note(R.ROTATION_STOPPED.name, outcome.detail),))
    else:   # postponed: the report says what the tags say (a version left `applying` is reconciled next run)
        version = next((v for v in obs.staged if v.version == outcome.version), None)
        tagged = version.status if version is not None else None
        if version is None or cand.version != version.version or tagged in (None, cand.state):
            return plan
        snap = replace(snap, candidate=replace(cand, state=CandidateState(tagged) if tagged in
                                               set(CandidateState) else cand.state, reason=version.tags.get(
                                                   REASON_TAG) or outcome.detail[:256]))
    obs.snapshot = snap      # what later steps (re-enabling hooks) start from
    return decide(snap, Policy.from_settings(settings, obs.app.site), now)


def _handled(cand: CandidateView, outcome: Outcome, obs: Observed) -> CandidateView:
    """The candidate as the rejection or failure left it. With `auto` rotation the version is the one this
    run created, never the one observed before (the current token's own version, or none)."""
    version = next((v for v in obs.staged if v.version == outcome.version), None)
    if version is None or version.version == cand.version:
        return replace(cand, state=outcome.state, reason=outcome.detail[:256])
    digest = obs.digests.get(version.version)
    return CandidateView(version.version, outcome.state, digest[:8] if digest else None, version.expires_on,
                         outcome.detail[:256], scopes_tag(version), skipped=cand.skipped, room=has_room(version.tags),
                         digest=digest)


def _reenable(plan, obs: Observed, settings: Settings, ports: Ports, mode: Mode, outcome, now):
    """Subscriptions Azure DevOps disabled, enabled again once the token Aggregator holds works
    (docs/reference.md, "Reason codes")."""
    token = outcome.token if outcome is not None and outcome.token is not None else obs.current
    if not settings.reenable_subscriptions or plan.token.live is not True or token is None \
            or token.fingerprint != plan.token.fingerprint:
        return plan, []
    if obs.snapshot.subscriptions is None and outcome is not None and ports.rules is not None:
        found, _ = observe_hooks(obs.app, obs.settings, token, ports)   # the broken token could not list them
        obs.snapshot = replace(obs.snapshot, **found)
    subs = obs.snapshot.subscriptions
    if not subs:
        return plan, []
    done = reenable(subs, token, ports, act=mode.writes)
    enabled = {sub.id for sub, action in done if action.outcome == ActionOutcome.DONE}
    if enabled:   # the report and the alerts describe the state after it
        obs.snapshot = replace(obs.snapshot, subscriptions=tuple(
            replace(s, status="enabled") if s.id in enabled else s for s in subs))
        plan = replace(decide(obs.snapshot, Policy.from_settings(settings, obs.app.site), now),
                       candidate=plan.candidate)
    return plan, [action for _, action in done]


def _rotated_notice(plan: InstancePlan, obs: Observed, outcome: Outcome | None, now: datetime,
                    reenabled: int = 0) -> list[A.Alert]:
    """INFO "rotated", for this run's rotation or one a dead run finished without telling."""
    cand = plan.candidate
    if cand.state != CandidateState.CURRENT or cand.version is None:
        return []
    placed = obs.record.placed      # the watchdog's own record
    rotated_at = placed[2] if placed and placed[0] == cand.version else None
    version = next((v for v in obs.staged if v.version == cand.version), None)
    if rotated_at is None and version is not None and cand.digest and cand.digest == obs.snapshot.token_digest:
        # A run that died after tagging `current` but before its record: Aggregator holds this version's
        # value (compared by value), so the tag's time is believed for the notice, and only for it.
        rotated_at = tag_time(version, ROTATED_TAG)
    fresh = outcome is not None and outcome.state == RotationState.CURRENT
    if not fresh and not (rotated_at and now - rotated_at < RECENT):
        return []
    message = (f"Aggregator now uses the token with fingerprint {cand.fingerprint} (staged version {cand.version}, "
               f"expires {format_utc(cand.expires_on)}). The previous token is kept in Key Vault for rollback."
               + (f" {reenabled} service hook subscription(s) that Azure DevOps had disabled were re-enabled."
                  if reenabled else ""))
    return [A.info(plan, f"ROTATED:{cand.version}", "rotated", message)]



def _adopt(plan: InstancePlan, obs: Observed, settings: Settings, ports: Ports, mode: Mode) -> Action:
    version = next(v for v in obs.staged if v.version == plan.candidate.version)
    detail = f"staged version {version.version} equals the current token: tagged {STATUS_TAG}=current"
    if not mode.writes:
        return Action(ActionKind.ADOPT, None, "INFO", ActionOutcome.PLANNED, detail)
    try:
        ports.vaults.get(settings.key_vault_url).set_tags(version, {STATUS_TAG: CandidateState.CURRENT.value})
    except (ServiceError, TagLimitError) as error:
        return Action(ActionKind.ADOPT, None, "WARNING", ActionOutcome.FAILED, f"adopting {version.version}: {error}")
    return Action(ActionKind.ADOPT, None, "INFO", ActionOutcome.DONE, detail)


def _not_rotating(plan: InstancePlan, settings: Settings, now: datetime) -> Action:
    """`rotate` without a rotation to do: say why, and when one is due."""
    cand = plan.candidate
    if not settings.rotation_enabled:
        detail = "rotation is off (WATCHDOG_ROTATION=off or no WATCHDOG_KEY_VAULT_URL)"
    elif cand.state != CandidateState.PENDING:
        detail = f"nothing valid is staged (newest staged version: {cand.state})"
    else:
        opens = rotation_opens(plan.token, settings.rotate_within_days)     # days left are rounded down
        run = next_run(settings.schedule, max(opens, now)) if opens is not None else None
        due = "unknown (expiry unknown)" if run is None else \
            f"in {math.ceil((run - now).total_seconds() / 86400)} days, on {format_utc(run)} (the first scheduled " \
            f"run with {settings.rotate_within_days} days or fewer left)"
        detail = f"not due yet: rotation is due {due}; --force rotates now"
    return Action.rotation(ActionOutcome.SKIPPED, "INFO", detail)

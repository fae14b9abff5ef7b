"""The alert pipeline of one instance: dedup against the ledger, send per channel, record success."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from pat_watchdog import alerts as A
from pat_watchdog.errors import ServiceError
from pat_watchdog.ledger import Entry, needs_update, resolved_entry, sent_entry
from pat_watchdog.model import Action, InstancePlan, Status
from pat_watchdog.policy import GLOBAL_PAT_CUTOFF

log = logging.getLogger(__name__)


@dataclass
class Outbox:
    """What one run sends: the channels, the ledger view read once, and the mode."""

    channels: list
    ledger: object                          # TableLedger | MemoryLedger
    active: dict[tuple, Entry] | None       # None: the ledger could not be read (send anyway)
    repeat_hours: float
    send: bool                              # False for `status` and `--dry-run`: plan only
    problems: list[str] = field(default_factory=list)


def _deliver(outbox: Outbox, channel, alert: A.Alert, entry: Entry, why: str) -> Action:
    detail = f"{alert.code}: {alert.summary} ({why})"
    if not outbox.send:
        return Action("alert", channel.name, alert.level, "planned", detail, alert.condition)
    try:
        channel.send(alert)
    except ServiceError as error:
        log.warning("alert %s for %s on %s failed: %s", alert.code, alert.instance, channel.name, error,
                    extra={"custom_dimensions": {"instance": alert.instance, "channel": channel.name}})
        return Action("alert", channel.name, alert.level, "failed", f"{detail}: {error}", alert.condition)
    try:  # written only after the send succeeded
        outbox.ledger.record(entry)
    except ServiceError as error:
        outbox.problems.append(f"ledger not written after a send: {error}")
    return Action("alert", channel.name, alert.level, "done", detail, alert.condition)


def dispatch(plan: InstancePlan, settings, outbox: Outbox, now: datetime, *,
             extra: list[A.Alert] = ()) -> list[Action]:
    """Alerts due for `plan` on every channel, plus resolutions of conditions that cleared.

    `extra` are events sent once per channel (e.g. "rotated"); a channel that gets one this run
    has its cleared conditions closed without a notice of their own: the event told the story.
    """
    due = A.for_plan(plan, settings)
    actions: list[Action] = []
    for channel in outbox.channels:
        for alert in due:
            entry = (outbox.active or {}).get((plan.name, alert.condition, channel.name))
            why = "ledger unreachable" if outbox.active is None else \
                needs_update(entry, alert, now, outbox.repeat_hours)
            if why:
                actions.append(_deliver(outbox, channel, alert, sent_entry(alert, channel.name, now), why))
        events = [_deliver(outbox, channel, alert, sent_entry(alert, channel.name, now), "event")
                  for alert in extra
                  if outbox.active is None or (plan.name, alert.condition, channel.name) not in outbox.active]
        actions.extend(events)
        quiet = any(a.outcome in ("done", "planned") for a in events)
        actions.extend(_resolutions(plan, outbox, channel, {a.condition for a in due}, quiet, now))
    return actions


def _resolutions(plan, outbox: Outbox, channel, firing: set[str], quiet: bool, now) -> list[Action]:
    """One "resolved" notice per condition that stopped firing; never for an instance not checked."""
    if outbox.active is None:
        return []
    actions = []
    for (instance, condition, name), entry in sorted(outbox.active.items()):
        if instance != plan.name or name != channel.name or condition in firing or condition.startswith("ROTATED:"):
            continue
        if plan.status is Status.UNKNOWN or _blind(plan, condition, now):
            continue
        if quiet:
            if outbox.send:
                try:
                    outbox.ledger.record(resolved_entry(entry, now))
                except ServiceError as error:
                    outbox.problems.append(f"ledger not written after a rotation: {error}")
            continue
        notice = A.resolved(condition, entry.message, plan)
        actions.append(_deliver(outbox, channel, notice, resolved_entry(entry, now), "cleared"))
    return actions


def _blind(plan: InstancePlan, condition: str, now: datetime) -> bool:
    """Whether this run could not have seen `condition` (a source was down): then it is not resolved.

    `"*"`: nothing can be resolved (Azure DevOps, the token or its reference could not be checked).
    """
    codes = {r.code for r in plan.reasons}
    if codes & {"DEVOPS_UNREACHABLE", "KEYVAULT_REFERENCE_UNRESOLVED", "ARM_UNREACHABLE"}:
        return True  # the instance was not checked: nothing about it is known to have cleared
    if condition == "EXPIRY":
        return plan.token.expires_on is None and plan.token.live is not False
    if condition == "SCOPE_MISSING":
        return plan.token.scopes is None
    if condition == "GLOBAL_PAT":  # after the cutoff a working token cannot be a global PAT
        return plan.token.global_pat is None and not (plan.token.live and now >= GLOBAL_PAT_CUTOFF)
    if condition == "PAT_NOT_IN_LISTING":
        return "LISTING_UNAVAILABLE" in codes
    return "KEYVAULT_UNAVAILABLE" in codes and condition.split(":")[0] in (
        "CANDIDATE_REJECTED", "ROTATION_FAILED", "TAG_LIMIT")

"""Alert dedup, as Alertmanager's `needsUpdate`: whether an alert goes out again; what a run could not see."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from pat_watchdog.core import reasons as R
from pat_watchdog.core.alerts import Alert
from pat_watchdog.core.model import InstancePlan

_RANK = {"INFO": 0, "WARNING": 1, "CRITICAL": 2}


@dataclass(frozen=True)
class Entry:
    instance: str
    condition: str
    channel: str
    level: str
    stage: str | None
    sent_at: datetime
    message: str
    active: bool = True

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.instance, self.condition, self.channel)


def _is_threshold(stage: str | None) -> bool:
    return stage is not None and stage.isdigit()


def needs_update(entry: Entry | None, alert: Alert, now: datetime, repeat_hours: float) -> str | None:
    """Why `alert` must be sent on the entry's channel now, or None to stay quiet.

    Warn thresholds are their own schedule (each once); everything else repeats after
    `repeat_hours` while unchanged. A lower level alone waits for the repeat.
    """
    if entry is None or not entry.active:
        return "new"
    if _RANK[alert.level] > _RANK.get(entry.level, 0):
        return f"level rose from {entry.level}"
    if alert.stage != entry.stage and alert.stage is not None:
        return "threshold crossed" if _is_threshold(alert.stage) else "condition changed"
    if _is_threshold(alert.stage) and _RANK[alert.level] == _RANK.get(entry.level, 0):
        return None
    if now - entry.sent_at >= timedelta(hours=repeat_hours):
        return f"unchanged for {repeat_hours:g} h"
    return None


def resolved_entry(entry: Entry, now: datetime) -> Entry:
    return replace(entry, active=False, sent_at=now)


def sent_entry(alert: Alert, channel: str, now: datetime) -> Entry:
    return Entry(alert.instance, alert.condition, channel, alert.level, alert.stage,
                 now.astimezone(timezone.utc), alert.message)


def blind(plan: InstancePlan, condition: str, now: datetime) -> bool:
    """Whether this run could not have seen `condition` (a source was down): then it is not resolved."""
    codes = {r.code for r in plan.reasons}
    if codes & {R.DEVOPS_UNREACHABLE.name, R.KEYVAULT_REFERENCE_UNRESOLVED.name, R.ARM_UNREACHABLE.name,
                 R.REFERENCE_NOT_ALLOWED.name, R.INTERNAL_ERROR.name, R.DEADLINE_EXCEEDED.name}:
        return True  # the instance was not checked: nothing about it is known to have cleared
    if condition == R.EXPIRES_SOON.condition:
        return plan.token.expires_on is None and plan.token.live is not False
    if condition == R.SCOPE_MISSING.condition:
        return plan.token.scopes is None
    if condition == R.GLOBAL_PAT.condition:  # unknown is not cleared: Microsoft postponed the cutoff once
        return plan.token.global_pat is None
    if condition == R.PAT_NOT_IN_LISTING.condition:
        return R.LISTING_UNAVAILABLE.name in codes
    return R.KEYVAULT_UNAVAILABLE.name in codes and condition.split(":")[0] in (
        R.CANDIDATE_REJECTED.name, R.ROTATION_FAILED.name, R.TAG_LIMIT.name)

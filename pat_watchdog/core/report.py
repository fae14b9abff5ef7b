"""The report (docs/reference.md, "The JSON report", schema 1) and its short human rendering."""

from __future__ import annotations

from datetime import datetime

from pat_watchdog.core.model import Action, CandidateState, CandidateView, InstancePlan, Status, TokenView
from pat_watchdog.core.times import format_utc

SCHEMA = 1


def _token(view: TokenView) -> dict:
    return {
        "fingerprint": view.fingerprint, "live": view.live, "user_id": view.user_id,
        "expires_on": format_utc(view.expires_on), "days_left": view.days_left,
        "expiry_source": view.expiry_source,
        "scopes": list(view.scopes) if view.scopes is not None else None,
        "global": view.global_pat,
        "sources": [{"source": f.source, "expires_on": format_utc(f.expires_on), "ambiguous": f.ambiguous}
                    for f in view.sources],
    }


def _candidate(cand: CandidateView) -> dict:
    return {"version": cand.version, "state": cand.state, "fingerprint": cand.fingerprint,
            "expires_on": format_utc(cand.expires_on), "reason": cand.reason,
            "superseded": list(cand.superseded), "skipped": list(cand.skipped)}


def _action(action: Action) -> dict:
    return {"kind": action.kind, "channel": action.channel, "level": action.level,
            "outcome": action.outcome, "detail": action.detail}


def instance_json(plan: InstancePlan) -> dict:
    return {
        "app": plan.app_id, "name": plan.name, "status": plan.status.value,
        "reasons": [{"code": r.code, "level": r.level, "message": r.message} for r in plan.reasons],
        "token": _token(plan.token), "candidate": _candidate(plan.candidate),
        "actions": [_action(a) for a in plan.actions],
        # null: not checked this run (the token did not work, or the listing was not available)
        "subscriptions": None if plan.subscriptions is None else [
            {"id": s.id, "rule": s.rule, "event_type": s.event_type, "project": s.project_id, "status": s.status}
            for s in plan.subscriptions],
    }


def build(plans: list[InstancePlan], now: datetime, *, command: str, errors: list[str] = (),
          problems: list[str] = ()) -> dict:
    """The whole report; the overall status is the worst over the instances.

    `errors` left instances unchecked (a failed discovery): UNKNOWN. `problems` did not (the
    ledger could not be read): reported, status unchanged.
    """
    status = Status.worst(p.status for p in plans)
    if errors or not plans:
        status = Status.worst([status, Status.UNKNOWN])
    return {"schema": SCHEMA, "generated_at": format_utc(now), "command": command,
            "status": status.value, "instances": [instance_json(p) for p in plans],
            "errors": list(errors) + list(problems)}


def render(report: dict) -> str:
    """Short, aligned text for a person at a terminal."""
    lines = [f"pat-watchdog {report['command']}: {report['status']} "
             f"({len(report['instances'])} instance{'s' if len(report['instances']) != 1 else ''}, "
             f"{report['generated_at']})"]
    for error in report.get("errors", []):
        lines.append(f"  ! {error}")
    for inst in report["instances"]:
        lines.extend(_render_instance(inst))
    return "\n".join(lines)


def _render_instance(inst: dict) -> list[str]:
    token, cand = inst["token"], inst["candidate"]
    expiry = "unknown" if token["expires_on"] is None else \
        f"{token['expires_on']} ({token['days_left']} days, {token['expiry_source']})"
    live = {True: "works", False: "does not work", None: "not checked"}[token["live"]]
    lines = ["", f"{inst['name']}  {inst['status']}",
             f"  {'token':<10} {token['fingerprint'] or '-'}  {live}",
             f"  {'expires':<10} {expiry}"]
    if token["scopes"] is not None:
        lines.append(f"  {'scopes':<10} {' '.join(token['scopes'])}")
    if cand["state"] != CandidateState.NONE:
        lines.append(f"  {'staged':<10} {cand['version']}  {cand['state']}"
                     + (f" ({cand['reason']})" if cand["reason"] else ""))
    for reason in inst["reasons"]:
        lines.append(f"  {reason['level']:<9}  {reason['code']}: {reason['message']}")
    for action in inst["actions"]:
        channel = f" {action['channel']}" if action["channel"] else ""
        lines.append(f"  {action['outcome']:<9}  {action['kind']}{channel} {action['level']}: {action['detail']}")
    return lines

"""A run report of any size, shaped as core/report.py builds one, for the run history's tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from pat_watchdog.core import report
from pat_watchdog.core.times import format_utc

SUBSCRIPTION = "8c56d827-5f07-45ce-8f2b-6c5001db5c6f"
SCOPES = ["vso.identity", "vso.project", "vso.serviceendpoint_manage", "vso.work_full"]


def instance(i: int, now: datetime) -> dict:
    """One instance as `report.instance_json` renders it: about 1.2 KB of JSON, some of it non-ASCII."""
    name, expires = f"team{i:04d}aggregator", format_utc(now + timedelta(days=12 + i % 90))
    return {
        "app": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/aggregator-team{i:04d}/providers/Microsoft.Web/"
               f"sites/{name}",
        "name": name, "status": "WARNING",
        "reasons": [
            {"code": "EXPIRES_SOON", "level": "WARNING",
             "message": f"The token expires in {12 + i % 90} days ({expires}, from Key Vault); owner \"Zoë\" "
                        "\\ équipe 🚀 was told."},
            {"code": "CANDIDATE_STAGED", "level": "INFO",
             "message": f"A replacement is staged (version {i:032x}): it rotates when 14 days are left."}],
        "token": {"fingerprint": f"{i * 2654435761 % 2**32:08x}", "live": True,
                  "user_id": "bb5bb6c8-ef0a-400f-8987-92b3674d2043", "expires_on": expires,
                  "days_left": 12.0 + i % 90, "expiry_source": "keyvault", "scopes": SCOPES, "global": False,
                  "sources": [{"source": "keyvault", "expires_on": expires, "ambiguous": False},
                              {"source": "listing", "expires_on": expires, "ambiguous": False}]},
        "candidate": {"version": f"{i:032x}", "state": "pending", "fingerprint": f"{i * 40503 % 2**32:08x}",
                      "expires_on": format_utc(now + timedelta(days=365)), "reason": None,
                      "superseded": [], "skipped": []},
        "actions": [{"kind": "alert", "channel": "teams", "level": "WARNING", "outcome": "sent",
                     "detail": "EXPIRES_SOON: threshold crossed"}],
    }


def synthetic(count: int, now: datetime, command: str = "run") -> dict:
    """A whole report of `count` instances (the envelope from `report.build`), with an outcome as `run` adds."""
    whole = report.build([], now, command=command)
    whole.update(status="WARNING", instances=[instance(i, now) for i in range(count)], outcome="ok")
    return whole

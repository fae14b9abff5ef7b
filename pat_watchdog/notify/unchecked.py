"""The alert for an instance the watchdog kept failing to check (a poison fan-out message)."""

from __future__ import annotations

from datetime import datetime

from pat_watchdog import reasons as R
from pat_watchdog.alerts import Alert
from pat_watchdog.errors import ServiceError
from pat_watchdog.resource_ids import ResourceId


def alert_unchecked(settings, ports, app: ResourceId, now: datetime) -> int:
    """Send it on every channel; returns how many delivered."""
    alert = Alert(app.site, str(app), "CRITICAL", R.INSTANCE_UNCHECKED.name, R.INSTANCE_UNCHECKED.name, None,
                  R.INSTANCE_UNCHECKED.message,
                  f"The fan-out message for {app.site} failed on every attempt and was moved to the poison "
                  f"queue {settings.fanout_queue}-poison at {R.format_time(now)}: its PAT is not being watched.",
                  None, None, None, None, (),
                  "Look at the failed invocations in Application Insights (ARM or Key Vault access, a "
                  "malformed setting), fix the cause, then move the message back to the queue or wait for "
                  "tomorrow's run.", None)
    delivered = 0
    for channel in ports.channels:
        try:
            channel.send(alert)
            delivered += 1
        except ServiceError:
            continue
    return delivered

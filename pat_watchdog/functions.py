"""What the Azure Functions triggers run. Heavy imports wait for the first call (cold start)."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone

from pat_watchdog.errors import WatchdogError

log = logging.getLogger("pat_watchdog")


class RunFailed(WatchdogError):
    """Raised after every action ran, so the invocation shows as failed in Application Insights."""


def on_timer(*, past_due: bool, env=None, now: datetime | None = None, credential=None, retry=None) -> dict:
    """The timer's job, the same code as `pat-watchdog run`."""
    from pat_watchdog import watchdog
    from pat_watchdog.report import render
    from pat_watchdog.settings import load_settings

    log.info("timer fired (past_due=%s)", past_due, extra={"custom_dimensions": {"past_due": past_due}})
    settings = load_settings(os.environ if env is None else env)
    result = watchdog.run_once(settings, watchdog.RUN, now or datetime.now(timezone.utc),
                               credential=credential, retry=retry)
    log.info("%s", render(result.report), extra={"custom_dimensions": {"status": result.report["status"]}})
    if result.failed_actions:
        raise RunFailed(f"{result.failed_actions} action(s) failed; see the report above")
    return result.report

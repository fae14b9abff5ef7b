"""What the Azure Functions triggers run. Heavy imports wait for the first call (cold start)."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone

from pat_watchdog import log_setup
from pat_watchdog.core.errors import WatchdogError
from pat_watchdog.core.model import Mode

log = logging.getLogger("pat_watchdog")


class RunFailed(WatchdogError):
    """Raised after every action ran, so the invocation shows as failed in Application Insights."""


def _settings(env):
    from pat_watchdog.core.settings import load_settings
    log_setup.configure()   # every trigger starts here: SDK loggers at WARNING in Azure, signatures masked
    return load_settings(os.environ if env is None else env)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


def on_timer(*, past_due: bool, env=None, now: datetime | None = None, credential=None, retry=None) -> dict:
    """The timer's job, the same code as `pat-watchdog run`; with fan-out it only queues instances."""
    from pat_watchdog import watchdog
    from pat_watchdog.core.report import render

    log.info("timer fired (past_due=%s)", past_due, extra={"custom_dimensions": {"past_due": past_due}})
    settings = _settings(env)
    if settings.fanout_queue:
        return _fan_out(settings, _now(now), credential, retry)
    result = watchdog.run_once(settings, Mode.RUN, _now(now), credential=credential, retry=retry)
    log.info("%s", render(result.report), extra={"custom_dimensions": {"status": result.report["status"]}})
    if result.failed_actions:
        raise RunFailed(f"{result.failed_actions} action(s) failed; see the report above")
    return result.report


def _fan_out(settings, now, credential, retry) -> dict:
    from pat_watchdog import watchdog
    from pat_watchdog.adapters import queue
    from pat_watchdog.adapters.retry import RetryPolicy
    from pat_watchdog.bootstrap import open_ports

    ports = open_ports(settings, credential, retry)
    try:
        targets, errors = watchdog.resolve_targets(settings, ports)
        queued = queue.enqueue(settings, targets, now, ports.credential, retry or RetryPolicy())
    finally:
        ports.close()
    log.info("queued %d instances on %s", queued, settings.fanout_queue,
             extra={"custom_dimensions": {"queued": queued, "queue": settings.fanout_queue}})
    if errors:
        raise RunFailed("; ".join(errors))
    return {"queued": queued}


def on_queue_message(body: str, *, dequeue_count: int = 1, env=None, now=None, credential=None, retry=None) -> dict:
    """One instance from the fan-out queue. Raising lets the host retry, then move it to poison."""
    from pat_watchdog import watchdog
    from pat_watchdog.bootstrap import open_ports
    from pat_watchdog.core.fanout import needs_discovery_check
    from pat_watchdog.core.report import render

    configured = _settings(env)
    settings = _target(configured, body)
    if settings is None:
        return {"ignored": True}
    ports = open_ports(settings, credential, retry)
    try:
        app = settings.targets[0]
        if needs_discovery_check(configured, app) and not ports.apps.is_aggregator_site(app):
            log.warning("fan-out message ignored: %s is not an Aggregator instance", app)
            return {"ignored": True}
        result = watchdog.run_once(settings, Mode.RUN, _now(now), ports=ports)
    finally:
        ports.close()
    log.info("%s", render(result.report), extra={"custom_dimensions": {"attempt": dequeue_count}})
    unchecked = [i["name"] for i in result.report["instances"] if i["status"] == "UNKNOWN"]
    if result.failed_actions or unchecked or result.report["errors"]:
        raise RunFailed(f"attempt {dequeue_count}: " + (f"could not check {', '.join(unchecked)}" if unchecked
                                                         else f"{result.failed_actions} action(s) failed"))
    return result.report


def on_poison_message(body: str, *, env=None, now=None, credential=None, retry=None) -> int:
    """An instance that kept failing: one CRITICAL alert on every channel, never a retry loop."""
    from pat_watchdog.bootstrap import open_ports
    from pat_watchdog.dispatch import alert_unchecked

    settings = _target(_settings(env), body)
    if settings is None:
        return 0
    ports = open_ports(settings, credential, retry)
    try:
        delivered = alert_unchecked(settings, ports, settings.targets[0], _now(now))
    finally:
        ports.close()
    if delivered < len(ports.channels):
        raise RunFailed("the alert about an instance that keeps failing was not delivered everywhere")
    return delivered


def _target(settings, body: str):
    """The settings narrowed to the message's instance; None (logged, not retried) when it is not a target."""
    from pat_watchdog.core.fanout import NotATarget, settings_for

    try:
        return settings_for(settings, body)
    except NotATarget as error:
        log.warning("%s", error)
        return None


def last_report(accept: str | None = None, output: str | None = None, *, env=None, credential=None, retry=None,
                now: datetime | None = None) -> tuple[int, str, dict[str, str]]:
    """`GET /api/status`: the last run's report from the run history, as JSON; as the status page with the
    last runs when the request asks for HTML (`Accept: text/html`, `?format=html`; docs/reference.md,
    "The status page"). Returns the status, the body and the response headers."""
    from pat_watchdog.adapters.retry import RetryPolicy
    from pat_watchdog.adapters.state_table import MemoryLedger, open_ledger
    from pat_watchdog.core import status_page
    from pat_watchdog.core.errors import ServiceError

    html = status_page.wants_html(accept, output)

    def problem(status: int, message: str, title: str) -> tuple[int, str, dict[str, str]]:
        if html:
            return status, status_page.message_page(title, message), status_page.HEADERS
        return status, json.dumps({"error": message}), {"Content-Type": "application/json"}

    settings = _settings(env)
    if credential is None and settings.storage and not settings.storage.connection_string:
        from pat_watchdog.bootstrap import default_credential
        credential = default_credential()
    ledger = open_ledger(settings, credential, retry or RetryPolicy(attempts=2, total=10))
    if isinstance(ledger, MemoryLedger):
        return problem(503, "AzureWebJobsStorage is not set: there is no run history", "no run history")
    try:
        report = ledger.last_run()
    except ServiceError as error:
        return problem(503, f"the run history could not be read: {error}", "run history unreadable")
    if report is None:
        return problem(404, "no run recorded yet", "no run recorded yet")
    if not html:
        return 200, json.dumps(report), {"Content-Type": "application/json"}
    try:
        history = ledger.recent_runs()
    except ServiceError as error:
        log.warning("status page without the last runs: %s", error)
        history = None
    return 200, status_page.page_for(report, history, settings, _now(now)), status_page.HEADERS


def doctor(send_test: str | None = None, output: str | None = None, *, env=None, now=None, credential=None,
           retry=None) -> tuple[int, str, str]:
    """`POST /api/doctor` (azure.yaml's postdeploy hook calls it after each deployment): the doctor with the
    Function's own identity, logged check by check; `?sendTest=true` also sends the test messages,
    `?format=text` answers with the lines `pat-watchdog doctor` prints. Always 200 with the checks: a
    configuration error is its `settings` checks, FIX (the deploy hook prints whatever it finds)."""
    from pat_watchdog import doctor as checks_of
    from pat_watchdog.core import checkup
    from pat_watchdog.core.errors import ConfigError

    moment = _now(now)
    try:
        found = checks_of.examine(_settings(env), moment, env=os.environ if env is None else env,
                                  credential=credential, retry=retry, send_test=(send_test or "").lower() == "true")
    except ConfigError as error:
        found = checkup.config_error(error.problems)
    checks_of.log_checks(found)
    if (output or "").lower() == "text":
        return 200, checkup.render(found) + "\n", "text/plain"
    return 200, json.dumps(checkup.document(found, moment)), "application/json"

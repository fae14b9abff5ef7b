"""Where the watchdog keeps its state and sends its alerts: the state table, the fan-out queue, and
the channels (with `--send-test`, one test card and one test email, marked TEST)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pat_watchdog.adapters import queue
from pat_watchdog.adapters.table_probe import probe_table
from pat_watchdog.core import fixes
from pat_watchdog.core.alerts import Alert
from pat_watchdog.core.checkup import WATCHDOG, Check, fix, ok, skip
from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.settings import StorageTarget
from pat_watchdog.doctor.visit import Visit

TEST_LEVEL = "TEST"     # subject "[pat-watchdog] TEST: ...", card title "TEST: ..."


def check_storage(visit: Visit) -> list[Check]:
    settings, storage = visit.settings, visit.settings.storage
    table, queue_scope = f"table:{settings.state_table}", f"queue:{settings.fanout_queue or '-'}"
    if storage is None:
        return [skip("storage.table", table, "AzureWebJobsStorage is not set: alerts are not deduplicated across "
                     "runs, and `run`/`rotate` take no shared rotation lock"),
                skip("storage.queue", queue_scope, "AzureWebJobsStorage is not set")]
    credential = visit.ports.credential
    checks = [_probe("storage.table", table, storage, fixes.TABLE_ROLE, visit,
                     lambda: probe_table(storage, settings.state_table, credential, visit.retry, visit.now))]
    if not settings.fanout_queue:
        return checks + [skip("storage.queue", queue_scope, "WATCHDOG_FANOUT_QUEUE is not set: no fan-out")]
    return checks + [_probe("storage.queue", queue_scope, storage, fixes.QUEUE_ROLE, visit,
                            lambda: queue.probe(settings, credential, visit.retry, visit.now))]


def _probe(check_id: str, scope: str, storage: StorageTarget, role: str, visit: Visit, attempt) -> Check:
    try:
        return ok(check_id, scope, attempt())
    except ServiceError as error:
        account = _account(storage)
        # With the identity a 403 is a missing data role; with a connection string it is the key or SAS.
        command = fixes.storage_role(visit.principal, role, account) \
            if error.status == 403 and account and not storage.connection_string else None
        return fix(check_id, scope, str(error), command)


def _account(storage: StorageTarget) -> str | None:
    if storage.connection_string:
        parts = dict(p.split("=", 1) for p in storage.connection_string.split(";") if "=" in p)
        return parts.get("AccountName")
    endpoint = storage.table_endpoint or storage.queue_endpoint or ""
    return (urlsplit(endpoint).hostname or "").split(".")[0] or None


def check_channels(visit: Visit, send_test: bool) -> list[Check]:
    channels = visit.ports.channels
    if not channels:
        return [fix("channels", WATCHDOG, "no alert channel is configured (WATCHDOG_TEAMS_WEBHOOK_URL, "
                    "WATCHDOG_EMAIL_TO): nobody hears of an expiring token", fixes.teams_webhook())]
    checks = []
    for channel in channels:
        check_id = f"channel.{channel.name}"
        if getattr(channel, "reference", None):     # bootstrap.UnresolvedChannel
            checks.append(fix(check_id, channel.name, f"{channel.setting} is an unresolved Key Vault reference: App "
                              "Service passed its text, so this channel sends nothing. The watchdog's identity must "
                              "read that secret (Key Vault Secrets User on its vault, which the deployment grants; "
                              "a new grant takes a few minutes), and the secret must exist; then restart the "
                              "watchdog app, which fetches its references again",
                              fixes.channel_secret_reader(visit.principal, channel.reference)))
            continue
        if not send_test:
            checks.append(ok(check_id, channel.name, "configured; nothing sent (--send-test sends a test)"))
            continue
        try:
            channel.send(doctor_alert(visit))
        except ServiceError as error:
            command = fixes.teams_webhook() if channel.name == "teams" and error.status in (401, 403, 404) else None
            checks.append(fix(check_id, channel.name, f"the test was not delivered: {error}", command))
            continue
        what = "a test card" if channel.name == "teams" else f"a test email to {', '.join(visit.settings.email_to)}"
        checks.append(ok(check_id, channel.name, f"{what} was delivered, marked TEST"))
    return checks


def doctor_alert(visit: Visit) -> Alert:
    """A message every channel renders as usual, marked TEST in its subject and title; the facts are
    the first instance's, as `status` sees them."""
    plan = visit.plans[0] if visit.plans else None
    token = plan.token if plan else None
    return Alert(
        instance=plan.name if plan else "pat-watchdog", app_id=plan.app_id if plan else "", level=TEST_LEVEL,
        condition="DOCTOR", code="TEST", stage=None, summary="test message from pat-watchdog doctor",
        message="This is a test sent by pat-watchdog doctor --send-test to show that alerts reach this "
                "channel. Nothing is wrong and nothing needs doing.",
        days_left=token.days_left if token else None, expires_on=token.expires_on if token else None,
        expiry_source=token.expiry_source if token else None, fingerprint=token.fingerprint if token else None,
        missing_scopes=(), next_step="Nothing to do: this is a test.", command=None)

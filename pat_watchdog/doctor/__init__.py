"""`pat-watchdog doctor`: every permission and setting the watchdog needs, checked with harmless calls,
with the exact command that fixes each gap (docs/reference.md, "The doctor").

Harmless: nothing is written to an Aggregator app or a vault and no token is rotated; the only
writes are one `doctor` row in the state table and one message on the fan-out queue, each removed
again, and with `--send-test` one test message per channel. The permissions checked are those of
the identity the credential signs in as: run it where the watchdog runs (its `/api/doctor` function,
which the deployment calls) to check the watchdog's own.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Mapping, TextIO

from pat_watchdog.adapters.retry import RetryPolicy
from pat_watchdog.bootstrap import default_credential, open_ports
from pat_watchdog.core import checkup, fixes
from pat_watchdog.core.checkup import WATCHDOG, Check, fix, ok, skip
from pat_watchdog.core.errors import ConfigError
from pat_watchdog.core.settings import Settings, load_settings
from pat_watchdog.doctor import delivery, instances, vault
from pat_watchdog.doctor.visit import Visit
from pat_watchdog.watchdog import resolve_targets

log = logging.getLogger(__name__)


def examine(settings: Settings, now: datetime, *, env: Mapping[str, str] | None = None, credential=None,
            retry: RetryPolicy | None = None, send_test: bool = False) -> list[Check]:
    """Every check, in order: settings, credential, instances, vault, storage, channels."""
    retry = retry or RetryPolicy()
    credential = credential or default_credential()
    checks = [ok("settings", WATCHDOG, _summary(settings))]
    signed_in, principal, check = _credential(credential, settings)
    checks.append(check)
    ports = open_ports(settings, credential, retry)
    visit = Visit(settings, now, ports, retry, principal, dict(env or {}))
    try:
        if signed_in:
            visit.targets, errors = resolve_targets(settings, ports)
            checks += _discovery(settings, visit.targets, errors)
            for app in visit.targets:
                checks += instances.check_instance(visit, app)
            checks += vault.check_vault(visit) + vault.check_signins(visit)
        else:
            checks.append(skip("instances", WATCHDOG, "not checked: no credential for Azure Resource Manager"))
        checks += delivery.check_storage(visit) + delivery.check_channels(visit, send_test)
    finally:
        ports.close()
    return checks


def _summary(settings: Settings) -> str:
    vault = settings.vault_name if settings.key_vault_url else "none"
    return (f"valid: {len(settings.targets)} target(s), staging vault {vault}, rotation {settings.rotation}, "
            f"state table {settings.state_table if settings.storage else 'none'}")


def _credential(credential, settings: Settings) -> tuple[bool, str | None, Check]:
    """(signed in, the identity's object ID when its token names it, the check)."""
    from azure.core.exceptions import AzureError

    from pat_watchdog.adapters.sdk_errors import NO_CREDENTIAL

    try:
        token = credential.get_token(settings.arm_endpoint.rstrip("/") + "/.default").token
    except AzureError as error:
        return False, None, fix("credential", WATCHDOG, "no token for Azure Resource Manager "
                                f"({type(error).__name__}): {NO_CREDENTIAL}")
    principal = fixes.principal_id(token)
    who = f"object ID {principal}" if principal else \
        f"an identity whose token names no object ID (the fixes below say {fixes.UNKNOWN_PRINCIPAL})"
    return True, principal, ok("credential", WATCHDOG, f"signed in to Azure Resource Manager as {who}; the permissions "
                         "below are this identity's")


def _discovery(settings: Settings, targets: list, errors: list[str]) -> list[Check]:
    scopes = [t for t in settings.targets if not t.is_site]
    found = [fix("discovery", WATCHDOG, e) for e in errors]
    if scopes and not errors:
        found.append(ok("discovery", WATCHDOG, f"{len(targets)} Aggregator instance(s) found") if targets else
                     fix("discovery", WATCHDOG, "no Aggregator instance found in " + ", ".join(map(str, scopes))))
    return found


def command(*, env: Mapping[str, str], now: datetime, as_json: bool, send_test: bool, stdout: TextIO,
            stderr: TextIO, credential=None, retry: RetryPolicy | None = None) -> int:
    """The `doctor` subcommand: the checks as text (or the JSON document); exit 0, 1 or 2."""
    try:
        checks = examine(load_settings(env), now, env=env, credential=credential, retry=retry, send_test=send_test)
        code = checkup.exit_code(checks)
    except ConfigError as error:    # a setting, or what a client library refused in one (storage)
        print(f"pat-watchdog: {error}", file=stderr)
        checks, code = checkup.config_error(error.problems), checkup.CONFIG_EXIT
    print(json.dumps(checkup.document(checks, now), indent=2) if as_json else checkup.render(checks), file=stdout)
    return code


def log_checks(checks: list[Check]) -> None:
    """One line per check, `key=value` for Kusto (the Functions worker drops `extra=` fields)."""
    for check in checks:
        level = logging.WARNING if check.status is checkup.Verdict.FIX else logging.INFO
        log.log(level, "doctor check=%s status=%s scope=%s message=%s fix=%s", check.id, check.status.value,
                check.scope, check.message, check.fix or "-")


"""`pat-watchdog migrate-to-reference`: move a plain-text token setting into Key Vault (reference mode).

The token is stored as a new version of a dedicated secret in the staging vault, then the setting is
replaced by a versionless reference to it through the rotation's safe swap (read-merge-replace,
guarded by the value observed; every other setting verified unchanged). App Service must then report
the reference `Resolved` with the app's own identity; otherwise the plain token is put back.
"""

from __future__ import annotations

from datetime import datetime

from pat_watchdog.bootstrap import open_ports
from pat_watchdog.core.errors import ServiceError, WatchdogError
from pat_watchdog.core.settings import Settings
from pat_watchdog.core.tags import FINGERPRINT_TAG
from pat_watchdog.observe import observe
from pat_watchdog.rollback import Rollback, RollbackStopped
from pat_watchdog.swap import SettingsSwap
from pat_watchdog.watchdog import resolve_targets


def migrate(settings: Settings, secret: str, now: datetime, *, credential=None, retry=None) -> list[str]:
    """One line per instance saying what happened; raises WatchdogError when nothing can be done safely."""
    if not settings.key_vault_url:
        raise WatchdogError("WATCHDOG_KEY_VAULT_URL is required: the token goes to a secret in that vault")
    if secret.lower() in {n.lower() for n in (settings.staged_secret, settings.previous_secret)} or "{" in secret:
        raise WatchdogError(f"{secret!r}: expected a dedicated secret, not the staged or previous one")
    ports = open_ports(settings, credential, retry)
    try:
        targets, errors = resolve_targets(settings, ports)
        return errors + [_one(observe(app, settings, ports, now, write=False), settings, ports, secret)
                         for app in targets]
    finally:
        ports.close()


def _one(obs, settings: Settings, ports, secret: str) -> str:
    name = obs.app.site
    if obs.reference is not None:
        return f"{name}: already a Key Vault reference; nothing changed"
    if obs.current is None or obs.snapshot.unreachable:
        return f"{name}: no working plain-text token to move; nothing changed"
    vault = ports.vaults.get(settings.key_vault_url)
    reference = f"@Microsoft.KeyVault(SecretUri={settings.key_vault_url}/secrets/{secret}/)"
    swap = SettingsSwap(obs, settings, ports)
    try:
        vault.store(secret, obs.current, tags={FINGERPRINT_TAG: obs.current.fingerprint})
        swap.write(reference)
        swap.verify(obs.current)
        status = ports.apps.reference_status(obs.app, settings.token_setting)
    except (ServiceError, WatchdogError) as error:
        return f"{name}: NOT migrated ({error}); " + _put_back(swap, obs.current)
    if not status.resolved:
        return (f"{name}: NOT migrated: App Service reports {status.status} for the reference (give the app's "
                f"identity Key Vault Secrets User on {secret}); " + _put_back(swap, obs.current))
    return f"{name}: migrated: {settings.token_setting} is now {reference} (fingerprint {obs.current.fingerprint})"


def _put_back(swap: SettingsSwap, token) -> str:
    """The plain token back, unless someone changed the setting meanwhile (then theirs stays)."""
    try:
        return Rollback(swap).restore(token)
    except RollbackStopped as stopped:
        return str(stopped)

"""Per Aggregator instance: settings readable, write and restart permitted, the token setting's form
and App Service's resolution of a reference, the token type, the token itself and its scopes.

Harmless: the settings are listed (a POST that reads), permissions and the reference status are
GETs, and the token is checked as `status` checks it (observe, write=False; decide). Nothing is
written to the Aggregator app or the vault.
"""

from __future__ import annotations

from pat_watchdog.core import fixes
from pat_watchdog.core.alerts import stage_replacement
from pat_watchdog.core import permissions as P
from pat_watchdog.core import reasons as R
from pat_watchdog.core import references, token_type
from pat_watchdog.core.checkup import Check, fix, ok, skip
from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.model import Liveness
from pat_watchdog.core.policy import Policy, decide
from pat_watchdog.core.resource_ids import ResourceId
from pat_watchdog.doctor.visit import Visit
from pat_watchdog.observe import observe

TYPE_SETTING = token_type.SETTING
# App Service refetches every reference when the app restarts (Microsoft Learn, "Use Key Vault
# references as app settings", Rotation): the fix for a resolution that only needs another try.
_RETRY_BY_RESTART = ("Initialized", "FetchTimedOut", "OtherReasons")


def check_instance(visit: Visit, app: ResourceId) -> list[Check]:
    scope, settings = str(app), visit.settings
    try:
        values = visit.ports.apps.list_settings(app)
    except ServiceError as error:
        command = fixes.site_role(visit.principal, app) if error.status == 403 else None
        hint = "" if command else " (is WATCHDOG_AGGREGATOR_APP right?)" if error.status == 404 else ""
        return [fix("instance.settings", scope, f"the app settings cannot be read: {error}{hint}", command),
                *[skip(i, scope, "not checked: the app settings cannot be read") for i in _AFTER_SETTINGS]]
    name = visit.ports.apps.site_name(app)
    checks = [ok("instance.settings", scope, f"{len(values)} app settings readable (config/list)")]
    form, ref, form_check = _token_form(settings, app, values.get(token_type.key_in(values, settings.token_setting)
                                                                  or settings.token_setting))
    checks += [*_permissions(visit, app, form), form_check, _reference(visit, app, ref)]
    checks.append(ok("instance.token_type", scope, f"{TYPE_SETTING} reads as PAT")
                  if token_type.works(values.get(token_type.key_in(values, TYPE_SETTING) or TYPE_SETTING)) else
                  fix("instance.token_type", scope, token_type.describe(
                      values.get(token_type.key_in(values, TYPE_SETTING) or TYPE_SETTING)),
                      fixes.app_setting(app, token_type.key_in(values, TYPE_SETTING) or TYPE_SETTING, "PAT")))
    return checks + _token(visit, app, name)


_PERMISSION_CHECKS = ("instance.write", "instance.restart")
_AFTER_SETTINGS = ("instance.write", "instance.restart", "instance.token_setting", "instance.reference",
                   "instance.token_type", "instance.token", "instance.scopes")


def _token_form(settings, app: ResourceId, raw: str | None):
    """("plain" | "versioned" | "versionless" | None, the reference, the check) of the token setting."""
    scope, name = str(app), settings.token_setting
    if raw is None or not raw.strip():
        return None, None, fix("instance.token_setting", scope, f"{name} is missing or empty: put the PAT in "
                               "place with aggregator-cli `configure.instance` (or correct WATCHDOG_TOKEN_SETTING)")
    if not references.is_reference(raw):
        return "plain", None, ok("instance.token_setting", scope, f"{name} holds the PAT in plain text (setting mode)")
    try:
        ref = references.parse_reference(raw, settings.arm_endpoint)
    except ValueError as error:
        return None, None, fix("instance.token_setting", scope, f"{name} holds a malformed Key Vault reference: "
                               f"{error}")
    why = references.not_allowed(ref, settings.followable_vaults(), settings.is_own_secret)
    where = f"{ref.vault_url}/secrets/{ref.secret_name}" + (f"/{ref.version}" if ref.version else "")
    form = "versioned" if ref.versioned else "versionless"
    if why:
        return form, ref, fix("instance.token_setting", scope, f"REFERENCE_NOT_ALLOWED: {why}")
    return form, ref, ok("instance.token_setting", scope, f"{name} is a {form} Key Vault reference to {where}, "
                         "which the watchdog may follow")


def _permissions(visit: Visit, app: ResourceId, form: str | None) -> list[Check]:
    """config/write is needed unless the token is a versionless reference (reference mode rotates by
    restarting the app); restart/action is needed for a versionless reference."""
    scope = str(app)
    try:
        held = visit.arm.permissions(scope)
    except ServiceError as error:
        return [fix(i, scope, f"the permissions cannot be read: {error}") for i in _PERMISSION_CHECKS]
    command = fixes.site_role(visit.principal, app)
    found = []
    for check_id, action, needed in (("instance.write", P.SITE_WRITE, form != "versionless"),
                                     ("instance.restart", P.SITE_RESTART, form == "versionless")):
        if P.allows(held, action):
            found.append(ok(check_id, scope, f"{action} permitted"))
        elif needed:
            mode = " (reference mode's role has no config/write: there the token setting must be a versionless " \
                   "Key Vault reference)" if action == P.SITE_WRITE else ""
            found.append(fix(check_id, scope, f"{action} is not permitted: the watchdog cannot rotate this "
                             f"instance{mode}", command))
        else:
            found.append(skip(check_id, scope, f"{action} is not permitted, and not needed with this token setting"))
    return found


def _reference(visit: Visit, app: ResourceId, ref) -> Check:
    scope, setting = str(app), visit.settings.token_setting
    if ref is None:
        return skip("instance.reference", scope, "the token setting is not a Key Vault reference")
    try:
        state = visit.ports.apps.reference_status(app, setting)
    except ServiceError as error:
        return fix("instance.reference", scope, f"App Service's resolution cannot be read: {error}")
    if state.resolved:
        return ok("instance.reference", scope, "App Service resolves the reference (Resolved)")
    vault = ref.vault_url.split("//", 1)[1].split(".", 1)[0]
    command = fixes.assign_identity(app) if state.status == "MSINotEnabled" else \
        fixes.reference_reader(app, vault, ref.secret_name) if state.status in ("AccessToKeyVaultDenied",
                                                                                "UnauthorizedClient") else \
        fixes.restart(app) if state.status in _RETRY_BY_RESTART else None
    return fix("instance.reference", scope, f"App Service does not resolve the reference ({state.status}: "
               f"{state.details or 'no details'}): Aggregator gets the reference text as its PAT", command)


def _token(visit: Visit, app: ResourceId, name: str) -> list[Check]:
    """The token as `status` sees it: liveness, then scopes."""
    settings, scope = visit.settings, str(app)
    snapshot = observe(app, settings, visit.ports, visit.now, write=False).snapshot
    plan = decide(snapshot, Policy.from_settings(settings, app.site), visit.now)
    visit.plans.append(plan)
    if snapshot.unreachable or not snapshot.token_present:
        why = snapshot.unreachable.message if snapshot.unreachable else "there is no token"
        failed = snapshot.unreachable and snapshot.unreachable.code == R.KEYVAULT_REFERENCE_UNRESOLVED.name
        return [fix("instance.token", scope, f"the token cannot be read: {why}") if failed
                else skip("instance.token", scope, f"not checked: {why}"),
                skip("instance.scopes", scope, "not checked: the token was not read")]
    stage = stage_replacement(settings, plan, visit.now) if settings.rotation_enabled else None
    live, token = snapshot.live, plan.token
    if live.state is not Liveness.VALID:
        what = {Liveness.EXPIRED: "has expired", Liveness.INVALID: "is rejected (revoked or invalid)"}.get(
            live.state, "could not be checked (is WATCHDOG_DEVOPS_ORG_URL right?)")
        command = stage if live.state in (Liveness.EXPIRED, Liveness.INVALID) else None
        return [fix("instance.token", scope, f"the token {what}: {live.detail}".rstrip(": "), command),
                skip("instance.scopes", scope, "not checked: the token does not work")]
    expiry = f", expires {token.expires_on:%Y-%m-%d} ({token.days_left} days, {token.expiry_source})" \
        if token.expires_on else ", expiry unknown"
    checks = [ok("instance.token", scope, f"token {token.fingerprint} works{expiry}")]
    if token.scopes is None:
        return checks + [skip("instance.scopes", scope, "no source names the token's scopes: stage the current "
                              "token with a scopes tag (it is adopted)")]
    missing = next((r for r in plan.reasons if r.code == R.SCOPE_MISSING.name), None)
    advised = next((r for r in plan.reasons if r.code == R.SCOPE_RECOMMENDED_MISSING.name), None)
    if missing:
        return checks + [fix("instance.scopes", scope, f"SCOPE_MISSING: {missing.message}", stage)]
    held = " ".join(token.scopes)
    return checks + [ok("instance.scopes", scope, f"{held}" + (f"; but {advised.message}" if advised else ""))]

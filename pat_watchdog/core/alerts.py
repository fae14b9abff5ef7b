"""Alerts: what a person is told, built from a plan's reasons (docs/reference.md, "Alerts"). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pat_watchdog.core import reasons as R
from pat_watchdog.core.model import InstancePlan, Reason
from pat_watchdog.core.policy import held_scopes_missing
from pat_watchdog.core.settings import Settings
from pat_watchdog.core.times import format_utc

ALERT_LEVELS = ("WARNING", "CRITICAL", "UNKNOWN")   # UNKNOWN (could not check) is told as a WARNING
PORTAL = "https://portal.azure.com/#@/resource{app}/configuration"


@dataclass(frozen=True)
class Alert:
    """One message about one condition of one instance; never holds a token, only its fingerprint."""

    instance: str
    app_id: str
    level: str                       # INFO | WARNING | CRITICAL
    condition: str                   # ledger key, e.g. EXPIRY
    code: str                        # reason code, or RESOLVED / ROTATED
    stage: str | None
    summary: str
    message: str
    days_left: int | None
    expires_on: datetime | None
    expiry_source: str | None
    fingerprint: str | None
    missing_scopes: tuple[str, ...]
    next_step: str
    command: str | None

    @property
    def subject(self) -> str:
        return f"[pat-watchdog] {self.level}: {self.instance}: {self.summary}"

    @property
    def portal_url(self) -> str:
        return PORTAL.format(app=self.app_id)

    def facts(self) -> list[tuple[str, str]]:
        """The facts every channel shows, in order."""
        facts = [("Instance", self.instance), ("Level", self.level),
                 ("Days left", "unknown" if self.days_left is None else
                  f"{self.days_left} (expired)" if self.days_left < 0 else str(self.days_left)),
                 ("Expires", format_utc(self.expires_on) or "unknown"),
                 ("Expiry source", self.expiry_source or "none"),
                 ("Token fingerprint", self.fingerprint or "none")]
        if self.missing_scopes:
            facts.append(("Missing scopes", " ".join(self.missing_scopes)))
        return facts


def _stage_command(settings: Settings, plan: InstancePlan, value: str = "<new PAT>") -> str:
    secret = settings.secret_names(plan.name)[0]
    command = R.stage_command(settings.vault_name, secret).replace("<new PAT>", value)
    return command.replace(" ".join(R.DEFAULT_RECOMMENDED_SCOPES), _scopes_to_ask(settings))


def _scopes_to_ask(settings: Settings) -> str:
    """The scopes a replacement is created with: the recommended ones, plus any required they miss."""
    extra = held_scopes_missing(settings.recommended_scopes, settings.required_scopes)
    return " ".join(settings.recommended_scopes + extra)


def _next_step(reason: Reason, settings: Settings, plan: InstancePlan) -> tuple[str, str | None]:
    scopes = _scopes_to_ask(settings)
    create = (f"Create a new PAT in Azure DevOps for {settings.devops_org_url} (this organization only, "
              f"scopes: {scopes}, valid up to a year) and stage it in Key Vault with the command below")
    if not settings.rotation_enabled:
        create = create.replace("and stage it in Key Vault with the command below",
                                "and put it in place with aggregator-cli `configure.instance`.")
    when = "; the watchdog validates it and puts it in place " + (
        "at once." if reason.level == "CRITICAL" else f"{settings.rotate_within_days} days before expiry.")
    if reason.code == R.EXPIRY_UNKNOWN.name:
        return ("Stage the CURRENT token with its expiry date: the watchdog adopts it as the record of "
                "its expiry (or set WATCHDOG_PAT_EXPIRES_ON).", _stage_command(settings, plan, "<current PAT>"))
    if reason.code == R.CANDIDATE_REJECTED.name:
        return (f"Fix what the rejection names, then stage a new version with the command below{when}",
                _stage_command(settings, plan))
    if reason.code == R.ROTATION_FAILED.name:
        return ("The rotation was rolled back: the reason says what was put back and what could not be. Fix "
                "what it names, then stage the replacement again as a new version.", _stage_command(settings, plan))
    if reason.code == R.TAG_LIMIT.name:
        return ("Remove tags from that version (the watchdog needs 4 of Key Vault's 15) or stage it again.", None)
    if reason.condition == "UNCHECKED" or reason.code == R.KEYVAULT_UNAVAILABLE.name:
        return ("Check the watchdog's access (its role on the Aggregator app, its Key Vault role, the network) "
                "and the failed run in Application Insights; the next run checks again.", None)
    if reason.code == R.REFERENCE_UNRESOLVED.name:
        return ("Give the Aggregator app's identity read access to that secret (Key Vault Secrets User), check "
                "that the vault and secret exist and that the app has a managed identity, then restart the app "
                "(Microsoft Learn: Key Vault references, troubleshooting).", None)
    if reason.code == R.REFERENCE_NOT_ALLOWED.name:
        return (f"Point {settings.token_setting} at a secret that holds only Aggregator's PAT, in the staging "
                "vault or a vault listed in WATCHDOG_REFERENCE_VAULTS, and find out who changed the setting: "
                "the watchdog never follows a reference to another vault or to its own secrets.", None)
    if reason.code == R.TOKEN_TYPE_INVALID.name:
        return ("Set Aggregator_VstsTokenType to PAT with aggregator-cli `configure.instance`.", None)
    if reason.code == R.PAT_NOT_IN_LISTING.name:
        return ("Correct or remove WATCHDOG_PAT_AUTHORIZATION_ID.", None)
    return (create + (when if settings.rotation_enabled else ""), _stage_command(settings, plan))


def _summary(reason: Reason) -> str:
    return R.ALL[reason.code].message if reason.code in R.ALL else reason.code


def for_reason(reason: Reason, plan: InstancePlan, settings: Settings) -> Alert:
    """The alert for one WARNING/CRITICAL reason of a plan."""
    token = plan.token
    missing = held_scopes_missing(token.scopes, settings.required_scopes + tuple(
        s for s in settings.recommended_scopes if s not in settings.required_scopes)) if token.scopes else ()
    step, command = _next_step(reason, settings, plan)
    level = "WARNING" if reason.level == "UNKNOWN" else reason.level
    return Alert(plan.name, plan.app_id, level, reason.condition or reason.code, reason.code,
                 reason.stage, _summary(reason), reason.message, token.days_left, token.expires_on,
                 token.expiry_source, token.fingerprint, missing, step, command)


def for_plan(plan: InstancePlan, settings: Settings) -> list[Alert]:
    """Every alert condition of an instance: one alert per condition, never a digest."""
    seen, alerts = set(), []
    for reason in plan.reasons:
        if reason.condition and reason.level in ALERT_LEVELS and reason.condition not in seen:
            seen.add(reason.condition)
            alerts.append(for_reason(reason, plan, settings))
    return alerts


# The conditions that are not one reason code: several codes share them (docs/reference.md, "Alerts").
_CONDITION_TITLES = {"EXPIRY": "expiry", "UNCHECKED": "the watchdog could not check the instance"}


def condition_title(condition: str) -> str:
    """What a person calls a condition, for a subject: never the ledger key (`CANDIDATE_REJECTED:<version>`)."""
    code = condition.split(":", 1)[0]
    return _CONDITION_TITLES.get(code) or (R.ALL[code].message if code in R.ALL else "an earlier alert")


def resolved(condition: str, last_message: str, plan: InstancePlan) -> Alert:
    """The one notice sent when a condition clears."""
    token = plan.token
    return Alert(plan.name, plan.app_id, "INFO", condition, "RESOLVED", None, f"resolved: {condition_title(condition)}",
                 f"Resolved: {last_message}. Now: " + next((r.message for r in plan.reasons), "OK"),
                 token.days_left, token.expires_on, token.expiry_source, token.fingerprint, (),
                 "Nothing to do.", None)


def event(plan: InstancePlan, reason: Reason, condition: str) -> Alert:
    """A one-time notice at the reason's level (sent once per channel, never "resolved")."""
    token = plan.token
    return Alert(plan.name, plan.app_id, reason.level, condition, reason.code, None, _summary(reason),
                 reason.message, token.days_left, token.expires_on, token.expiry_source, token.fingerprint, (),
                 "Check who changed the token setting and whether Aggregator now has the token it should.", None)


def info(plan: InstancePlan, code: str, summary: str, message: str) -> Alert:
    """An INFO alert (e.g. rotated), not deduplicated."""
    token = plan.token
    return Alert(plan.name, plan.app_id, "INFO", code, code, None, summary, message, token.days_left,
                 token.expires_on, token.expiry_source, token.fingerprint, (), "Nothing to do.", None)

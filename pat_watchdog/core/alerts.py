"""Alerts: what a person is told, built from a plan's reasons (docs/reference.md, "Alerts"). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pat_watchdog.core import fixes
from pat_watchdog.core import reasons as R
from pat_watchdog.core.model import CandidateState, CandidateView, InstancePlan, Reason
from pat_watchdog.core.policy import MISSING, held_scopes_missing, rotation_opens
from pat_watchdog.core.resource_ids import ResourceId, parse_resource_id
from pat_watchdog.core.settings import Settings
from pat_watchdog.core.timer import next_run
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


def _scopes_to_ask(settings: Settings) -> str:
    """The scopes a replacement is created with: the recommended ones, plus any required they miss."""
    extra = held_scopes_missing(settings.recommended_scopes, settings.required_scopes)
    return " ".join(settings.recommended_scopes + extra)


@dataclass(frozen=True)
class _Context:
    """What a next step depends on: the settings, the plan, and when the alert is made."""

    settings: Settings
    plan: InstancePlan
    now: datetime

    @property
    def staging(self) -> bool:
        """A vault to stage in, and a watchdog that rotates from it."""
        return self.settings.rotation_enabled

    @property
    def secret(self) -> str:
        return self.settings.secret_names(self.plan.name)[0]

    def waiting(self) -> CandidateView | None:
        """A valid-looking replacement staged and waiting for its time (not the token in place)."""
        cand = self.plan.candidate
        usable = cand.state == CandidateState.PENDING and cand.room and cand.fingerprint != self.plan.token.fingerprint
        return cand if usable and self.staging else None

    def next_run(self, not_before: datetime | None = None) -> str:
        """The first run after this one (and not before `not_before`), as a date."""
        soonest = self.now + timedelta(seconds=1)
        when = next_run(self.settings.schedule, max(soonest, not_before or soonest))
        return format_utc(when) if when else f"never: WATCHDOG_SCHEDULE={self.settings.schedule} does not fire"

    def later(self) -> bool:
        """Whether a scheduled run would wait before rotating (the rotation window is not open yet)."""
        opens = rotation_opens(self.plan.token, self.settings.rotate_within_days)
        return self.plan.token.live is not False and (opens is None or opens > self.now)

    def when(self) -> str:
        """When the watchdog puts a valid staged replacement in place: "on <date>" or "at the next run (<date>)"."""
        opens = rotation_opens(self.plan.token, self.settings.rotate_within_days)
        if not self.later():
            return f"at the next run ({self.next_run()})"
        if opens is None:
            return "only with pat-watchdog rotate --force (the current token's expiry is unknown)"
        return f"on {self.next_run(opens)}"

    def force_now(self) -> str:
        """Put it in place now, and why a scheduled run would not yet."""
        opens = rotation_opens(self.plan.token, self.settings.rotate_within_days)
        wait = f"a run would wait until {self.next_run(opens)}" if opens else \
            "a run never would: the current token's expiry is unknown"
        return f"put it in place now with pat-watchdog rotate --force ({wait})"

    def new_pat_expiry(self) -> datetime:
        """The expiry to create a replacement with: WATCHDOG_PAT_LIFETIME_DAYS from now, and after the current
        token's (a candidate must outlive it), within Azure DevOps' one year."""
        day = self.now.replace(hour=0, minute=0, second=0, microsecond=0)
        wanted = day + timedelta(days=self.settings.pat_lifetime_days)
        if self.plan.token.expires_on is not None:
            wanted = max(wanted, self.plan.token.expires_on.replace(hour=0, minute=0, second=0, microsecond=0)
                         + timedelta(days=1))
        return min(wanted, day + timedelta(days=365))

    def stage(self, *, current: bool = False) -> str:
        """The staging command: of a new PAT with its expiry, or of the token in place (expiry typed in)."""
        if current:
            return R.stage_command(self.settings.vault_name, self.secret, scopes=None)
        return R.stage_command(self.settings.vault_name, self.secret, expires=format_utc(self.new_pat_expiry()),
                               scopes=_scopes_to_ask(self.settings))

    def create(self, verb: str = "Create") -> str:
        """How to create the replacement PAT in Azure DevOps."""
        return (f"{verb} a new PAT in Azure DevOps for {self.settings.devops_org_url} (this organization only, "
                f"scopes: {_scopes_to_ask(self.settings)}, expiring on {self.new_pat_expiry():%Y-%m-%d})")


def _by_hand(ctx: _Context, verb: str = "Create") -> str:
    """Without a staging vault, or with rotation off: a person puts the token in place."""
    setting = ctx.settings.token_setting
    return (f"{ctx.create(verb)} and put it in place with aggregator-cli configure.instance, or as the app setting "
            f"{setting} in the Azure portal (the button below). The watchdog only watches: "
            + ("WATCHDOG_ROTATION is off." if ctx.settings.key_vault_url else
               "without a staging vault (WATCHDOG_KEY_VAULT_URL) it has nowhere to take a replacement from."))


def _replacement(ctx: _Context, reason: Reason, first: str = "") -> tuple[str, str | None]:
    """The next step when the token in place must be replaced (it expires, does not work, lacks scopes, ...).
    A CRITICAL reason while the rotation window is still closed (a missing scope, say) is not left to wait."""
    if not ctx.staging:
        return first + _by_hand(ctx), None
    now = reason.level == "CRITICAL" and ctx.later()
    if (cand := ctx.waiting()) is not None:
        staged = (f"{first}A replacement is staged (version {cand.version}, fingerprint {cand.fingerprint or 'unknown'}"
                  f", expires {format_utc(cand.expires_on) or 'unknown'})")
        if now:
            return f"{staged}: {ctx.force_now()}.", None
        return f"{staged}; it goes in {ctx.when()} (pat-watchdog rotate --force: now). Nothing else to do.", None
    paste = " (paste the PAT when it waits: nothing is shown)"
    if now:
        return f"{first}{ctx.create()} and stage it with the command below{paste}; then {ctx.force_now()}.", ctx.stage()
    if ctx.settings.auto:
        return (f"{first}With auto rotation the watchdog creates the replacement and puts it in place {ctx.when()}. "
                f"To do it yourself instead: {ctx.create('create')} and stage it with the command below{paste}.",
                ctx.stage())
    return (f"{first}{ctx.create()} and stage it with the command below{paste}; the watchdog validates it and "
            f"puts it in place {ctx.when()}.", ctx.stage())


def _missing_setting(ctx: _Context) -> tuple[str, str | None]:
    """TOKEN_MISSING for a setting the app does not have: only `rotate --force` creates it."""
    setting = ctx.settings.token_setting
    fix = f"If WATCHDOG_TOKEN_SETTING={setting} is misspelt, correct it. Otherwise "
    if not ctx.staging:
        return fix + _by_hand(ctx, "create"), None
    force = (f"run pat-watchdog rotate --force: it validates the PAT and creates the setting {setting} (a "
             "scheduled run never creates a setting, so a misspelt name cannot become a new one).")
    if (cand := ctx.waiting()) is not None:
        return fix + f"a replacement is staged (version {cand.version}, fingerprint {cand.fingerprint}): " + force, None
    return (fix + f"{ctx.create('create')}, stage it with the command below (paste the PAT when it waits: nothing "
            f"is shown), then {force}", ctx.stage())


def _adopt_current(ctx: _Context, why: str) -> tuple[str, str | None]:
    """EXPIRY_UNKNOWN and EXPIRY_STALE: tell the watchdog the token's real expiry."""
    if not ctx.settings.key_vault_url:
        return (f"{why}Set WATCHDOG_PAT_EXPIRES_ON to the token's expiry date as Azure DevOps shows it (or set "
                "WATCHDOG_KEY_VAULT_URL and stage the token there: it is adopted as the record of its expiry).", None)
    return (f"{why}Stage the CURRENT token with its expiry: run the command below, paste the token (nothing is "
            "shown) and press Enter, then type its expiry date as Azure DevOps shows it (e.g. 2027-01-15) and press "
            "Enter. The watchdog adopts it as the record of its expiry (or set WATCHDOG_PAT_EXPIRES_ON).",
            ctx.stage(current=True))


def _token_type_fix(app_id: str) -> str:
    """doctor's command for Aggregator_VstsTokenType (core/fixes.app_setting)."""
    try:
        app = parse_resource_id(app_id)
    except ValueError:
        app = None
    if app is None or not app.is_site:
        return "az functionapp config appsettings set -g <group> -n <app> --settings Aggregator_VstsTokenType=PAT"
    return fixes.app_setting(app, "Aggregator_VstsTokenType", "PAT")


_CHECK_ACCESS = ("Check the watchdog's access (its role on the Aggregator app, its Key Vault role, the network) "
                 "and the failed run in Application Insights; the next run checks again.")
_FIXED = {
    R.TAG_LIMIT.name: "Remove tags from that version (the watchdog needs 4 of Key Vault's 15) or stage it again.",
    R.KEYVAULT_UNAVAILABLE.name: _CHECK_ACCESS,
    R.INTERNAL_ERROR.name: _CHECK_ACCESS,
    R.REFERENCE_UNRESOLVED.name: (
        "Give the Aggregator app's identity read access to that secret (Key Vault Secrets User), check that the "
        "vault and secret exist and that the app has a managed identity, then restart the app (Microsoft Learn: "
        "Key Vault references, troubleshooting)."),
    R.PAT_NOT_IN_LISTING.name: "Correct or remove WATCHDOG_PAT_AUTHORIZATION_ID.",
    R.ROTATION_STOPPED.name: ("Find out who changed the token setting during the rotation and whether Aggregator "
                              "has the token it should; the next run looks again, nothing was undone."),
    R.SUBSCRIPTIONS_DISABLED.name: (
        "Make the token work first (another alert says how, if it does not). With WATCHDOG_REENABLE_SUBSCRIPTIONS="
        "true a run enables the subscriptions again once it does; otherwise enable them in Project settings > "
        "Service hooks."),
    R.SUBSCRIPTIONS_ON_PROBATION.name: (
        "Azure DevOps retries them for a while: find out why the rules fail (a broken token is alerted on its own; "
        "otherwise the rule logs in Application Insights) before it disables them."),
    R.BYPASS_RULES_MISSING.name: (
        "Give the token's user \"Bypass rules on work item updates\" in the projects named (Project settings > "
        "Permissions), or replace the token with a PAT of a user who holds it."),
}


def _next_step(reason: Reason, ctx: _Context) -> tuple[str, str | None]:
    code = reason.code
    if code in _FIXED:
        return _FIXED[code], None
    if reason.condition == "UNCHECKED":
        return _CHECK_ACCESS, None
    if code == R.EXPIRY_UNKNOWN.name:
        return _adopt_current(ctx, "")
    if code == R.EXPIRY_STALE.name:
        return _adopt_current(ctx, "If the PAT was extended in Azure DevOps: ")
    if code == R.TOKEN_MISSING.name and reason.stage == MISSING:
        return _missing_setting(ctx)
    if code == R.TOKEN_TYPE_INVALID.name:
        return ("Set Aggregator_VstsTokenType to PAT with the command below (what pat-watchdog doctor prints; or "
                "aggregator-cli configure.instance); the app restarts and Aggregator uses the token.",
                _token_type_fix(ctx.plan.app_id))
    if code == R.REFERENCE_NOT_ALLOWED.name:
        return (f"Point {ctx.settings.token_setting} at a secret that holds only Aggregator's PAT, in the staging "
                "vault or a vault listed in WATCHDOG_REFERENCE_VAULTS, and find out who changed the setting: the "
                "watchdog never follows a reference to another vault or to its own secrets.", None)
    if code == R.SIGNIN_REQUIRED.name:
        login = "pat-watchdog login" + (f" --instance {ctx.plan.name}" if "{name}" in ctx.settings.signin_secret
                                        else "")
        return ("Sign in again with the command below, as the token's user (device code); until then auto "
                "rotation creates nothing.", login)
    if code == R.CANDIDATE_REJECTED.name:
        return _replacement(ctx, reason, "Fix what the rejection names, then stage a new version. ")
    if code == R.ROTATION_FAILED.name:
        return _replacement(ctx, reason, "The rotation was rolled back: the reason says what was put back and what "
                                         "could not be. Fix what it names, then stage the replacement again as a new "
                                         "version. ")
    if code == R.PAT_CREATION_BLOCKED.name:
        return _replacement(ctx, reason, "Have the policy the reason names changed, or stage a replacement "
                                         "yourself. ")
    return _replacement(ctx, reason)


def stage_replacement(settings: Settings, plan: InstancePlan, now: datetime) -> str:
    """The command that stages a replacement for `plan`'s token (what its alerts print)."""
    return _Context(settings, plan, now).stage()


def _summary(reason: Reason) -> str:
    return R.ALL[reason.code].message if reason.code in R.ALL else reason.code


def for_reason(reason: Reason, plan: InstancePlan, settings: Settings, now: datetime) -> Alert:
    """The alert for one WARNING/CRITICAL reason of a plan, made at `now` (its next step names dates)."""
    token = plan.token
    missing = held_scopes_missing(token.scopes, settings.required_scopes + tuple(
        s for s in settings.recommended_scopes if s not in settings.required_scopes)) if token.scopes else ()
    step, command = _next_step(reason, _Context(settings, plan, now))
    level = "WARNING" if reason.level == "UNKNOWN" else reason.level
    return Alert(plan.name, plan.app_id, level, reason.condition or reason.code, reason.code,
                 reason.stage, _summary(reason), reason.message, token.days_left, token.expires_on,
                 token.expiry_source, token.fingerprint, missing, step, command)


def for_plan(plan: InstancePlan, settings: Settings, now: datetime) -> list[Alert]:
    """Every alert condition of an instance: one alert per condition, never a digest."""
    seen, alerts = set(), []
    for reason in plan.reasons:
        if reason.condition and reason.level in ALERT_LEVELS and reason.condition not in seen:
            seen.add(reason.condition)
            alerts.append(for_reason(reason, plan, settings, now))
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


def unchecked(app: ResourceId, queue: str | None, now: datetime) -> Alert:
    """INSTANCE_UNCHECKED: a fan-out message that failed on every attempt (its instance is not watched)."""
    return Alert(app.site, str(app), "CRITICAL", R.INSTANCE_UNCHECKED.name, R.INSTANCE_UNCHECKED.name, None,
                 R.INSTANCE_UNCHECKED.message,
                 f"The fan-out message for {app.site} failed on every attempt and was moved to the poison "
                 f"queue {queue}-poison at {format_utc(now)}: its PAT is not being watched.",
                 None, None, None, None, (),
                 "Look at the failed invocations in Application Insights (ARM or Key Vault access, a malformed "
                 "setting), fix the cause, then move the message back to the queue or wait for tomorrow's run.", None)

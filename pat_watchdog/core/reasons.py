"""Reason codes: one constant per finding, with its level, alert condition and default message.

The same reasons feed the report, the logs and the alert text (docs/reference.md, "Reason codes").
"""

from __future__ import annotations

from dataclasses import dataclass

from pat_watchdog.core.model import Reason
from pat_watchdog.core.times import format_utc

# Aggregator's runtime only writes work items (aggregator-cli src/aggregator-ruleng: the rules'
# WorkItemTrackingHttpClient calls); its documentation asks for these four (docs/setup.md).
DEFAULT_REQUIRED_SCOPES = ("vso.work_write",)
DEFAULT_RECOMMENDED_SCOPES = ("vso.identity", "vso.project", "vso.serviceendpoint_manage", "vso.work_full")


@dataclass(frozen=True)
class Code:
    name: str
    level: str
    condition: str | None
    message: str


def _code(name: str, level: str, message: str, condition: str | None = "") -> Code:
    return Code(name, level, name if condition == "" else condition, message)


HEALTHY = _code("HEALTHY", "OK", "the token works", None)
EXPIRES_SOON = _code("EXPIRES_SOON", "WARNING", "the token expires soon", "EXPIRY")
EXPIRES_CRITICAL = _code("EXPIRES_CRITICAL", "CRITICAL", "the token expires soon and no replacement is staged",
                         "EXPIRY")
EXPIRED = _code("EXPIRED", "CRITICAL", "the token has expired: every Aggregator rule fails", "EXPIRY")
TOKEN_INVALID = _code("TOKEN_INVALID", "CRITICAL", "Azure DevOps rejects the token (revoked or invalid)")
TOKEN_SETTING_CHANGED = _code("TOKEN_SETTING_CHANGED", "WARNING",
                              "the token setting was changed by someone else than the watchdog", None)
TOKEN_MISSING = _code("TOKEN_MISSING", "CRITICAL", "the token setting is missing or empty")
TOKEN_TYPE_INVALID = _code("TOKEN_TYPE_INVALID", "CRITICAL",
                           "Aggregator_VstsTokenType is not PAT: Aggregator cannot use the token, every rule fails")
SCOPE_MISSING = _code("SCOPE_MISSING", "CRITICAL", "the token lacks a scope Aggregator's rules need")
SCOPE_RECOMMENDED_MISSING = _code("SCOPE_RECOMMENDED_MISSING", "WARNING",
                                  "the token lacks a scope Aggregator's documentation asks for")
GLOBAL_PAT = _code("GLOBAL_PAT", "WARNING",
                   "the token is a global PAT (all accessible organizations); global PATs stop working on "
                   "2026-12-01: stage an organization-scoped replacement")
EXPIRY_UNKNOWN = _code("EXPIRY_UNKNOWN", "WARNING", "no source knows when the token expires")
EXPIRY_EXTENDED = _code("EXPIRY_EXTENDED", "INFO", "the PAT was extended in place: Azure DevOps' date is used",
                        None)
EXPIRY_STALE = _code("EXPIRY_STALE", "WARNING", "Key Vault's expiry date has passed but the token still works")
EXPIRY_AMBIGUOUS = _code("EXPIRY_AMBIGUOUS", "INFO", "several listing entries match; the earliest expiry is used", None)
EXPIRY_SOURCES_DISAGREE = _code("EXPIRY_SOURCES_DISAGREE", "INFO", "expiry sources disagree; the earliest wins", None)
PAT_NOT_IN_LISTING = _code("PAT_NOT_IN_LISTING", "WARNING",
                           "WATCHDOG_PAT_AUTHORIZATION_ID matches no entry of the token listing")
LISTING_UNAVAILABLE = _code("LISTING_UNAVAILABLE", "INFO", "the Azure DevOps token listing is not available", None)
REFERENCE_UNRESOLVED = _code("REFERENCE_UNRESOLVED", "CRITICAL",
                             "App Service cannot resolve the token setting's Key Vault reference: Aggregator gets "
                             "the reference text instead of the token, every rule fails")
REFERENCE_NOT_ALLOWED = _code("REFERENCE_NOT_ALLOWED", "CRITICAL",
                              "the token setting's Key Vault reference points where the watchdog may not follow")
CHANNEL_SETTING_UNRESOLVED = _code("CHANNEL_SETTING_UNRESOLVED", "CRITICAL",
                                   "an alert channel's setting is an unresolved Key Vault reference: App Service "
                                   "passed the reference text, so that channel gets no alert")
KEYVAULT_REFERENCE_UNRESOLVED = _code("KEYVAULT_REFERENCE_UNRESOLVED", "UNKNOWN",
                                      "the Key Vault reference in the token setting could not be resolved",
                                      "UNCHECKED")
KEYVAULT_UNAVAILABLE = _code("KEYVAULT_UNAVAILABLE", "WARNING", "the staging vault could not be read")
TAG_LIMIT = _code("TAG_LIMIT", "WARNING", "a staged version has no room for the watchdog's tags")
TAG_UNPARSED = _code("TAG_UNPARSED", "WARNING", "a tag of a staged version does not parse: it is ignored")
TOKEN_USER_CHANGED = _code("TOKEN_USER_CHANGED", "WARNING",
                           "the token in place belongs to another user than the instance's: replacements and "
                           "sign-ins of that user are refused until a person hands the instance over")
EXPIRY_UNCONFIRMED = _code("EXPIRY_UNCONFIRMED", "WARNING",
                           "the Key Vault date of the current token matches none of its user's active PATs: ignored")
SCOPES_UNCONFIRMED = _code("SCOPES_UNCONFIRMED", "WARNING",
                           "the scopes tag of the current token matches none of its user's active PATs: ignored")
TAG_DISAGREES = _code("TAG_DISAGREES", "WARNING",
                      "a tag of a staged version contradicts what the watchdog verified itself: the tag is ignored")
INTERNAL_ERROR = _code("INTERNAL_ERROR", "UNKNOWN", "an unexpected error stopped the check of this instance: "
                       "the run fails, so the failed-run monitor fires")
ARM_UNREACHABLE = _code("ARM_UNREACHABLE", "UNKNOWN", "the Aggregator app settings could not be read", "UNCHECKED")
DEVOPS_UNREACHABLE = _code("DEVOPS_UNREACHABLE", "UNKNOWN", "Azure DevOps could not be reached", "UNCHECKED")
DEADLINE_EXCEEDED = _code("DEADLINE_EXCEEDED", "UNKNOWN", "the check of this instance ran out of time: what was "
                          "known by then is reported, the rest waits for the next run", "UNCHECKED")
SUBSCRIPTIONS_DISABLED = _code("SUBSCRIPTIONS_DISABLED", "CRITICAL",
                               "Azure DevOps disabled service hook subscriptions of this instance: "
                               "their rules never run")
SUBSCRIPTIONS_ON_PROBATION = _code("SUBSCRIPTIONS_ON_PROBATION", "WARNING",
                                   "service hook subscriptions of this instance are on probation after failures")
SUBSCRIPTIONS_DISABLED_BY_USER = _code("SUBSCRIPTIONS_DISABLED_BY_USER", "INFO",
                                       "a person disabled service hook subscriptions of this instance", None)
SUBSCRIPTIONS_UNAVAILABLE = _code("SUBSCRIPTIONS_UNAVAILABLE", "INFO",
                                  "the service hook subscriptions could not be read with the token", None)
BYPASS_RULES_MISSING = _code("BYPASS_RULES_MISSING", "CRITICAL",
                             "the token's user lacks \"Bypass rules on work item updates\", which "
                             "impersonating rules need")
BYPASS_RULES_UNAVAILABLE = _code("BYPASS_RULES_UNAVAILABLE", "INFO",
                                 "the \"Bypass rules\" permission could not be checked with the token", None)
CANDIDATE_STAGED = _code("CANDIDATE_STAGED", "INFO", "a replacement is staged", None)
CANDIDATE_SKIPPED = _code("CANDIDATE_SKIPPED", "INFO", "a staged version is not a candidate", None)
CANDIDATE_SUPERSEDED = _code("CANDIDATE_SUPERSEDED", "INFO", "older staged versions are left alone", None)
CANDIDATE_REJECTED = _code("CANDIDATE_REJECTED", "WARNING", "the staged replacement was rejected")
ROTATION_DUE = _code("ROTATION_DUE", "INFO", "rotation is due", None)
ROTATED = _code("ROTATED", "INFO", "the token was rotated", None)
ROTATION_FAILED = _code("ROTATION_FAILED", "CRITICAL", "rotation failed and was rolled back")
INSTANCE_UNCHECKED = _code("INSTANCE_UNCHECKED", "CRITICAL",
                           "the watchdog could not check this instance after repeated attempts")
ROTATION_STOPPED = _code("ROTATION_STOPPED", "WARNING",
                         "rotation stopped: someone else changed the token setting meanwhile")
SIGNIN_REQUIRED = _code("SIGNIN_REQUIRED", "WARNING",
                       "auto rotation cannot create a replacement: the delegated sign-in is missing, expired or "
                       "revoked. Fix: pat-watchdog login")
PAT_CREATION_BLOCKED = _code("PAT_CREATION_BLOCKED", "CRITICAL",
                             "Azure DevOps refused to create a replacement PAT: a policy forbids it")
PAT_LIFESPAN_CAPPED = _code("PAT_LIFESPAN_CAPPED", "INFO",
                            "a policy shortened the created PAT's lifetime", None)
PAT_CREATION_DEFERRED = _code("PAT_CREATION_DEFERRED", "WARNING",
                              "a lifespan policy caps created PATs below the token's days left: the watchdog "
                              "creates the replacement once a capped PAT would outlive the token")

ALL = {c.name: c for c in globals().values() if isinstance(c, Code)}


def reason(code: Code, message: str | None = None, *, level: str | None = None,
           condition: str | None = None, stage: str | None = None) -> Reason:
    """A Reason for `code`, with a specific message when one is known."""
    return Reason(code.name, level or code.level, message or code.message,
                  condition or code.condition, stage)


def stage_command(vault: str, secret: str, *, expires: str | None = None,
                  scopes: str | None = " ".join(DEFAULT_RECOMMENDED_SCOPES)) -> str:
    """The exact line a person runs to stage a PAT (docs/rotation.md, "Stage a replacement").

    The PAT never reaches a command line (`ps` and /proc show those to every local user): `read -s`
    takes it from the terminal unechoed and `printf`, a shell builtin, pipes it to the Azure CLI's
    `--file /dev/stdin`, which stores it as read, without a newline (it adds a `file-encoding` tag
    of its own: azure-cli keyvault `_validators.process_secret_set_namespace`). `expires` is the
    PAT's expiry (ISO 8601 UTC); None reads it from the terminal too, after the PAT. `scopes=None`
    stages no scopes tag (the listing then says which the PAT has)."""
    reads = "read -rs PAT && " + ("" if expires else "read -r EXPIRES && ")
    expires = expires or '"$EXPIRES"'
    tags = f' --tags scopes="{scopes}"' if scopes else ""
    return (f'{reads}printf %s "$PAT" | az keyvault secret set --vault-name {vault} --name {secret} '
            f'--file /dev/stdin --expires {expires}{tags}')


def expiry_unknown_fix(vault: str | None, secret: str) -> str:
    if vault is None:
        return ("no source knows when the token expires. Fix: set WATCHDOG_PAT_EXPIRES_ON to its expiry date as "
                "Azure DevOps shows it, or configure a staging vault (WATCHDOG_KEY_VAULT_URL) and stage the "
                "current token there: it is adopted as the record of its expiry")
    return ("no source knows when the token expires. Fix: stage the CURRENT token with its expiry and it "
            "is adopted (paste the token, nothing is shown, then type its expiry date, e.g. 2027-01-15): "
            + stage_command(vault, secret, scopes=None) + " (or set WATCHDOG_PAT_EXPIRES_ON)")


def disagree_message(chosen, others) -> str:
    parts = [f"{f.source} says {format_utc(f.expires_on)}" for f in [chosen, *others]]
    rule = "the last resort, WATCHDOG_PAT_EXPIRES_ON," if chosen.source == "setting" else "the earliest"
    return "expiry sources disagree: " + ", ".join(parts) + f"; {rule} ({chosen.source}) is used" + (
        "; WATCHDOG_PAT_EXPIRES_ON counts only when nothing else knows" if any(
            f.source == "setting" for f in others) else "")

"""`auto` rotation's decisions (docs/reference.md, "Hands-free rotation"), pure: when to create a PAT, with
which scopes and name,
which created PATs to revoke, and what Azure DevOps' refusals mean to a person."""

from __future__ import annotations

from datetime import datetime, timedelta

from pat_watchdog.core.model import CandidateState, InstancePlan
from pat_watchdog.core.record import CreatedRecord, CreatedState, Record
from pat_watchdog.core.tags import SecretVersion
from pat_watchdog.core.times import format_utc

CREATED_BY_TAG, CREATED_BY = "created-by", "pat-watchdog"
AUTHORIZATION_TAG, REVOKED_TAG, EXPIRES_TAG, SCOPES_TAG = "authorizationId", "revoked-at", "expires", "scopes"
_PREFIX = "pat-watchdog"
# PAT Lifecycle API refusals (SessionTokenError in MicrosoftDocs/vsts-rest-api-specs, tokens 7.1) that a
# policy causes, and what the person does about each. Anything else is reported with its code.
_POLICIES = {
    "fullScopePatPolicyViolation": "the tenant policy that restricts full-scoped PATs refuses scope app_token: "
                                   "give the current token explicit scopes, or ask an Azure DevOps "
                                   "Administrator to exempt the signed-in user",
    "globalPatPolicyViolation": "the tenant policy that restricts global PATs refuses it: the watchdog only "
                                "creates organization-scoped PATs, so ask an Administrator to check the policy",
    "patLifespanPolicyViolation": "the tenant policy \"Enforce maximum personal access token lifespan\" refuses "
                                  "the lifetime: lower WATCHDOG_PAT_LIFETIME_DAYS to the policy's maximum",
    "disablePatCreationPolicyViolation": "the organization policy \"Restrict personal access token creation\" "
                                         "refuses the signed-in user: ask an Azure DevOps Administrator to add the "
                                         "user to the policy's allow list, or set WATCHDOG_ROTATION=staged and "
                                         "stage replacements by hand",
    "globalPATCreationBlocked": "Azure DevOps no longer creates global PATs: the watchdog only asks for "
                               "organization-scoped ones, so report this",
    "accessDenied": "the organization policy \"Restrict personal access token creation\" (or a missing "
                    "permission) refuses the signed-in user: ask an Azure DevOps Administrator to add the user "
                    "to the policy's allow list, or set WATCHDOG_ROTATION=staged and stage replacements by hand",
}


def display_name(site: str, now: datetime) -> str:
    """A name that says who made the PAT and for which instance, unique per minute."""
    return f"{_PREFIX} {site} {now.strftime('%Y-%m-%dT%H%MZ')}"


def made_for(name: str, site: str) -> bool:
    """Whether a listed PAT's display name is one `display_name` gave for this instance."""
    return name.startswith(f"{_PREFIX} {site} ")


def confirmed(pat: CreatedRecord, listed, site: str):
    """The PAT Lifecycle listing's entry for a PAT the record says the watchdog created: same authorization
    ID (or, for one whose creation answer was never recorded, the exact display name recorded before the
    request) and a display name the watchdog gives for this instance. None: not confirmed, never revoked."""
    for entry in listed:
        if not made_for(entry.display_name, site) or entry.display_name != pat.display_name:
            continue
        if pat.authorization_id is None or entry.authorization_id.lower() == pat.authorization_id.lower():
            return entry
    return None


def creation_due(plan: InstancePlan, rotate_within_days: int) -> str | None:
    """Why a replacement must be created now, or None: rotation is due and nothing usable is staged."""
    cand, token = plan.candidate, plan.token
    if plan.rotate or plan.adopt or (cand.state in (CandidateState.PENDING, CandidateState.APPLYING) and cand.room):
        return None      # something usable staged is rotated in, waits for its window, or is being finished
    if token.fingerprint is None:
        return None      # no token setting: a misspelt WATCHDOG_TOKEN_SETTING must not get a new PAT
    if token.live is False:
        return "the current token does not work"
    if token.days_left is not None and token.days_left <= rotate_within_days:
        return f"{token.days_left} days left, within WATCHDOG_ROTATE_WITHIN_DAYS={rotate_within_days}"
    return None


def created_by_watchdog(version: SecretVersion, record: Record | None = None, digest: str | None = None) -> bool:
    """Whether the watchdog created the PAT a staged version holds: its own record says so (by the value's
    digest). The `created-by` tag is the visible mirror, never proof."""
    return record is not None and digest is not None and record.created_pat(digest=digest) is not None


def created_and_failed(record: Record, token_works: bool = True,
                       expires_on: datetime | None = None) -> CreatedRecord | None:
    """The newest PAT the watchdog created, when it was rejected or failed (never used) while the token in
    place still works: another would likely fail the same way, so a person looks first. Once the token is
    broken, trying again is the only way out (a dead token's checks differ). One that a lifespan policy cut
    short of the token in place (`expires_on`) does not block: `creation_deferred` times the next."""
    made = [p for p in record.created if p.state != CreatedState.INTENDED]
    newest = max(made, key=lambda p: p.created_at, default=None)
    if not token_works or newest is None or newest.state != CreatedState.UNUSED:
        return None
    if record.lifespan_cap_days and newest.valid_to and expires_on and newest.valid_to <= expires_on:
        return None
    return newest


def creation_deferred(record: Record, expires_on: datetime | None, now: datetime) -> datetime | None:
    """When a lifespan policy caps created PATs at fewer days than the token in place has left, a new one
    could not outlive it (a rotation never shortens the expiry): the moment after which one would, else None."""
    cap = record.lifespan_cap_days
    if not cap or expires_on is None or now + timedelta(days=cap) > expires_on:
        return None
    return expires_on - timedelta(days=cap)


def reported_scopes(facts) -> tuple[str, ...] | None:
    """The current token's scopes as Azure DevOps reports them for an entry the watchdog matched itself (its
    record, the user's only active PAT, a creation's answer), never a Key Vault tag, nor an entry a tag
    picked: anyone with staging rights can write a tag, and must not widen a PAT the watchdog creates with
    a person's sign-in (docs/reference.md, "What the watchdog trusts")."""
    return next((f.scopes for f in facts if f.verified and f.scopes), None)


def scopes_for(current: tuple[str, ...] | None, recommended: tuple[str, ...], required: tuple[str, ...]) -> str:
    """The current token's scopes as Azure DevOps reports them (a rotation never narrows them), else the
    recommended ones; plus the required ones. Full access stays full access."""
    wanted = list(current) if current else list(recommended)
    if "app_token" in wanted:
        return "app_token"
    return " ".join(dict.fromkeys([*wanted, *required]))


def refusal(code: str, status: int | None = None) -> tuple[bool, str]:
    """(caused by a policy, what to tell the person) for a creation Azure DevOps refused."""
    said = f"{code} (HTTP {status})" if status else code
    if code in _POLICIES:
        return True, f"{said}: {_POLICIES[code]}"
    if status == 403:
        return True, f"{said}: {_POLICIES['accessDenied']}"
    return False, f"{said}: Azure DevOps refused the creation; the next run tries again"


def lifetimes(days: int) -> list[int]:
    """Lifetimes to ask for, longest first, when a lifespan policy refuses one: `days`, then the usual
    policy maxima below it, down to a week (each refusal creates nothing, so asking again is safe)."""
    return [days] + [d for d in (180, 90, 60, 30, 14, 7) if d < days]


LIFESPAN_REFUSED = "patLifespanPolicyViolation"


def capped(asked: datetime, got: datetime | None) -> bool:
    """A policy shortened the lifetime (more than a day less than asked)."""
    return got is not None and got < asked - timedelta(days=1)


def due_for_revocation(record: Record, holds: str | None, now: datetime,
                       after_days: int | None) -> list[tuple[CreatedRecord, str]]:
    """PATs the watchdog's record says it created for this instance, to revoke, with why: replaced at least
    `after_days` ago, or never used (rejected, failed), or created by a run that died before its value
    reached Key Vault (even with WATCHDOG_REVOKE_AFTER_DAYS=off: nobody else knows of those). Never the token
    Aggregator holds (fingerprint `holds`); nothing when that is unknown.
    The caller confirms each in the PAT Lifecycle listing (same authorization ID and display name)."""
    if holds is None:
        return []
    due = []
    for pat in record.created:
        if pat.digest == holds or pat.revoked_at is not None:
            continue
        if pat.state in (CreatedState.INTENDED, CreatedState.CREATED):
            due.append((pat, "orphan: created by a run that died before its value reached Key Vault"))
        elif after_days is not None and pat.state == CreatedState.UNUSED:
            due.append((pat, "never used (rejected or failed)"))
        elif after_days is not None and pat.state == CreatedState.REPLACED and pat.replaced_at is not None \
                and now - pat.replaced_at >= timedelta(days=after_days):
            due.append((pat, f"replaced on {format_utc(pat.replaced_at)[:10]}, {after_days} days ago or more"))
    return due

"""`auto` rotation's decisions (DESIGN 3.10), pure: when to create a PAT, with which scopes and name,
which created PATs to revoke, and what Azure DevOps' refusals mean to a person."""

from __future__ import annotations

from datetime import datetime, timedelta

from pat_watchdog.core.model import CandidateState, InstancePlan
from pat_watchdog.core.tags import STATUS_TAG, SecretVersion

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


def creation_due(plan: InstancePlan, rotate_within_days: int) -> str | None:
    """Why a replacement must be created now, or None: rotation is due and nothing usable is staged."""
    cand, token = plan.candidate, plan.token
    if plan.rotate or plan.adopt or cand.state in (CandidateState.PENDING, CandidateState.APPLYING):
        return None      # something staged is rotated in, waits for its window, or is being finished
    if token.fingerprint is None:
        return None      # no token setting: a misspelt WATCHDOG_TOKEN_SETTING must not get a new PAT
    if token.live is False:
        return "the current token does not work"
    if token.days_left is not None and token.days_left <= rotate_within_days:
        return f"{token.days_left} days left, within WATCHDOG_ROTATE_WITHIN_DAYS={rotate_within_days}"
    return None


def created_by_watchdog(version: SecretVersion) -> bool:
    return version.tags.get(CREATED_BY_TAG) == CREATED_BY


def created_and_failed(staged: list[SecretVersion], token_works: bool = True) -> SecretVersion | None:
    """The newest staged version, when the watchdog created it and it was rejected or failed, while the
    token in place still works: another would likely fail the same way, so a person looks first. Once
    the token is broken, trying again is the only way out (a dead token's checks differ)."""
    newest = max(staged, key=lambda v: v.created_on or datetime.min, default=None)
    if token_works and newest is not None and created_by_watchdog(newest) and \
            newest.status in (CandidateState.REJECTED, CandidateState.FAILED):
        return newest
    return None


def reported_scopes(facts) -> tuple[str, ...] | None:
    """The current token's scopes as Azure DevOps reports them (a sure listing match), never a Key Vault
    `scopes` tag: a tag anyone with staging rights can write must not widen a PAT the watchdog creates
    with a person's sign-in (DESIGN 3.9)."""
    return next((f.scopes for f in facts if f.source == "devops" and f.scopes and not f.ambiguous), None)


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


def due_for_revocation(staged: list[SecretVersion], holds: str | None, now: datetime,
                       after_days: int | None) -> list[tuple[SecretVersion, str]]:
    """Created PATs to revoke, with why: replaced at least `after_days` ago, or never used (rejected,
    failed). Never the token Aggregator holds (fingerprint `holds`), never one a person made."""
    if after_days is None or holds is None:
        return []
    ours = [v for v in staged if v.tags.get(CREATED_BY_TAG) == CREATED_BY and v.tags.get(AUTHORIZATION_TAG)
            and not v.tags.get(REVOKED_TAG) and v.tags.get("fingerprint") != holds]
    rotations = sorted((v for v in staged if v.status == CandidateState.CURRENT and v.tags.get("rotated-at")),
                       key=lambda v: v.tags["rotated-at"])
    due = []
    for version in ours:
        if version.status in (CandidateState.REJECTED, CandidateState.FAILED):
            due.append((version, f"never used ({version.tags.get(STATUS_TAG)})"))
        elif version.status == CandidateState.CURRENT:
            later = [v.tags["rotated-at"] for v in rotations
                     if v.tags["rotated-at"] > version.tags.get("rotated-at", "")]
            if later and _age(later[0], now) >= timedelta(days=after_days):
                due.append((version, f"replaced on {later[0][:10]}, {after_days} days ago or more"))
    return due


def _age(stamp: str, now: datetime) -> timedelta:
    return now - datetime.fromisoformat(stamp.replace("Z", "+00:00"))

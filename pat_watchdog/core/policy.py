"""Pure decisions: snapshot + policy + now -> plan. No I/O, no clock.

Like cert-manager's policy chain: each check looks at the plain snapshot and returns the
reasons it finds; the status is the worst level among them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable

from pat_watchdog.core import reasons as R
from pat_watchdog.core import subscriptions, token_type
from pat_watchdog.core.model import (CandidateState, CandidateView, ExpiryFact, InstancePlan, InstanceSnapshot,
                                     Liveness, Reason, Status, TokenView)
from pat_watchdog.core.settings import Settings
from pat_watchdog.core.times import format_utc

GLOBAL_PAT_CUTOFF = datetime(2026, 12, 1, tzinfo=timezone.utc)
MISSING, EMPTY = "missing", "empty"     # the stages of TOKEN_MISSING: no such setting, or a blank one
_DISAGREE_TOLERANCE = timedelta(minutes=1)
_LEVEL_STATUS = {"CRITICAL": Status.CRITICAL, "UNKNOWN": Status.UNKNOWN, "WARNING": Status.WARNING}


@dataclass(frozen=True)
class Policy:
    warn_days: tuple[int, ...] = (30, 14, 7, 3, 1)
    critical_days: int = 3
    rotate_within_days: int = 14
    required_scopes: tuple[str, ...] = R.DEFAULT_REQUIRED_SCOPES
    recommended_scopes: tuple[str, ...] = R.DEFAULT_RECOMMENDED_SCOPES
    rotation_enabled: bool = True
    staged_secret: str = "aggregator-pat-staged"
    vault_name: str | None = None             # the staging vault's name; None: WATCHDOG_KEY_VAULT_URL unset
    token_setting: str = "Aggregator_VstsToken"
    unresolved_channels: tuple[tuple[str, str], ...] = ()   # (channel, setting) App Service did not resolve

    @classmethod
    def from_settings(cls, settings: Settings, site_name: str = "{name}") -> "Policy":
        return cls(settings.warn_days, settings.critical_days, settings.rotate_within_days,
                   settings.required_scopes, settings.recommended_scopes, settings.rotation_enabled,
                   settings.secret_names(site_name)[0], settings.vault_name if settings.key_vault_url else None,
                   settings.token_setting, tuple((u.channel, u.setting) for u in settings.unresolved_channels()))


def days_text(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days"


def days_left(expires_on: datetime | None, now: datetime) -> int | None:
    """Whole days left, rounded down (1.25 days after expiry is -2)."""
    if expires_on is None:
        return None
    return math.floor((expires_on - now).total_seconds() / 86400)


def choose_expiry(facts: Iterable[ExpiryFact]) -> tuple[ExpiryFact | None, tuple[ExpiryFact, ...]]:
    """The fact whose expiry counts, and every fact that has an expiry (docs/reference.md, "Expiry and scopes").

    Confident sources first: a listing entry matched for sure is Azure DevOps's own answer and wins
    (the PAT may have been extended in place, docs/reference.md, "Reason codes"), else the earliest Key Vault date;
    then WATCHDOG_PAT_EXPIRES_ON, the last resort, unless it ends before the token was even created
    (stale); an ambiguous listing match only when nothing else is known.
    """
    facts = tuple(facts)
    created = max((f.valid_from for f in facts if f.valid_from), default=None)
    dated = tuple(f for f in facts if f.expires_on is not None
                  and not (f.source == "setting" and created and f.expires_on < created))
    confident = [f for f in dated if not f.ambiguous and f.source != "setting"]
    pool = confident or [f for f in dated if f.source == "setting"] or list(dated)
    chosen = min(pool, key=lambda f: f.expires_on, default=None)
    # An entry picked by a Key Vault `authorizationId` tag that another entry's date contradicts arrives here
    # as a guess (gather/observe.py), so it never overrides.
    listing = next((f for f in confident if f.source == "devops"), None)
    if listing and abs(listing.expires_on - chosen.expires_on) > _DISAGREE_TOLERANCE:
        chosen = listing     # sources agree: Key Vault (source 1) is named; they disagree: Azure DevOps wins
    return chosen, dated


def held_scopes_missing(held: Iterable[str], required: Iterable[str]) -> tuple[str, ...]:
    """Required scopes not covered by `held` (`app_token` holds all; `_manage`/`_full` imply less)."""
    held = set(held)
    if "app_token" in held:
        return ()
    return tuple(s for s in required if not any(_implies(h, s) for h in held))


def _implies(held: str, wanted: str) -> bool:
    if held == wanted:
        return True
    base, _, suffix = held.rpartition("_")
    if suffix in ("manage", "full"):
        return wanted in (base, f"{base}_write", f"{base}_read", f"{base}_manage" if suffix == "full" else "")
    if suffix == "write":
        return wanted in (base, f"{base}_read")
    return False


def decide(snap: InstanceSnapshot, policy: Policy, now: datetime, *, force_rotation: bool = False) -> InstancePlan:
    """Turn one instance's snapshot into its plan: status, reasons and whether to rotate."""
    chosen, dated = choose_expiry(snap.facts)
    token = _token_view(snap, chosen, dated, now)
    adopt = _adopting(snap)
    rotate, why = (False, None) if adopt else _rotation(snap, token, policy, force_rotation)
    if snap.unreachable:
        reasons = [R.reason(R.ALL[snap.unreachable.code], snap.unreachable.message)]
    else:
        reasons = [*_liveness(snap, token, policy), *_expiry(snap, token, chosen, dated, policy, now),
                   *_scopes(token, policy), *_global(token, now), *_notes(snap), *subscriptions.reasons(snap),
                   *_candidate(snap, policy, rotate)]
    if rotate:
        reasons.append(R.reason(R.ROTATION_DUE, why))
    reasons += [R.reason(R.CHANNEL_SETTING_UNRESOLVED, f"{channel}: {setting} is the text of a Key Vault reference "
                         f"that App Service could not resolve, so no alert goes out on {channel} (the others still "
                         "deliver); `pat-watchdog doctor` names the fix")
                for channel, setting in policy.unresolved_channels]
    status = Status.worst(_LEVEL_STATUS.get(r.level, Status.OK) for r in reasons)
    if status is Status.OK:
        reasons.insert(0, R.reason(R.HEALTHY, _healthy_message(token)))
    return InstancePlan(snap.app_id, snap.name, status, tuple(reasons), token, snap.candidate,
                        rotate=rotate, rotate_why=why, adopt=adopt, forced=rotate and force_rotation,
                        create_setting=rotate and snap.missing_setting is not None, subscriptions=snap.subscriptions)


def _adopting(snap: InstanceSnapshot) -> bool:
    """A staged version equal to the current token tells its expiry: adopt it, never rotate to it."""
    cand = snap.candidate
    return (cand.state == CandidateState.PENDING and cand.room and cand.digest is not None
            and cand.digest == snap.token_digest)


def _token_view(snap, chosen, dated, now) -> TokenView:
    # Azure DevOps' own answer about the token wins over a Key Vault `scopes` tag, a person's claim.
    answered = [f for f in snap.facts if f.source == "devops" and not f.ambiguous]
    # A guess (an ambiguous listing match) never supplies scopes: it could clear SCOPE_MISSING.
    sure = [f for f in ([chosen] if chosen else []) + list(snap.facts) if f and not f.ambiguous]
    scopes = next((f.scopes for f in answered + sure if f.scopes), None)
    global_pat = next((f.global_pat for f in snap.facts if f.global_pat is not None), None)
    live = {Liveness.VALID: True, Liveness.UNKNOWN: None}.get(snap.live.state, False)
    expires = chosen.expires_on if chosen else None
    if snap.unreachable:
        live = None
    elif not snap.token_present:
        live = False
    return TokenView(snap.token_fingerprint, live, snap.live.user_id,
                     expires, days_left(expires, now), chosen.source if chosen else None, scopes,
                     global_pat, dated)


def _liveness(snap, token, policy) -> list[Reason]:
    if snap.missing_setting:
        return [R.reason(R.TOKEN_MISSING, f"the app has no setting {snap.missing_setting}: Aggregator has no "
                         "token (it reads Aggregator_VstsToken), every rule fails", stage=MISSING)]
    if not snap.token_present:
        return [R.reason(R.TOKEN_MISSING, f"the app setting {policy.token_setting} is empty (or only white "
                         "space): Aggregator has no token, every rule fails", stage=EMPTY)]
    found = []
    if snap.reference_status is not None and snap.reference_status != "Resolved":
        details = f" ({snap.reference_details})" if snap.reference_details else ""
        found.append(R.reason(R.REFERENCE_UNRESOLVED, f"App Service reports {snap.reference_status}{details} for "
                              "the Key Vault reference in the token setting, resolved with Aggregator's own "
                              "identity: Aggregator gets the reference text, not the token",
                              stage=snap.reference_status))
    if not token_type.works(snap.token_type):
        found.append(R.reason(R.TOKEN_TYPE_INVALID, token_type.describe(snap.token_type)))
    state = snap.live.state
    if state is Liveness.EXPIRED:
        seen = f" ({snap.live.detail})" if snap.live.detail else ""
        found.append(R.reason(R.EXPIRED, f"Azure DevOps rejects the token as expired{seen}", stage="expired"))
    elif state is Liveness.INVALID:
        found.append(R.reason(R.TOKEN_INVALID, snap.live.detail))
    elif state is Liveness.UNKNOWN:
        found.append(R.reason(R.DEVOPS_UNREACHABLE, snap.live.detail))
    return found


def _expiry(snap, token, chosen, dated, policy, now) -> list[Reason]:
    if not snap.token_present or snap.live.state in (Liveness.EXPIRED, Liveness.INVALID):
        return []
    found = []
    if chosen is None:
        if snap.live.state is Liveness.VALID:
            found.append(R.reason(R.EXPIRY_UNKNOWN, R.expiry_unknown_fix(policy.vault_name, policy.staged_secret)))
        return found
    if chosen.ambiguous:
        found.append(R.reason(R.EXPIRY_AMBIGUOUS, chosen.detail))
    others = [f for f in dated if f is not chosen and abs(f.expires_on - chosen.expires_on) > _DISAGREE_TOLERANCE]
    stale = [f for f in others
             if chosen.source == "devops" and f.source == "keyvault" and f.expires_on < chosen.expires_on]
    if stale:
        found.append(R.reason(R.EXPIRY_EXTENDED, "Azure DevOps says the token expires "
                              f"{format_utc(chosen.expires_on)}, Key Vault's record says "
                              f"{format_utc(stale[0].expires_on)}: the PAT was extended in place; a run corrects "
                              "the Key Vault date"))
        others = [f for f in others if f not in stale]
    if others:
        found.append(R.reason(R.EXPIRY_SOURCES_DISAGREE, R.disagree_message(chosen, others)))
    found.extend(_threshold(snap, token, policy, now))
    return found


def _threshold(snap, token, policy, now) -> list[Reason]:
    left = token.days_left
    when = format_utc(token.expires_on)
    if left < 0 and snap.live.state is Liveness.VALID:
        # A token Azure DevOps accepts is never EXPIRED, whatever a record or a leftover setting says.
        if token.expiry_source == "setting":
            return [R.reason(R.EXPIRY_STALE, f"WATCHDOG_PAT_EXPIRES_ON says the token expired on {when}, but Azure "
                             "DevOps still accepts it: the setting is left over from an earlier token. Remove it, or "
                             "stage the current token with its real expiry (it is adopted)")]
        return [R.reason(R.EXPIRY_STALE, f"{token.expiry_source} says the token expired on {when}, but Azure DevOps "
                         "still accepts it and no listing confirms a date: the record is stale (the PAT was "
                         "probably extended). Stage the current token again with its real expiry (it is adopted)")]
    if left < 0:
        return [R.reason(R.EXPIRED, f"expired on {when} ({token.expiry_source})", stage="expired")]
    crossed = [d for d in policy.warn_days if left <= d]
    replacement = _usable(snap.candidate, policy) and not _adopting(snap)
    if left <= policy.critical_days and not replacement:
        stage = str(min(crossed)) if crossed else str(policy.critical_days)
        return [R.reason(R.EXPIRES_CRITICAL, f"{days_text(left)} left (expires {when}) and no valid replacement "
                         "is staged", stage=stage)]
    if crossed:
        return [R.reason(R.EXPIRES_SOON, f"{days_text(left)} left (expires {when}, source: {token.expiry_source})",
                         stage=str(min(crossed)))]
    return []


def _scopes(token, policy) -> list[Reason]:
    if token.scopes is None:
        return []
    missing = held_scopes_missing(token.scopes, policy.required_scopes)
    if missing:
        return [R.reason(R.SCOPE_MISSING, "the token lacks " + " ".join(missing) + " (Aggregator's rules need "
                         + " ".join(policy.required_scopes) + "): they fail")]
    advised = held_scopes_missing(token.scopes, policy.recommended_scopes)
    if advised:
        return [R.reason(R.SCOPE_RECOMMENDED_MISSING, "the token lacks " + " ".join(advised) + " (Aggregator's "
                         "documentation asks for " + " ".join(policy.recommended_scopes) + "); the rules run, "
                         "but features that need them fail")]
    return []


def _global(token, now) -> list[Reason]:
    if not token.global_pat:
        return []
    level = "CRITICAL" if now >= GLOBAL_PAT_CUTOFF else "WARNING"
    return [R.reason(R.GLOBAL_PAT, level=level)]


def _notes(snap) -> list[Reason]:
    return [R.reason(R.ALL[note.code], note.message, level=note.level) for note in snap.notes]


def _candidate(snap, policy: Policy, rotate: bool) -> list[Reason]:
    cand: CandidateView = snap.candidate
    found = [R.reason(R.CANDIDATE_SKIPPED, why) for why in cand.skipped]
    described = (f"version {cand.version} (fingerprint {cand.fingerprint}, "
                 f"expires {format_utc(cand.expires_on) or 'unknown'})")
    if cand.state == CandidateState.PENDING and _adopting(snap):
        found.append(R.reason(R.CANDIDATE_STAGED, f"version {cand.version} equals the current token: adopted "
                              "as the record of its expiry and scopes"))
    elif cand.state == CandidateState.PENDING and cand.room:
        found.append(R.reason(R.CANDIDATE_STAGED, described + (
            " is rotated in now" if rotate else
            " waits: rotation is off (WATCHDOG_ROTATION, WATCHDOG_KEY_VAULT_URL)" if not policy.rotation_enabled
            else f" is put in place only by pat-watchdog rotate --force, which creates the missing setting "
                 f"{snap.missing_setting} (a scheduled run never creates a setting)" if snap.missing_setting
            else " waits for the rotation window")))
    elif cand.state == CandidateState.REJECTED:
        found.append(R.reason(R.CANDIDATE_REJECTED, f"version {cand.version}: {cand.reason}",
                              condition=f"CANDIDATE_REJECTED:{cand.version}"))
    elif cand.state == CandidateState.FAILED:
        found.append(R.reason(R.ROTATION_FAILED, f"version {cand.version}: {cand.reason}",
                              condition=f"ROTATION_FAILED:{cand.version}"))
    if cand.state == CandidateState.PENDING and not cand.room:
        found.append(R.reason(R.TAG_LIMIT, f"version {cand.version} has no room for the watchdog's 4 tags "
                              "(Key Vault allows 15): left untouched, never rotated to"))
    if cand.superseded:
        found.append(R.reason(R.CANDIDATE_SUPERSEDED, "older staged versions left alone: "
                              + ", ".join(cand.superseded)))
    return found


def _usable(cand: CandidateView, policy: Policy) -> bool:
    """A staged version the watchdog can actually rotate to."""
    return cand.state == CandidateState.PENDING and cand.room and policy.rotation_enabled


def _rotation(snap, token, policy, force) -> tuple[bool, str | None]:
    if snap.unreachable or not _usable(snap.candidate, policy):
        return False, None
    if snap.missing_setting and not force:
        return False, None     # a misspelt WATCHDOG_TOKEN_SETTING must not become a new setting
    if not snap.token_present or snap.live.state in (Liveness.EXPIRED, Liveness.INVALID):
        return True, "the current token does not work"
    if token.days_left is not None and token.days_left < 0:
        return True, "the current token has expired"
    if force:
        return True, "rotation forced"
    if token.days_left is not None and token.days_left <= policy.rotate_within_days:
        return True, (f"{days_text(token.days_left)} left, within "
                      f"WATCHDOG_ROTATE_WITHIN_DAYS={policy.rotate_within_days}")
    return False, None


def rotation_opens(token: TokenView, within_days: int) -> datetime | None:
    """When the rotation window opens: the first second a run finds WATCHDOG_ROTATE_WITHIN_DAYS days or
    fewer left (days left are rounded down, so that is just after `within + 1` days before expiry); None
    when the expiry is unknown."""
    if token.expires_on is None:
        return None
    return token.expires_on - timedelta(days=within_days + 1) + timedelta(seconds=1)


def rotation_due_in(token: TokenView, policy: Policy) -> int | None:
    """Days until the rotation window opens (for `rotate` outside it), None when unknown."""
    if token.days_left is None:
        return None
    return max(0, token.days_left - policy.rotate_within_days)


def _healthy_message(token: TokenView) -> str:
    if token.days_left is None:
        return "the token works"
    return (f"the token works; {days_text(token.days_left)} left (expires {format_utc(token.expires_on)}, "
            f"source: {token.expiry_source})")

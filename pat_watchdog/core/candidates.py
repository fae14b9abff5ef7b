"""Which staged version is the candidate (docs/rotation.md): pure, over version properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from pat_watchdog.core.model import CandidateState, CandidateView, ExpiryFact, InstanceSnapshot, Liveness
from pat_watchdog.core.times import format_utc
from pat_watchdog.core.tags import REASON_TAG, SecretVersion, has_room, tag_id

_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


def _created(version: SecretVersion) -> datetime:
    return version.created_on or _EPOCH


def eligible(version: SecretVersion, now: datetime) -> bool:
    """Enabled, unexpired, already valid, and not yet handled by the watchdog."""
    return (version.status is None and version.enabled
            and (version.expires_on is None or version.expires_on > now)
            and (version.not_before is None or version.not_before <= now))


def scopes_tag(version: SecretVersion) -> tuple[str, ...] | None:
    text = version.tags.get("scopes") or ""
    return tuple(text.replace(",", " ").split()) or None


def version_fact(version: SecretVersion, detail: str = "") -> ExpiryFact:
    """What a Key Vault version says about its token: the `expires` attribute, `scopes` and
    `authorizationId` tags (expiry source 1)."""
    return ExpiryFact("keyvault", version.expires_on, scopes_tag(version),
                      authorization_id=tag_id(version), detail=detail)


def select_candidate(versions: list[SecretVersion], now: datetime, digests: dict[str, str] | None = None,
                     unusable: dict[str, str] | None = None) -> CandidateView:
    """The newest eligible version newer than any the watchdog has handled; else the newest handled.

    Listings are not in creation order, so everything is sorted by `created_on`. An untagged
    version older than a handled one is never picked: it is reported as superseded.
    """
    digests, unusable = digests or {}, unusable or {}
    versions = [v for v in versions if v.version not in unusable]
    ordered = sorted(versions, key=_created, reverse=True)
    applying = next((v for v in ordered if v.status == CandidateState.APPLYING and v.enabled), None)
    if applying is not None:  # an interrupted rotation is reconciled before anything newer is looked at
        return _view(applying, digests, ())
    handled = next((v for v in ordered if v.status is not None), None)
    newer = [v for v in ordered if handled is None or _created(v) > _created(handled)]
    fresh = [v for v in newer if eligible(v, now)]
    superseded = tuple(v.version for v in ordered
                       if v.status is None and v.enabled and (not fresh or v is not fresh[0])
                       and (v.expires_on is None or v.expires_on > now))
    chosen = fresh[0] if fresh else handled
    skipped = tuple(unusable.values()) + tuple(why for v in newer if v.status is None and (why := not_eligible(v, now)))
    if chosen is None:
        return CandidateView(superseded=superseded, skipped=skipped)
    return replace(_view(chosen, digests, superseded), skipped=skipped)


def not_eligible(version: SecretVersion, now: datetime) -> str | None:
    """Why an untagged version cannot be the candidate, in words; None when it can."""
    if not version.enabled:
        return f"version {version.version} is disabled"
    if version.expires_on is not None and version.expires_on <= now:
        return f"version {version.version} expired on {format_utc(version.expires_on)} (its Key Vault expiry)"
    if version.not_before is not None and version.not_before > now:
        return f"version {version.version} is not valid before {format_utc(version.not_before)} (its not-before)"
    return None


def _state(tag: str | None) -> CandidateState | str:
    """The `watchdog-status` tag as a state; a hand-edited value the watchdog never writes is kept as is."""
    if tag is None:
        return CandidateState.PENDING
    try:
        return CandidateState(tag)
    except ValueError:
        return tag


def _view(chosen: SecretVersion, digests: dict[str, str], superseded: tuple[str, ...]) -> CandidateView:
    digest = digests.get(chosen.version)          # from its value as read, never the `fingerprint` tag
    return CandidateView(
        version=chosen.version, state=_state(chosen.status), digest=digest,
        fingerprint=digest[:8] if digest else None,
        expires_on=chosen.expires_on, reason=chosen.tags.get(REASON_TAG), scopes=scopes_tag(chosen),
        superseded=superseded, room=has_room(chosen.tags))


# Why validation.py rejects a candidate when it measures it against the token in place (or got no verdict
# at all): none of these holds against a token that no longer works. Narrower scopes than the token in place
# are not among them: validation still compares with a dead token's scopes (docs/reference.md, "Reason codes").
AGAINST_THE_TOKEN_IN_PLACE = ("not later than the current token", "another user than the current token",
                              "the current token's expiry is unknown", "without a definitive answer")


def revived(snap: InstanceSnapshot, placed: str | None = None) -> tuple[CandidateView, str] | None:
    """When the token in place is dead (docs/rotation.md, "The rotation protocol": rotate at once to a valid
    replacement), the newest staged
    version the watchdog handled before is a candidate again if what kept it out held only against that
    token: rejected relative to it (or without a verdict), or tagged `current` and replaced by hand since.
    Returns (the view as pending, why); it is validated again like any candidate, never rotated to when it
    fails. `failed` versions stay out: a rotation to them failed, or a person marked them."""
    cand = snap.candidate
    dead = snap.token_present and snap.live.definitive and snap.live.state in (Liveness.EXPIRED, Liveness.INVALID)
    if not dead or cand.version is None or not cand.room or snap.unreachable:
        return None
    other = cand.digest is not None and cand.digest != snap.token_digest
    if cand.state == CandidateState.CURRENT and other and cand.version == placed:
        # `placed`: the version the watchdog's own record says it put in place; a `current` tag alone is a claim.
        why = f"version {cand.version} was in place before (the watchdog put it there) and is staged still"
    elif cand.state == CandidateState.REJECTED and cand.digest != snap.token_digest and \
            any(phrase in (cand.reason or "") for phrase in AGAINST_THE_TOKEN_IN_PLACE):
        why = f"version {cand.version} was rejected only against the token in place ({cand.reason})"
    else:
        return None
    return replace(cand, state=CandidateState.PENDING, reason=None), f"{why}: validated again"

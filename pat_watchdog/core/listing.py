"""Which entry of the Azure DevOps token listing is the current PAT, and what it says (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pat_watchdog.core.model import ExpiryFact
from pat_watchdog.core.times import parse_utc as parse_time

@dataclass(frozen=True)
class Match:
    entry: dict | None
    ambiguous: bool = False
    not_found: str | None = None       # the authorization id that matched nothing


def match_entry(entries, now: datetime, *, authorization_id: str | None = None,
                user_id: str | None = None, known_expiry: datetime | None = None,
                exclude: frozenset[str] = frozenset(), others_expire: tuple[datetime, ...] = ()) -> Match:
    """Pick the listing entry of the current PAT, saying when it is a guess (docs/reference.md, expiry sources).

    `exclude`: authorization IDs known to be other tokens (a staged replacement's): never picked.
    `others_expire`: expiries of other tokens staged without an ID; a guess never picks an entry
    within a day of one of them (it is most likely that replacement, not the current token).
    """
    if exclude:
        entries = [e for e in entries if str(e.get("authorizationId", "")).lower() not in exclude]
    if authorization_id:
        found = [e for e in entries if str(e.get("authorizationId", "")).lower() == authorization_id.lower()]
        return Match(found[0]) if found else Match(None, not_found=authorization_id)
    active = active_entries(entries, now, user_id)
    if known_expiry is not None:
        close = [e for e in active if abs(parse_time(e.get("validTo")) - known_expiry) <= timedelta(days=1)]
        if close:
            return Match(min(close, key=lambda e: abs(parse_time(e["validTo"]) - known_expiry)))
        # No entry near the known date: a PAT extended in place no longer matches it, but the only
        # active PAT of the user is still this one; several are a guess, never over the known date.
    if len(active) > 1 and others_expire:
        narrowed = [e for e in active if all(abs(parse_time(e.get("validTo")) - when) > timedelta(days=1)
                                             for when in others_expire)]
        if len(narrowed) == 1:    # an inference, not a match: reported as ambiguous
            return Match(narrowed[0], ambiguous=True)
        active = narrowed or active
    if len(active) == 1:
        return Match(active[0])
    if active:
        return Match(min(active, key=lambda e: parse_time(e["validTo"])), ambiguous=True)
    return Match(None)


def active_entries(entries, now: datetime, user_id: str | None,
                   exclude: frozenset[str] = frozenset()) -> list[dict]:
    """The user's entries that still work, without the excluded authorization IDs."""
    return [e for e in entries if e.get("isValid", True) and (parse_time(e.get("validTo")) or now) > now
            and (user_id is None or e.get("userId") in (None, user_id))
            and str(e.get("authorizationId", "")).lower() not in exclude]


def fact_from_entry(entry: dict, *, ambiguous: bool = False, among: int = 1) -> ExpiryFact:
    scopes = tuple(str(entry.get("scope") or "").split()) or None
    detail = (f"{among} active tokens of this user in the listing; the earliest validTo is used "
              "(set WATCHDOG_PAT_AUTHORIZATION_ID or stage the current token to be exact)") if ambiguous else ""
    return ExpiryFact("devops", parse_time(entry.get("validTo")), scopes,
                      global_pat=(entry["targetAccounts"] is None) if "targetAccounts" in entry else None,
                      authorization_id=entry.get("authorizationId"), ambiguous=ambiguous, detail=detail,
                      valid_from=parse_time(entry.get("validFrom")))

"""Which entry of the Azure DevOps token listing is the current PAT, and what it says (pure)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime, timedelta

from pat_watchdog.core.model import ExpiryFact
from pat_watchdog.core.times import parse_utc as parse_time

@dataclass(frozen=True)
class Match:
    entry: dict | None
    ambiguous: bool = False
    not_found: str | None = None       # the authorization id that matched nothing
    how: str | None = None             # "id" | "date" | "only" | "guess": how the entry was picked


class Entries(tuple):
    """A listing's entries, indexed once: a run looks up every instance of one user in the same
    listing, and a scan per instance makes thousands of instances cost their square."""

    def __new__(cls, entries=()):
        self = super().__new__(cls, entries)
        self.by_id = {}
        for e in self:
            self.by_id.setdefault(_id(e), e)
        self.valid_to: dict[int, datetime | None] = {}   # id(entry) -> validTo, parsed when first needed
        self._active: dict = {}     # (now, user) -> that user's active entries, in listing order
        self._dated: dict = {}      # (now, user) -> (sorted validTo values, their entries)
        self._scopes: dict = {}     # (now, user) -> the distinct scope sets of those entries
        return self

    @classmethod
    def of(cls, entries) -> Entries:
        return entries if isinstance(entries, Entries) else cls(entries)

    def active(self, now: datetime, user_id: str | None) -> tuple[dict, ...]:
        key = (now, user_id)
        if key not in self._active:     # the same answer if two threads race: no lock needed
            self._active[key] = tuple(
                e for e in self if e.get("isValid", True) and (self._valid_to(e) or now) > now
                and (user_id is None or e.get("userId") in (None, user_id)))
        return self._active[key]

    def near(self, now: datetime, user_id: str | None, when: datetime, within: timedelta) -> list[dict]:
        """The user's active entries whose validTo is within `within` of `when` (a bisection, not a scan:
        every instance of one user asks the same listing)."""
        key = (now, user_id)
        if key not in self._dated:
            pairs = sorted(((self._valid_to(e), i, e) for i, e in enumerate(self.active(now, user_id))
                            if self._valid_to(e) is not None), key=lambda p: (p[0], p[1]))
            self._dated[key] = ([p[0] for p in pairs], [p[2] for p in pairs])
        dates, entries = self._dated[key]
        try:
            low, high = when - within, when + within
        except OverflowError:      # a date at the edge of the calendar (9999-12-31): nothing is that near
            return []
        return entries[bisect.bisect_left(dates, low):bisect.bisect_right(dates, high)]

    def earliest(self, now: datetime, user_id: str | None) -> datetime | None:
        self.near(now, user_id, now, timedelta(0))         # builds the sorted view
        dates = self._dated[(now, user_id)][0]
        return dates[0] if dates else None

    def scope_sets(self, now: datetime, user_id: str | None) -> frozenset[tuple[str, ...]]:
        key = (now, user_id)
        if key not in self._scopes:
            self._scopes[key] = frozenset(tuple(str(e.get("scope") or "").split()) for e in self.active(now, user_id))
        return self._scopes[key]

    def _valid_to(self, entry: dict) -> datetime | None:
        if id(entry) not in self.valid_to:
            self.valid_to[id(entry)] = parse_time(entry.get("validTo"))
        return self.valid_to[id(entry)]


def _id(entry: dict) -> str:
    return str(entry.get("authorizationId", "")).lower()


def match_entry(entries, now: datetime, *, authorization_id: str | None = None,
                user_id: str | None = None, known_expiry: datetime | None = None,
                exclude: frozenset[str] = frozenset(), others_expire: tuple[datetime, ...] = ()) -> Match:
    """Pick the listing entry of the current PAT, saying when it is a guess (docs/reference.md, expiry sources).

    `exclude`: authorization IDs known to be other tokens (a staged replacement's): never picked.
    `others_expire`: expiries of other tokens staged without an ID; a guess never picks an entry
    within a day of one of them (it is most likely that replacement, not the current token).
    """
    entries = Entries.of(entries)
    if authorization_id:
        found = None if authorization_id.lower() in exclude else entries.by_id.get(authorization_id.lower())
        return Match(found, how="id") if found else Match(None, not_found=authorization_id)
    valid_to = entries.valid_to
    active = active_entries(entries, now, user_id, exclude)
    if known_expiry is not None:
        close = [e for e in active if abs(valid_to[id(e)] - known_expiry) <= timedelta(days=1)]
        if close:
            return Match(min(close, key=lambda e: abs(valid_to[id(e)] - known_expiry)), how="date")
        # No entry near the known date: a PAT extended in place no longer matches it, but the only
        # active PAT of the user is still this one; several are a guess, never over the known date.
    if len(active) > 1 and others_expire:
        narrowed = [e for e in active if all(abs(valid_to[id(e)] - when) > timedelta(days=1)
                                             for when in others_expire)]
        if len(narrowed) == 1:    # an inference, not a match: reported as ambiguous
            return Match(narrowed[0], ambiguous=True, how="guess")
        active = narrowed or active
    if len(active) == 1:
        return Match(active[0], how="only")
    if active:
        return Match(min(active, key=lambda e: valid_to[id(e)]), ambiguous=True, how="guess")
    return Match(None)


def active_entries(entries, now: datetime, user_id: str | None,
                   exclude: frozenset[str] = frozenset()) -> list[dict]:
    """The user's entries that still work, without the excluded authorization IDs."""
    active = Entries.of(entries).active(now, user_id)
    return [e for e in active if _id(e) not in exclude] if exclude else list(active)


def fact_from_entry(entry: dict, *, ambiguous: bool = False, among: int = 1,
                    matched_by: str | None = None) -> ExpiryFact:
    scopes = tuple(str(entry.get("scope") or "").split()) or None
    detail = (f"{among} active tokens of this user in the listing; the earliest validTo is used "
              "(set WATCHDOG_PAT_AUTHORIZATION_ID or stage the current token to be exact)") if ambiguous else ""
    return ExpiryFact("devops", parse_time(entry.get("validTo")), scopes,
                      global_pat=(entry["targetAccounts"] is None) if "targetAccounts" in entry else None,
                      authorization_id=entry.get("authorizationId"), ambiguous=ambiguous, detail=detail,
                      valid_from=parse_time(entry.get("validFrom")), matched_by=matched_by)

"""Step 1 of the rotation protocol: is the staged candidate a valid replacement? (docs/rotation.md)

Live, same user, required scopes held, never narrower than the token in place, a later expiry than
the current token's (never measured against the candidate's own listing entry), not a global PAT.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pat_watchdog.core import handsfree as H
from pat_watchdog.core import listing as L
from pat_watchdog.core.candidates import scopes_tag
from pat_watchdog.core.errors import WatchdogError
from pat_watchdog.core.model import ExpiryFact, LiveCheck, Liveness
from pat_watchdog.core.policy import held_scopes_missing
from pat_watchdog.core.secret import Token
from pat_watchdog.core.settings import Settings
from pat_watchdog.core.tags import SecretVersion, tag_id
from pat_watchdog.core.times import format_utc
from pat_watchdog.hooks import impersonated_projects, lacks_bypass, observe_hooks
from pat_watchdog.observe import Observed
from pat_watchdog.ports import Ports


class Rejected(WatchdogError):
    """The candidate fails validation: it is tagged `rejected`, and tried again only when the reason held
    against the token in place and that token has died (core/candidates.revived)."""


class Postponed(WatchdogError):
    """Rotation cannot proceed now (validation impossible, lock held); nothing was changed."""


class Inconclusive(Postponed):
    """Azure DevOps gave no verdict on the candidate (an outage, a sign-in page): asked again next run,
    at most INCONCLUSIVE_RUNS times before the candidate is rejected with that history."""


INCONCLUSIVE_RUNS = 3


@dataclass
class CandidateCheck:
    obs: Observed
    settings: Settings
    ports: Ports
    now: datetime
    forced: bool = False            # `rotate --force`: an earlier expiry is accepted, with a warning
    warning: str | None = None      # what a forced rotation accepted that a scheduled one would not

    def validate(self, candidate: Token, version: SecretVersion) -> tuple[LiveCheck, tuple[ExpiryFact, ...]]:
        """Live, same user, required scopes, later expiry, not global; raise Rejected saying why."""
        live = self.ports.devops.check_live(candidate)
        if live.state is Liveness.UNKNOWN or not live.definitive:
            raise Inconclusive(f"no definitive answer from Azure DevOps about the candidate: {live.detail}")
        if live.state is not Liveness.VALID:
            raise Rejected(f"the candidate does not work ({live.state.value}: {live.detail})")
        current = self.obs.snapshot.live
        if current.state is Liveness.VALID and current.user_id and live.user_id != current.user_id:
            raise Rejected("the candidate belongs to another user than the current token")
        owner = self.obs.record.owner     # the instance's user (first seen, or handed over), also once it is dead
        if owner is None and current.state is not Liveness.VALID and not self.ports.records.readable:
            raise Postponed("the watchdog's record could not be read, so the token's user cannot be confirmed")
        if owner and live.user_id != owner:
            raise Rejected(f"the candidate belongs to user {live.user_id}, not to the instance's token user {owner} "
                           "(recorded while the token worked); to hand the instance to another user run "
                           "`pat-watchdog login --new-user`")
        listing = self.ports.devops.list_tokens(candidate)
        fact = self._candidate_fact(candidate, version, live, listing)
        missing = held_scopes_missing(fact.scopes, self.settings.required_scopes) if fact.scopes else ()
        if missing:
            raise Rejected("missing required scopes: " + " ".join(missing))
        narrower = self._narrower(fact.scopes)
        if narrower:
            raise Rejected("it lacks " + " ".join(narrower) + ", which the token in place holds (a rotation never "
                           "narrows what works today; WATCHDOG_RECOMMENDED_SCOPES)")
        lacking = self._bypass_lacking(candidate)
        if lacking:
            raise Rejected("its user lacks \"Bypass rules on work item updates\" for impersonating rules: "
                           + "; ".join(f"rule {rule} in project {project}" for rule, project in lacking))
        if fact.global_pat:
            raise Rejected("a global PAT (all organizations); global PATs stop working on 2026-12-01")
        if fact.expires_on is None:
            raise Rejected("its expiry is unknown: stage it with --expires <validTo>")
        if current.state is not Liveness.VALID:   # a working replacement beats a dead token, whatever its date
            return live, (fact,)
        current_expiry = self._current_expiry(fact, listing, created=H.created_by_watchdog(
            version, self.obs.record, candidate.digest))
        if current_expiry is None:
            raise Rejected("the current token's expiry is unknown, so a later expiry cannot be checked: stage "
                           "the current token with its expiry (it is adopted) or set WATCHDOG_PAT_AUTHORIZATION_ID")
        if current_expiry is not None and fact.expires_on <= current_expiry:
            if self.forced:     # e.g. a leaked 300-day PAT replaced by a 90-day one: a person means it
                self.warning = (f"forced: the candidate expires {format_utc(fact.expires_on)}, earlier than the "
                                f"token it replaced ({format_utc(current_expiry)})")
                return live, (fact,)
            raise Rejected(f"it expires {format_utc(fact.expires_on)}, not later than the current token "
                           f"({format_utc(current_expiry)}); `pat-watchdog rotate --force` rotates it anyway")
        return live, (fact,)

    def _bypass_lacking(self, candidate: Token) -> list[tuple[str, str]]:
        """(rule, project) of impersonating rules the candidate's user could not save (docs/reference.md,
        "Reason codes"); a check
        that cannot be made (401/403) is not a verdict."""
        if self.ports.rules is None:
            return []
        subs = self.obs.snapshot.subscriptions
        if subs is None:   # the token in place could not list them (broken): the candidate can
            subs = observe_hooks(self.obs.app, self.obs.settings, candidate, self.ports)[0].get("subscriptions", ())
        projects = impersonated_projects(subs, self.obs.settings)
        if not projects:
            return []
        missing, _unavailable = lacks_bypass(projects, candidate, self.ports)
        return missing

    def _narrower(self, scopes: tuple[str, ...] | None) -> tuple[str, ...]:
        """Recommended scopes the current token holds and the candidate does not (unknown: none)."""
        held = next((f.scopes for f in self.obs.snapshot.facts if f.scopes), None)
        if not scopes or not held:
            return ()
        current_has = [s for s in self.settings.recommended_scopes if not held_scopes_missing(held, (s,))]
        return held_scopes_missing(scopes, current_has)

    def _candidate_fact(self, candidate: Token, version: SecretVersion, live: LiveCheck, listing) -> ExpiryFact:
        """The candidate's expiry and scopes; its own listing entry, when found, is Azure DevOps's answer."""
        entry, sure = self._candidate_entry(listing, version, live)
        fact = L.fact_from_entry(entry) if entry else None
        expires = fact.expires_on if fact and fact.expires_on else version.expires_on
        # Azure DevOps' answer for the candidate's own entry wins over the `scopes` tag, a person's claim used
        # only when nothing better is known (several entries near its date: which one is a guess).
        scopes = ((fact.scopes if fact and sure else None) or scopes_tag(version)
                  or (fact.scopes if fact else None))
        return ExpiryFact("keyvault" if fact is None else "devops", expires, scopes,
                          global_pat=fact.global_pat if fact else None,
                          authorization_id=(fact.authorization_id if fact else None) or tag_id(version))

    def _candidate_entry(self, listing, version: SecretVersion, live: LiveCheck) -> tuple[dict | None, bool]:
        """(entry, whether it is surely the candidate's): by its `authorizationId` tag; else the entry within
        a day of its Key Vault expiry (sure when it is the only one); else the only active entry of the
        user that is not the current token's."""
        tag = tag_id(version)
        if tag:     # the tag's entry is surely the candidate's unless another entry has its Key Vault date
            entry = L.match_entry(listing.entries, self.now, authorization_id=tag).entry
            if entry is None or version.expires_on is None:
                return entry, entry is not None
            near = L.Entries.of(listing.entries).near(self.now, live.user_id, version.expires_on, timedelta(days=1))
            return entry, not near or any(e is entry for e in near)
        current = self._current_ids()
        if version.expires_on is not None:
            match = L.match_entry(listing.entries, self.now, user_id=live.user_id,
                                  known_expiry=version.expires_on, exclude=current)
            if match.entry is not None:
                near = [e for e in L.active_entries(listing.entries, self.now, live.user_id, current)
                        if (when := L.fact_from_entry(e).expires_on) and abs(when - version.expires_on)
                        <= timedelta(days=1)]
                return match.entry, len(near) == 1
        others = L.active_entries(listing.entries, self.now, live.user_id, current)
        return (others[0], True) if len(others) == 1 and current else (None, False)

    def _current_ids(self) -> frozenset[str]:
        """Authorization IDs known to be the current token's."""
        ids = {f.authorization_id for f in self.obs.snapshot.facts if f.authorization_id and not f.ambiguous}
        if self.settings.pat_authorization_id:
            ids.add(self.settings.pat_authorization_id)
        return frozenset(i.lower() for i in ids)

    def _current_expiry(self, candidate: ExpiryFact, listing, *, created: bool = False) -> datetime | None:
        """The current token's expiry, never the candidate's own: a confident source, else the latest
        other active PAT of the user in the listing (the candidate must outlive whichever is current).
        A PAT the watchdog created (`auto`) was created because of the expiry the run chose, ambiguous or
        not: it is compared with that one, not with the user's other PATs (later rotations are its own)."""
        own = (candidate.authorization_id or "").lower()
        confident = [f.expires_on for f in self.obs.snapshot.facts if f.expires_on and (created or not f.ambiguous)
                     and (f.authorization_id or "").lower() != own]
        if confident:
            return min(confident)
        user = self.obs.snapshot.live.user_id
        others = [L.fact_from_entry(e).expires_on
                  for e in L.active_entries(listing.entries, self.now, user, frozenset({own}) if own else frozenset())]
        others = [when for when in others if when is not None and when != candidate.expires_on]
        return max(others, default=None)

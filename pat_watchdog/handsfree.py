"""`auto` rotation (docs/reference.md, "Hands-free rotation"): with a person's stored sign-in, create the
replacement PAT, stage it,
and let the staged protocol rotate it in the same run; revoke what the watchdog created once replaced.

One code path for rotation: a created PAT is staged exactly as a person would stage one (a version of
the staged secret with `expires`, `scopes` and `authorizationId`, plus `created-by=pat-watchdog`) and
`Rotation.run` takes it from there. The value lives in memory from the creation's answer until it is
in Key Vault; a PAT whose value never got there is found by its display name and revoked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Callable

from pat_watchdog.adapters.pats import CreatedPat, CreationRefused
from pat_watchdog.adapters.signin import Session, SignIn, SignInRequired
from pat_watchdog.core import handsfree as H
from pat_watchdog.core import reasons as R
from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.model import Action, ActionKind, ActionOutcome, InstancePlan, Mode, Note, RotationState
from pat_watchdog.core.record import CreatedRecord, CreatedState, Record, TokenFacts
from pat_watchdog.core.policy import Policy, decide
from pat_watchdog.core.settings import Settings
from pat_watchdog.core.tags import FINGERPRINT_TAG, SecretVersion, TagLimitError
from pat_watchdog.core.times import format_utc
from pat_watchdog.observe import Observed
from pat_watchdog.ports import Ports
from pat_watchdog.rotation import Outcome, Rotation

log = logging.getLogger(__name__)


@dataclass
class HandsFree:
    """One instance's `auto` rotation steps in one run; what they did is collected for the report."""

    plan: InstancePlan
    obs: Observed
    settings: Settings
    ports: Ports
    now: datetime
    actions: list[Action] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def signin(self) -> SignIn:
        return SignIn(self.settings, self.ports.vaults.get(self.settings.key_vault_url),
                      self.settings.signin_name(self.obs.app.site))

    def _level(self) -> str:
        """SIGNIN_REQUIRED is a WARNING, CRITICAL once the token is at or under WATCHDOG_CRITICAL_DAYS."""
        token = self.plan.token
        urgent = token.live is False or (token.days_left is not None and token.days_left <= self.settings.critical_days)
        return "CRITICAL" if urgent else "WARNING"

    def _required(self, why: str) -> None:
        command = "pat-watchdog login" + (f" --instance {self.obs.app.site}" if "{name}" in self.settings.signin_secret
                                          else "")
        self.notes.append(Note(R.SIGNIN_REQUIRED.name, f"{why}. Fix: run {command} as the token's user "
                               "(device code sign-in; docs/reference.md, \"Hands-free rotation\")", self._level()))

    def after(self, plan: InstancePlan, mode: Mode, *, created: bool) -> InstancePlan:
        """Keep the sign-in alive (and find out early when it stopped working), revoke what is due, and
        turn what was found into reasons of the plan."""
        self.plan = plan
        if not created:
            if mode.writes:
                self.session()
            else:
                self.check_presence()
        self.revoke_replaced(mode)
        if not self.notes:
            return plan
        self.obs.snapshot = replace(self.obs.snapshot, notes=self.obs.snapshot.notes + tuple(self.notes))
        return replace(decide(self.obs.snapshot, Policy.from_settings(self.settings, self.obs.app.site), self.now),
                       candidate=plan.candidate)

    # -- the sign-in -------------------------------------------------------------------------
    def check_presence(self) -> None:
        """`status` and dry runs: is a sign-in stored at all (metadata only, nothing refreshed)."""
        try:
            if self.signin.present() is None:
                self._required("nobody has signed in for auto rotation")
        except ServiceError as error:
            log.warning("the sign-in of %s could not be looked up: %s", self.obs.app.site, error)

    def session(self) -> Session | None:
        """A fresh delegated token (once per sign-in secret and run), checked to be the token's user."""
        name = self.settings.signin_name(self.obs.app.site)
        cached = self.ports.signins.get(name)
        if cached is None:
            try:
                cached = self.signin.session(self.now)
                user = self.ports.pats.user_id(cached.access_token)
                cached = (cached, user)
            except SignInRequired as why:
                cached = str(why)
            except ServiceError as error:
                log.warning("the sign-in of %s could not be used now: %s", self.obs.app.site, error)
                return None     # an outage is not a verdict on the sign-in: the next run tries again
            self.ports.signins[name] = cached
        if isinstance(cached, str):
            self._required(cached)
            return None
        session, user = cached
        # The instance's user as recorded (first seen while a token worked, or handed over), also once the
        # token is dead: a sign-in of someone else never creates a PAT for this instance until a person says
        # so (`pat-watchdog login --new-user`). A record that could not be read confirms nobody.
        if not self.ports.records.readable or self.obs.record.damaged:
            self._required("the watchdog's record could not be read, so the token's user cannot be confirmed: "
                           "nothing is created with a sign-in until it can")
            return None
        owner = self.obs.record.owner
        if owner is None:   # never seen a working token, nobody handed it over: whose PAT would it be?
            self._required(f"the user of {self.obs.app.site} is not known yet (its token never worked while the "
                           f"watchdog watched): run `pat-watchdog login --instance {self.obs.app.site} --new-user` "
                           "as the person it should belong to")
            return None
        if user != owner:
            self._required(f"the sign-in is {session.username} (Azure DevOps user {user}), but the token "
                           f"belongs to user {owner}: a PAT created by another user would act as that user "
                           "(to hand the instance to another user: pat-watchdog login --new-user)")
            return None
        return session

    # -- creation ------------------------------------------------------------------------------
    def create_then_rotate(self, rot: Rotation, why: str) -> Outcome | None:
        """Under the rotation lock: revoke orphans, create, stage, then the staged protocol (same run)."""
        token = self.plan.token
        deferred = H.creation_deferred(rot.obs.record, token.expires_on, self.now) if token.live else None
        if deferred is not None:
            return self._defer(deferred, rot.obs.record.lifespan_cap_days)
        failed = H.created_and_failed(rot.obs.record, token_works=token.live is True, expires_on=token.expires_on)
        if failed is not None:
            self.actions.append(Action(ActionKind.CREATE, None, "WARNING", ActionOutcome.SKIPPED,
                                       f"not creating another PAT: the last one the watchdog created "
                                       f"(\"{failed.display_name}\", staged as {failed.version}) was never used"))
            return None
        session = self.session()
        if session is None:
            return None
        try:
            self._revoke_due(session, orphans_only=True)
            created = self._create(session)
        except ServiceError as error:
            self.actions.append(Action(ActionKind.CREATE, None, "WARNING", ActionOutcome.FAILED,
                                       f"no replacement created ({why}): {error}; the next run tries again"))
            return None
        if created is None:
            return None
        version = self._stage(session, rot, created)
        if version is None:
            return None
        rot.obs.staged.append(version)
        rot.obs.digests[version.version] = created.token.digest
        self._keep(lambda r: r.seen_versions({version.version: created.token.digest}))
        rot.obs.record = self.obs.record
        return rot.run(version.version)

    def _defer(self, when: datetime, cap: int) -> None:
        """A capped PAT would not outlive the token in place: say when it will, and what unblocks it."""
        text = (f"a lifespan policy (\"Enforce maximum personal access token lifespan\") gave the last PAT the "
                f"watchdog created {cap} days, and the token has {self.plan.token.days_left} days left: a new one "
                f"would not outlive it. The watchdog creates it at the first run after {format_utc(when)}. Sooner: "
                "stage a replacement by hand, or ask an Azure DevOps Administrator to raise the policy's maximum")
        self.notes.append(Note(R.PAT_CREATION_DEFERRED.name, text))
        self.actions.append(Action(ActionKind.CREATE, None, "WARNING", ActionOutcome.SKIPPED, text))
        return None

    # -- the record ------------------------------------------------------------------------------
    def _keep(self, change: Callable[[Record], Record]) -> None:
        """A change to the record, written to the state table at once (what this run created must survive its
        death). Raises ServiceError."""
        self.obs.record = self.ports.records.update(self.obs.app.key, change)
        self.ports.records.write(self.obs.app.key)

    def _create(self, session: Session) -> CreatedPat | None:
        """Create the PAT; a lifespan policy that refuses the lifetime is asked again with shorter ones."""
        scope = H.scopes_for(H.reported_scopes(self.obs.snapshot.facts), self.settings.recommended_scopes,
                             self.settings.required_scopes)
        name = H.display_name(self.obs.app.site, self.now)
        wanted = self.now + timedelta(days=self.settings.pat_lifetime_days)
        try:    # the name first: a run that dies inside the request leaves a PAT the next run can find
            self._keep(lambda r: r.with_created(CreatedRecord(name, self.now)))
        except ServiceError as error:
            self.actions.append(Action(ActionKind.CREATE, None, "WARNING", ActionOutcome.FAILED,
                                       f"no replacement created: the watchdog's record could not be written "
                                       f"({error}), and it creates nothing it could lose track of"))
            return None
        *longer, shortest = H.lifetimes(self.settings.pat_lifetime_days)
        for days in (*longer, shortest):
            try:
                created = self.ports.pats.create(session.access_token, display_name=name, scope=scope,
                                                 valid_to=self.now + timedelta(days=days))
                break
            except CreationRefused as refused:
                if refused.code != H.LIFESPAN_REFUSED or days == shortest:
                    self._refused(refused)
                    return None
        valid_to = created.record.valid_to
        self._record_created(name, state=CreatedState.CREATED, authorization_id=created.record.authorization_id or None,
                             digest=created.token.digest, valid_to=valid_to)
        known = TokenFacts(self.obs.record.owner, False, created.record.authorization_id, valid_to,
                           tuple(created.record.scope.split()), self.now, "created", False)
        try:    # Azure DevOps' own answer about this PAT: its ID and scopes, matched by its creation
            self._keep(lambda r: r.learned(created.token.digest, known, replace_match=True))
        except ServiceError as error:
            log.warning("what Azure DevOps said of the created PAT is not recorded: %s", error)
        cap = max(1, (valid_to - self.now).days) if H.capped(wanted, valid_to) else None
        if cap != self.obs.record.lifespan_cap_days:     # learned, or lifted since
            try:
                self._keep(lambda r: replace(r, lifespan_cap_days=cap))
            except ServiceError as error:
                log.warning("the lifespan cap is not recorded: %s", error)
        if H.capped(wanted, valid_to):
            self.notes.append(Note(R.PAT_LIFESPAN_CAPPED.name, f"asked for {self.settings.pat_lifetime_days} days "
                                   f"(WATCHDOG_PAT_LIFETIME_DAYS), Azure DevOps gave until {format_utc(valid_to)}: "
                                   "a lifespan policy caps it, so the next rotation comes earlier"))
        return created

    def _record_created(self, name: str, **changes) -> None:
        try:
            self._keep(lambda r: r.update_created(name, **changes))
        except ServiceError as error:   # the name recorded before the request still finds it next run
            log.warning("the record of the created PAT %s is not updated: %s", name, error)

    def _refused(self, refused: CreationRefused) -> None:
        policy, text = H.refusal(refused.code, refused.status)
        if policy:
            self.notes.append(Note(R.PAT_CREATION_BLOCKED.name, text))
        self.actions.append(Action(ActionKind.CREATE, None, "CRITICAL" if policy else "WARNING",
                                   ActionOutcome.FAILED, f"no replacement created: {text}"))

    def _stage(self, session: Session, rot: Rotation, created: CreatedPat) -> SecretVersion | None:
        """The created PAT as a new version of the staged secret; if that fails, revoke it at once."""
        record, staged_name = created.record, rot.names[0]
        tags = {H.EXPIRES_TAG: format_utc(record.valid_to), H.SCOPES_TAG: record.scope,
                H.AUTHORIZATION_TAG: record.authorization_id, H.CREATED_BY_TAG: H.CREATED_BY,
                FINGERPRINT_TAG: created.token.fingerprint}
        detail = (f"created PAT \"{record.display_name}\" ({record.authorization_id}, fingerprint "
                  f"{created.token.fingerprint}, scope {record.scope}, valid to {format_utc(record.valid_to)})")
        try:
            version = rot.vault.store(staged_name, created.token, tags=tags, expires_on=record.valid_to)
        except (ServiceError, TagLimitError) as error:
            undone = self._revoke(session, record.authorization_id, "its value could not be staged")
            if undone:
                self._record_created(record.display_name, state=CreatedState.UNUSED, revoked_at=self.now)
            self.actions.append(Action(ActionKind.CREATE, None, "CRITICAL", ActionOutcome.FAILED,
                                       f"{detail}, but staging it in {staged_name} failed ({error}); "
                                       + ("it was revoked" if undone else "revoking it failed too: the next run "
                                          "finds it by its display name and revokes it")))
            return None
        self._record_created(record.display_name, state=CreatedState.STAGED, version=version.version)
        self.actions.append(Action(ActionKind.CREATE, None, "INFO", ActionOutcome.DONE,
                                   f"{detail}; staged as {staged_name}/{version.version}"))
        return version

    # -- revocation ------------------------------------------------------------------------------
    def _holds_id(self) -> str | None:
        """The authorization ID of the token Aggregator holds, when known for sure (never from a tag)."""
        fact = next((f for f in self.obs.snapshot.facts if f.verified and f.authorization_id), None)
        known = self.obs.record.facts(self.obs.snapshot.token_digest)
        found = (fact and fact.authorization_id) or (known and known.verified and known.authorization_id)
        return found.lower() if found else None

    def _revoke_due(self, session: Session, *, orphans_only: bool = False) -> None:
        """Revoke what the record says is due (core/handsfree.due_for_revocation), each only after the PAT
        Lifecycle listing confirms its authorization ID and display name, never the PAT Aggregator holds."""
        due = H.due_for_revocation(self.obs.record, self.obs.snapshot.token_digest, self.now,
                                   self.settings.revoke_after_days)
        if orphans_only:
            due = [(pat, why) for pat, why in due if pat.state in (CreatedState.INTENDED, CreatedState.CREATED)]
        if not due:
            return
        listed = self.ports.pats.list(session.access_token)
        holds = self._holds_id()
        for pat, why in due:
            entry = H.confirmed(pat, listed, self.obs.app.site)
            if entry is None:   # gone already (revoked, expired) or not the watchdog's: nothing to do
                if pat.authorization_id is not None or pat.created_at < self.now - timedelta(days=1):
                    self._record_created(pat.display_name, revoked_at=self.now)
                continue
            if pat.digest is None and holds is None:
                log.warning("%s: not revoking \"%s\" (%s): which PAT Aggregator holds is not known for sure",
                            self.obs.app.site, pat.display_name, why)
                continue
            if entry.authorization_id.lower() == holds:
                continue        # the token Aggregator holds: never
            if pat.digest and self.ports.records.holding(pat.digest) - {self.obs.app.key}:
                log.warning("%s: not revoking \"%s\": another watched instance holds it", self.obs.app.site,
                            pat.display_name)
                continue
            where = f" (staged version {pat.version})" if pat.version else ""
            if self._revoke(session, entry.authorization_id, f"{why}{where}"):
                self._record_created(pat.display_name, revoked_at=self.now)
                self._mirror_revoked(pat)

    def _mirror_revoked(self, pat: CreatedRecord) -> None:
        """The `revoked-at` tag on the staged version: the visible mirror of the record."""
        version = next((v for v in self.obs.staged if v.version == pat.version), None)
        if version is None:
            return
        try:
            self.ports.vaults.get(self.settings.key_vault_url).set_tags(version, {H.REVOKED_TAG: format_utc(self.now)})
        except (ServiceError, TagLimitError) as error:
            log.warning("revoked, but %s is not tagged: %s", version.version, error)

    def _revoke(self, session: Session, authorization_id: str, why: str) -> bool:
        try:
            self.ports.pats.revoke(session.access_token, authorization_id)
        except ServiceError as error:
            self.actions.append(Action(ActionKind.REVOKE, None, "WARNING", ActionOutcome.FAILED,
                                       f"revoking PAT {authorization_id} ({why}): {error}"))
            return False
        self.actions.append(Action(ActionKind.REVOKE, None, "INFO", ActionOutcome.DONE,
                                   f"revoked PAT {authorization_id}: {why}"))
        return True

    def revoke_replaced(self, mode: Mode) -> None:
        """What the record says is due: replaced WATCHDOG_REVOKE_AFTER_DAYS ago, never used, or orphaned."""
        due = H.due_for_revocation(self.obs.record, self.obs.snapshot.token_digest, self.now,
                                   self.settings.revoke_after_days)
        if not due:
            return
        if not mode.writes:
            self.actions += [Action(ActionKind.REVOKE, None, "INFO", ActionOutcome.PLANNED,
                                    f"revoke PAT \"{pat.display_name}\" ({pat.authorization_id or 'ID not recorded'}): "
                                    f"{why}") for pat, why in due]
            return
        session = self.session()
        if session is None:
            return
        try:
            self._revoke_due(session)
        except ServiceError as error:
            self.actions.append(Action(ActionKind.REVOKE, None, "WARNING", ActionOutcome.FAILED,
                                       f"the PATs due for revocation could not be listed: {error}"))


def rotated(outcome: Outcome | None) -> bool:
    return outcome is not None and outcome.state == RotationState.CURRENT

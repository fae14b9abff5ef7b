"""The rotation protocol of docs/rotation.md: small idempotent steps, state kept in Key Vault tags.

validate -> save previous -> tag `applying` -> swap (read-merge-replace) -> verify -> tag `current`.
A failure in swap or verify puts the previous token back and tags the candidate `failed`. A
run that finds `applying` (its predecessor died) finishes or undoes it before deciding anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime

from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.model import CandidateState, ExpiryFact, LiveCheck, Liveness, RotationState
from pat_watchdog.observe import Observed
from pat_watchdog.validation import INCONCLUSIVE_RUNS, CandidateCheck, Inconclusive, Postponed, Rejected
from pat_watchdog.ports import Ports, SecretStore
from pat_watchdog.core.times import format_utc
from pat_watchdog.core.secret import Token
from pat_watchdog.core.settings import Settings
from pat_watchdog.core.candidates import version_fact
from pat_watchdog.rollback import Rollback, RollbackStopped
from pat_watchdog.swap import (CandidateBroken, ConcurrentChange, NotWritten, SettingsSwap, SwapError,
                               VerificationPending)
from pat_watchdog.core.tags import (FINGERPRINT_TAG, REASON_TAG, ROTATED_TAG, STATUS_TAG, SecretVersion,
                                    TagLimitError, has_room, inconclusive_count)

log = logging.getLogger(__name__)
LOCK_LOST = "the rotation lock was lost (its lease ran out): nothing more written; the next run reconciles"


@dataclass
class Outcome:
    """What a rotation attempt ended as, and the facts needed to re-decide afterwards."""

    state: RotationState
    detail: str
    version: str | None = None
    live: LiveCheck | None = None
    facts: tuple[ExpiryFact, ...] = ()
    fingerprint: str | None = None
    digest: str | None = None                  # SHA-256 of the token Aggregator holds after it
    recovered: bool = False                    # finished a rotation a dead run had started
    warning: str | None = None                 # a forced rotation accepted what a scheduled one would not
    token: Token | None = field(default=None, repr=False)   # the token Aggregator holds now, in memory only


@dataclass
class Rotation:
    """One instance's rotation, over the run's adapters."""

    obs: Observed
    settings: Settings
    ports: Ports
    now: datetime
    create_setting: bool = False      # `rotate --force` into a token setting the app does not have yet
    forced: bool = False              # `rotate --force`: an earlier expiry is accepted, with a warning
    lock: tuple[str, str, str] | None = None   # (key, owner, fence): checked before every write
    warning: str | None = None        # set by `validate` for a forced rotation to an earlier expiry

    def lost_lock(self) -> bool:
        """Fencing: a run suspended past its lease must find out before its next write, not after."""
        if self.lock is None:
            return False
        try:
            return not self.ports.ledger.holds(*self.lock)
        except ServiceError:
            return True

    @property
    def vault(self) -> SecretStore:
        return self.ports.vaults.get(self.settings.key_vault_url)

    @property
    def names(self) -> tuple[str, str]:
        return self.settings.secret_names(self.obs.app.site)

    def version(self, version_id: str) -> SecretVersion:
        return next(v for v in self.obs.staged if v.version == version_id)

    # -- step 1 -----------------------------------------------------------------
    def validate(self, candidate: Token, version: SecretVersion) -> tuple[LiveCheck, tuple[ExpiryFact, ...]]:
        """Step 1 (validation.py): raise Rejected or Postponed saying why."""
        check = CandidateCheck(self.obs, self.settings, self.ports, self.now, forced=self.forced)
        try:
            return check.validate(candidate, version)
        finally:
            self.warning = check.warning

    # -- steps 2 and 3 --------------------------------------------------------------
    def save_previous(self) -> None:
        """Keep the current token as a new version of the previous secret (once per token), and record which
        version it is: a rollback puts back only that one (tags are anyone's to write). Raises ServiceError."""
        current = self.obs.current
        if current is None:
            return
        key = self.obs.app.key
        saved = self.ports.records.get(key).previous
        if saved is not None and saved[1] == current.digest:
            return
        stored = self.vault.store(self.names[1], current, tags={
            FINGERPRINT_TAG: current.fingerprint, "replaced-at": format_utc(self.now), "app": str(self.obs.app)})
        self.obs.record = self.ports.records.update(key, lambda r: r.with_previous(stored.version, current.digest))
        self.ports.records.write(key)     # before the swap: the rollback's one source of truth

    def mark(self, version: SecretVersion, changes: dict) -> SecretVersion:
        """Merge tags into the candidate and keep our copy current (PATCH replaces the set)."""
        updated = self.vault.set_tags(version, changes)
        self.obs.staged = [updated if v.version == updated.version else v for v in self.obs.staged]
        return updated

    # -- the protocol --------------------------------------------------------------------
    def run(self, version_id: str) -> Outcome:
        """Steps 1-6 for a pending candidate; never raises for a problem of this instance."""
        version = self.version(version_id)
        if not has_room(version.tags):
            return Outcome(RotationState.POSTPONED,
                           f"{version_id} has no room for the watchdog's tags (TAG_LIMIT)", version_id)
        try:
            candidate, _ = self.vault.read(version.name, version.version)
            live, facts = self.validate(candidate, version)
        except Rejected as why:
            return self._reject(version, str(why))
        except Inconclusive as why:
            return self._inconclusive(version, str(why))
        except (Postponed, ServiceError) as why:
            return Outcome(RotationState.POSTPONED, f"rotation postponed, nothing changed: {why}", version_id)
        return self._apply(version, candidate, live, facts)

    def _inconclusive(self, version: SecretVersion, why: str) -> Outcome:
        """Only a definitive answer rejects a candidate; runs without one are counted in its reason tag (not
        for a version handled before and tried again: its reason stays what kept it out)."""
        if version.status is not None:
            return Outcome(RotationState.POSTPONED, f"rotation postponed, nothing changed: {why}", version.version)
        count = inconclusive_count(version, INCONCLUSIVE_RUNS)
        if count + 1 >= INCONCLUSIVE_RUNS:
            return self._reject(version, f"{INCONCLUSIVE_RUNS} runs without a definitive answer from Azure "
                                         f"DevOps, the last: {why}")
        try:
            self.mark(version, {REASON_TAG: f"inconclusive {count + 1}/{INCONCLUSIVE_RUNS}: {why}"})
        except (ServiceError, TagLimitError) as error:
            log.warning("the inconclusive check was not recorded: %s", error)
        return Outcome(RotationState.POSTPONED, f"rotation postponed, nothing changed: {why}", version.version)

    def _reject(self, version: SecretVersion, why: str) -> Outcome:
        try:
            self.mark(version, {STATUS_TAG: CandidateState.REJECTED.value, REASON_TAG: why})
        except (ServiceError, TagLimitError) as error:
            return Outcome(RotationState.POSTPONED, f"rejected ({why}) but the tag could not be written: {error}",
                           version.version)
        return Outcome(RotationState.REJECTED, why, version.version)

    def _apply(self, version, candidate: Token, live, facts) -> Outcome:
        if self.lost_lock():
            return Outcome(RotationState.POSTPONED, LOCK_LOST, version.version)
        try:
            self.save_previous()
            key = self.obs.app.key      # recorded first: only a version the record names is reconciled
            self.obs.record = self.ports.records.update(key, lambda r: replace(r, applying=version.version))
            self.ports.records.write(key)
            version = self.mark(version, {STATUS_TAG: CandidateState.APPLYING.value,
                                          FINGERPRINT_TAG: candidate.fingerprint, REASON_TAG: None})
        except (ServiceError, TagLimitError) as error:
            return Outcome(RotationState.POSTPONED,
                           f"rotation postponed, Aggregator untouched: {error}", version.version)
        swap = SettingsSwap(self.obs, self.settings, self.ports, create=self.create_setting)
        if self.lost_lock():   # the candidate stays applying: whoever holds the lock now reconciles it
            return Outcome(RotationState.POSTPONED, LOCK_LOST, version.version)
        try:
            swap.to(candidate, expect=self.obs.current)
            swap.verify(candidate)
        except ConcurrentChange as error:
            return self._stop(version, str(error))
        except (NotWritten, VerificationPending) as error:
            return Outcome(RotationState.POSTPONED,
                           f"{error}; the candidate stays applying and the next run finishes or "
                           "undoes it", version.version)
        except SwapError as error:
            if self._previous_broken() and not isinstance(error, CandidateBroken) and swap.holds():
                # Putting back a token that does not work would help nobody: keep the working one.
                return self._promote(version, candidate, live, facts, note=f"kept despite: {error}"
                                     + Rollback(swap).repair())
            return self._undo(version, swap, str(error))
        return self._promote(version, candidate, live, facts)

    def _previous_broken(self) -> bool:
        return self.obs.current is None or self.obs.snapshot.live.state in (Liveness.EXPIRED, Liveness.INVALID)

    def _promote(self, version, candidate: Token, live, facts, *, recovered: bool = False, note: str = "") -> Outcome:
        try:
            self.mark(version, {STATUS_TAG: CandidateState.CURRENT.value, ROTATED_TAG: format_utc(self.now),
                                REASON_TAG: None})
        except (ServiceError, TagLimitError) as error:
            return Outcome(RotationState.UNRECORDED,
                           f"Aggregator uses the new token, but Key Vault could not record it "
                           f"({error}); the next run finishes", version.version, live, facts, candidate.fingerprint,
                           digest=candidate.digest,
                           token=candidate)
        note = "; ".join(n for n in (note, self.warning) if n)
        detail = f"rotated to {version.version} (fingerprint {candidate.fingerprint})" + (f"; {note}" if note else "")
        return Outcome(RotationState.CURRENT, detail, version.version, live, facts, candidate.fingerprint,
                       digest=candidate.digest,
                       recovered=recovered, token=candidate, warning=self.warning)

    def _undo(self, version: SecretVersion, swap: SettingsSwap, why: str, previous: Token | None = None) -> Outcome:
        """Put `previous` back (default: the token observed before the swap) with the settings as they were
        before the write, and tag the candidate failed; a token setting someone changed meanwhile is left
        alone (ROTATION_STOPPED)."""
        previous = previous or self.obs.current
        try:
            undone = Rollback(swap).restore(previous) if previous else \
                "no previous token is known: check the setting by hand"
        except RollbackStopped as stopped:
            return self._stop(version, f"{why}; {stopped}")
        failed = self._fail(version, f"{why}; {undone}")   # the tag says what was restored: later alerts repeat it
        if previous is not None and undone.startswith("previous token"):
            failed.token = previous         # what Aggregator holds now: the next run must not call it a change
        return failed

    def _stop(self, version: SecretVersion, why: str) -> Outcome:
        """A person changed the token meanwhile: leave their change, make the candidate pending again."""
        try:
            self.mark(version, {STATUS_TAG: None})
        except (ServiceError, TagLimitError) as error:
            why += f"; the candidate stays tagged applying ({error}) and is reconciled next run"
        return Outcome(RotationState.STOPPED, why, version.version)

    def _saved_previous(self) -> Token | None:
        """The token this rotation replaced: the previous-secret version the watchdog's record says it wrote,
        re-read and compared with the recorded digest; any other version (whoever wrote it, however tagged)
        is never put back. Raises ServiceError."""
        saved = self.ports.records.get(self.obs.app.key).previous
        if saved is None:
            return None
        version, digest = saved
        token, _ = self.vault.read(self.names[1], version)
        return token if token.digest == digest else None

    # -- recovery -------------------------------------------------------------------------
    def reconcile(self, version_id: str) -> Outcome:
        """A version left `applying`: finish it if Aggregator already uses it and it works; else
        redo the swap (the validation passed before) or put the previous token back."""
        version = self.version(version_id)
        if not version.enabled:
            return self._abort_disabled(version)
        try:
            candidate, _ = self.vault.read(version.name, version.version)
        except ServiceError as error:
            return Outcome(RotationState.POSTPONED, f"interrupted rotation not reconciled yet: {error}", version_id)
        if self.obs.current == candidate:
            return self._finish(version, candidate)
        try:
            live, facts = self.validate(candidate, version)
        except Rejected as why:  # the previous token is still in place: nothing to undo but the tag
            return self._undo(version, SettingsSwap(self.obs, self.settings, self.ports, create=self.create_setting),
                              f"interrupted rotation could not be redone: {why}")
        except (Postponed, ServiceError) as why:
            return Outcome(RotationState.POSTPONED, f"interrupted rotation not redone yet: {why}", version_id)
        return self._apply(version, candidate, live, facts)

    def _finish(self, version: SecretVersion, candidate: Token) -> Outcome:
        """Aggregator's setting gives it the candidate: a versionless reference is loaded by a restart and
        App Service's resolution verified (docs/reference.md, "Reason codes"); then the candidate must work.
        Else undo."""
        swap = SettingsSwap(self.obs, self.settings, self.ports, create=self.create_setting)
        try:
            swap.reload(self.obs.reference_version)
        except VerificationPending as error:   # the restart not done or not in effect yet: not a verdict
            return Outcome(RotationState.POSTPONED, f"interrupted rotation not finished yet: {error}", version.version)
        except SwapError as error:
            return self._undo_to_saved(version, swap, f"the interrupted rotation did not take: {error}")
        live = self.ports.devops.check_live(candidate)
        if live.state is Liveness.VALID:
            return self._promote(version, candidate, live, (version_fact(version),), recovered=True)
        if live.state is Liveness.UNKNOWN:  # an outage is not a verdict: keep `applying`
            return Outcome(RotationState.POSTPONED, f"interrupted rotation not verified yet: {live.detail}",
                           version.version)
        return self._undo_to_saved(version, swap, f"the interrupted rotation's token does not work ({live.detail})")

    def _undo_to_saved(self, version: SecretVersion, swap: SettingsSwap, why: str) -> Outcome:
        """Aggregator holds the candidate: only the saved copy can be put back, never obs.current."""
        try:
            previous = self._saved_previous()
        except ServiceError as error:
            return Outcome(RotationState.POSTPONED, f"the saved previous token could not be read yet: {error}",
                           version.version)
        if previous is None:
            return Outcome(RotationState.FAILED, f"{why} and no previous token is saved: put a working PAT in "
                           f"{self.settings.token_setting} by hand", version.version)
        return self._undo(version, swap, why, previous=previous)

    def _abort_disabled(self, version: SecretVersion) -> Outcome:
        """A person disabled the version while it was applying (Key Vault no longer gives its value): the
        rotation is aborted, never left blocking the instance. Aggregator does not hold it: rejected, nothing
        to undo. Aggregator holds it (the watchdog's record of the version's value, never its tags): the saved
        previous token is put back if it works."""
        why = "aborted: the version was disabled in Key Vault while its rotation was applying"
        current = self.obs.current
        recorded = self.ports.records.get(self.obs.app.key).versions.get(version.version)
        if current is None or recorded is None or recorded != current.digest:
            return self._reject(version, f"{why}; Aggregator keeps the token it holds")
        swap = SettingsSwap(self.obs, self.settings, self.ports, create=self.create_setting)
        try:
            previous = self._saved_previous()
        except ServiceError as error:
            return Outcome(RotationState.POSTPONED, f"{why}; the saved previous token could not be read yet: "
                           f"{error}", version.version)
        works = previous is not None and self.ports.devops.check_live(previous).state is Liveness.VALID
        if not works:   # never a dead (or unknown) token put back over the one Aggregator holds
            return self._fail(version, f"{why}; Aggregator keeps it: the previous token is not saved or does "
                                       "not work")
        return self._undo(version, swap, why, previous=previous)

    def _fail(self, version: SecretVersion, why: str) -> Outcome:
        try:
            self.mark(version, {STATUS_TAG: CandidateState.FAILED.value, REASON_TAG: why})
        except (ServiceError, TagLimitError) as error:
            why += f"; the failure could not be tagged ({error})"
        return Outcome(RotationState.FAILED, why, version.version)

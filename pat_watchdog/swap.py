"""Putting a token into Aggregator's settings by read-merge-replace, verifying it, and undoing it.

ARM's PUT `config/appsettings` replaces ALL settings and has no ETag, so: list immediately
before the PUT, change only the token setting and `Aggregator_VstsTokenType`, re-read after,
and compare every other setting byte for byte.
"""

from __future__ import annotations

from pat_watchdog.core import references
from pat_watchdog.core.errors import ServiceError, WatchdogError, is_transient_status
from pat_watchdog.core.model import Liveness
from pat_watchdog.observe import Observed
from pat_watchdog.ports import Ports
from pat_watchdog.core.secret import Token, fingerprint
from pat_watchdog.core.settings import Settings
from pat_watchdog.core.tags import FINGERPRINT_TAG

TOKEN_TYPE = "Aggregator_VstsTokenType"


class SwapError(WatchdogError):
    """The swap or its verification failed; the caller puts the previous token back."""


class ConcurrentChange(SwapError):
    """Someone else changed the token setting meanwhile: nothing was written, nothing is undone."""


class CandidateBroken(SwapError):
    """Azure DevOps rejects the candidate after the swap."""


class NotWritten(SwapError):
    """Nothing is known to be written (no PUT sent, or the re-read after a failed one shows none): nothing to
    undo; the candidate stays applying and the next run finishes or undoes it."""


class RollbackStopped(SwapError):
    """The token setting no longer holds what the rotation wrote: someone changed it; nothing is put back."""


class VerificationPending(SwapError):
    """The swap is done but could not be verified (an outage): neither kept nor undone yet."""


class SettingsSwap:
    """One Aggregator app's token setting; plain value or Key Vault reference (docs/rotation.md)."""

    def __init__(self, obs: Observed, settings: Settings, ports: Ports, *, create: bool = False):
        self.obs, self.ports, self.name, self.create = obs, ports, settings.token_setting, create
        self.original = obs.settings.get(self.name)     # the value observed at the start of the run
        self.before: dict | None = None                 # the settings listed right before the PUT (snapshot)
        self._pending: list[str] = []                   # settings a rollback still has to restore
        self.expected: str | None = None
        self.stored_version: str | None = None          # the secret version a versionless reference should load

    # -- forward ------------------------------------------------------------------------
    def to(self, candidate: Token, *, expect: Token | None) -> None:
        """Make Aggregator use `candidate`; stop if someone else changed the token meanwhile."""
        ref = self.obs.reference
        if ref is None:
            self.write(candidate.reveal())
        elif ref.versioned:
            self.write(ref.as_setting(self._store_in_reference(candidate)))
        else:
            self.stored_version = self._store_in_reference(candidate, newest_only=True)
            self.before = self._list()
            self.expected = self.before.get(self.name)
            self._restart()

    def write(self, value: str) -> None:
        """Read-merge-replace the token setting with `value`, guarded by the value observed at the start."""
        try:
            fresh = self.ports.apps.list_settings(self.obs.app)
        except ServiceError as error:
            raise NotWritten(f"the settings could not be read before writing: {error}") from None
        if fresh.get(self.name) == value:
            self.before, self.expected = fresh, value
            return  # an earlier, interrupted run already wrote it
        if self.name not in fresh and not self.create:
            raise ConcurrentChange(f"the app has no setting {self.name}: it is never created without "
                                   "`rotate --force`; nothing written")
        if fresh.get(self.name) != self.original:
            raise ConcurrentChange(f"{self.name} was changed by someone else since it was read "
                            f"(now fingerprint {_fp(fresh.get(self.name))}); nothing written")
        self.before, self.expected = fresh, value      # the snapshot a rollback restores
        merged = {**fresh, self.name: value, TOKEN_TYPE: "PAT"}
        try:
            self.ports.apps.replace_settings(self.obs.app, merged)
        except ServiceError as error:
            # A lost answer is not a refusal: if the re-read shows nothing written, the next run tries again
            # (a PUT whose answer was lost may still land later: the next run then finds it in place).
            try:
                written = self.ports.apps.list_settings(self.obs.app).get(self.name) == value
            except ServiceError:
                written = None
            if written is False and is_transient_status(error.status):
                raise NotWritten(f"writing the app settings failed and the settings re-read do not show the "
                                 f"write (a PUT is never repeated within the run): {error}") from None
            if not written:
                raise SwapError(f"writing the app settings failed: {error}") from None

    def _store_in_reference(self, token: Token, *, newest_only: bool = False) -> str:
        """The token as a version of the referenced secret, reused if already there. A versionless
        reference loads the latest version, so then only the latest may be reused: asked of the
        service itself, since `created` has one-second resolution and cannot order close versions."""
        ref = self.obs.reference
        vault = self.ports.vaults.get(ref.vault_url)
        try:
            if newest_only:
                latest, props = vault.read(ref.secret_name)
                if latest == token:
                    return props.version
            else:
                for version in vault.versions(ref.secret_name):
                    if version.tags.get(FINGERPRINT_TAG) == token.fingerprint and version.enabled:
                        return version.version
            return vault.store(ref.secret_name, token, tags={FINGERPRINT_TAG: token.fingerprint}).version
        except ServiceError as error:
            raise SwapError(f"writing the referenced secret failed: {error}") from None

    def _restart(self) -> None:
        # A versionless reference is re-resolved when the app restarts.
        try:
            self.ports.apps.restart(self.obs.app)
        except ServiceError as error:
            raise SwapError(f"restarting the app failed: {error}") from None

    # -- verification -----------------------------------------------------------------------
    def verify(self, candidate: Token) -> None:
        """Settings re-read show the candidate and nothing else changed; the candidate still works.

        A re-read that fails is an outage (VerificationPending), not a mismatch: nothing is undone.
        """
        try:
            after = self.ports.apps.list_settings(self.obs.app)
        except ServiceError as error:
            raise VerificationPending(f"the settings could not be re-read: {error}") from None
        if after.get(self.name) != self.expected:
            raise SwapError(f"re-read settings show {self.name} with fingerprint {_fp(after.get(self.name))}, "
                            f"not the candidate's {candidate.fingerprint}")
        changed = sorted(k for k in set(self.before) | set(after)
                         if k not in (self.name, TOKEN_TYPE) and self.before.get(k) != after.get(k))
        if changed:
            raise SwapError("other settings changed during the rotation: " + ", ".join(changed))
        if self.obs.reference is not None:
            self._verify_reference(candidate, version=references.parse_reference(self.expected).version)
            self._verify_platform(self.stored_version)
        live = self.ports.devops.check_live(candidate)
        if live.state is Liveness.UNKNOWN:
            raise VerificationPending(f"Azure DevOps unreachable: {live.detail}")
        if live.state is not Liveness.VALID:
            raise CandidateBroken(f"the new token fails connectionData after the swap ({live.state.value})")

    def holds(self) -> bool:
        """Whether Aggregator's settings show the swapped value now."""
        try:
            return self.expected is not None and self._list().get(self.name) == self.expected
        except SwapError:
            return False

    def _verify_reference(self, token: Token, *, version: str | None) -> None:
        ref = self.obs.reference
        try:
            resolved, _ = self.ports.vaults.get(ref.vault_url).read(ref.secret_name, version)
        except ServiceError as error:
            raise VerificationPending(f"the referenced secret could not be re-read: {error}") from None
        if resolved != token:
            raise SwapError(f"the Key Vault reference does not resolve to the token with fingerprint "
                            f"{token.fingerprint}")

    def _verify_platform(self, version: str | None) -> None:
        """App Service itself resolves the reference, and a versionless one loaded `version` (DESIGN 3.8)."""
        try:
            found = self.ports.apps.reference_status(self.obs.app, self.name)
        except ServiceError as error:
            raise VerificationPending(f"App Service's reference status could not be read: {error}") from None
        if not found.resolved:
            raise SwapError(f"App Service does not resolve the Key Vault reference after the swap ({found.status}"
                            + (f": {found.details}" if found.details else "") + ")")
        if version and found.active_version and found.active_version != version:
            raise VerificationPending(f"App Service still uses version {found.active_version} of the secret, not "
                                      f"{version}; the next run verifies again")

    def reload(self, version: str | None) -> None:
        """After a crash: make a versionless reference load `version` (restart) and verify App Service resolves
        it to that version. Raises VerificationPending (not in effect yet, or unreadable; also a failed restart,
        retried next run) or SwapError (App Service does not resolve the reference after the restart)."""
        ref = self.obs.reference
        if ref is None or ref.versioned or version is None:
            return
        try:
            self._verify_platform(version)
            return
        except SwapError:   # not loaded yet, or not resolved: a restart fetches the reference again
            pass
        try:
            self._restart()
        except SwapError as error:
            raise VerificationPending(str(error)) from None
        self._verify_platform(version)

    # -- undo ---------------------------------------------------------------------------------
    def restore(self, previous: Token) -> str:
        """Put back what was: `previous` in the token setting and, from the settings listed right before the
        write (the snapshot), every other setting that is missing or different now; settings added meanwhile
        are kept. Only while the token setting still holds what the rotation wrote (compare-and-swap):
        otherwise raise RollbackStopped and write nothing. Returns what was and was not restored."""
        try:
            fresh = self._list()
            self._guard(fresh.get(self.name), previous)
            ref = self.obs.reference
            if ref is not None and not ref.versioned:
                self._store_in_reference(previous, newest_only=True)
                self._restart()
                self._verify_reference(previous, version=None)
                return (f"previous token (fingerprint {previous.fingerprint}) put back as the newest version of "
                        f"{ref.secret_name} and the app restarted")
            value = self._restore_value(previous)
            head = f"previous token (fingerprint {previous.fingerprint}) " + (
                "put back" if fresh.get(self.name) != value else "in place, not written again")
            return "; ".join([head, *self._put_back(fresh, value)])
        except RollbackStopped:
            raise
        except (ServiceError, SwapError) as error:
            return (f"ROLLBACK FAILED ({error}): check {self.name} of {self.obs.app.site} by hand; the previous "
                    f"token (fingerprint {previous.fingerprint}) is saved in the previous-token secret"
                    + self._unrestored_note())

    def repair(self) -> str:
        """The candidate stays (the previous token is dead): restore only the other settings from the
        snapshot, while the token setting still holds what the rotation wrote. Says what it did, never raises."""
        if self.expected is None or self.before is None or (self.obs.reference and not self.obs.reference.versioned):
            return ""
        try:
            fresh = self._list()
            if fresh.get(self.name) != self.expected:
                return f"; the other settings were not restored: {self.name} changed meanwhile"
            return "".join(f"; {part}" for part in self._put_back(fresh, self.expected))
        except SwapError as error:
            return f"; the other settings could not be restored ({error})" + self._unrestored_note()

    def _guard(self, now: str | None, previous: Token) -> None:
        """Compare-and-swap: the setting holds what the rotation wrote (or already the previous token)."""
        wrote = self.expected if self.expected is not None else self.original
        if now == wrote or (now is not None and self._shows(now, previous)):
            return
        raise RollbackStopped(f"{self.name} was changed by someone else after the write (it now holds "
                              f"{_describe(now)}): left as it is, nothing put back")

    def _shows(self, value: str, previous: Token) -> bool:
        """Whether the setting's `value` already gives Aggregator the previous token."""
        if self.obs.reference is None:
            return bool(value.strip()) and not references.is_reference(value) and Token(value) == previous
        return value == self.original and self.obs.current == previous

    def _restore_value(self, previous: Token) -> str:
        ref = self.obs.reference
        if ref is None:
            return previous.reveal()
        if self.obs.current == previous:  # the observed reference pointed at the previous token
            return self.original
        return ref.as_setting(self._store_in_reference(previous))  # after a crash: point at it again

    def _put_back(self, fresh: dict, value: str) -> list[str]:
        """One read-merge-replace of the token setting with `value` and of the snapshot's other settings that
        differ now (missing or changed); settings added since the snapshot are kept. Then re-read and say
        what was restored and what was not (setting names, never values)."""
        snapshot = self.before or {}
        changed = {k: v for k, v in snapshot.items() if k not in (self.name, TOKEN_TYPE) and fresh.get(k) != v}
        added = sorted(k for k in fresh if k not in snapshot and k not in (self.name, TOKEN_TYPE)) \
            if self.before is not None else []
        self._pending = sorted(changed)
        if fresh.get(self.name) != value or changed:
            try:
                self.ports.apps.replace_settings(self.obs.app, {**fresh, **changed, self.name: value,
                                                                TOKEN_TYPE: "PAT"})
            except ServiceError as error:
                raise SwapError(f"writing the app settings failed: {error}") from None
        after = self._list()
        if after.get(self.name) != value:
            raise SwapError(f"the settings re-read afterwards do not show the token in {self.name}")
        lost = [k for k in sorted(changed) if after.get(k) != snapshot[k]]
        self._pending = []
        missing = [k for k in sorted(changed) if k not in fresh and k not in lost]
        different = [k for k in sorted(changed) if k in fresh and k not in lost]
        parts = []
        if missing:
            parts.append(_names("restored {n} setting{s} missing since the write", missing))
        if different:
            parts.append(_names("restored the value before the rotation of {n} setting{s} changed since the "
                                "write", different))
        if added:
            parts.append(_names("kept {n} setting{s} added meanwhile", added))
        if lost:
            parts.append(_names("could not restore {n} setting{s} (still missing or different)", lost))
        if self.before is None:
            parts.append("the other settings were left as they are (this run does not know their values "
                         "before the write)")
        return parts

    def _unrestored_note(self) -> str:
        return "; " + _names("not restored: {n} setting{s}", self._pending) if self._pending else ""

    def _list(self) -> dict:
        try:
            return self.ports.apps.list_settings(self.obs.app)
        except ServiceError as error:
            raise SwapError(f"reading the app settings failed: {error}") from None


def _fp(value: str | None) -> str:
    return fingerprint(value) if value else "none"


def _describe(value: str | None) -> str:
    """What a token setting holds, in words, never its value."""
    if value is None:
        return "nothing (the setting is gone)"
    if references.is_reference(value):
        try:
            ref = references.parse_reference(value)
        except ValueError:
            return "a Key Vault reference"
        return f"a Key Vault reference to {ref.secret_name}" + (f" version {ref.version}" if ref.version else "")
    return f"a token with fingerprint {_fp(value)}"


def _names(text: str, shown: list[str]) -> str:
    """`text` with the count filled in, then the setting names (outside text: escaped where shown)."""
    listed = ", ".join(shown[:10]) + (f" and {len(shown) - 10} more" if len(shown) > 10 else "")
    return text.format(n=len(shown), s="" if len(shown) == 1 else "s") + ": " + listed


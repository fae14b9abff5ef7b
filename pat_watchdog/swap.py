"""Putting a token into Aggregator's settings by read-merge-replace, verifying it, and undoing it.

ARM's PUT `config/appsettings` replaces ALL settings and has no ETag, so: list immediately
before the PUT, change only the token setting and `Aggregator_VstsTokenType`, re-read after,
and compare every other setting byte for byte.
"""

from __future__ import annotations

from pat_watchdog.core import references, token_type
from pat_watchdog.core.errors import ServiceError, WatchdogError, is_transient_status
from pat_watchdog.core.model import Liveness
from pat_watchdog.observe import Observed
from pat_watchdog.ports import Ports
from pat_watchdog.core.secret import Token, fingerprint
from pat_watchdog.core.settings import Settings
from pat_watchdog.core.tags import FINGERPRINT_TAG



class SwapError(WatchdogError):
    """The swap or its verification failed; the caller puts the previous token back."""


class ConcurrentChange(SwapError):
    """Someone else changed the token setting meanwhile: nothing was written, nothing is undone."""


class CandidateBroken(SwapError):
    """Azure DevOps rejects the candidate after the swap."""


class NotWritten(SwapError):
    """Nothing is known to be written (no PUT sent, or the re-read after a failed one shows none): nothing to
    undo; the candidate stays applying and the next run finishes or undoes it."""


class VerificationPending(SwapError):
    """The swap is done but could not be verified (an outage): neither kept nor undone yet."""


class SettingsSwap:
    """One Aggregator app's token setting; plain value or Key Vault reference (docs/rotation.md)."""

    def __init__(self, obs: Observed, settings: Settings, ports: Ports, *, create: bool = False):
        # The keys as the app spells them: Aggregator reads its settings case-insensitively (core/token_type.py).
        name = token_type.key_in(obs.settings, settings.token_setting) or settings.token_setting
        self.obs, self.ports, self.name, self.create = obs, ports, name, create
        self.type_name = token_type.key_in(obs.settings, token_type.SETTING) or token_type.SETTING
        self.original = obs.settings.get(self.name)     # the value observed at the start of the run
        self.before: dict | None = None                 # the settings listed right before the PUT (snapshot)
        self.expected: str | None = None
        self.stored_version: str | None = None          # the secret version a versionless reference should load

    # -- forward ------------------------------------------------------------------------
    def to(self, candidate: Token, *, expect: Token | None) -> None:
        """Make Aggregator use `candidate`; stop if someone else changed the token meanwhile."""
        ref = self.obs.reference
        if ref is None:
            self.write(candidate.reveal())
        elif ref.versioned:
            self.write(ref.as_setting(self.store_in_reference(candidate)))
        else:
            self.stored_version = self.store_in_reference(candidate, newest_only=True)
            self.before = self.settings_now()
            self.expected = self.before.get(self.name)
            self.restart()

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
        merged = {**fresh, self.name: value, self.type_name: "PAT"}
        try:
            self.ports.apps.replace_settings(self.obs.app, merged)
        except ServiceError as error:
            # A lost answer is not a refusal: if the re-read shows nothing written, the next run tries again
            # (a PUT whose answer was lost may still land later: the next run then finds it in place).
            try:
                written = self.ports.apps.list_settings(self.obs.app).get(self.name) == value
            except ServiceError:
                written = None
            # 409 Conflict: ARM refused the write because another operation on the site is in progress
            # ("Cannot modify this site because another operation is in progress"): nothing was written.
            if written is False and (is_transient_status(error.status) or error.status == 409):
                raise NotWritten(f"writing the app settings failed and the settings re-read do not show the "
                                 f"write (a PUT is never repeated within the run): {error}") from None
            if not written:
                raise SwapError(f"writing the app settings failed: {error}") from None

    def store_in_reference(self, token: Token, *, newest_only: bool = False) -> str:
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
                    # a version whose value is the token (read and compared: tags are anyone's to write)
                    if version.enabled and version.tags.get(FINGERPRINT_TAG) == token.fingerprint \
                            and vault.read(ref.secret_name, version.version)[0] == token:
                        return version.version
            return vault.store(ref.secret_name, token, tags={FINGERPRINT_TAG: token.fingerprint}).version
        except ServiceError as error:
            raise SwapError(f"writing the referenced secret failed: {error}") from None

    def restart(self) -> None:
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
                         if k not in (self.name, self.type_name) and self.before.get(k) != after.get(k))
        if changed:
            raise SwapError("other settings changed during the rotation: " + ", ".join(changed))
        if self.obs.reference is not None:
            self.verify_reference(candidate, version=references.parse_reference(self.expected).version)
            self._verify_platform(self.stored_version)
        live = self.ports.devops.check_live(candidate)
        if live.state is Liveness.UNKNOWN:
            raise VerificationPending(f"Azure DevOps unreachable: {live.detail}")
        if live.state is not Liveness.VALID:
            raise CandidateBroken(f"the new token fails connectionData after the swap ({live.state.value})")

    def holds(self) -> bool:
        """Whether Aggregator's settings show the swapped value now."""
        try:
            return self.expected is not None and self.settings_now().get(self.name) == self.expected
        except SwapError:
            return False

    def verify_reference(self, token: Token, *, version: str | None) -> None:
        ref = self.obs.reference
        try:
            resolved, _ = self.ports.vaults.get(ref.vault_url).read(ref.secret_name, version)
        except ServiceError as error:
            raise VerificationPending(f"the referenced secret could not be re-read: {error}") from None
        if resolved != token:
            raise SwapError(f"the Key Vault reference does not resolve to the token with fingerprint "
                            f"{token.fingerprint}")

    def _verify_platform(self, version: str | None) -> None:
        """App Service itself resolves the reference, and a versionless one loaded `version`
        (docs/reference.md, "Reason codes")."""
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
            self.restart()
        except SwapError as error:
            raise VerificationPending(str(error)) from None
        self._verify_platform(version)

    def settings_now(self) -> dict:
        try:
            return self.ports.apps.list_settings(self.obs.app)
        except ServiceError as error:
            raise SwapError(f"reading the app settings failed: {error}") from None


def _fp(value: str | None) -> str:
    return fingerprint(value) if value else "none"


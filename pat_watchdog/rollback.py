"""Undoing a swap: put back what was, from the settings listed right before the write (the snapshot),
only while the token setting still holds what the rotation wrote (docs/rotation.md, "A rollback restores
what was")."""

from __future__ import annotations

from pat_watchdog.core import references
from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.secret import Token, fingerprint
from pat_watchdog.swap import SettingsSwap, SwapError


class RollbackStopped(SwapError):
    """The token setting no longer holds what the rotation wrote: someone changed it; nothing is put back."""


class Rollback:
    """The undo of one SettingsSwap; says what was and was not restored, by setting name, never by value."""

    def __init__(self, swap: SettingsSwap):
        self.swap = swap
        self._pending: list[str] = []     # settings it still has to restore (named when it fails)

    def restore(self, previous: Token) -> str:
        """Put back what was: `previous` in the token setting and, from the settings listed right before the
        write (the snapshot), every other setting that is missing or different now; settings added meanwhile
        are kept. Only while the token setting still holds what the rotation wrote (compare-and-swap):
        otherwise raise RollbackStopped and write nothing. Returns what was and was not restored."""
        try:
            fresh = self.swap.settings_now()
            self._guard(fresh.get(self.swap.name), previous)
            ref = self.swap.obs.reference
            if ref is not None and not ref.versioned:
                self.swap.store_in_reference(previous, newest_only=True)
                self.swap.restart()
                self.swap.verify_reference(previous, version=None)
                return (f"previous token (fingerprint {previous.fingerprint}) put back as the newest version of "
                        f"{ref.secret_name} and the app restarted")
            value = self._restore_value(previous)
            head = f"previous token (fingerprint {previous.fingerprint}) " + (
                "put back" if fresh.get(self.swap.name) != value else "in place, not written again")
            return "; ".join([head, *self._put_back(fresh, value)])
        except RollbackStopped:
            raise
        except (ServiceError, SwapError) as error:
            return (f"ROLLBACK FAILED ({error}): check {self.swap.name} of {self.swap.obs.app.site} by hand; the "
                    f"previous token (fingerprint {previous.fingerprint}) is saved in the previous-token secret"
                    + self._unrestored_note())

    def repair(self) -> str:
        """The candidate stays (the previous token is dead): restore only the other settings from the
        snapshot, while the token setting still holds what the rotation wrote. Says what it did, never raises."""
        ref = self.swap.obs.reference
        if self.swap.expected is None or self.swap.before is None or (ref is not None and not ref.versioned):
            return ""
        try:
            fresh = self.swap.settings_now()
            if fresh.get(self.swap.name) != self.swap.expected:
                return f"; the other settings were not restored: {self.swap.name} changed meanwhile"
            return "".join(f"; {part}" for part in self._put_back(fresh, self.swap.expected))
        except SwapError as error:
            return f"; the other settings could not be restored ({error})" + self._unrestored_note()

    def _guard(self, now: str | None, previous: Token) -> None:
        """Compare-and-swap: the setting holds what the rotation wrote (or already the previous token)."""
        wrote = self.swap.expected if self.swap.expected is not None else self.swap.original
        if now == wrote or (now is not None and self._shows(now, previous)):
            return
        raise RollbackStopped(f"{self.swap.name} was changed by someone else after the write (it now holds "
                              f"{_describe(now)}): left as it is, nothing put back")

    def _shows(self, value: str, previous: Token) -> bool:
        """Whether the setting's `value` already gives Aggregator the previous token."""
        if self.swap.obs.reference is None:
            return bool(value.strip()) and not references.is_reference(value) and Token(value) == previous
        return value == self.swap.original and self.swap.obs.current == previous

    def _restore_value(self, previous: Token) -> str:
        ref = self.swap.obs.reference
        if ref is None:
            return previous.reveal()
        if self.swap.obs.current == previous:  # the observed reference pointed at the previous token
            return self.swap.original
        return ref.as_setting(self.swap.store_in_reference(previous))  # after a crash: point at it again

    def _put_back(self, fresh: dict, value: str) -> list[str]:
        """One read-merge-replace of the token setting with `value` and of the snapshot's other settings that
        differ now (missing or changed); settings added since the snapshot are kept. Then re-read and say
        what was restored and what was not (setting names, never values)."""
        snapshot = self.swap.before or {}
        own = (self.swap.name, self.swap.type_name)
        changed = {k: v for k, v in snapshot.items() if k not in own and fresh.get(k) != v}
        added = sorted(k for k in fresh if k not in snapshot and k not in own) \
            if self.swap.before is not None else []
        self._pending = sorted(changed)
        if fresh.get(self.swap.name) != value or changed:
            try:
                self.swap.ports.apps.replace_settings(self.swap.obs.app, {**fresh, **changed, self.swap.name: value,
                                                                self.swap.type_name: "PAT"})
            except ServiceError as error:
                raise SwapError(f"writing the app settings failed: {error}") from None
        after = self.swap.settings_now()
        if after.get(self.swap.name) != value:
            raise SwapError(f"the settings re-read afterwards do not show the token in {self.swap.name}")
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
        if self.swap.before is None:
            parts.append("the other settings were left as they are (this run does not know their values "
                         "before the write)")
        return parts

    def _unrestored_note(self) -> str:
        return "; " + _names("not restored: {n} setting{s}", self._pending) if self._pending else ""


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
    return f"a token with fingerprint {fingerprint(value)}" if value else "an empty value"


def _names(text: str, shown: list[str]) -> str:
    """`text` with the count filled in, then the setting names (outside text: escaped where shown)."""
    listed = ", ".join(shown[:10]) + (f" and {len(shown) - 10} more" if len(shown) > 10 else "")
    return text.format(n=len(shown), s="" if len(shown) == 1 else "s") + ": " + listed


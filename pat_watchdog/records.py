"""One run's view of the watchdog's records (core/record.py): read once for every instance, changed in
memory as the run learns, and written per instance only when something changed (and only by `run`)."""

from __future__ import annotations

import logging
import threading

from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.record import Record

log = logging.getLogger(__name__)


class RecordBook:
    """`keys`: the instances of a run that names few sites (a fan-out execution names one): their rows are
    read one by one; otherwise every row in one query."""

    POINT_READS = 20

    def __init__(self, store, keys: tuple[str, ...] | None = None):
        self._store = store
        self._keys = keys if keys is not None and len(keys) <= self.POINT_READS else None
        self._forms: dict[str, set[str]] | None = None
        self._lock = threading.Lock()
        self._stored: dict[str, Record] | None = None
        self._now: dict[str, Record] = {}
        self.readable = True      # False: the table could not be read; nothing verified earlier is known

    def _load(self) -> dict[str, Record]:
        with self._lock:
            if self._stored is None:
                try:
                    if self._keys is not None:
                        found = {key: self._store.memory(key) for key in self._keys}
                        self._stored = {key: record for key, record in found.items() if record is not None}
                    else:
                        self._stored = dict(self._store.memories())
                except ServiceError as error:     # not a verdict: this run verifies again what it needs
                    log.warning("the watchdog's record is unreadable: %s", error)
                    self._stored, self.readable = {}, False
            return self._stored

    def stored(self, key: str) -> Record | None:
        """What earlier runs recorded (None: nothing yet), whatever this run learned since."""
        return self._load().get(key)

    def get(self, key: str) -> Record:
        """The record as this run knows it now."""
        stored = self._load()
        with self._lock:
            return self._now.get(key) or stored.get(key) or Record()

    def put(self, key: str, record: Record) -> None:
        """In memory only; `write` stores it."""
        with self._lock:
            self._now[key] = record

    def update(self, key: str, change) -> Record:
        """`change` applied to the record as this run knows it now (in memory; `write` stores it): every
        writer goes through here, so no step works on a stale copy of another's."""
        current = self.get(key)
        with self._lock:
            updated = change(self._now.get(key) or current)
            self._now[key] = updated
        return updated

    def holding(self, digest: str) -> set[str]:
        """Instances whose token setting held this token (by digest) when this or an earlier run saw it.
        Raises ServiceError when that cannot be known (the caller then revokes nothing)."""
        stored = self._load()
        with self._lock:
            now = {**stored, **self._now}
        seen = {key for key, record in now.items() if record.current == digest}
        if self._keys is None:
            return seen
        return seen | set(self._store.holding(digest))

    def holders(self, form: str) -> set[str]:
        """Instances whose token setting earlier runs recorded as this Key Vault reference (`form`)."""
        if form == "plain":
            return set()
        if self._keys is None:
            stored = self._load()
            with self._lock:
                if self._forms is None:
                    self._forms = {}
                    for key, record in stored.items():
                        self._forms.setdefault(record.form, set()).add(key)
                return set(self._forms.get(form, ()))
        try:
            return set(self._store.with_form(form))
        except ServiceError as error:      # not a verdict: the run-wide check still holds within this run
            log.warning("which instances use %s is unknown: %s", form, error)
            return set()

    def write(self, key: str) -> bool:
        """Store the record when it differs from what was read; raises ServiceError. True when written."""
        stored = self._load()
        with self._lock:
            record = self._now.get(key)
        if record is None or record == stored.get(key):
            return False
        self._store.remember(key, record)
        with self._lock:
            stored[key] = record
        return True

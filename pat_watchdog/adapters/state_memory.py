"""The watchdog's record of each instance (core/record.py) in its state table: rows `memory` / instance key.

Only the watchdog's identity writes this table, so what is here is what it verified itself; tags in
Key Vault are a person's claims. All rows are read in one query per run. A write is conditional on the
row's ETag: when another run wrote the row meanwhile, both records are merged (nothing verified is lost).
"""

from __future__ import annotations

import threading

from pat_watchdog.adapters import table_rows as rows
from pat_watchdog.core import record as rec
from pat_watchdog.core.errors import ServiceError

_MEMORY = "memory"


class TableMemories:
    """Mixed into TableLedger: one row per instance."""

    def memories(self) -> dict[str, rec.Record]:
        found = self._read("reading the watchdog's record", lambda: list(self._table.query_entities(
            "PartitionKey eq @p", parameters={"p": _MEMORY}))) or []
        etags = getattr(self, "_etags", None)
        if etags is None:
            etags = self._etags = {}
        out = {}
        for row in found:
            out[row["instance"]] = rec.from_row(row.get("fingerprint"), row.get("form"), row.get("record"))
            etags[row["instance"]] = row.metadata.get("etag") if hasattr(row, "metadata") else None
        return out

    def memory(self, key: str) -> rec.Record | None:
        """One instance's record (a point read: a fan-out execution watches one instance)."""
        row = self._read("reading the watchdog's record", lambda: self._get(key))
        if row is None:
            return None
        if getattr(self, "_etags", None) is None:
            self._etags = {}
        self._etags[key] = row.metadata.get("etag")
        return rec.from_row(row.get("fingerprint"), row.get("form"), row.get("record"))

    def holding(self, digest: str) -> list[str]:
        """The instances whose token setting held this token when last seen (one query)."""
        found = self._read("reading the watchdog's record", lambda: list(self._table.query_entities(
            "PartitionKey eq @p and current eq @d", parameters={"p": _MEMORY, "d": digest}, select=["instance"]))) or []
        return [row["instance"] for row in found]

    def with_form(self, form: str) -> list[str]:
        """The instances whose recorded token setting has this form (one query)."""
        found = self._read("reading the watchdog's record", lambda: list(self._table.query_entities(
            "PartitionKey eq @p and form eq @f", parameters={"p": _MEMORY, "f": form[:1000]},
            select=["instance"]))) or []
        return [row["instance"] for row in found]

    def _get(self, key: str):
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self._table.get_entity(_MEMORY, rows.safe_key(key))
        except ResourceNotFoundError:
            return None

    def remember(self, key: str, record: rec.Record) -> None:
        """Write the record; a row another run changed since it was read is merged with this one first."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
        from azure.data.tables import UpdateMode

        etags = getattr(self, "_etags", None)
        if etags is None:
            etags = self._etags = {}
        for _attempt in range(3):
            entity = self._row(key, record)
            etag = etags.get(key)
            try:
                if etag:
                    meta = self._call("writing the watchdog's record", self._table.update_entity, entity,
                                      mode=UpdateMode.REPLACE, etag=etag,
                                      match_condition=MatchConditions.IfNotModified, create=True)
                else:
                    meta = self._call("writing the watchdog's record", self._table.create_entity, entity,
                                      create=True)
                etags[key] = (meta or {}).get("etag")
                return
            except ServiceError as error:
                if error.status not in (409, 412):
                    raise
            except (ResourceExistsError, ResourceModifiedError):
                pass
            stored = self._read("reading the watchdog's record", lambda: self._get(key))
            if stored is None:
                etags.pop(key, None)
                continue
            etags[key] = stored.metadata.get("etag")
            record = rec.merge(record, rec.from_row(stored.get("fingerprint"), stored.get("form"),
                                                    stored.get("record")))
        raise ServiceError("Table storage", f"the record of {key} changed three times while it was written")

    @staticmethod
    def _row(key: str, record: rec.Record) -> dict:
        """The row within Azure Table's limits: when the record would not fit, its oldest version digests are
        left out first, never what was created or put in place."""
        for _ in range(8):
            row = {"PartitionKey": _MEMORY, "RowKey": rows.safe_key(key), "instance": key,
                   "fingerprint": record.fingerprint or "", "form": (record.form or "")[:1000],
                   "current": record.current or "",
                   "record": rec.to_json(record)}
            if not rows.problems(row) or not record.versions:
                break
            record = rec.trimmed(record)
        return rows.fitting("the watchdog's record", row)


class InMemoryMemories:
    """Mixed into MemoryLedger (no storage configured: no record across runs, only within one)."""

    _memories: dict[str, rec.Record]
    _memory_lock = threading.Lock()

    def memories(self) -> dict[str, rec.Record]:
        with self._memory_lock:
            return dict(getattr(self, "_memories", {}))

    def memory(self, key: str) -> rec.Record | None:
        return self.memories().get(key)

    def with_form(self, form: str) -> list[str]:
        return [key for key, record in self.memories().items() if record.form == form]

    def holding(self, digest: str) -> list[str]:
        return [key for key, record in self.memories().items() if record.current == digest]

    def remember(self, key: str, record: rec.Record) -> None:
        with self._memory_lock:
            if not hasattr(self, "_memories"):
                self._memories = {}
            self._memories[key] = record

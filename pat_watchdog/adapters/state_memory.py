"""What `run` remembers of each instance's token setting between runs (DESIGN 3.8): its fingerprint
and form, so that a change the watchdog did not make is told once. Rows `memory` / instance key."""

from __future__ import annotations

import threading

from pat_watchdog.adapters import table_rows as rows

_MEMORY = "memory"


class TableMemories:
    """Mixed into TableLedger: one row per instance; all of them read in one query per run."""

    def memories(self) -> dict[str, dict]:
        found = self._read("reading what the last run saw", lambda: list(self._table.query_entities(
            "PartitionKey eq @p", parameters={"p": _MEMORY}))) or []
        return {row["instance"]: {"fingerprint": row.get("fingerprint"), "form": row.get("form")} for row in found}

    def remember(self, key: str, memory: dict) -> None:
        row = rows.fitting("the token memory", {"PartitionKey": _MEMORY, "RowKey": rows.safe_key(key),
                                                "instance": key, "fingerprint": memory.get("fingerprint") or "",
                                                "form": (memory.get("form") or "")[:1000]})
        self._call("writing what this run saw", self._table.upsert_entity, row, create=True)


class InMemoryMemories:
    """Mixed into MemoryLedger (no storage configured: no memory across runs, only within one)."""

    _memories: dict[str, dict]
    _memory_lock = threading.Lock()

    def memories(self) -> dict[str, dict]:
        with self._memory_lock:
            return dict(getattr(self, "_memories", {}))

    def remember(self, key: str, memory: dict) -> None:
        with self._memory_lock:
            if not hasattr(self, "_memories"):
                self._memories = {}
            self._memories[key] = dict(memory)

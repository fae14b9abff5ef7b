"""The state table (Azure Table storage; Azurite in tests): alert ledger, run history, rotation locks.

Like Alertmanager's notification log: one row per instance, condition and channel, written
only after a send succeeded; the dedup rule itself is pure (core/dedup.py).
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta

from pat_watchdog.adapters.retry import RetryPolicy
from pat_watchdog.adapters.sdk_errors import service_error
from pat_watchdog.core.dedup import Entry
from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.settings import StorageTarget
from pat_watchdog.core.times import parse_utc

log = logging.getLogger(__name__)
_ALERTS, _RUNS, _LOCKS = "alert", "run", "lock"
_CHUNK = 30_000  # characters per property: Table string properties hold 64 KiB of UTF-16


class MemoryLedger:
    """The same interface in memory: the demo, and runs with no storage configured."""

    shared = False      # its rotation lock is seen by this process only

    def __init__(self):
        self._entries: dict[tuple, Entry] = {}
        self._runs: list[dict] = []
        self._locks: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def active(self) -> dict[tuple, Entry]:
        with self._lock:
            return {k: e for k, e in self._entries.items() if e.active}

    def record(self, entry: Entry) -> None:
        with self._lock:
            self._entries[entry.key] = entry

    def add_run(self, report: dict) -> None:
        self._runs.append(report)

    def acquire(self, key: str, owner: str, now: datetime, lease: timedelta) -> bool:
        with self._lock:
            holder = self._locks.get(key)
            if holder and holder[0] != owner and holder[1] > now:
                return False
            self._locks[key] = (owner, now + lease)
            return True

    def release(self, key: str, owner: str) -> None:
        with self._lock:
            if self._locks.get(key, (None,))[0] == owner:
                del self._locks[key]

    def last_run(self) -> dict | None:
        return self._runs[-1] if self._runs else None


def _row_key(entry_key: tuple[str, str, str]) -> str:
    # RowKey may not contain / \ # ? (Table service data model).
    return "~".join(part.replace("/", "_").replace("#", "_").replace("?", "_").replace("\\", "_")
                    for part in entry_key)


def _run_key(moment: datetime) -> str:
    """Newest first: the Table service sorts by RowKey, so invert the time."""
    return f"{10**13 - int(moment.timestamp() * 1000):013d}"


class TableLedger:
    """Rows in `WATCHDOG_STATE_TABLE` of the `AzureWebJobsStorage` account."""

    shared = True       # every run of every machine sees the same lock row

    def __init__(self, storage: StorageTarget, table: str, credential, retry: RetryPolicy):
        from azure.data.tables import TableServiceClient

        kwargs = retry.sdk_kwargs()
        if storage.connection_string:
            service = TableServiceClient.from_connection_string(storage.connection_string, **kwargs)
        else:
            service = TableServiceClient(storage.table_endpoint, credential=credential, **kwargs)
        self._table = service.get_table_client(table)
        self._ready = False

    def _call(self, what: str, fn, *args, create: bool = False, **kwargs):
        """Call the Table service; writes create the table first (reads never do: `status` writes nothing)."""
        from azure.core.exceptions import AzureError, ResourceExistsError

        try:
            if create and not self._ready:
                try:
                    self._table.create_table()
                except ResourceExistsError:
                    pass
                self._ready = True
            return fn(*args, **kwargs)
        except AzureError as error:
            raise service_error("Table storage", error, what) from None

    def _read(self, what: str, fn):
        """A read; a table that does not exist yet reads as empty."""
        try:
            return self._call(what, fn)
        except ServiceError as error:
            if error.status == 404:
                return None
            raise

    def active(self) -> dict[tuple, Entry]:
        rows = self._read("reading the ledger", lambda: list(self._table.query_entities(
            "PartitionKey eq @p and active eq true", parameters={"p": _ALERTS}))) or []
        entries = [Entry(r["instance"], r["condition"], r["channel"], r["level"], r.get("stage") or None,
                         r["sent_at"], r.get("message", ""), True) for r in rows]
        return {e.key: e for e in entries}

    def record(self, entry: Entry) -> None:
        row = {"PartitionKey": _ALERTS, "RowKey": _row_key(entry.key), "instance": entry.instance,
               "condition": entry.condition, "channel": entry.channel, "level": entry.level,
               "stage": entry.stage or "", "sent_at": entry.sent_at, "message": entry.message[:1000],
               "active": entry.active}
        self._call("writing the ledger", self._table.upsert_entity, row, create=True)

    def add_run(self, report: dict) -> None:
        text = json.dumps(report, separators=(",", ":"))
        chunks = {f"report_{i}": text[o:o + _CHUNK] for i, o in enumerate(range(0, len(text), _CHUNK))}
        moment = parse_utc(report["generated_at"])
        row = {"PartitionKey": _RUNS, "RowKey": _run_key(moment), "generated_at": moment,
               "status": report["status"], "outcome": report.get("outcome", ""), "chunks": len(chunks), **chunks}
        self._call("writing the run history", self._table.upsert_entity, row, create=True)

    def last_run(self) -> dict | None:
        rows = self._read("reading the run history", lambda: list(next(iter(self._table.query_entities(
            "PartitionKey eq @p", parameters={"p": _RUNS}, results_per_page=1).by_page()), [])))
        for row in rows or []:
            return json.loads("".join(row[f"report_{i}"] for i in range(row["chunks"])))
        return None


    def acquire(self, key: str, owner: str, now: datetime, lease: timedelta) -> bool:
        """An ETag-guarded lock row: created if absent, taken over only when its lease ran out."""
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError, ResourceExistsError
        from azure.data.tables import UpdateMode

        row = {"PartitionKey": _LOCKS, "RowKey": _row_key((key,)), "owner": owner, "expires": now + lease}
        try:
            self._call("taking the rotation lock", self._table.create_entity, row, create=True)
            return True
        except ServiceError as error:
            if error.status != 409:
                raise
        held = self._call("reading the rotation lock", self._table.get_entity, _LOCKS, row["RowKey"])
        if held["owner"] != owner and held["expires"] > now:
            return False
        try:
            self._table.update_entity(row, mode=UpdateMode.REPLACE, etag=held.metadata["etag"],
                                      match_condition=MatchConditions.IfNotModified)
        except (HttpResponseError, ResourceExistsError):
            return False  # another run took the expired lease first
        return True

    def release(self, key: str, owner: str) -> None:
        from azure.core import MatchConditions

        try:
            held = self._call("reading the rotation lock", self._table.get_entity, _LOCKS, _row_key((key,)))
            if held["owner"] == owner:
                self._call("releasing the rotation lock", self._table.delete_entity, _LOCKS, _row_key((key,)),
                           etag=held.metadata["etag"], match_condition=MatchConditions.IfNotModified)
        except ServiceError as error:
            log.warning("rotation lock not released (its lease runs out): %s", error)


def open_ledger(settings, credential, retry: RetryPolicy):
    """The Table ledger when storage is configured; else an in-memory one (no dedup across runs)."""
    if settings.storage is None or not (settings.storage.connection_string or settings.storage.table_endpoint):
        log.info("AzureWebJobsStorage is not set: alerts are not deduplicated across runs")
        return MemoryLedger()
    return TableLedger(settings.storage, settings.state_table, credential, retry)

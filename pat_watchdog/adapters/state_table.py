"""The state table (Azure Table storage; Azurite in tests): alert ledger, run history, rotation locks.

Like Alertmanager's notification log: one row per instance, condition and channel, written
only after a send succeeded; the dedup rule itself is pure (core/dedup.py). Every row keeps Azure
Table's limits (table_rows.py): a run is a header row plus part rows, and a lock's lease runs on
the Table service's clock, never on the caller's.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from itertools import islice
from typing import Literal

from pat_watchdog.adapters import table_rows as rows
from pat_watchdog.adapters.state_memory import InMemoryMemories, TableMemories
from pat_watchdog.adapters.retry import RetryPolicy
from pat_watchdog.adapters.sdk_errors import service_error
from pat_watchdog.core.dedup import Entry
from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.settings import StorageTarget
from pat_watchdog.core.times import format_utc, parse_utc

log = logging.getLogger(__name__)
_ALERTS, _LOCKS = "alert", "lock"
KEEP_RUNS = 30          # runs kept in the history; older ones are deleted after each write
RUN_HEADER = ("generated_at", "command", "status", "outcome")   # what a run's header row says of it
MESSAGE_CHARS = 1000    # an alert row keeps the start of its message: enough to recognise it
# The service's time comes from the Date header of its answer, in whole seconds (truncated): a lease
# counts as run out only once that time is past it, and as still held only with more than this left.
_CLOCK_STEP = timedelta(seconds=1)


@dataclass
class _Held:
    owner: str
    taken: float
    lease: float
    generation: int


class MemoryLedger(InMemoryMemories):
    """The same interface in memory: the demo, and runs with no storage configured.

    Lock leases run on `clock` (seconds; monotonic unless injected), as a Table lock's run on the service's.
    """

    shared = False      # its rotation lock is seen by this process only

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._entries: dict[tuple, Entry] = {}
        self._runs: list[str] = []
        self._locks: dict[str, _Held] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def active(self) -> dict[tuple, Entry]:
        with self._lock:
            return {k: e for k, e in self._entries.items() if e.active}

    def record(self, entry: Entry) -> None:
        with self._lock:
            self._entries[entry.key] = entry

    def add_run(self, report: dict) -> None:
        """Kept as JSON, as the table keeps it: a later change to the caller's dict does not show."""
        with self._lock:
            self._runs = (self._runs + [json.dumps(report)])[-KEEP_RUNS:]

    def last_run(self) -> dict | None:
        with self._lock:
            return json.loads(self._runs[-1]) if self._runs else None

    def recent_runs(self, count: int = KEEP_RUNS) -> list[dict]:
        with self._lock:
            kept = self._runs[-count:] if count > 0 else []
        return [{k: run.get(k) for k in RUN_HEADER} for run in map(json.loads, reversed(kept))]

    def acquire(self, key: str, owner: str, now: datetime, lease: timedelta) -> str | Literal[False]:
        """A fencing token, or False while another owner's lease runs; `now` (the caller's clock) is not used."""
        with self._lock:
            at, held = self._clock(), self._locks.get(key)
            if held and held.owner != owner and at < held.taken + held.lease:
                return False
            self._generation += 1
            self._locks[key] = _Held(owner, at, lease.total_seconds(), self._generation)
            return str(self._generation)

    def holds(self, key: str, owner: str, fence: str) -> bool:
        """Whether the lock is still `owner`'s as taken with `fence`, with lease left."""
        with self._lock:
            held = self._locks.get(key)
            return held is not None and (held.owner, str(held.generation)) == (owner, fence) and \
                self._clock() < held.taken + held.lease

    def release(self, key: str, owner: str) -> None:
        with self._lock:
            held = self._locks.get(key)
            if held and held.owner == owner:
                del self._locks[key]


class TableLedger(TableMemories):
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

    def close(self) -> None:
        """Close the table client's connections."""
        self._table.close()

    @classmethod
    def on(cls, table_client) -> TableLedger:
        """A ledger on a given TableClient (the tests pass one that checks every write against the limits)."""
        ledger = cls.__new__(cls)
        ledger._table, ledger._ready = table_client, False
        return ledger

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
        found = self._read("reading the ledger", lambda: list(self._table.query_entities(
            "PartitionKey eq @p and active eq true", parameters={"p": _ALERTS}))) or []
        entries = [Entry(r["instance"], r["condition"], r["channel"], r["level"], r.get("stage") or None,
                         r["sent_at"], r.get("message", ""), True) for r in found]
        return {e.key: e for e in entries}

    def record(self, entry: Entry) -> None:
        row = {"PartitionKey": _ALERTS, "RowKey": rows.safe_key("~".join(entry.key)), "instance": entry.instance,
               "condition": entry.condition, "channel": entry.channel, "level": entry.level,
               "stage": entry.stage or "", "sent_at": entry.sent_at, "message": entry.message[:MESSAGE_CHARS],
               "active": entry.active}
        self._call("writing the ledger", self._table.upsert_entity, rows.fitting("writing the ledger", row),
                   create=True)

    def add_run(self, report: dict) -> None:
        """The part rows in entity group transactions, the header last: a reader sees a run whole or not at all."""
        from azure.data.tables import UpdateMode

        what = "writing the run history"
        key = rows.run_key(parse_utc(report["generated_at"]), time.time_ns())
        header, parts = rows.run_rows(report, key)
        for batch in rows.batches(parts):
            self._call(what, self._table.submit_transaction,
                       [("upsert", rows.fitting(what, row), {"mode": UpdateMode.REPLACE}) for row in batch],
                       create=True)
        self._call(what, self._table.upsert_entity, rows.fitting(what, header), mode=UpdateMode.REPLACE, create=True)
        self._prune()

    def last_run(self) -> dict | None:
        """The newest whole run (a header whose parts are not all there, being pruned, is passed over)."""
        for header in self._headers():
            report = self._run(header)
            if report is not None:
                return report
            log.warning("run history: run %s is not whole; reading the one before", header["RowKey"])
        return None

    def recent_runs(self, count: int = KEEP_RUNS) -> list[dict]:
        """The newest `count` runs' {generated_at, command, status, outcome}, newest first: one page of one
        query on the header rows, four properties each (the status page's row of squares)."""
        if count <= 0:
            return []
        found = self._read("reading the run history", lambda: list(islice(self._table.query_entities(
            "PartitionKey eq @p", parameters={"p": rows.RUNS}, select=list(RUN_HEADER),
            results_per_page=min(count, 1000)), count))) or []
        return [{"generated_at": format_utc(r["generated_at"]) if isinstance(r.get("generated_at"), datetime)
                 else r.get("generated_at"), "command": r.get("command"), "status": r.get("status"),
                 "outcome": r.get("outcome") or None} for r in found]

    def _run(self, header) -> dict | None:
        what = "reading the run history"
        if header.get("chunks") is not None:     # a run written whole into one row, before the split
            return rows.assemble(self._call(what, self._table.get_entity, rows.RUNS, header["RowKey"]), [])
        parts = self._call(what, lambda: list(self._table.query_entities(
            "PartitionKey eq @p", parameters={"p": rows.parts_partition(header["RowKey"])})))
        return rows.assemble(header, parts)

    def _headers(self) -> list:
        """The run headers, newest first (their keys and part counts only: a row of the old layout is large)."""
        return self._read("reading the run history", lambda: list(self._table.query_entities(
            "PartitionKey eq @p", parameters={"p": rows.RUNS},
            select=["RowKey", "parts", "length", "sha256", "chunks"]))) or []

    def _prune(self) -> None:
        """Keep the newest KEEP_RUNS runs: headers first, so no reader finds a header without its parts."""
        what = "pruning the run history"
        try:
            keys = [h["RowKey"] for h in self._headers()]
            if len(keys) <= KEEP_RUNS:
                return
            self._delete(what, [{"PartitionKey": rows.RUNS, "RowKey": k} for k in keys[KEEP_RUNS:]])
            # Every part partition older than the oldest run kept: pruned runs and any a dead run left.
            stale = self._call(what, lambda: list(self._table.query_entities(
                "PartitionKey gt @low and PartitionKey lt @high", select=["PartitionKey", "RowKey"],
                parameters={"low": rows.parts_partition(keys[KEEP_RUNS - 1]), "high": rows.RUNS + "~~"})))
            self._delete(what, [{"PartitionKey": r["PartitionKey"], "RowKey": r["RowKey"]} for r in stale])
        except ServiceError as error:
            log.warning("run history not pruned (the next run tries again): %s", error)

    def _delete(self, what: str, keys: list[dict]) -> None:
        for group in rows.by_partition(keys):
            self._call(what, self._table.submit_transaction, [("delete", key) for key in group])

    def acquire(self, key: str, owner: str, now: datetime, lease: timedelta) -> str | Literal[False]:
        """Take the lock: create its row, or replace it (ETag-guarded) when it is this owner's or its lease ran out.

        The lease is judged on the Table service's clock: the row's Timestamp plus its lease, against
        the Date of the service's answer; `now` (the caller's clock) is not used. Returns the row's
        ETag, the fencing token `holds` checks, or False while another owner's lease runs.
        """
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        what = "taking the rotation lock"
        row = rows.fitting(what, {"PartitionKey": _LOCKS, "RowKey": rows.safe_key(key), "owner": owner,
                                   "lease_seconds": lease.total_seconds(), "generation": 1})
        try:
            return self._call(what, self._table.create_entity, row, create=True)["etag"]
        except ServiceError as error:
            if error.status != 409:
                raise
        held, service_now = self._lock_row(row["RowKey"])
        if held is None or (held["owner"] != owner and (service_now is None or service_now < rows.lease_end(held))):
            return False    # held by another owner (or let go this instant: the next run takes it)
        row["generation"] = int(held.get("generation") or 0) + 1
        try:
            return self._call(what, self._table.update_entity, row, mode=UpdateMode.REPLACE,
                              etag=held.metadata["etag"], match_condition=MatchConditions.IfNotModified)["etag"]
        except ServiceError as error:
            if error.status in (404, 412):
                return False    # another run took the expired lease first
            raise

    def holds(self, key: str, owner: str, fence: str) -> bool:
        """Whether the lock is still `owner`'s as taken (same ETag) with lease left on the service's clock.

        False when that cannot be confirmed: a run that lost its lock, or cannot tell, must not write.
        """
        try:
            held, service_now = self._lock_row(rows.safe_key(key))
        except ServiceError as error:
            log.warning("rotation lock could not be checked, taken as lost: %s", error)
            return False
        return held is not None and held["owner"] == owner and held.metadata["etag"] == fence and \
            service_now is not None and service_now + _CLOCK_STEP < rows.lease_end(held)

    def release(self, key: str, owner: str) -> None:
        from azure.core import MatchConditions

        try:
            held, _ = self._lock_row(rows.safe_key(key))
            if held is not None and held["owner"] == owner:
                self._call("releasing the rotation lock", self._table.delete_entity, _LOCKS, rows.safe_key(key),
                           etag=held.metadata["etag"], match_condition=MatchConditions.IfNotModified)
        except ServiceError as error:
            log.warning("rotation lock not released (its lease runs out): %s", error)

    def _lock_row(self, row_key: str) -> tuple[dict | None, datetime | None]:
        """The lock row (None when there is none) and the service's time of its answer (its Date header)."""
        seen: dict[str, str] = {}
        try:
            held = self._call("reading the rotation lock", self._table.get_entity, _LOCKS, row_key,
                              raw_response_hook=lambda r: seen.update(date=r.http_response.headers.get("Date")))
        except ServiceError as error:
            if error.status == 404:
                return None, None
            raise
        return held, parsedate_to_datetime(seen["date"]) if seen.get("date") else None


def open_ledger(settings, credential, retry: RetryPolicy):
    """The Table ledger when storage is configured; else an in-memory one (no dedup across runs)."""
    if settings.storage is None or not (settings.storage.connection_string or settings.storage.table_endpoint):
        log.info("AzureWebJobsStorage is not set: alerts are not deduplicated across runs")
        return MemoryLedger()
    return TableLedger(settings.storage, settings.state_table, credential, retry)

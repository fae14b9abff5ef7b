"""The state table against Azurite, held to Azure's limits: the run history in parts, old runs pruned, the lock."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from azure.core.exceptions import HttpResponseError

from pat_watchdog.adapters import table_rows as rows
from pat_watchdog.adapters.retry import RetryPolicy
from pat_watchdog.adapters.state_table import KEEP_RUNS, MESSAGE_CHARS, MemoryLedger, TableLedger
from pat_watchdog.core.dedup import Entry
from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.settings import StorageTarget
from tests.azurite import ENTITY_LIMIT, LimitedTable, assert_rows_within_limits, expire_locks, table_client
from tests.reports import synthetic

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)
LEASE = timedelta(minutes=10)
KEY = "rotation~team0001aggregator"


@pytest.fixture
def table(storage):
    """The test's table behind the limit check, and a ledger on it."""
    limited = LimitedTable(table_client(storage["AzureWebJobsStorage"], storage["WATCHDOG_STATE_TABLE"]))
    return limited, TableLedger.on(limited)


def fresh_ledger(storage) -> TableLedger:
    """Another process's ledger on the same table, opened as the product opens it."""
    return TableLedger(StorageTarget(connection_string=storage["AzureWebJobsStorage"]),
                       storage["WATCHDOG_STATE_TABLE"], None, RetryPolicy(attempts=2, total=10))


def test_the_run_history_of_5000_instances_fits_azure_table_and_reads_back_equal(table, storage):
    limited, ledger = table
    report = synthetic(5000, NOW)
    # one row per run, as before, would be several MiB: Azure refuses it, Azurite does not
    assert 2 * len(json.dumps(report, separators=(",", ":"))) > 10 * ENTITY_LIMIT
    ledger.add_run(report)
    assert limited.transactions >= 2 and 0 < limited.largest_entity <= ENTITY_LIMIT
    assert assert_rows_within_limits(table_client(storage["AzureWebJobsStorage"],
                                                  storage["WATCHDOG_STATE_TABLE"])) <= ENTITY_LIMIT
    assert ledger.last_run() == report
    assert fresh_ledger(storage).last_run() == report


def test_the_limit_check_refuses_an_entity_azurite_accepts(table, storage):
    limited, _ = table
    too_big = {"PartitionKey": "p", "RowKey": "r", **{f"d{i:02d}": "a" * 32_000 for i in range(18)}}
    with pytest.raises(AssertionError, match="breaks Azure Table limits"):
        limited.upsert_entity(too_big)
    raw = table_client(storage["AzureWebJobsStorage"], storage["WATCHDOG_STATE_TABLE"])
    raw.create_table()
    raw.upsert_entity(too_big)      # Azurite takes 1.1 MiB: only the check above stands for Azure
    with pytest.raises(AssertionError, match="entity"):
        assert_rows_within_limits(raw)


class HeaderFails(LimitedTable):
    """The run's parts get written, then the process dies before its header."""

    def upsert_entity(self, entity, **kwargs):
        if entity["PartitionKey"] == rows.RUNS:
            raise HttpResponseError("connection lost")
        return super().upsert_entity(entity, **kwargs)


def test_a_reader_never_sees_half_a_run(storage):
    client = table_client(storage["AzureWebJobsStorage"], storage["WATCHDOG_STATE_TABLE"])
    first = synthetic(800, NOW)
    TableLedger.on(LimitedTable(client)).add_run(first)
    with pytest.raises(ServiceError, match="writing the run history"):
        TableLedger.on(HeaderFails(client)).add_run(synthetic(900, NOW + timedelta(days=1)))
    assert fresh_ledger(storage).last_run() == first
    third = synthetic(3, NOW + timedelta(days=2))
    TableLedger.on(LimitedTable(client)).add_run(third)
    assert fresh_ledger(storage).last_run() == third


def test_runs_of_one_moment_read_as_the_last_written(table):
    _, ledger = table
    ledger.add_run(synthetic(2, NOW))
    again = synthetic(3, NOW, command="rotate")
    ledger.add_run(again)
    assert ledger.last_run() == again


def test_only_the_newest_runs_are_kept_and_a_dead_runs_parts_go_too(table, storage):
    limited, ledger = table
    orphan_header, orphan_parts = rows.run_rows(synthetic(5, NOW - timedelta(days=9)),
                                                rows.run_key(NOW - timedelta(days=9), 1))
    limited.create_table()
    limited.submit_transaction([("upsert", p) for p in orphan_parts])      # no header: its writer died
    for day in range(KEEP_RUNS + 3):
        ledger.add_run(synthetic(1, NOW + timedelta(days=day)))
    raw = table_client(storage["AzureWebJobsStorage"], storage["WATCHDOG_STATE_TABLE"])
    partitions = {e["PartitionKey"] for e in raw.list_entities(select=["PartitionKey"])}
    assert len([p for p in partitions if p.startswith(rows.RUNS + "~")]) == KEEP_RUNS
    assert len(list(raw.query_entities("PartitionKey eq 'run'"))) == KEEP_RUNS
    assert ledger.last_run()["generated_at"] == synthetic(1, NOW + timedelta(days=KEEP_RUNS + 2))["generated_at"]


class CountsQueries(LimitedTable):
    """Records each query's filter and selected properties, and the bytes of every answer."""

    def __init__(self, client):
        super().__init__(client)
        self.queries, self.answered = [], []

    def query_entities(self, query_filter, **kwargs):
        self.queries.append((query_filter, kwargs.get("select")))
        return self._client.query_entities(query_filter, raw_response_hook=lambda r: self.answered.append(
            len(r.http_response.body())), **kwargs)


def test_the_last_runs_headers_read_cheaply_newest_first(storage):
    client = CountsQueries(table_client(storage["AzureWebJobsStorage"], storage["WATCHDOG_STATE_TABLE"]))
    ledger = TableLedger.on(client)
    written = []
    for day in range(KEEP_RUNS + 3):
        run = synthetic(40, NOW + timedelta(days=day))
        run.update(status=("OK", "WARNING", "CRITICAL")[day % 3], outcome="failed" if day % 4 == 0 else "ok")
        ledger.add_run(run)
        written.append(run)
    client.queries.clear(), client.answered.clear()
    found = ledger.recent_runs(KEEP_RUNS)
    assert found == [{"generated_at": r["generated_at"], "command": "run", "status": r["status"],
                      "outcome": r["outcome"]} for r in reversed(written[-KEEP_RUNS:])]
    assert client.queries == [("PartitionKey eq @p", ["generated_at", "command", "status", "outcome"])]
    # One answer of the headers' four properties, not the runs (40 instances each, about 50 KB of JSON).
    assert len(client.answered) == 1 and client.answered[0] < 20_000, client.answered
    assert [r["generated_at"] for r in ledger.recent_runs(3)] == [r["generated_at"] for r in written[:-4:-1]]


def test_the_last_runs_of_an_empty_table_and_in_memory(table):
    _, ledger = table
    assert ledger.recent_runs() == []
    memory = MemoryLedger()
    for day in range(KEEP_RUNS + 2):
        memory.add_run({**synthetic(1, NOW + timedelta(days=day)), "outcome": "ok"})
    found = memory.recent_runs()
    assert len(found) == KEEP_RUNS and found[0] == {"generated_at": "2026-12-29T06:00:00Z", "command": "run",
                                                     "status": "WARNING", "outcome": "ok"}
    assert memory.recent_runs(0) == []


def test_a_run_written_before_the_split_still_reads(table):
    limited, ledger = table
    old = synthetic(3, NOW)
    text = json.dumps(old, separators=(",", ":"))
    limited.create_table()
    limited.upsert_entity({"PartitionKey": "run", "RowKey": f"{10**13 - int(NOW.timestamp() * 1000):013d}",
                           "generated_at": NOW, "status": "WARNING", "outcome": "ok", "chunks": 2,
                           "report_0": text[:500], "report_1": text[500:]})
    assert ledger.last_run() == old
    newer = synthetic(2, NOW + timedelta(hours=1))
    ledger.add_run(newer)
    assert ledger.last_run() == newer


def test_an_alert_row_fits_whatever_the_message(table):
    _, ledger = table
    entry = Entry("x" * 2000 + "aggregator", "EXPIRY", "teams", "WARNING", "14", NOW, "é🚀" * 40_000)
    ledger.record(entry)        # the limit check passes: the key is clipped, the message cut
    (stored,) = ledger.active().values()
    assert stored.instance == entry.instance and stored.message == entry.message[:MESSAGE_CHARS]


# the rotation lock, judged on the service's clock
def test_two_owners_and_a_wrong_clock_cannot_take_a_held_lock(table):
    _, ledger = table
    a = ledger.acquire(KEY, "a", NOW, LEASE)
    assert a and ledger.holds(KEY, "a", a)
    assert ledger.acquire(KEY, "b", NOW, LEASE) is False
    assert ledger.acquire(KEY, "b", NOW + timedelta(days=30), LEASE) is False   # b's clock is a month ahead
    ledger.release(KEY, "b")                                                     # not b's to release
    assert ledger.holds(KEY, "a", a)
    ledger.release(KEY, "a")
    assert not ledger.holds(KEY, "a", a)
    b = ledger.acquire(KEY, "b", NOW, LEASE)
    assert b and b != a and ledger.holds(KEY, "b", b)


def test_the_lock_row_records_the_lease_not_an_expiry(table):
    limited, ledger = table
    assert ledger.acquire(KEY, "a", NOW, LEASE)
    row = limited.get_entity("lock", KEY)
    assert row["owner"] == "a" and row["lease_seconds"] == 600 and row["generation"] == 1 and "expires" not in row


def test_a_lease_runs_out_on_the_services_clock(table):
    _, ledger = table
    a = ledger.acquire(KEY, "a", NOW, timedelta(seconds=0.5))
    assert ledger.acquire(KEY, "b", NOW + timedelta(days=1), LEASE) is False
    time.sleep(1.6)     # the service's Date has whole seconds: 1.6 s puts it past Timestamp + 0.5 s
    assert not ledger.holds(KEY, "a", a)                               # run out, though nobody took it yet
    b = ledger.acquire(KEY, "b", NOW - timedelta(days=1), LEASE)       # b's clock is a day behind: irrelevant
    assert b and ledger.holds(KEY, "b", b)


def test_fencing_tells_a_resumed_run_it_lost_the_lock(table, storage):
    _, ledger = table
    a = ledger.acquire(KEY, "a", NOW, LEASE)
    assert expire_locks(storage["AzureWebJobsStorage"], storage["WATCHDOG_STATE_TABLE"]) == 1   # a is suspended
    b = fresh_ledger(storage).acquire(KEY, "b", NOW, LEASE)
    assert b and b != a
    assert not ledger.holds(KEY, "a", a)          # a resumes: it must not write
    ledger.release(KEY, "a")
    assert ledger.holds(KEY, "b", b)
    assert ledger.acquire(KEY, "a", NOW + timedelta(hours=1), LEASE) is False


def test_a_lock_row_of_the_old_layout_runs_out_on_the_services_clock(table):
    limited, ledger = table
    limited.create_table()
    # written by an older version whose clock said the lease had already ended
    limited.upsert_entity({"PartitionKey": "lock", "RowKey": KEY, "owner": "old", "expires": NOW - timedelta(days=1)})
    assert ledger.acquire(KEY, "b", NOW, LEASE) is False


# -- the watchdog's record ---------------------------------------------------------------------------
APP = "/subscriptions/s/resourcegroups/aggregator-contoso/providers/microsoft.web/sites/contosoaggregator"
D1, D2, D3, D4 = ("1a2b3c4d" * 8, "5e6f7a8b" * 8, "9" * 64, "8" * 64)      # SHA-256 digests, as recorded


def a_record(**changes):
    from pat_watchdog.core.record import CreatedRecord, CreatedState, Record, TokenFacts

    base = Record(fingerprint="1a2b3c4d", form="plain", versions={"v1": D1}, owner="user-1",
                  tokens={D1: TokenFacts("user-1", False, "auth-1", NOW + timedelta(days=90),
                                                 ("vso.work_full",), NOW)},
                  placed=("v1", D1, NOW),
                  created=(CreatedRecord("pat-watchdog contosoaggregator 2026-11-28T0600Z", NOW,
                                         CreatedState.STAGED, "auth-2", D2, "v2",
                                         valid_to=NOW + timedelta(days=90)),), lifespan_cap_days=60)
    from dataclasses import replace
    return replace(base, **changes)


def test_a_record_reads_back_equal_by_query_and_by_point_read_within_the_limits(table, storage):
    from pat_watchdog.records import RecordBook

    limited, ledger = table
    record = a_record()
    ledger.remember(APP, record)
    assert fresh_ledger(storage).memories() == {APP: record}
    assert fresh_ledger(storage).memory(APP) == record and fresh_ledger(storage).memory("nothing") is None
    assert RecordBook(fresh_ledger(storage), (APP,)).get(APP) == record
    assert_rows_within_limits(limited)


def test_two_runs_writing_one_record_lose_nothing_either_verified(table, storage):
    from pat_watchdog.core.record import CreatedRecord

    _, ledger = table
    ledger.remember(APP, a_record())
    first, second = fresh_ledger(storage), fresh_ledger(storage)
    mine, theirs = first.memories()[APP], second.memories()[APP]
    second.remember(APP, theirs.seen_versions({"v3": D3}).with_created(CreatedRecord("pat-watchdog x", NOW)))
    first.remember(APP, mine.seen_versions({"v4": D4}))     # written on a stale ETag: merged, not lost
    stored = fresh_ledger(storage).memory(APP)
    assert {"v1", "v3", "v4"} <= set(stored.versions)
    assert {p.display_name for p in stored.created} >= {"pat-watchdog x", "pat-watchdog contosoaggregator 2026-11-28T0600Z"}


def test_a_row_that_does_not_parse_counts_as_nothing_verified(table, storage):
    limited, ledger = table
    ledger.remember(APP, a_record())
    row = limited.get_entity("memory", rows.safe_key(APP))
    row["record"] = "{not json"
    limited.upsert_entity(row)
    stored = fresh_ledger(storage).memory(APP)
    assert stored.versions == {} and stored.created == () and stored.fingerprint == "1a2b3c4d"

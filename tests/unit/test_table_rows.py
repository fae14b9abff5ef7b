"""Azure Table's limits, kept by construction: the size formula, keys, the run history in parts; the in-memory lock."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from pat_watchdog.adapters import table_rows as rows
from pat_watchdog.adapters.state_table import KEEP_RUNS, MemoryLedger
from tests.azurite import entity_bytes
from tests.reports import synthetic

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)
LEASE = timedelta(minutes=15)


# the size formula: 4 + 2 x len(PartitionKey + RowKey) + per property 8 + 2 x len(name) + value
SIZES = {
    # name: (value, bytes the property counts: 8 + 2 x len(name) + the value's size)
    "Address": ("Mountain View", 8 + 14 + 4 + 26),   # string: 4 + 2 per UTF-16 code unit
    "Age": (23, 8 + 6 + 4),                          # a Python int is sent as Int32
    "Big": (2**40, 8 + 6 + 8),                        # Int64
    "AmountDue": (200.23, 8 + 18 + 8),                # Double
    "CustomerSince": (NOW, 8 + 26 + 8),               # DateTime
    "IsActive": (True, 8 + 16 + 1),                   # Boolean
    "Blob": (b"\x00" * 10, 8 + 8 + 4 + 10),           # Binary: 4 + its bytes
    "Name": ("Zoë 😀", 8 + 8 + 4 + 12),               # 😀 is two UTF-16 code units
}


def test_entity_size_follows_azures_formula_for_every_property_type():
    entity = {"PartitionKey": "run", "RowKey": "0001", **{name: v for name, (v, _) in SIZES.items()}}
    expected = 4 + 2 * len("run0001") + sum(size for _, size in SIZES.values())
    assert expected == 273
    assert rows.entity_size(entity) == expected
    assert entity_bytes(entity) == expected      # the tests' own formula, written separately, agrees


@pytest.mark.parametrize("name", list(SIZES))
def test_each_property_type_counts_as_documented(name):
    value, size = SIZES[name]
    bare = rows.entity_size({"PartitionKey": "", "RowKey": ""})
    assert bare == 4
    assert rows.entity_size({"PartitionKey": "", "RowKey": "", name: value}) - bare == size


def test_a_null_property_is_not_stored_and_costs_nothing():
    assert rows.entity_size({"PartitionKey": "p", "RowKey": "r", "gone": None}) == 4 + 4


@pytest.mark.parametrize("value,fits", [
    ("a" * 32_768, True),          # 65,536 bytes in UTF-16: exactly 64 KiB
    ("a" * 32_769, False),
    ("é" * 32_768, True),          # one UTF-16 unit each, though two bytes in UTF-8
    ("😀" * 16_385, False),        # two units each: 65,540 bytes
])
def test_a_string_property_is_limited_to_64_kib_of_utf16(value, fits):
    assert (rows.problems({"PartitionKey": "p", "RowKey": "r", "s": value}) == []) is fits


def test_an_entity_over_1_mib_is_a_problem_even_when_every_property_fits():
    entity = {"PartitionKey": "p", "RowKey": "r", **{f"d{i:02d}": "a" * 32_000 for i in range(17)}}
    assert all(rows.value_size(v) - 4 <= rows.PROPERTY_LIMIT for k, v in entity.items() if k.startswith("d"))
    assert rows.entity_size(entity) > rows.ENTITY_LIMIT
    assert any(p.startswith("entity is") for p in rows.problems(entity))
    with pytest.raises(Exception, match="exceeds Azure Table's limits"):
        rows.fitting("writing", entity)


# keys
def test_keys_replace_forbidden_characters_as_before():
    assert rows.safe_key("team1aggregator~EXPIRY~teams") == "team1aggregator~EXPIRY~teams"
    assert rows.safe_key("a/b\\c#d?e\x01f\x7fg") == "a_b_c_d_e_f_g"


def test_a_long_key_is_clipped_within_1_kib_and_stays_distinct():
    one, two = rows.safe_key("x" * 5000 + "1"), rows.safe_key("x" * 5000 + "2")
    assert one != two and rows.utf16(one) <= rows.KEY_LIMIT and rows.utf16(two) <= rows.KEY_LIMIT


def test_clip_never_splits_a_surrogate_pair():
    assert rows.clip("ab😀", 5) == "ab" and rows.clip("ab😀", 8) == "ab😀"


# the run history in parts
def test_a_run_of_5000_instances_splits_into_rows_that_fit_and_reassembles_exactly():
    report = synthetic(5000, NOW)
    header, parts = rows.run_rows(report, rows.run_key(NOW, 1))
    assert header["parts"] == len(parts) > 1
    for entity in [header, *parts]:
        assert rows.problems(entity) == [] and entity_bytes(entity) == rows.entity_size(entity)
        assert rows.entity_size(entity) <= rows.ROW_BUDGET
    assert {p["PartitionKey"] for p in parts} == {rows.parts_partition(header["RowKey"])}
    groups = list(rows.batches(parts))
    assert sum(len(g) for g in groups) == len(parts)
    assert all(len(g) <= 100 and sum(rows.entity_size(e) for e in g) <= rows.BATCH_BUDGET for g in groups)
    assert rows.assemble(header, reversed(parts)) == report


def test_a_run_with_a_part_missing_or_changed_is_not_whole():
    header, parts = rows.run_rows(synthetic(300, NOW), rows.run_key(NOW, 1))
    assert rows.assemble(header, parts[:-1]) is None
    changed = dict(parts[0], d00="x" + parts[0]["d00"][1:])
    assert rows.assemble(header, [changed, *parts[1:]]) is None


def test_a_run_written_whole_into_one_row_before_the_split_still_reads():
    text = json.dumps(synthetic(3, NOW), separators=(",", ":"))
    legacy = {"PartitionKey": "run", "RowKey": "x", "chunks": 2, "report_0": text[:100], "report_1": text[100:]}
    assert rows.assemble(legacy, []) == json.loads(text)


def test_run_keys_sort_newest_first_then_last_written_first():
    later, earlier = rows.run_key(NOW + timedelta(seconds=1), 5), rows.run_key(NOW, 9)
    assert later < earlier
    assert rows.run_key(NOW, 9) < rows.run_key(NOW, 5)


# the in-memory ledger: the same lock semantics on an injected clock
class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_memory_lock_two_owners_and_expiry_on_its_own_clock():
    clock = Clock()
    ledger = MemoryLedger(clock=clock)
    a = ledger.acquire("rotation~x", "a", NOW, LEASE)
    assert a and ledger.holds("rotation~x", "a", a)
    assert ledger.acquire("rotation~x", "b", NOW, LEASE) is False
    # a caller whose clock is a day ahead does not steal the lease
    assert ledger.acquire("rotation~x", "b", NOW + timedelta(days=1), LEASE) is False
    clock.t += LEASE.total_seconds()
    assert not ledger.holds("rotation~x", "a", a)       # run out, though nobody took it yet
    b = ledger.acquire("rotation~x", "b", NOW - timedelta(days=1), LEASE)
    assert b and b != a and ledger.holds("rotation~x", "b", b)
    ledger.release("rotation~x", "a")                    # not a's any more: stays b's
    assert ledger.holds("rotation~x", "b", b)
    ledger.release("rotation~x", "b")
    assert not ledger.holds("rotation~x", "b", b) and ledger.acquire("rotation~x", "c", NOW, LEASE)


def test_memory_lock_fence_changes_when_retaken():
    ledger = MemoryLedger(clock=Clock())
    first = ledger.acquire("k", "a", NOW, LEASE)
    again = ledger.acquire("k", "a", NOW, LEASE)
    assert again and again != first
    assert not ledger.holds("k", "a", first) and ledger.holds("k", "a", again)


def test_memory_runs_are_kept_as_written_and_only_the_newest():
    ledger = MemoryLedger()
    report = synthetic(2, NOW)
    ledger.add_run(report)
    written = json.loads(json.dumps(report))
    report["instances"].clear()
    assert ledger.last_run() == written
    for i in range(KEEP_RUNS + 5):
        ledger.add_run({"generated_at": f"2026-11-28T06:00:{i:02d}Z", "n": i})
    assert ledger.last_run()["n"] == KEEP_RUNS + 4

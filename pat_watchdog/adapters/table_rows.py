"""Azure Table's limits and rows that keep them: the entity size formula, safe keys, a run report in parts.

Limits (https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model):
the properties of an entity hold at most 1 MiB, with at most 255 properties (PartitionKey, RowKey and
Timestamp included); a string or binary value at most 64 KiB, strings counted in UTF-16; PartitionKey
and RowKey at most 1 KiB each. An entity group transaction: at most 100 operations, 4 MiB of payload,
one PartitionKey. Azurite enforces the 64 KiB property limit but accepts a 1.2 MiB entity, so the
entity limit is kept here, by the formula, and checked again by the tests.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta

from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.times import parse_utc

ENTITY_LIMIT = 1 << 20
PROPERTY_LIMIT = 64 << 10
KEY_LIMIT = 1 << 10
PROPERTIES_LIMIT = 255 - 3          # besides PartitionKey, RowKey and Timestamp
BATCH_OPERATIONS = 100
BATCH_LIMIT = 4 << 20

# What this module writes stays well inside: room for the formula being an estimate.
ROW_BUDGET = ENTITY_LIMIT - (64 << 10)      # 960 KiB
BATCH_BUDGET = BATCH_LIMIT - (512 << 10)    # 3.5 MiB
PIECE = 32_000                              # characters of ASCII JSON: 64,000 bytes in UTF-16

RUNS = "run"                                 # the partition of run headers, newest first
LEGACY_LEASE = 15 * 60.0                     # seconds: a lock row written before rows stored their lease

# Fixed sizes per the Table service's property types; a string counts 4 bytes plus its UTF-16 bytes.
_EDM_SIZE = {"Edm.Boolean": 1, "Edm.Int32": 4, "Edm.Int64": 8, "Edm.Double": 8, "Edm.DateTime": 8,
             "Edm.Guid": 16}
_FORBIDDEN_IN_KEYS = re.compile("[/\\\\#?\x00-\x1f\x7f-\x9f]")


def utf16(text: str) -> int:
    """Bytes of `text` in UTF-16, as the Table service counts strings (a character outside the BMP is 4)."""
    return len(text.encode("utf-16-le"))


def value_size(value) -> int:
    """Bytes one property value counts for: string 4 + UTF-16 bytes, binary 4 + bytes, else its type's size."""
    edm = getattr(value, "edm_type", None)          # azure-data-tables' EntityProperty (e.g. an Int64 read back)
    if edm is not None:
        edm, value = getattr(edm, "value", edm), value.value
        if edm in _EDM_SIZE:
            return _EDM_SIZE[edm]
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return 4 if -(2**31) <= value < 2**31 else 8   # the SDK sends a Python int as Int32
    if isinstance(value, (float, datetime)):
        return 8
    if isinstance(value, (bytes, bytearray)):
        return 4 + len(value)
    return 4 + utf16(str(value))


def entity_size(entity: Mapping) -> int:
    """The Table service's size of an entity.

    4 + 2 x len(PartitionKey + RowKey) + sum over the other properties of
    (8 + 2 x len(name) + value_size(value)), lengths in UTF-16 code units; a null property is not stored.
    The formula Microsoft published for the 1 MiB limit ("How the size of an entity is calculated in
    Windows Azure table storage", learn.microsoft.com/archive/blogs/avkashchauhan); the per-type
    sizes follow the data model's property types (module docstring).
    """
    size = 4 + utf16(str(entity.get("PartitionKey", ""))) + utf16(str(entity.get("RowKey", "")))
    for name, value in entity.items():
        if name not in ("PartitionKey", "RowKey") and value is not None:
            size += 8 + utf16(name) + value_size(value)
    return size


def problems(entity: Mapping) -> list[str]:
    """Every Azure Table limit `entity` breaks (empty when it fits)."""
    found = [f"{key} is {utf16(str(entity.get(key, '')))} bytes (limit {KEY_LIMIT})"
             for key in ("PartitionKey", "RowKey") if utf16(str(entity.get(key, ""))) > KEY_LIMIT]
    found += [f"property {name} is {value_size(value) - 4} bytes (limit {PROPERTY_LIMIT})"
              for name, value in entity.items()
              if isinstance(value, (str, bytes, bytearray)) and value_size(value) - 4 > PROPERTY_LIMIT]
    if len(entity) - 2 > PROPERTIES_LIMIT:
        found.append(f"{len(entity) - 2} properties (limit {PROPERTIES_LIMIT})")
    if entity_size(entity) > ENTITY_LIMIT:
        found.append(f"entity is {entity_size(entity)} bytes (limit {ENTITY_LIMIT})")
    return found


def fitting(what: str, row: dict) -> dict:
    """The row, or a ServiceError naming the limits it breaks (before Azure refuses it, or Azurite accepts it)."""
    found = problems(row)
    if found:
        raise ServiceError("Table storage", f"{what}: the row exceeds Azure Table's limits: {'; '.join(found)}")
    return row


def clip(text: str, limit: int) -> str:
    """The longest prefix of `text` of at most `limit` UTF-16 bytes (a surrogate pair is never split)."""
    if utf16(text) <= limit:
        return text
    return text.encode("utf-16-le")[:limit - limit % 2].decode("utf-16-le", errors="ignore")


def safe_key(text: str, limit: int = KEY_LIMIT // 2) -> str:
    """A PartitionKey/RowKey: / \\ # ? and control characters replaced; a long one clipped plus its hash."""
    key = _FORBIDDEN_IN_KEYS.sub("_", text)
    if utf16(key) <= limit:
        return key
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    return clip(key, limit - 2 * (len(digest) + 1)) + "~" + digest


def run_key(moment: datetime, written_ns: int) -> str:
    """Newest first (the Table service sorts by RowKey); runs of one moment by when they were written."""
    return f"{10**13 - int(moment.timestamp() * 1000):013d}-{10**19 - written_ns:019d}"


def parts_partition(header_key: str) -> str:
    return f"{RUNS}~{header_key}"


def run_rows(report: dict, header_key: str) -> tuple[dict, list[dict]]:
    """The header row and the part rows of one run: the report's JSON in 64,000-byte pieces, packed by size."""
    text = json.dumps(report, separators=(",", ":"))   # ensure_ascii: one UTF-16 unit per character
    partition, rows, row = parts_partition(header_key), [], None
    for offset in range(0, len(text), PIECE):
        piece = text[offset:offset + PIECE]
        if row is None or entity_size(row) + 8 + utf16(f"d{row['pieces']:02d}") + value_size(piece) > ROW_BUDGET:
            row = {"PartitionKey": partition, "RowKey": f"{len(rows):05d}", "pieces": 0}
            rows.append(row)
        row[f"d{row['pieces']:02d}"] = piece
        row["pieces"] += 1
    header = {"PartitionKey": RUNS, "RowKey": header_key, "generated_at": parse_utc(report["generated_at"]),
              "command": str(report.get("command", "")), "status": str(report.get("status", "")),
              "outcome": str(report.get("outcome", "")), "instances": len(report.get("instances", [])),
              "parts": len(rows), "length": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}
    return header, rows


def assemble(header: Mapping, rows: Iterable[Mapping]) -> dict | None:
    """The report a header and its part rows hold, or None when they are not whole."""
    if header.get("chunks") is not None:   # a run written whole into one row, before the split
        return json.loads("".join(header[f"report_{i}"] for i in range(header["chunks"])))
    rows = sorted(rows, key=lambda r: r["RowKey"])
    if len(rows) != header["parts"]:
        return None
    text = "".join(row[f"d{j:02d}"] for row in rows for j in range(row["pieces"]))
    if len(text) != header["length"] or hashlib.sha256(text.encode()).hexdigest() != header["sha256"]:
        return None
    return json.loads(text)


def batches(rows: Iterable[dict]) -> Iterator[list[dict]]:
    """Consecutive rows in groups of at most 100 whose sizes add up to at most 3.5 MiB.

    The formula bounds the payload: the rows hold ASCII JSON, each character counts 2 bytes in the
    formula and takes at most 2 on the wire (`"` and `\\` are escaped), and 512 KiB are left for
    the operations' headers.
    """
    group: list[dict] = []
    total = 0
    for row in rows:
        size = entity_size(row)
        if group and (len(group) == BATCH_OPERATIONS or total + size > BATCH_BUDGET):
            yield group
            group, total = [], 0
        group.append(row)
        total += size
    if group:
        yield group


def by_partition(keys: Iterable[dict]) -> Iterator[list[dict]]:
    """Rows grouped for transactions: one PartitionKey and at most 100 operations each."""
    groups: dict[str, list[dict]] = {}
    for key in keys:
        groups.setdefault(key["PartitionKey"], []).append(key)
    for group in groups.values():
        yield from (group[i:i + BATCH_OPERATIONS] for i in range(0, len(group), BATCH_OPERATIONS))


def lease_end(held) -> datetime:
    """When a lock row's lease runs out: the service's Timestamp of its last write plus its lease."""
    lease = held.get("lease_seconds")
    return held.metadata["timestamp"] + timedelta(seconds=LEGACY_LEASE if lease is None else float(lease))

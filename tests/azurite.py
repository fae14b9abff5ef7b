"""Azurite (Microsoft's Storage emulator, from npm) for the ledger, run history and queues."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "devstoreaccount1"
# The emulator's well-known development key (documented by Microsoft; not a secret).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("Azurite did not start listening in time")


class Azurite:
    """Table, Queue and Blob services on free loopback ports, in memory."""

    def __init__(self):
        binary = ROOT / "node_modules" / ".bin" / "azurite"
        if not binary.exists():
            raise RuntimeError("Azurite is not installed: run ./dev test (it runs `npm ci`)")
        self.ports = {name: _free_port() for name in ("blob", "queue", "table")}
        self._workdir = tempfile.mkdtemp(prefix="azurite-")
        self._process = subprocess.Popen(
            [str(binary), "--silent", "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck",
             "--blobHost", "127.0.0.1", "--blobPort", str(self.ports["blob"]),
             "--queueHost", "127.0.0.1", "--queuePort", str(self.ports["queue"]),
             "--tableHost", "127.0.0.1", "--tablePort", str(self.ports["table"])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self._workdir)
        for port in self.ports.values():
            _wait(port, self._process)
        self._probe()

    def _probe(self, timeout: float = 20.0) -> None:
        """A listening port is not a ready service: wait until a table round trip works."""
        from azure.core.exceptions import AzureError
        from azure.data.tables import TableServiceClient

        service = TableServiceClient.from_connection_string(self.connection_string)
        deadline = time.monotonic() + timeout
        while True:
            try:
                service.create_table_if_not_exists("probe")
                service.delete_table("probe")
                return
            except AzureError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @property
    def connection_string(self) -> str:
        base = "http://127.0.0.1:{}/" + ACCOUNT
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                f"BlobEndpoint={base.format(self.ports['blob'])};"
                f"QueueEndpoint={base.format(self.ports['queue'])};"
                f"TableEndpoint={base.format(self.ports['table'])};")

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
        shutil.rmtree(self._workdir, ignore_errors=True)


# Azure Table's limits (Understanding the Table service data model; Performing entity group transactions).
# Azurite enforces the property limit only, so the tests enforce the rest on every write.
ENTITY_LIMIT, PROPERTY_LIMIT, KEY_LIMIT = 1 << 20, 64 << 10, 1 << 10
BATCH_OPERATIONS, BATCH_LIMIT = 100, 4 << 20
_FIXED = {"Edm.Boolean": 1, "Edm.Int32": 4, "Edm.Int64": 8, "Edm.Double": 8, "Edm.DateTime": 8, "Edm.Guid": 16}


def _value_bytes(value) -> int:
    """A property value as Azure counts it; written independently of the product's formula on purpose."""
    from datetime import datetime

    edm = getattr(value, "edm_type", None)
    if edm is not None and getattr(edm, "value", edm) in _FIXED:
        return _FIXED[getattr(edm, "value", edm)]
    value = getattr(value, "value", value)
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return 4 if -(2**31) <= value < 2**31 else 8
    if isinstance(value, (float, datetime)):
        return 8
    if isinstance(value, (bytes, bytearray)):
        return 4 + len(value)
    return 4 + len(str(value).encode("utf-16-le"))


def entity_bytes(entity) -> int:
    """4 + 2 x len(PartitionKey + RowKey) + per property (8 + 2 x len(name) + its value), in UTF-16."""
    keys = str(entity["PartitionKey"]) + str(entity["RowKey"])
    return 4 + len(keys.encode("utf-16-le")) + sum(
        8 + len(name.encode("utf-16-le")) + _value_bytes(value)
        for name, value in entity.items() if name not in ("PartitionKey", "RowKey") and value is not None)


def limit_problems(entity) -> list[str]:
    found = [f"{k} over 1 KiB" for k in ("PartitionKey", "RowKey")
             if len(str(entity[k]).encode("utf-16-le")) > KEY_LIMIT]
    found += [f"property {name}: {_value_bytes(v) - 4} bytes" for name, v in entity.items()
              if isinstance(getattr(v, "value", v), (str, bytes)) and _value_bytes(v) - 4 > PROPERTY_LIMIT]
    if entity_bytes(entity) > ENTITY_LIMIT:
        found.append(f"entity: {entity_bytes(entity)} bytes")
    return found


class LimitedTable:
    """A TableClient that fails the test on any write Azure Table would refuse, Azurite or not.

    Every entity written (alone or in a transaction) is sized; a transaction is held to 100
    operations, one PartitionKey and 4 MiB of request body as sent. Records the largest of each.
    """

    def __init__(self, client):
        self._client = client
        self.largest_entity = 0
        self.largest_batch = 0
        self.transactions = 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def _check(self, entity) -> None:
        problems = limit_problems(entity)
        assert not problems, f"{entity['PartitionKey']}/{entity['RowKey']} breaks Azure Table limits: {problems}"
        self.largest_entity = max(self.largest_entity, entity_bytes(entity))

    def create_entity(self, entity, **kwargs):
        self._check(entity)
        return self._client.create_entity(entity, **kwargs)

    def upsert_entity(self, entity, **kwargs):
        self._check(entity)
        return self._client.upsert_entity(entity, **kwargs)

    def update_entity(self, entity, **kwargs):
        self._check(entity)
        return self._client.update_entity(entity, **kwargs)

    def submit_transaction(self, operations, **kwargs):
        operations = list(operations)
        assert len(operations) <= BATCH_OPERATIONS, f"a transaction of {len(operations)} operations"
        assert len({op[1]["PartitionKey"] for op in operations}) == 1, "a transaction across partitions"
        for op in operations:
            if op[0] != "delete":
                self._check(op[1])
        sent: list[int] = []
        result = self._client.submit_transaction(
            operations, raw_request_hook=lambda r: sent.append(len(r.http_request.body or b"")), **kwargs)
        assert sent and max(sent) <= BATCH_LIMIT, f"a transaction of {max(sent or [0])} bytes"
        self.largest_batch = max([self.largest_batch, *sent])
        self.transactions += 1
        return result


def table_client(connection_string: str, table: str):
    from azure.data.tables import TableClient

    return TableClient.from_connection_string(connection_string, table)


def assert_rows_within_limits(client) -> int:
    """Every row as stored fits Azure Table's limits; returns the largest entity's size in bytes."""
    largest = 0
    for entity in client.list_entities():
        problems = limit_problems(entity)
        assert not problems, f"{entity['PartitionKey']}/{entity['RowKey']} breaks Azure Table limits: {problems}"
        largest = max(largest, entity_bytes(entity))
    return largest


def expire_locks(connection_string: str, table: str) -> int:
    """Let every rotation lock's lease run out now, as if taken long ago by a dead run.

    The service sets a row's Timestamp, so the row's lease is made negative instead: Timestamp plus
    lease lies an hour in the past on the service's clock. Returns how many locks were expired.
    """
    from azure.data.tables import UpdateMode

    client = table_client(connection_string, table)
    rows = list(client.query_entities("PartitionKey eq 'lock'"))
    for row in rows:
        client.update_entity({"PartitionKey": "lock", "RowKey": row["RowKey"], "lease_seconds": -3600.0},
                             mode=UpdateMode.MERGE)
    return len(rows)

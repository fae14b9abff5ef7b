"""The doctor's round trip through the state table: read one page, write one `doctor` row, delete it.

The row lives in its own partition (`doctor`), which the ledger never reads; a table that does not
exist yet is created, as the first run would.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pat_watchdog.adapters.retry import RetryPolicy
from pat_watchdog.adapters.sdk_errors import service_error
from pat_watchdog.core.settings import StorageTarget

PARTITION = "doctor"


def probe_table(storage: StorageTarget, table: str, credential, retry: RetryPolicy, now: datetime) -> str:
    """What the round trip did; raises ServiceError naming the step that failed (its HTTP status kept)."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError
    from azure.data.tables import TableClient

    if storage.connection_string:
        client = TableClient.from_connection_string(storage.connection_string, table, **retry.sdk_kwargs())
    else:
        client = TableClient(storage.table_endpoint, table, credential=credential, **retry.sdk_kwargs())
    step, done = f"reading {table}", "read a page"
    try:
        try:
            next(iter(client.list_entities(results_per_page=1).by_page()), None)
        except ResourceNotFoundError:
            step = f"creating {table}"
            client.create_table()
            done = "created the table (it did not exist yet)"
        row_key = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        step = f"writing a {PARTITION} row to {table}"
        client.create_entity({"PartitionKey": PARTITION, "RowKey": row_key, "checked_at": now})
        step = f"deleting the {PARTITION} row from {table}"
        client.delete_entity(PARTITION, row_key)
    except AzureError as error:
        raise service_error("Table storage", error, step) from None
    finally:
        client.close()
    return f"{done}, wrote a {PARTITION} row and deleted it"

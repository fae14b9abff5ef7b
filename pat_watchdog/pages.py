"""The status page of a report as a file (`pat-watchdog status --html FILE`, the demo), with the last runs
of the state table when there is one; core/status_page.py builds the page (docs/reference.md, "The status
page")."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from pat_watchdog.core import status_page
from pat_watchdog.core.errors import ServiceError

log = logging.getLogger(__name__)


def history(settings, credential=None, retry=None) -> list[dict] | None:
    """The last runs' headers from the state table: [] without one (nothing is recorded), None when it
    could not be read (the page says so). Reads only: `status` writes nothing anywhere."""
    from pat_watchdog.adapters.retry import RetryPolicy
    from pat_watchdog.adapters.state_table import TableLedger

    storage = settings.storage
    if storage is None or not (storage.connection_string or storage.table_endpoint):
        return []
    if credential is None and not storage.connection_string:
        from pat_watchdog.bootstrap import default_credential
        credential = default_credential()
    ledger = TableLedger(storage, settings.state_table, credential, retry or RetryPolicy(attempts=2, total=10))
    try:
        return ledger.recent_runs()
    except ServiceError as error:
        log.warning("status page without the last runs: %s", error)
        return None
    finally:
        ledger.close()


def write(path: str | Path, report: dict, settings, now: datetime, runs: list[dict] | None) -> Path:
    """The page of `report` in the file `path` (UTF-8), replaced whole."""
    target = Path(path)
    target.write_text(status_page.page_for(report, runs, settings, now), encoding="utf-8")
    return target

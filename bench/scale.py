"""The 5,000-instance figures (DESIGN 3.7): `status` once against the sandbox, then its report as run history.

`status` runs in a child process with 50 ms of latency per request, the instances discovered in
their subscription (5,000 site IDs would not fit in one environment variable). Its report is then
written to the state table in Azurite as a run would write it, each row checked against Azure
Table's limits, and read back.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

from pat_watchdog.sandbox import Sandbox
from pat_watchdog.sandbox.seed import SUBSCRIPTION, World

CONCURRENCY = 8
REQUESTS = 3        # what a healthy instance should cost (DESIGN 3.7)


def status_once(world: World, count: int, *profile: str, storage: dict | None = None, tty: dict | None = None
                ) -> tuple[float, float, int, dict, float]:
    """`status --json` in a child: (wall seconds, peak RSS MiB, exit code, the report, its CPU seconds)."""
    from bench.__main__ import ROOT, child_stderr

    env = {**os.environ, **world.env(WATCHDOG_STAGED_SECRET="{name}-pat-staged",
                                     WATCHDOG_PREVIOUS_SECRET="{name}-pat-previous",
                                     WATCHDOG_AGGREGATOR_APP=f"/subscriptions/{SUBSCRIPTION}",
                                     WATCHDOG_CONCURRENCY=str(CONCURRENCY), **(storage or {}))}
    with tempfile.TemporaryFile() as out, child_stderr(tty or {"on": False}) as stderr:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, *profile, "-m", "pat_watchdog", "status", "--json"],
                                   cwd=ROOT, env=env, stdout=out, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        report = json.load(out)
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), report, usage.ru_utime + usage.ru_stime


def _cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def history_write(report: dict) -> dict | None:
    """Write the report as run history to Azurite behind the limit check; None without Azurite."""
    from pat_watchdog.adapters.state_table import TableLedger
    from tests.azurite import Azurite, LimitedTable, assert_rows_within_limits, entity_bytes, table_client

    try:
        azurite = Azurite()
    except RuntimeError as error:
        print(f"  run history: skipped ({error})")
        return None
    try:
        client = LimitedTable(table_client(azurite.connection_string, "benchhistory"))
        ledger = TableLedger.on(client)
        started = time.perf_counter()
        ledger.add_run(report)
        written = time.perf_counter() - started
        started = time.perf_counter()
        equal = ledger.last_run() == report
        read = time.perf_counter() - started
        stored = list(client.list_entities())
        text = json.dumps(report, separators=(",", ":"))
        return {"largest": assert_rows_within_limits(client), "rows": len(stored), "equal": equal,
                "transactions": client.transactions, "largest_batch": client.largest_batch,
                "write": written, "read": read,
                "one_row": entity_bytes({"PartitionKey": "run", "RowKey": "0" * 13, "report": text})}
    finally:
        azurite.stop()


def main(count: int, latency: float, *profile: str, tty: dict | None = None) -> None:
    from bench.__main__ import seed, service_requests, start_azurite, storage_env

    azurite = start_azurite()
    storage = storage_env(azurite)
    with Sandbox(clock=lambda: datetime.now(timezone.utc)) as sandbox:
        os.environ.update(sandbox.env())
        world = World(sandbox)
        started = time.perf_counter()
        seed(world, count, storage)
        print(f"\n{count} instances (seeded in {time.perf_counter() - started:.0f} s), `status` once, "
              f"{latency * 1000:.0f} ms per request, concurrency {CONCURRENCY}:")
        sandbox.latency = latency
        sandbox.reset_requests()
        own = resource.getrusage(resource.RUSAGE_SELF)
        wall, rss, code, report, cpu = status_once(world, count, *profile, storage=storage, tty=tty)
        sandbox_cpu = _cpu(resource.getrusage(resource.RUSAGE_SELF)) - _cpu(own)
        per = service_requests(sandbox) / count
    if azurite:
        azurite.stop()
    floor = count * REQUESTS * latency / CONCURRENCY
    print(f"  exit {code}, {len(report['instances'])} instances, statuses "
          f"{sorted({i['status'] for i in report['instances']})}")
    print(f"  wall {wall:.2f} s; latency floor {floor:.2f} s ({count} x {REQUESTS} x {latency:g} / {CONCURRENCY}): "
          f"{wall / floor:.2f}x (target <= 1.25x, {1.25 * floor:.0f} s)")
    print(f"  requests per instance {per:.3f} (target {REQUESTS}); floor at that rate "
          f"{count * per * latency / CONCURRENCY:.2f} s")
    print(f"  peak RSS {rss:.0f} MiB (target < 150 MB)")
    print(f"  CPU: the run {cpu:.1f} s, the sandbox serving it {sandbox_cpu:.1f} s "
          f"({os.cpu_count()} cores, {os.getloadavg()[0]:.1f} load at the end)")
    history = history_write(report)
    if history:
        print(f"  run history: {history['rows']} rows in {history['transactions']} transactions "
              f"(largest request body {history['largest_batch']:,} bytes), written in {history['write']:.2f} s, "
              f"read back {'equal' if history['equal'] else 'DIFFERENT'} in {history['read']:.2f} s")
        print(f"  largest entity {history['largest']:,} bytes (limit 1,048,576); "
              f"as one row it would be {history['one_row']:,} bytes")

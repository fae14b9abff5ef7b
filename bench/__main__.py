"""Benchmarks (figures, not tests): `./dev bench [--sizes 1,20,100,500] [--latency 0.05]`.

Prints the cold import time of `function_app`, the requests a healthy instance costs, and the
wall time and peak memory of `pat-watchdog status` for several instance counts against the
sandbox with latency injected per request, with a plain serial loop as the baseline; then one
run of `--large` (5,000) instances and its report written as run history (bench/scale.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pat_watchdog.sandbox import Sandbox  # noqa: E402
from pat_watchdog.sandbox.seed import SUBSCRIPTION, World  # noqa: E402


def import_time(runs: int = 7) -> float:
    """Median cumulative import time of function_app in fresh interpreters (-X importtime)."""
    samples = []
    for _ in range(runs):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import function_app"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stderr
        line = next(ln for ln in err.splitlines() if ln.rstrip().endswith("| function_app"))
        samples.append(int(re.split(r"\s*\|\s*", line)[1]) / 1e6)
    return statistics.median(samples)


TABLE = "benchrecords"


def seed(world: World, count: int, storage: dict | None = None) -> None:
    """Healthy instances, each token staged as `current`; with `storage`, the watchdog's record of each (what
    an earlier `run` verified: the staged version's fingerprint, the listing's sure match) in that table."""
    from datetime import timedelta

    from pat_watchdog.core.record import Record, TokenFacts
    from pat_watchdog.core.secret import Token

    def digest(value: str) -> str:
        return Token(value).digest
    from pat_watchdog.sandbox.seed import FULL_SCOPES, USER_ID

    records = {}
    # The figures read the instances' host names from the subscription's listing, which needs the role
    # at the subscription (docs/reference.md, "Discovery across a subscription"); with the site roles
    # alone ARM refuses the listing and every site is read on its own.
    world.sandbox.arm.assign_aggregator_role(f"/subscriptions/{SUBSCRIPTION}")
    for i in range(count):
        name = f"team{i:03d}aggregator"
        token, auth = world.issue(200)
        app = world.add_instance(name, token)
        version = world.stage(token, days=200, secret=f"{name}-pat-staged",
                              tags={"watchdog-status": "current", "authorizationId": auth})
        expires = world.now + timedelta(days=200)
        token_digest = digest(token)
        records[app.lower()] = Record(fingerprint=token_digest[:8], form="plain", versions={version: token_digest},
                                      owner=USER_ID, tokens={token_digest: TokenFacts(
                                          USER_ID, False, auth, expires, tuple(FULL_SCOPES.split()), world.now,
                                          "tag", False, expires)})
    if storage:
        write_records(storage["AzureWebJobsStorage"], records)


def write_records(connection_string: str, records: dict) -> None:
    """The records as a run writes them (rows `memory`), in transactions of 100."""
    from pat_watchdog.adapters.state_memory import TableMemories
    from tests.azurite import table_client

    client = table_client(connection_string, TABLE)
    client.create_table()
    rows = [TableMemories._row(key, record) for key, record in records.items()]
    for start in range(0, len(rows), 100):
        client.submit_transaction([("upsert", row) for row in rows[start:start + 100]])


def storage_env(azurite) -> dict:
    return {"AzureWebJobsStorage": azurite.connection_string, "WATCHDOG_STATE_TABLE": TABLE} if azurite else {}


def start_azurite():
    from tests.azurite import Azurite

    try:
        return Azurite()
    except RuntimeError as error:
        print(f"  (no Azurite: {error}; without the record every staged value is read: 4 requests)")
        return None


# --tty: the children's stderr is a terminal; the bytes drawn on it. bench/scale.py is handed it: under
# `python -m bench` this module is `__main__`, and an import of bench.__main__ would be another copy.
TTY = {"on": False, "drawn": 0}


@contextmanager
def child_stderr(tty: dict = TTY):
    """The child's stderr: /dev/null, or with --tty a pseudo-terminal (the progress line is drawn, as at a
    person's terminal), drained here and counted in tty["drawn"]."""
    if not tty["on"]:
        yield subprocess.DEVNULL
        return
    master, slave = os.openpty()

    def drain():
        while True:
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:       # EIO once every writer closed the terminal
                break
            if not chunk:
                break
            tty["drawn"] += len(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        yield slave
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)


def run_child(world: World, command: list[str], **env: str) -> tuple[float, float, int, float]:
    """Run the CLI in a child process: (wall seconds, peak RSS MiB, exit code, its CPU seconds)."""
    child_env = {**os.environ, **world.env(WATCHDOG_STAGED_SECRET="{name}-pat-staged",
                                           WATCHDOG_PREVIOUS_SECRET="{name}-pat-previous", **env)}
    with child_stderr() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "pat_watchdog", *command], cwd=ROOT, env=child_env,
                                   stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime


def service_requests(sandbox: Sandbox) -> int:
    """Requests to the services themselves: not the identity endpoint, not Key Vault's challenge."""
    return sum(1 for r in sandbox.requests if r.host != "127.0.0.1" and not (".vault." in r.host and r.status == 401))


def measure(count: int, latency: float, repeat: int, serial: bool = True) -> dict:
    azurite = start_azurite()
    with Sandbox(clock=lambda: datetime.now(timezone.utc)) as sandbox:
        os.environ.update(sandbox.env())
        world = World(sandbox)
        storage = storage_env(azurite)
        seed(world, count, storage)
        sandbox.latency = latency
        figures = {"instances": count}
        for label, concurrency, times in (("parallel", "8", repeat), ("serial", "1", 1 if serial else 0)):
            runs = []
            for _ in range(times):
                sandbox.reset_requests()
                wall, rss, code, cpu = run_child(world, ["status"], WATCHDOG_CONCURRENCY=concurrency, **storage)
                assert code == 0, f"status exited {code}"
                runs.append((wall, rss, service_requests(sandbox) / count, cpu))
            figures[label] = sorted(runs)[len(runs) // 2] if runs else (float("nan"),) * 4  # the median run
    if azurite:
        azurite.stop()
    return figures


def healthy_run_requests() -> float:
    """Requests per healthy instance for `run`: the second run, which reads what the first recorded."""
    azurite = start_azurite()
    try:
        with Sandbox(clock=lambda: datetime.now(timezone.utc)) as sandbox:
            os.environ.update(sandbox.env())
            world = World(sandbox)
            seed(world, 5)
            storage = storage_env(azurite)
            run_child(world, ["run"], **storage)
            sandbox.reset_requests()
            run_child(world, ["run"], **storage)
            return service_requests(sandbox) / 5
    finally:
        if azurite:
            azurite.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--sizes", default="1,20,100,500")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=3, help="parallel runs per size (the median is shown)")
    parser.add_argument("--serial", action=argparse.BooleanOptionalAction, default=True,
                        help="also time each size with WATCHDOG_CONCURRENCY=1 (--no-serial: skip)")
    parser.add_argument("--large", type=int, default=5000,
                        help="instances for the one-run scale figures and the run-history write (0: skip)")
    parser.add_argument("--tty", action="store_true",
                        help="give each `status` a terminal as stderr, so it draws its progress line")
    args = parser.parse_args()
    TTY["on"] = args.tty
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")
    print(f"import function_app (median of 7 fresh processes): {import_time() * 1000:.0f} ms")
    print(f"requests per healthy instance, `run`: {healthy_run_requests():.1f}")
    print(f"\n`status` against the sandbox, {args.latency * 1000:.0f} ms latency per request "
          f"(parallel: median of {args.repeat} runs):")
    print(f"{'instances':>9}  {'parallel (8)':>14}  {'CPU':>8}  {'serial':>10}  {'req/inst':>8}  {'floor':>7}  "
          f"{'x floor':>7}  {'peak RSS':>9}")
    for count in (int(n) for n in args.sizes.split(",")):
        f = measure(count, args.latency, args.repeat, args.serial)
        (pw, prss, preq, pcpu), (sw, _, _, _) = f["parallel"], f["serial"]
        floor = count * preq * args.latency / 8
        print(f"{count:>9}  {pw:>12.2f} s  {pcpu:>6.2f} s  {sw:>8.2f} s  {preq:>8.2f}  {floor:>5.2f} s  "
              f"{pw / floor:>6.2f}x  {prss:>6.0f} MiB")
    if args.large:
        from bench import scale

        scale.main(args.large, args.latency, tty=TTY)
    if args.tty:
        print(f"progress drawn on the terminals: {TTY['drawn']} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

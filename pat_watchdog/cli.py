"""The `pat-watchdog` commands: a thin shell over `watchdog.run_once`, `doctor`, `login` and `migrate`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from datetime import datetime, timezone
from typing import Callable, Mapping, Sequence, TextIO

from pat_watchdog import log_setup, progress, watchdog
from pat_watchdog.core import reasons as R
from pat_watchdog.core.errors import ConfigError
from pat_watchdog.core.model import ActionKind, ActionOutcome, Mode, Status
from pat_watchdog.core.report import SCHEMA, render
from pat_watchdog.core.times import format_utc
from pat_watchdog.core.settings import load_settings

CONFIG_EXIT = {"status": 3, "run": 2, "rotate": 2}
# A usage error (an unknown flag, a missing value) exits as a configuration error does: `status`
# with 3, since Nagios reads 2 as CRITICAL (docs/reference.md, "Commands and exit codes"); every
# other command with argparse's own 2, which is their configuration error too.
USAGE_EXIT = {"status": 3}
COMMANDS = ("status", "run", "rotate", "doctor", "migrate-to-reference", "login", "demo")


class UsageError(Exception):
    """A command line argparse cannot parse; str() is what argparse prints before exiting 2."""

    def __init__(self, usage: str, prog: str, message: str):
        super().__init__(f"{usage}{prog}: error: {message}")
        self.message = message


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so the exit code can follow the command (subcommand
    parsers are made of the same class)."""

    def error(self, message: str):
        raise UsageError(self.format_usage(), self.prog, message)


def command_of(argv: Sequence[str]) -> str | None:
    """The command a command line asks for, even one argparse could not parse."""
    return next((word for word in argv if word in COMMANDS), None)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pat-watchdog", description=(
        "Watches the Azure DevOps PAT of Aggregator Function Apps, alerts before it expires, "
        "and rotates it from a replacement staged in Key Vault."))
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="observe and decide; change nothing (Nagios exit codes)")
    status.add_argument("--json", action="store_true", help="print the JSON report")
    status.add_argument("--html", metavar="FILE", help="also write the status page: one self-contained HTML file")
    run = commands.add_parser("run", help="the timer's job: observe, decide, act")
    run.add_argument("--dry-run", action="store_true", help="print the plan, perform none of it")
    run.add_argument("--json", action="store_true", help="print the JSON report")
    run.add_argument("--local-lock", action="store_true",
                     help="rotate without the shared state table's lock (only when no other run can rotate)")
    rotate = commands.add_parser("rotate", help="rotate now to a valid staged replacement")
    rotate.add_argument("--force", action="store_true", help="even outside the rotation window")
    rotate.add_argument("--json", action="store_true", help="print the JSON report")
    rotate.add_argument("--local-lock", action="store_true",
                        help="rotate without the shared state table's lock (only when no other run can rotate)")
    doctor = commands.add_parser("doctor", help="check every permission and setting; print the fix for each gap")
    doctor.add_argument("--json", action="store_true", help="print the checks as one JSON document")
    doctor.add_argument("--send-test", action="store_true", help="send one test card and one test email")
    move = commands.add_parser("migrate-to-reference",
                               help="move a plain-text token setting into Key Vault, by the rotation's safe swap")
    move.add_argument("--secret", default="aggregator-pat", help="the dedicated secret in the staging vault")
    login = commands.add_parser("login", help="auto rotation: the one-time delegated sign-in (device code)")
    login.add_argument("--instance", metavar="NAME", help="the instance (site name) this sign-in is for")
    login.add_argument("--new-user", action="store_true",
                       help="hand the instance(s) to the signed-in user (another user than the token's)")
    commands.add_parser("demo", help="walk through the story against the built-in sandbox")
    return parser


def main(argv: Sequence[str] | None = None, *, env: Mapping[str, str] | None = None,
         now: Callable[[], datetime] | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None, credential=None, retry=None) -> int:
    """Entry point; `env`, `now` and the streams are injectable for tests."""
    argv = list(sys.argv[1:] if argv is None else argv)
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    moment = (now or (lambda: datetime.now(timezone.utc)))()
    try:
        args = _parser().parse_args(argv)
    except UsageError as error:
        command = command_of(argv)
        print(error, file=stderr)
        if command in CONFIG_EXIT and "--json" in argv:
            print(json.dumps(error_report(command, moment, [error.message], usage=True), indent=2), file=stdout)
        return USAGE_EXIT.get(command, 2)
    with log_setup.command_line(stderr, verbose=args.verbose):
        return _command(args, env, moment, stdout, stderr, credential, retry)


def _command(args, env, moment, stdout, stderr, credential, retry) -> int:
    if args.command == "demo":
        from pat_watchdog.demo import run_demo
        return run_demo(stdout)
    if args.command == "doctor":
        from pat_watchdog import doctor
        return doctor.command(env=os.environ if env is None else env, now=moment, as_json=args.json,
                              send_test=args.send_test, stdout=stdout, stderr=stderr, credential=credential,
                              retry=retry)
    if args.command == "migrate-to-reference":
        return _migrate(args, env, moment, stdout, stderr, credential, retry)
    if args.command == "login":
        return _login(args, env, moment, stdout, stderr, credential, retry)
    mode = Mode.DRY_RUN if getattr(args, "dry_run", False) else Mode(args.command)
    tally = progress.on_terminal(stderr, quiet=args.verbose) if args.command in ("status", "run") else None
    try:
        settings = load_settings(os.environ if env is None else env)
        result = watchdog.run_once(settings, mode, moment, credential=credential, retry=retry,
                                   force=getattr(args, "force", False),
                                   local_lock=getattr(args, "local_lock", False), progress=tally)
    except ConfigError as error:
        print(f"pat-watchdog: {error}", file=stderr)
        if args.json:  # scripts read stdout: they get a report that says why there is none
            print(json.dumps(error_report(args.command, moment, error.problems), indent=2), file=stdout)
        return CONFIG_EXIT[args.command]
    finally:
        if tally is not None:
            tally.close()
    if args.json:
        write_json(result.report, stdout)
    else:
        print(render(result.report), file=stdout)
    if getattr(args, "html", None) and not _write_page(args.html, result.report, settings, moment, stderr,
                                                       credential, retry):
        return CONFIG_EXIT[args.command]
    return exit_code(args.command, mode, result)


def _write_page(path: str, report: dict, settings, moment, stderr, credential, retry) -> bool:
    """`status --html FILE`: the status page of this report, with the last runs when there is a state table."""
    from pat_watchdog import pages
    from pat_watchdog.core.errors import WatchdogError

    try:
        written = pages.write(path, report, settings, moment, pages.history(settings, credential, retry))
    except (OSError, WatchdogError) as error:
        print(f"pat-watchdog: the status page could not be written to {path}: {error}", file=stderr)
        return False
    print(f"pat-watchdog: status page written to {written}", file=stderr)
    return True


def write_json(report: dict, stdout: TextIO) -> None:
    """What `print(json.dumps(report, indent=2))` prints, written in pieces: as one string the report
    of 5,000 instances is tens of megabytes, and its pieces as many again, at the run's peak."""
    pieces: list[str] = []
    held = 0
    for piece in json.JSONEncoder(indent=2).iterencode(report):
        pieces.append(piece)
        held += len(piece)
        if held >= 1 << 16:
            stdout.write("".join(pieces))
            pieces, held = [], 0
    stdout.write("".join(pieces) + "\n")


def _migrate(args, env, moment, stdout, stderr, credential, retry) -> int:
    from pat_watchdog.core.errors import WatchdogError
    from pat_watchdog.migrate import migrate

    try:
        lines = migrate(load_settings(os.environ if env is None else env), args.secret, moment,
                        credential=credential, retry=retry)
    except (ConfigError, WatchdogError) as error:
        print(f"pat-watchdog: {error}", file=stderr)
        return 2
    print("\n".join(lines), file=stdout)
    return 1 if any("NOT migrated" in line for line in lines) else 0


def _login(args, env, moment, stdout, stderr, credential, retry) -> int:
    from pat_watchdog.core.errors import WatchdogError
    from pat_watchdog.login import login

    try:
        settings = load_settings(os.environ if env is None else env)
    except ConfigError as error:
        print(f"pat-watchdog: {error}", file=stderr)
        return 2
    try:
        lines = login(settings, args.instance, moment, lambda text: print(text, file=stderr, flush=True),
                      credential=credential, retry=retry, new_user=args.new_user)
    except WatchdogError as error:
        print(f"pat-watchdog: {error}", file=stderr)
        return 1
    print("\n".join(lines), file=stdout)
    return 0


def error_report(command: str, moment: datetime, problems: list[str], *, usage: bool = False) -> dict:
    """The `--json` answer to a configuration or usage error: schema 1, status UNKNOWN, no instance."""
    what = "invalid command line" if usage else "invalid configuration"
    return {"schema": SCHEMA, "generated_at": format_utc(moment), "command": command, "status": "UNKNOWN",
            "instances": [], "errors": [f"{what}: {p}" for p in problems]}


INTERRUPTED = "pat-watchdog: interrupted; the next run finishes or undoes anything left halfway"


def _interrupted(signum, frame) -> None:
    """Ctrl-C: one line and exit 130 at once. Waiting for worker threads stuck in a call would hang
    for their timeout; every rotation step is idempotent, so the next run finishes or undoes it."""
    print(INTERRUPTED, file=sys.stderr, flush=True)
    os._exit(130)


def entry() -> None:
    """The console script: main, with Ctrl-C and a reader that leaves early handled (main sets up logging)."""
    signal.signal(signal.SIGINT, _interrupted)
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `pat-watchdog status | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


def exit_code(command: str, mode: Mode, result: watchdog.RunResult) -> int:
    """docs/reference.md, "Commands and exit codes": Nagios codes for status; action outcomes for run and rotate."""
    if command == "status":
        return Status(result.report["status"]).exit_code
    if mode == Mode.DRY_RUN:
        return 0
    if command == "rotate":
        return rotate_exit_code(result)
    unheard = result.channels == 0 and any(p.status is Status.UNKNOWN for p in result.plans)
    return 1 if result.failed_actions or unheard else 0   # an instance not checked, and nobody told


def rotate_exit_code(result: watchdog.RunResult) -> int:
    """0 rotated; 1 failed, rolled back or not checkable; 3 nothing valid to rotate to."""
    rotations = [a for p in result.plans for a in p.actions if a.kind == ActionKind.ROTATE]
    unchecked = any(p.status is Status.UNKNOWN or any(r.code == R.KEYVAULT_UNAVAILABLE.name for r in p.reasons)
                    for p in result.plans)
    if any(a.outcome == ActionOutcome.FAILED for a in rotations) or unchecked:
        return 1
    if any(a.outcome == ActionOutcome.DONE for a in rotations):
        return 0
    return 3

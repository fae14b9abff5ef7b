"""The doctor's findings (pure): one Check per thing verified, its JSON document and its text.

docs/reference.md, "The doctor": `{"schema": 1, "generated_at", "status": "OK|FIX", "checks": [{"id",
"scope", "status": "OK|FIX|SKIP", "message", "fix"}]}`; exit 0 all OK, 1 something to fix, 2
configuration error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum

from pat_watchdog.core.times import format_utc

SCHEMA = 1
WATCHDOG = "watchdog"       # the scope of the checks about the watchdog itself (settings, credential)
CONFIG_EXIT = 2


class Verdict(StrEnum):
    OK = "OK"
    FIX = "FIX"      # something to fix; `fix` is the command when one fixes it
    SKIP = "SKIP"    # not checked, and why (not configured, or a check it depends on failed)


@dataclass(frozen=True)
class Check:
    id: str
    scope: str                 # "watchdog", an ARM resource ID, a vault URL, table:<name>, queue:<name>, a channel
    status: Verdict
    message: str
    fix: str | None = None     # the exact command that fixes it (FIX only)

    def __post_init__(self) -> None:
        if self.fix is not None and self.status is not Verdict.FIX:
            raise ValueError("only a FIX carries a fix")


def ok(check_id: str, scope: str, message: str) -> Check:
    return Check(check_id, scope, Verdict.OK, message)


def fix(check_id: str, scope: str, message: str, command: str | None = None) -> Check:
    return Check(check_id, scope, Verdict.FIX, message, command)


def skip(check_id: str, scope: str, message: str) -> Check:
    return Check(check_id, scope, Verdict.SKIP, message)


def overall(checks: list[Check]) -> Verdict:
    return Verdict.FIX if any(c.status is Verdict.FIX for c in checks) else Verdict.OK


def exit_code(checks: list[Check]) -> int:
    return 1 if overall(checks) is Verdict.FIX else 0


def document(checks: list[Check], now: datetime) -> dict:
    """The `--json` document, schema 1."""
    return {"schema": SCHEMA, "generated_at": format_utc(now), "status": overall(checks).value,
            "checks": [{**asdict(c), "status": c.status.value} for c in checks]}


def config_error(problems: list[str]) -> list[Check]:
    """A configuration error as checks: one FIX per bad or missing setting (exit 2)."""
    return [fix("settings", WATCHDOG, f"invalid configuration: {p}") for p in problems]


def short_scope(scope: str) -> str:
    """What a person reads: a resource ID's last segment, a vault's host name."""
    if scope.startswith("/"):
        return scope.rstrip("/").rsplit("/", 1)[1]
    return scope.removeprefix("https://").split(".", 1)[0] if scope.startswith("https://") else scope


def render(checks: list[Check]) -> str:
    """One line per check (OK, FIX, SKIP); under a FIX, the command that fixes it; a summary last."""
    width = max((len(c.id) for c in checks), default=0)
    lines = []
    for check in checks:
        lines.append(f"{check.status.value:<4} {check.id:<{width}}  {short_scope(check.scope)}: {check.message}")
        if check.fix:
            lines.append(f"     fix: {check.fix}")
    counts = {v: sum(1 for c in checks if c.status is v) for v in Verdict}
    lines.append(f"doctor: {overall(checks).value} ({counts[Verdict.FIX]} to fix, {counts[Verdict.OK]} OK, "
                 f"{counts[Verdict.SKIP]} skipped)")
    return "\n".join(lines)

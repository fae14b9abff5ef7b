"""Request recording and fault injection for the sandbox's HTTPS stand-ins."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from .web import Request


@dataclass(frozen=True)
class Recorded:
    """One request the sandbox received; status 0 means the connection was dropped."""

    method: str
    host: str
    path: str  # with query
    headers: dict[str, str]
    body: bytes
    status: int
    time: float  # time.time() when answered

    def __repr__(self) -> str:
        # Headers and bodies carry tokens: keep them out of reprs (pytest prints reprs).
        return f"Recorded({self.method} {self.host}{self.path.split('?')[0]} -> {self.status})"


class RequestLog:
    """Thread-safe list of Recorded with simple counting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Recorded] = []

    def append(self, item: Recorded) -> None:
        """Add one record."""
        with self._lock:
            self._items.append(item)

    def snapshot(self) -> list[Recorded]:
        """A copy of the records so far."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._items.clear()

    def count(self, *, host: str | None = None, method: str | None = None,
              path: str | None = None) -> int:
        """How many records match (host substring, method, path regex search)."""
        return sum(1 for r in self.snapshot() if _matches(r.method, r.host, r.path, method, host, path))


def _matches(method: str, host: str, target: str, want_method: str | None,
             want_host: str | None, want_path: str | None) -> bool:
    """The shared filter of count() and faults."""
    if want_method is not None and method.upper() != want_method.upper():
        return False
    if want_host is not None and want_host.lower() not in host.lower():
        return False
    return want_path is None or re.search(want_path, target) is not None


@dataclass(frozen=True)
class Step:
    """A request that marks a step of the protocol: method, host substring, path regex, body regex."""

    method: str | None = None
    host: str | None = None
    path: str | None = None
    body: str | None = None

    def matches(self, request: Request) -> bool:
        if not _matches(request.method, request.host, request.target, self.method, self.host, self.path):
            return False
        return self.body is None or re.search(self.body, request.body.decode("utf-8", "replace")) is not None


@dataclass
class Fault:
    """A misbehaviour applied to matching requests; hits counts how often it fired.

    Besides a status, a hang or a drop: `next_link` rewrites a listing's answer to point elsewhere (another
    host, itself, a URL without a subscription); `trickle` sends a normal answer a byte every N seconds,
    which passes any per-read time-out.

    Requests are matched by content (method, host, path, `body_match` on the request body), and
    with `after` only once a request of that step has been seen: "the first settings list after
    the PUT" stays right when a run makes an extra call elsewhere, where "the 4th list" would not.
    """

    method: str | None = None
    host: str | None = None
    path: str | None = None
    status: int | None = None
    hang: float = 0.0
    drop: bool = False
    body: Any = None
    headers: dict[str, str] | None = None
    nth: int = 1
    times: int | None = 1
    action: Callable[[], None] | None = None   # runs before the request is handled (a concurrent actor)
    body_match: str | None = None              # regex the request body must contain
    after: Step | None = None                  # count only requests after one of this step
    next_link: str | Callable[[Request], str] | None = None   # the answer's nextLink, "{self}" its own URL
    trickle: float = 0.0                       # write the answer a byte at a time, this many seconds apart
    trickle_head: bool = False                 # from its status line (else from its body, after the headers)
    hits: int = 0
    seen: int = field(default=0, repr=False)
    armed: bool = field(default=False, repr=False)

    def offer(self, request: Request) -> bool:
        """Count a matching request; True when this fault fires for it."""
        if self.after is not None and not self.armed:
            self.armed = self.after.matches(request)
            return False
        if not Step(self.method, self.host, self.path, self.body_match).matches(request):
            return False
        self.seen += 1
        if self.seen < self.nth:
            return False
        if self.times is not None and self.seen >= self.nth + self.times:
            return False
        self.hits += 1
        return True


class FaultSet:
    """The active faults, consulted for every request in the order they were added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        """Activate a fault."""
        if fault.nth < 1 or (fault.times is not None and fault.times < 1):
            raise ValueError("nth and times must be at least 1 (times=None: unlimited)")
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def pick(self, request: Request) -> Fault | None:
        """The first fault firing for this request; every matching fault counts it."""
        chosen = None
        with self._lock:
            for fault in self._faults:
                if fault.offer(request) and chosen is None:
                    chosen = fault
        return chosen

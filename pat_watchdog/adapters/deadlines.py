"""Deadlines that outside calls keep whole, their answer's body included (docs/reference.md, "Answers
and deadlines").

A socket's read time-out bounds each read, not the call: an answer that sends a byte every 10 s passes
a 30 s read time-out for ever (urllib3's own documentation of `Timeout` says so: "the read and total
timeouts only measure the time between read operations"). So a thread's work can run `within(seconds)`
a deadline (one call, its retries, one instance, a run), nested as they come, and every TLS socket of
the product's HTTP sessions reads and writes with no more time than the tightest of them leaves. A read
past it raises the socket time-out urllib3 and azure-core already turn into their read time-out errors.

The sockets come from `DeadlineAdapter`, the requests adapter of every session (`retry.new_session`),
which gives urllib3 an `ssl.SSLContext` whose `sslsocket_class` is `DeadlineSocket` (Python's `ssl`
documents that attribute for returning a custom `SSLSocket` subclass). azure-core clients built on such a
session (`retry.sdk_transport`) get `SdkDeadline` as one of their `per_retry_policies` (azure-core's
`PipelineClient`: "added into the policy list after RetryPolicy", so it runs once per try), which bounds
each try and every try of one operation together.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

from azure.core.exceptions import AzureError, ServiceResponseTimeoutError
from azure.core.pipeline.policies import HTTPPolicy
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import HTTPAdapter
from urllib3.util.ssl_ import create_urllib3_context


class Deadline:
    """A moment (`time.monotonic`) some work must end by, what it is, and the deadline it sits in."""

    def __init__(self, at: float, what: str, outer: "Deadline | None", clock: Callable[[], float]):
        self.at, self.what, self.outer, self._clock = at, what, outer, clock
        self.passed = False     # set when a read or a retry was cut by this deadline

    def binding(self) -> "Deadline":
        """The tightest deadline of the chain: the one that cuts first."""
        tightest, outer = self, self.outer
        while outer is not None:
            if outer.at < tightest.at:
                tightest = outer
            outer = outer.outer
        return tightest

    def left(self) -> float:
        return self.binding().at - self._clock()

    def cut(self) -> "Deadline":
        """Mark the binding deadline as the one that stopped the work; return it."""
        binding = self.binding()
        binding.passed = True
        return binding

    def fired(self) -> "Deadline | None":
        """The deadline of this chain that cut the work, if one did."""
        deadline: Deadline | None = self
        while deadline is not None:
            if deadline.passed:
                return deadline
            deadline = deadline.outer
        return None


# One value per thread (each thread starts with a fresh context): the deadline of what that thread is
# doing now. A declaration, not state kept between runs: `within` always restores what it found.
_CURRENT: ContextVar[Deadline | None] = ContextVar("pat_watchdog_deadline", default=None)


def current() -> Deadline | None:
    """This thread's innermost deadline, or None when nothing bounds it."""
    return _CURRENT.get()


@contextmanager
def within(seconds: float, what: str, *, clock: Callable[[], float] = time.monotonic) -> Iterator[Deadline]:
    """Bound the work of the `with` block to `seconds` from now (and to every deadline around it)."""
    deadline = Deadline(clock() + seconds, what, _CURRENT.get(), clock)
    token = _CURRENT.set(deadline)
    try:
        yield deadline
    finally:
        _CURRENT.reset(token)


def left() -> float | None:
    """Seconds left before this thread's tightest deadline; None when nothing bounds it."""
    deadline = _CURRENT.get()
    return None if deadline is None else deadline.left()


class DeadlineSocket(ssl.SSLSocket):
    """A TLS socket whose every read and write ends by the deadline of its thread's current work.

    `settimeout` keeps what its caller asked for (urllib3's read or connect time-out) and `gettimeout`
    reports it, so a caller that saves and restores the time-out never keeps a shortened one on a pooled
    connection; each read or write then waits the smaller of that and the time left.
    """

    _asked: float | None = None

    def settimeout(self, value: float | None) -> None:
        self._asked = value
        super().settimeout(value)

    def gettimeout(self) -> float | None:
        return self._asked

    def _bound(self) -> None:
        deadline = _CURRENT.get()
        if deadline is None:
            super().settimeout(self._asked)
            return
        remaining = deadline.left()
        if remaining <= 0:
            deadline.cut()
            raise socket.timeout(f"the deadline passed: {deadline.binding().what}")
        super().settimeout(remaining if self._asked is None else min(self._asked, remaining))

    def read(self, len: int = 1024, buffer=None):  # noqa: A002 - SSLSocket.read's own signature
        self._bound()
        try:
            return super().read(len, buffer)
        except socket.timeout:
            self._note_cut()
            raise

    def send(self, data, flags: int = 0) -> int:
        self._bound()
        try:
            return super().send(data, flags)
        except socket.timeout:
            self._note_cut()
            raise

    def _note_cut(self) -> None:
        """A time-out that came when the deadline, not the socket's own time-out, ran out."""
        deadline = _CURRENT.get()
        if deadline is not None and deadline.left() <= 0.001:
            deadline.cut()


class DeadlineAdapter(HTTPAdapter):
    """The requests adapter of every session: its TLS connections use DeadlineSocket.

    requests documents `build_connection_pool_key_attributes` as the place to give urllib3 a custom
    `ssl_context`. One context per trust setting (`verify`): urllib3 loads the CA bundle into the context
    it is given, so two bundles never mix in one context.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._contexts_lock = threading.Lock()

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params.get("scheme") == "https" and verify is not False:
            pool_kwargs["ssl_context"] = self._context(str(verify))
        return host_params, pool_kwargs

    def _context(self, verify: str) -> ssl.SSLContext:
        with self._contexts_lock:
            if verify not in self._contexts:
                context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
                context.sslsocket_class = DeadlineSocket
                self._contexts[verify] = context
            return self._contexts[verify]

    def __setstate__(self, state):   # requests pickles adapters by `__attrs__`: the contexts are rebuilt
        super().__setstate__(state)
        self._contexts, self._contexts_lock = {}, threading.Lock()


class DeadlinePassed(ServiceResponseTimeoutError):
    """An azure-core call cut by a deadline; its message names which (sdk_errors keeps it)."""


class SdkDeadline(HTTPPolicy):
    """azure-core per-retry policy: each try ends within `call` seconds, its body read included, and
    every try of one operation within `total` (azure-core's own `timeout` is checked only between tries,
    so a try begun at 59 s could run 30 s more)."""

    STARTED = "pat_watchdog_started"

    def __init__(self, call: float, total: float, *, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._call, self._total, self._clock = call, total, clock

    def send(self, request):
        context = request.context
        if self.STARTED not in context:
            context[self.STARTED] = self._clock()
        spent = self._clock() - context[self.STARTED]
        with within(self._total - spent, f"the {self._total:g} s of a call's retries", clock=self._clock), \
                within(self._call, f"one call's {self._call:g} s (answer included)", clock=self._clock) as one:
            if one.left() <= 0:
                raise DeadlinePassed(f"not sent: the deadline passed ({one.cut().what})")
            try:
                return self.next.send(request)
            except AzureError as error:
                fired = one.fired()
                if fired is None or isinstance(error, DeadlinePassed):
                    raise
                raise DeadlinePassed(f"no complete answer within {fired.what}") from None


class DeadlineTransport(RequestsTransport):
    """azure-core's requests transport whose back-off between tries never sleeps past the deadline."""

    def sleep(self, duration: float) -> None:
        remaining = left()
        super().sleep(duration if remaining is None else max(0.0, min(duration, remaining)))

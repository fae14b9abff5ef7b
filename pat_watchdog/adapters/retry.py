"""Bounded retries for every outside call (HTTP, SMTP), timeouts and deadlines, and the Azure SDK knobs."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, TypeVar
from urllib.parse import urlsplit

import requests
from requests.sessions import merge_setting
from requests.utils import get_environ_proxies
from urllib3.util.retry import Retry

from pat_watchdog.adapters import deadlines
from pat_watchdog.core.errors import ServiceError, UnexpectedAnswer, is_transient_status

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """The time bounds of a run (docs/reference.md, "Answers and deadlines"): one outside call ends within
    `call` seconds, its answer's body included; its retries within `total`; one instance's observation
    within `instance`; a run within `run`, of which the last `acting` are kept for acting and alerting.

    `run` stays under host.json's `functionTimeout` (10 minutes) with a minute to spare, so the Functions
    host never stops a run before its alerts are out. Tests scale every bound down, never wait them out.
    """

    attempts: int = 4
    backoff: float = 1.0          # first pause; doubles each time
    backoff_max: float = 10.0
    total: float = 60.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0    # one socket read (the deadline below bounds the whole call)
    call: float = 30.0
    instance: float = 150.0
    run: float = 540.0
    acting: float = 180.0

    def sdk_kwargs(self) -> dict:
        """Keyword arguments for azure-core clients (their defaults retry for minutes)."""
        return dict(retry_total=self.attempts - 1, retry_backoff_factor=self.backoff,
                    retry_backoff_max=self.backoff_max, retry_mode="exponential", timeout=self.total,
                    connection_timeout=self.connect_timeout, read_timeout=self.read_timeout)

    def sdk_deadline(self) -> list:
        """azure-core `per_retry_policies` for a client on `sdk_transport`: the call and retry deadlines."""
        return [deadlines.SdkDeadline(self.call, self.total)]

    def pause(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before retry `attempt` (1-based); Retry-After wins, capped."""
        if retry_after:
            try:
                return min(float(retry_after), self.read_timeout)
            except ValueError:
                pass
        return min(self.backoff * (2 ** (attempt - 1)), self.backoff_max)


class RunSession(requests.Session):
    """A requests session that reads the environment once per host instead of on every request.

    requests looks up the proxies (HTTPS_PROXY, NO_PROXY) and the CA bundle (REQUESTS_CA_BUNDLE,
    CURL_CA_BUNDLE) before each request, walking every environment variable twice; a Function App
    has a hundred or more, and with thousands of instances that walk was a large share of the
    run's CPU. The answers are the same as requests' own, kept for the session's life (one run).
    """

    def __init__(self):
        super().__init__()
        self._environment: dict[tuple, tuple[dict, str | None]] = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        if not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        no_proxy = proxies.get("no_proxy") if proxies is not None else None
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, no_proxy)
        found = self._environment.get(key)
        if found is None:   # two threads may both look it up: the same answer
            found = self._environment[key] = (
                get_environ_proxies(url, no_proxy=no_proxy),
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"))
        env_proxies, bundle = found
        if proxies is not None:
            for name, value in env_proxies.items():
                proxies.setdefault(name, value)
        if verify is True or verify is None:
            verify = bundle or verify
        return {"proxies": merge_setting(proxies, self.proxies), "stream": merge_setting(stream, self.stream),
                "verify": merge_setting(verify, self.verify), "cert": merge_setting(cert, self.cert)}


def new_session(pool_size: int = 8, *, retries=0) -> requests.Session:
    """A session with a connection pool big enough for the configured concurrency."""
    session = RunSession()
    adapter = deadlines.DeadlineAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=retries)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def sdk_transport(retry: RetryPolicy, pool_size: int = 10):
    """An azure-core transport on a RunSession, with the policy's timeouts (a client given its own
    transport does not pass them on) and its deadlines (give the client `retry.sdk_deadline()` too).
    Retries stay azure-core's: urllib3's are off, as in its own session."""
    session = new_session(pool_size, retries=Retry(total=False, redirect=False, raise_on_status=False))
    return deadlines.DeadlineTransport(session=session, session_owner=True, **retry.sdk_kwargs())


class Retryable(Exception):
    """Raised by an attempt whose failure is worth another try; `problem` is what the final error says."""

    def __init__(self, problem: str, result=None):
        super().__init__(problem)
        self.problem, self.result = problem, result


def with_retries(attempt: Callable[[], T], *, system: str, policy: RetryPolicy,
                 retry_after: Callable[[object], str | None] = lambda result: None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> T:
    """The one bounded retry loop (HTTP and SMTP alike): `attempt()` returns, or raises Retryable.

    Stops after `policy.attempts` tries, or when the next pause would pass `policy.total` or a deadline
    around the call (the instance's, the run's); then raises ServiceError naming the last problem, with
    the last result's HTTP status.
    """
    with deadlines.within(policy.total, f"the {policy.total:g} s of a call's retries", clock=clock) as all_tries:
        for number in range(1, policy.attempts + 1):
            try:
                return attempt()
            except Retryable as failure:
                last = failure
            wait = policy.pause(number, retry_after(last.result))
            if number == policy.attempts:
                break
            if all_tries.left() < wait:     # no time for another try: say which deadline left none
                last = Retryable(f"{last.problem}; no time left for another try ({all_tries.cut().what})",
                                 last.result)
                break
            log.info("retrying %s after %s (attempt %d, waiting %.1fs)", system, last.problem, number, wait)
            sleep(wait)
    status = getattr(last.result, "status_code", None)
    raise ServiceError(system, f"{last.problem} after {number} attempt{'s' if number > 1 else ''}", status=status)


def send(session: requests.Session, method: str, url: str, *, system: str, policy: RetryPolicy,
         retry_on: Callable[[requests.Response], bool] | None = None, resend_lost: bool = True,
         sleep: Callable[[float], None] = time.sleep, **kwargs) -> requests.Response:
    """Send with retries on 429/5xx/timeouts; return the last response or raise ServiceError.

    Each try ends within `policy.call` seconds, its body included (docs/reference.md, "Answers and
    deadlines"). No redirect is followed: requests keeps the Authorization header on a redirect to the same
    host, so `dev.azure.com/contoso` answering 302 to `/fabrikam` would hand the PAT to another organization.
    A 3xx raises UnexpectedAnswer naming the Location's host only (its query may carry anything).
    A non-transient answer (200, 401, 404...) is returned at once for the caller to interpret.
    `resend_lost=False`: a request whose answer was lost (a time-out, a dropped connection) is not sent
    again, since it may have taken effect (a PAT creation).
    """
    retry_on = retry_on or (lambda r: is_transient_status(r.status_code))
    host = _host(url)

    def attempt() -> requests.Response:
        with deadlines.within(policy.call, f"one call's {policy.call:g} s (answer included)") as one:
            if one.left() <= 0:
                raise Retryable(f"not sent to {host}: the deadline passed ({one.cut().what})")
            try:
                response = session.request(method, url, timeout=(policy.connect_timeout, policy.read_timeout),
                                           allow_redirects=False, **kwargs)
            except requests.RequestException as error:
                fired = one.fired()
                problem = (f"no complete answer from {host} within {fired.what}" if fired
                           else f"{type(error).__name__} contacting {host}")
                if not resend_lost:
                    raise ServiceError(system, f"{problem}; not sent again (it may have taken effect)") from None
                raise Retryable(problem) from None
        if 300 <= response.status_code < 400:
            response.close()
            raise UnexpectedAnswer(system, redirect_refused(response.status_code, response.headers.get("Location"),
                                                             host), status=response.status_code)
        if retry_on(response):
            raise Retryable(f"HTTP {response.status_code} from {host}", response)
        return response

    return with_retries(attempt, system=system, policy=policy, sleep=sleep,
                        retry_after=lambda r: r.headers.get("Retry-After") if r is not None else None)


def redirect_refused(status: int, location: str | None, host: str) -> str:
    """What a refused redirect says: the Location's host (the request's own for a relative one), never its
    path or query."""
    try:
        target = urlsplit(location or "").hostname or host
    except ValueError:
        target = "an unreadable Location"
    return f"HTTP {status}: a redirect to {target} was not followed (the watchdog follows none)"


def _host(url: str) -> str:
    # Never log a full URL: a Teams webhook URL carries its signature in the query.
    return requests.utils.urlparse(url).netloc

"""Bounded retries for every outside call (HTTP, SMTP), timeouts, and the Azure SDK knobs."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.sessions import merge_setting
from requests.utils import get_environ_proxies
from urllib3.util.retry import Retry

from pat_watchdog.core.errors import ServiceError, is_transient_status

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """No outside call waits over 30 s, one call's retries stop after 60 s (docs/reference.md, "Settings")."""

    attempts: int = 4
    backoff: float = 1.0          # first pause; doubles each time
    backoff_max: float = 10.0
    total: float = 60.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0

    def sdk_kwargs(self) -> dict:
        """Keyword arguments for azure-core clients (their defaults retry for minutes)."""
        return dict(retry_total=self.attempts - 1, retry_backoff_factor=self.backoff,
                    retry_backoff_max=self.backoff_max, retry_mode="exponential", timeout=self.total,
                    connection_timeout=self.connect_timeout, read_timeout=self.read_timeout)

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
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=retries)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def sdk_transport(retry: RetryPolicy, pool_size: int = 10):
    """An azure-core transport on a RunSession, with the policy's timeouts (a client given its own
    transport does not pass them on). Retries stay azure-core's: urllib3's are off, as in its own session."""
    from azure.core.pipeline.transport import RequestsTransport

    session = new_session(pool_size, retries=Retry(total=False, redirect=False, raise_on_status=False))
    return RequestsTransport(session=session, session_owner=True, **retry.sdk_kwargs())


class Retryable(Exception):
    """Raised by an attempt whose failure is worth another try; `problem` is what the final error says."""

    def __init__(self, problem: str, result=None):
        super().__init__(problem)
        self.problem, self.result = problem, result


def with_retries(attempt: Callable[[], T], *, system: str, policy: RetryPolicy,
                 retry_after: Callable[[object], str | None] = lambda result: None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> T:
    """The one bounded retry loop (HTTP and SMTP alike): `attempt()` returns, or raises Retryable.

    Stops after `policy.attempts` tries or when the next pause would pass `policy.total`;
    then raises ServiceError naming the last problem, with the last result's HTTP status.
    """
    started = clock()
    for number in range(1, policy.attempts + 1):
        try:
            return attempt()
        except Retryable as failure:
            last = failure
        wait = policy.pause(number, retry_after(last.result))
        if number == policy.attempts or clock() - started + wait > policy.total:
            break
        log.info("retrying %s after %s (attempt %d, waiting %.1fs)", system, last.problem, number, wait)
        sleep(wait)
    status = getattr(last.result, "status_code", None)
    raise ServiceError(system, f"{last.problem} after {number} attempts", status=status)


def send(session: requests.Session, method: str, url: str, *, system: str, policy: RetryPolicy,
         retry_on: Callable[[requests.Response], bool] | None = None,
         sleep: Callable[[float], None] = time.sleep, **kwargs) -> requests.Response:
    """Send with retries on 429/5xx/timeouts; return the last response or raise ServiceError.

    A non-transient answer (200, 401, 404...) is returned at once for the caller to interpret.
    """
    retry_on = retry_on or (lambda r: is_transient_status(r.status_code))

    def attempt() -> requests.Response:
        try:
            response = session.request(method, url, timeout=(policy.connect_timeout, policy.read_timeout),
                                       **kwargs)
        except requests.RequestException as error:
            raise Retryable(f"{type(error).__name__} contacting {_host(url)}") from None
        if retry_on(response):
            raise Retryable(f"HTTP {response.status_code} from {_host(url)}", response)
        return response

    return with_retries(attempt, system=system, policy=policy, sleep=sleep,
                        retry_after=lambda r: r.headers.get("Retry-After") if r is not None else None)


def _host(url: str) -> str:
    # Never log a full URL: a Teams webhook URL carries its signature in the query.
    return requests.utils.urlparse(url).netloc

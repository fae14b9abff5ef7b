"""The Sandbox: local HTTPS stand-ins for Azure, reached through a CONNECT proxy."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable

from .arm import AUDIENCES as ARM_HOSTS
from .arm import Arm
from .arm_authorization import DEFAULT_ROLES, Roles
from .devops import SERVER_HOST, DevOps
from .entra import Entra
from .entra_shapes import HOST as ENTRA_HOST
from .faults import Fault, FaultSet, Recorded, RequestLog, Step
from .foreign import HOST as FOREIGN_HOST
from .foreign import Foreign
from .identity import Identity
from .keyvault import KeyVault
from .receivers import Acs, Teams
from .proxy import ConnectProxy
from .smtp import SmtpSink
from .tables import Tables
from .tls import Certificates, covered, make_certificates
from .web import Dropped, Request, Response, TLSServer, error, json_response

LOOPBACK = ("127.0.0.1", "localhost")


def _utcnow() -> datetime:
    """Default clock."""
    return datetime.now(timezone.utc)


class Sandbox:
    """ARM, Key Vault, Entra ID, Azure DevOps, Teams, ACS, Table storage, managed identity and SMTP, all local."""

    def __init__(self, clock: Callable[[], datetime] | None = None, roles: Roles = DEFAULT_ROLES) -> None:
        """`roles`: the deployment's custom roles for the watchdog (the tests read them from infra/)."""
        self.clock: Callable[[], datetime] = clock or _utcnow
        self.latency = 0.0
        self.errors: list[BaseException] = []  # exceptions inside handlers (answered 500)
        self._log = RequestLog()
        self._faults = FaultSet()
        self._stopping = threading.Event()
        self.identity = Identity()
        self.arm = Arm(self.identity, self._now, roles)
        self.vault = KeyVault(self.identity, self._now, self.arm.resources, self.arm.authorization)
        self.arm.references.secret_version = self.vault.current_version
        self.identity.tenant_id = self.vault.tenant_id
        self.entra = Entra(self._now, self.vault.tenant_id)
        self.devops = DevOps(self._now, self.vault.tenant_id)
        self.devops.entra = self.entra  # Azure DevOps accepts the delegated tokens Entra issues
        self.tables = Tables(self.identity, self.arm.resources, self.arm.authorization, self._now)
        self.teams = Teams()
        self.acs = Acs(self.identity)
        self.smtp = SmtpSink()
        self.foreign = Foreign()
        self._certs: Certificates | None = None
        self._https: TLSServer | None = None
        self._proxy: ConnectProxy | None = None
        self._refused: list[str] = []

    def _now(self) -> datetime:
        """The current clock (looked up on each call, so sb.clock can be swapped)."""
        return self.clock()

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> "Sandbox":
        """Create certificates, start HTTPS server, proxy and SMTP."""
        self._stopping.clear()
        self._certs = make_certificates()
        self._https = TLSServer(self._certs.server_context, self._dispatch)
        # A short poll interval keeps stop() quick: shutdown() waits for one poll.
        threading.Thread(target=self._https.serve_forever, kwargs={"poll_interval": 0.02},
                         name="sandbox-https", daemon=True).start()
        self._proxy = ConnectProxy(self.port, self._tunnel_allowed, self._refused,
                                   serve=self._https.process_request_thread)
        self._proxy.start()
        self.smtp.start(self._certs.server_context)
        return self

    def stop(self) -> None:
        """Close every server and connection; safe to call twice."""
        self._stopping.set()
        if self._https is not None:
            self._https.close_all()
            self._https = None
        if self._proxy is not None:
            self._proxy.stop()
            self._proxy = None
        self.smtp.stop()
        if self._certs is not None:
            self._certs.cleanup()
            self._certs = None

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- what clients need ------------------------------------------------------------
    @property
    def tenant_id(self) -> str:
        """The Entra tenant of the Key Vault challenge and Azure DevOps."""
        return self.vault.tenant_id

    @property
    def ca_path(self) -> str:
        """PEM file of the sandbox CA."""
        assert self._certs is not None, "Sandbox not started"
        return self._certs.ca_path

    @property
    def port(self) -> int:
        """HTTPS port on 127.0.0.1."""
        assert self._https is not None, "Sandbox not started"
        return self._https.server_address[1]

    @property
    def proxy_url(self) -> str:
        """URL of the CONNECT proxy."""
        assert self._proxy is not None, "Sandbox not started"
        return f"http://127.0.0.1:{self._proxy.port}"

    @property
    def proxy_refused(self) -> list[str]:
        """Hosts (or request lines) the proxy refused to tunnel."""
        return list(self._refused)

    @property
    def identity_header(self) -> str:
        """The secret the managed identity endpoint expects in X-IDENTITY-HEADER."""
        return self.identity.header

    def env(self) -> dict[str, str]:
        """Environment for a client process: proxy, CA trust, managed identity."""
        proxy = self.proxy_url
        return {
            "HTTPS_PROXY": proxy, "https_proxy": proxy,
            # Plain-http calls go to the proxy too, which refuses them: nothing leaves the host.
            "HTTP_PROXY": proxy, "http_proxy": proxy,
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
            "REQUESTS_CA_BUNDLE": self.ca_path, "SSL_CERT_FILE": self.ca_path,
            "IDENTITY_ENDPOINT": f"https://127.0.0.1:{self.port}/msi/token",
            "IDENTITY_HEADER": self.identity_header,
        }

    # -- recording and faults -----------------------------------------------------------
    @property
    def requests(self) -> list[Recorded]:
        """Every request received so far (a copy)."""
        return self._log.snapshot()

    def count(self, *, host: str | None = None, method: str | None = None,
              path: str | None = None) -> int:
        """Requests matching host (substring), method and path (regex search)."""
        return self._log.count(host=host, method=method, path=path)

    def reset_requests(self) -> None:
        """Forget recorded requests."""
        self._log.clear()

    def inject(self, *, method: str | None = None, host: str | None = None,
               path: str | None = None, status: int | None = None, hang: float = 0.0,
               drop: bool = False, body: Any = None, headers: dict[str, str] | None = None,
               nth: int = 1, times: int | None = 1,
               action: Callable[[], None] | None = None, body_match: str | None = None,
               after: Step | None = None, next_link: str | Callable[[Request], str] | None = None,
               trickle: float = 0.0, trickle_head: bool = False) -> Fault:
        """Misbehave on the nth matching request (and times-1 more; None: all later ones).

        Prefer matching by content (`body_match`) and step (`after`) over counting (`nth`).
        `action` runs before the request is handled: another actor changing state meanwhile.
        `next_link` replaces the nextLink of the normal JSON answer ("{self}": the request's own URL;
        a callable gets the request); `trickle` sends the answer a byte every that many seconds (its
        body, or from its status line with `trickle_head`).
        """
        return self._faults.add(Fault(method, host, path, status, hang, drop, body, headers,
                                      nth, times, action, body_match, after, next_link=next_link,
                                      trickle=trickle, trickle_head=trickle_head))

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    # -- request handling ---------------------------------------------------------------
    def _tunnel_allowed(self, host: str, port: int) -> bool:
        """The proxy tunnels port 443 of the stand-in hostnames only."""
        return port == 443 and host not in LOOPBACK and covered(host)

    def _dispatch(self, request: Request) -> Response:
        """Faults, latency, routing, recording."""
        fault = self._faults.pick(request)
        if fault is not None and fault.action is not None:
            fault.action()
        delay = self.latency + (fault.hang if fault else 0.0)
        if delay > 0:
            self._stopping.wait(delay)
        if fault is not None and fault.drop:
            self._record(request, 0)
            raise Dropped()
        if fault is not None and fault.status is not None:
            response = _fault_response(fault)
        else:
            response = self._route(request)
            if fault is not None and fault.headers:  # a normal answer with extra headers
                response.headers.update(fault.headers)
            if fault is not None and fault.next_link is not None:
                response = _with_next_link(response, fault.next_link, request)
        if fault is not None and fault.trickle:
            response.trickle, response.trickle_head = fault.trickle, fault.trickle_head
        # Recorded before the answer is written, so a client that got it can count it.
        self._record(request, response.status)
        return response

    def _route(self, request: Request) -> Response:
        """Pick the stand-in by Host; a handler crash becomes a 500."""
        host = request.host
        try:
            if host in LOOPBACK:
                return self.identity.handle(request)
            if host in ARM_HOSTS:
                return self.arm.handle(request)
            if host.endswith((".vault.azure.net", ".vault.usgovcloudapi.net")):
                return self.vault.handle(request)
            if host == ENTRA_HOST:
                return self.entra.handle(request)
            if host.endswith(".logic.azure.com"):
                return self.teams.handle(request)
            if host.endswith(".communication.azure.com"):
                return self.acs.handle(request)
            if host.endswith(".table.core.windows.net"):
                return self.tables.handle(request)
            if host == FOREIGN_HOST:
                return self.foreign.handle(request)
            if host in ("dev.azure.com", "vssps.dev.azure.com", SERVER_HOST) or \
                    host.endswith(".visualstudio.com"):
                return self.devops.handle(request)
        except Exception as exc:  # noqa: BLE001 - answered like a service fault, kept for tests
            self.errors.append(exc)
            return error(500, "InternalServerError", "The sandbox failed to handle the request.")
        return error(404, "NotFound", f"The sandbox has no service at {host}.")

    def _record(self, request: Request, status: int) -> None:
        """Append to the request log."""
        self._log.append(Recorded(request.method, request.host, request.target,
                                  dict(request.headers), request.body, status, time.time()))


def _with_next_link(response: Response, link: str | Callable[[Request], str], request: Request) -> Response:
    """The same JSON answer with another nextLink."""
    body = json.loads(response.body.decode("utf-8"))
    own = f"https://{request.host}{request.target}"
    body["nextLink"] = link(request) if callable(link) else link.replace("{self}", own)
    response.body = json.dumps(body).encode("utf-8")
    return response


def _fault_response(fault: Fault) -> Response:
    """The response a fault prescribes."""
    body = fault.body
    if body is None:
        response = Response(fault.status)
    elif isinstance(body, (bytes, str)):
        raw = body.encode("utf-8") if isinstance(body, str) else body
        response = Response(fault.status, raw, {"Content-Type": "text/plain; charset=utf-8"})
    else:
        response = json_response(fault.status, body)
    response.headers.update(fault.headers or {})
    return response

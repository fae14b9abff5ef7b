"""HTTP plumbing shared by the stand-ins: request/response values and the TLS server."""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Request:
    """One parsed HTTP request, as the stand-ins see it."""

    method: str
    host: str  # lower-case, without port
    target: str  # path with query, as sent
    headers: dict[str, str]  # as sent (first value per name)
    body: bytes

    @property
    def path(self) -> str:
        """The path without the query string."""
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        """Query parameters (first value each), keys lower-cased: Azure treats them so."""
        pairs = parse_qsl(urlsplit(self.target).query, keep_blank_values=True)
        result: dict[str, str] = {}
        for key, value in pairs:
            result.setdefault(key.lower(), value)
        return result

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup."""
        name = name.lower()
        for key, value in self.headers.items():
            if key.lower() == name:
                return value
        return None

    def json(self) -> Any:
        """The body parsed as JSON; None when empty or not JSON."""
        try:
            return json.loads(self.body.decode("utf-8")) if self.body else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None


@dataclass
class Response:
    """What a stand-in answers: status, body bytes, extra headers; `trickle`: seconds between the bytes
    written (0: all at once), from the status line when `trickle_head`, else from the body."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    trickle: float = 0.0
    trickle_head: bool = False


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response (UTF-8, like the Azure services send)."""
    head = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    return Response(status, json.dumps(payload).encode("utf-8"), head)


def html_response(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    """An HTML response."""
    head = {"Content-Type": "text/html; charset=utf-8", **(headers or {})}
    return Response(status, text.encode("utf-8"), head)


def error(status: int, code: str, message: str, **extra: Any) -> Response:
    """The common Azure error body {"error": {"code", "message"}}."""
    return json_response(status, {"error": {"code": code, "message": message, **extra}})


class Dropped(Exception):
    """Raised by the dispatcher to close the connection without answering."""


Dispatcher = Callable[[Request], Response]


class _Handler(BaseHTTPRequestHandler):
    """Reads a request, hands it to the dispatcher, writes the answer (keep-alive)."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle on, the client's delayed ACK
    # would add ~40 ms to every response.
    disable_nagle_algorithm = True
    server: "TLSServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silent: requests carry tokens, nothing may reach stdout/stderr."""

    def handle_one_request(self) -> None:
        """Like the base class, but every method goes through _serve."""
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline or not self.parse_request():
                self.close_connection = True
                return
            self._serve()
            self.wfile.flush()
        except (OSError, ssl.SSLError):
            self.close_connection = True

    def _serve(self) -> None:
        """Dispatch the parsed request and write the response."""
        request = Request(self.command, _host(self.headers.get("Host", "")), self.path,
                          dict(self.headers.items()), self._read_body())
        try:
            response = self.server.dispatch(request)
        except Dropped:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = response.body if self.command != "HEAD" else b""
        if response.trickle and response.trickle_head:
            self._trickle(self._head(response) + body, response.trickle)
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.trickle:
            self.wfile.flush()
            self._trickle(body, response.trickle)
        else:
            self.wfile.write(body)

    def _head(self, response: Response) -> bytes:
        """The status line and headers as send_response/end_headers would write them."""
        lines = [f"HTTP/1.1 {response.status} {self.responses.get(response.status, ('',))[0]}",
                 f"Server: {self.version_string()}", f"Date: {self.date_time_string()}",
                 *(f"{name}: {value}" for name, value in response.headers.items()),
                 f"Content-Length: {len(response.body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _trickle(self, data: bytes, pace: float) -> None:
        """A byte, a pause, the next byte: until all is sent, the client hangs up, or the sandbox stops."""
        for index in range(len(data)):
            self.wfile.write(data[index:index + 1])
            self.wfile.flush()
            if index + 1 < len(data) and self.server.stopping.wait(pace):
                self.close_connection = True
                return

    def _read_body(self) -> bytes:
        """Read the body by Content-Length, or de-chunk it."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        """Decode a chunked body (trailers ignored)."""
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()


def _host(value: str) -> str:
    """Host header without the port, lower-case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value.split("]")[0] + "]"
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class TLSServer(ThreadingHTTPServer):
    """HTTPS server; the TLS handshake runs in the connection's own thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, context: ssl.SSLContext, dispatch: Dispatcher) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = context
        self.dispatch = dispatch
        self.connections = ConnectionSet()
        self.stopping = threading.Event()    # ends a trickling answer when the sandbox stops

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Silent: the default prints a traceback, and tracebacks may show request data."""

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        """Wrap the accepted socket in TLS, then serve it; track it so stop() can close it."""
        self.connections.add(request)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            self.connections.discard(request)
            self.shutdown_request(request)
            return
        self.connections.add(tls)
        try:
            super().process_request_thread(tls, client_address)
        finally:
            self.connections.discard(tls)
            self.connections.discard(request)

    def close_all(self) -> None:
        """Stop serving and close every open connection."""
        self.stopping.set()
        self.shutdown()
        self.server_close()
        self.connections.close_all()


class ConnectionSet:
    """Thread-safe set of live sockets, closed together on stop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()

    def add(self, sock: socket.socket) -> None:
        """Track a socket."""
        with self._lock:
            self._sockets.add(sock)

    def discard(self, sock: socket.socket) -> None:
        """Forget a socket."""
        with self._lock:
            self._sockets.discard(sock)

    def close_all(self) -> None:
        """Shut down and close every tracked socket."""
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def encode_skip(offset: int, key: str) -> str:
    """An opaque, URL-safe continuation token (`$skiptoken` / `$skipToken`) for a page offset."""
    return base64.urlsafe_b64encode(f'{{"{key}":"{offset}"}}'.encode()).decode().rstrip("=")


def decode_skip(token: str | None) -> int:
    """The offset in a continuation token (0 when absent or garbled)."""
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        return max(0, int(re.search(r"\d+", raw).group(0)))
    except (ValueError, AttributeError):
        return 0

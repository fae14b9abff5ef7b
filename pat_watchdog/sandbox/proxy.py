"""Plain-HTTP CONNECT proxy: tunnels the Azure hostnames to the sandbox, refuses all else."""

from __future__ import annotations

import selectors
import socket
import socketserver
import threading
from typing import Callable

from .web import ConnectionSet

_REFUSED = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


class _ProxyHandler(socketserver.BaseRequestHandler):
    """One client connection: read the CONNECT head, then serve the tunnel, relay it, or refuse."""

    server: "ConnectProxy"

    def handle(self) -> None:
        """Serve one tunnel (or one refusal)."""
        head, early = _read_head(self.request)
        target = _connect_target(head)
        if target is None or not self.server.allowed(*target):
            self.server.refused.append(target[0] if target else head.split(b"\r\n")[0].decode("latin-1"))
            self.request.sendall(_REFUSED)
            return
        if self.server.serve is not None and not early:
            # The stand-ins answer inside the tunnel itself: TLS and HTTP exactly as through a relay,
            # without copying every byte between two sockets in Python (which cost the sandbox more
            # CPU, and the client more waiting, than the stand-ins' own work).
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.request.sendall(_ESTABLISHED)
            self.server.serve(self.request, self.client_address)
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.server.upstream_port), timeout=5)
        except OSError:
            self.request.sendall(_REFUSED)
            return
        upstream.settimeout(None)
        for sock in (self.request, upstream):  # relay small TLS records without Nagle delays
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(upstream)
        try:
            self.request.sendall(_ESTABLISHED)
            if early:
                upstream.sendall(early)
            _relay(self.request, upstream)
        finally:
            self.server.connections.discard(upstream)
            upstream.close()


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The request head up to its blank line, and any bytes the client sent after it."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, early = data.partition(b"\r\n\r\n")
    return head, early


def _connect_target(head: bytes) -> tuple[str, int] | None:
    """(host, port) of a CONNECT request; None for anything else."""
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(parts) != 3 or parts[0].upper() != "CONNECT":
        return None
    host, _, port = parts[1].rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]").lower(), int(port)


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until both sides have finished sending.

    A selector, not select.select(): select() refuses descriptors above 1023, which a long simulation
    reaches (the sandbox, unlike Azure, never closes an idle keep-alive connection)."""
    open_ends = {client: upstream, upstream: client}
    with selectors.DefaultSelector() as selector:
        for sock in open_ends:
            selector.register(sock, selectors.EVENT_READ)
        _pump(open_ends, selector)


def _pump(open_ends: dict, selector: selectors.BaseSelector) -> None:
    while open_ends:
        if any(sock.fileno() < 0 for sock in open_ends):   # closed by stop(): epoll just forgets it
            return
        readable = [key.fileobj for key, _ in selector.select(1.0)]
        for source in readable:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            sink = open_ends[source]
            if data:
                try:
                    sink.sendall(data)
                    continue
                except OSError:
                    return
            # EOF: pass the half-close on so the other side sees it too.
            del open_ends[source]
            selector.unregister(source)
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass


class ConnectProxy(socketserver.ThreadingTCPServer):
    """The proxy server; `allowed(host, port)` decides which tunnels open."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream_port: int, allowed: Callable[[str, int], bool],
                 refused: list[str], serve: Callable[[socket.socket, object], None] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream_port = upstream_port
        self.serve = serve  # answers a tunnel's connection in place (TLS included); None: relay upstream
        self.allowed = allowed
        self.refused = refused  # what was turned away, for assertions
        self.connections = ConnectionSet()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The listening port."""
        return self.server_address[1]

    def handle_error(self, request, client_address) -> None:
        """Silent: a client that hangs up mid-tunnel is normal, not worth a traceback."""

    def process_request_thread(self, request: socket.socket, client_address) -> None:
        """Track the client socket so stop() can close it."""
        self.connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.discard(request)

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="sandbox-proxy", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close every tunnel."""
        self.shutdown()
        self.server_close()
        self.connections.close_all()

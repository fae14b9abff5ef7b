"""SMTP sink: aiosmtpd with required STARTTLS and AUTH, collecting parsed messages."""

from __future__ import annotations

import email
import email.policy
import logging
import secrets
import socket
import ssl
import threading
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    """A free loopback port (aiosmtpd cannot use port 0: its readiness probe connects to that port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpSink:
    """Accepts mail only after STARTTLS and AUTH (LOGIN/PLAIN) with username/password."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.username = "watchdog@contoso.test"
        self.password = secrets.token_urlsafe(16)
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []  # (mail from, rcpt tos)
        self._lock = threading.Lock()
        self._failures: list[int] = []
        self._controller: Controller | None = None

    def fail_next(self, n: int, code: int = 451) -> None:
        """The next n messages are refused at DATA with this code."""
        with self._lock:
            self._failures.extend([code] * n)

    def start(self, tls_context: ssl.SSLContext) -> None:
        """Start the SMTP server thread on a free port; STARTTLS uses tls_context."""
        # aiosmtpd logs every command line at DEBUG (AUTH data included): keep that out of logs.
        # aiosmtpd logs AUTH lines at DEBUG and a deprecation of its own at WARNING.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        self.port = free_port()
        self._controller = Controller(
            self, hostname=self.host, port=self.port, server_hostname="localhost",
            tls_context=tls_context, require_starttls=True, auth_required=True,
            auth_require_tls=True, authenticator=self._authenticate)
        self._controller.start()

    def stop(self) -> None:
        """Stop the server thread."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        """Accept exactly the configured credentials."""
        ok = (isinstance(auth_data, LoginPassword)
              and secrets.compare_digest(auth_data.login, self.username.encode())
              and secrets.compare_digest(auth_data.password, self.password.encode()))
        # handled=False: aiosmtpd then answers 535 itself (handled=True would stay silent).
        return AuthResult(success=ok, handled=ok)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Store the parsed message, unless a failure is queued."""
        with self._lock:
            code = self._failures.pop(0) if self._failures else None
        if code is not None:
            return f"{code} {str(code)[0]}.3.0 Failure injected by the sandbox"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 OK: queued"

"""Email: the message (plain text and HTML) and two ways to send it, SMTP or Azure Communication Services."""

from __future__ import annotations

import html
import textwrap
import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from pat_watchdog.adapters.retry import Retryable, RetryPolicy, with_retries
from pat_watchdog.core.alerts import Alert
from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.text import one_line

_COLOUR = {"CRITICAL": "#c50f1f", "WARNING": "#bc4b09", "INFO": "#107c10"}


def plain_text(alert: Alert) -> str:
    width = max(len(k) for k, _ in alert.facts())
    lines = [f"{alert.level}: {alert.instance}: {alert.summary}", "", textwrap.fill(alert.message, 78), ""]
    lines += [f"{k + ':':<{width + 1}} {v}" for k, v in alert.facts()]
    lines += ["", "Next step:", textwrap.fill(alert.next_step, 78)]
    if alert.command:
        lines += ["", f"    {alert.command}"]
    lines += ["", f"Aggregator app in the Azure portal: {alert.portal_url}", "", "-- pat-watchdog"]
    return "\n".join(lines)


def html_body(alert: Alert) -> str:
    e = html.escape
    colour = _COLOUR.get(alert.level, "#444")
    rows = "".join(f"<tr><th style=\"text-align:left;padding:2px 12px 2px 0;color:#555\">{e(k)}</th>"
                   f"<td style=\"padding:2px 0\">{e(v)}</td></tr>" for k, v in alert.facts())
    command = (f"<pre style=\"background:#f3f3f3;padding:8px;white-space:pre-wrap\">{e(alert.command)}</pre>"
               if alert.command else "")
    return (
        "<!DOCTYPE html><html><body style=\"font-family:Segoe UI,Helvetica,Arial,sans-serif;font-size:14px\">"
        f"<div style=\"border-left:6px solid {colour};padding:8px 12px;margin-bottom:12px\">"
        f"<div style=\"color:{colour};font-size:18px;font-weight:bold\">{e(alert.level)}: {e(alert.instance)}</div>"
        f"<div style=\"font-weight:bold\">{e(alert.summary)}</div></div>"
        f"<p>{e(alert.message)}</p><table>{rows}</table>"
        f"<h3 style=\"font-size:15px\">Next step</h3><p>{e(alert.next_step)}</p>{command}"
        f"<p><a href=\"{e(alert.portal_url)}\">Open the Aggregator app in the Azure portal</a></p>"
        "<p style=\"color:#888\">pat-watchdog</p></body></html>")


def build_message(alert: Alert, sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = one_line(alert.subject)     # CR/LF from outside never reach a header
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.split("@")[-1])
    message.set_content(plain_text(alert))
    message.add_alternative(html_body(alert), subtype="html")
    return message


class SmtpChannel:
    """SMTP with STARTTLS by default (port 465: implicit TLS), login when a username is set."""

    name = "email"

    def __init__(self, settings, retry: RetryPolicy, sleep=time.sleep):
        self._s, self._retry, self._sleep = settings, retry, sleep

    def send(self, alert: Alert) -> None:
        message = build_message(alert, self._s.email_from, self._s.email_to)
        with_retries(lambda: self._attempt(message), system="SMTP", policy=self._retry, sleep=self._sleep)

    def _attempt(self, message: EmailMessage) -> None:
        """One delivery; 4xx answers and lost connections are worth another try, 5xx answers are not."""
        try:
            self._deliver(message)
        except smtplib.SMTPResponseException as error:
            if 400 <= error.smtp_code < 500:
                raise Retryable(f"SMTP {error.smtp_code}") from None
            raise ServiceError("SMTP", f"SMTP {error.smtp_code}") from None
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError) as error:
            raise Retryable(f"{type(error).__name__} contacting {self._s.smtp_host}") from None

    def _deliver(self, message: EmailMessage) -> None:
        s, context = self._s, ssl.create_default_context()  # trusts SSL_CERT_FILE when set
        timeout = self._retry.read_timeout
        if s.smtp_port == 465:
            client = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=timeout)
        with client:
            if s.smtp_port != 465 and s.smtp_starttls:
                client.starttls(context=context)
            if s.smtp_username:
                client.login(s.smtp_username, s.smtp_password or "")
            client.send_message(message)


class AcsChannel:
    """Azure Communication Services Email with the managed identity (no keys, no SMTP AUTH)."""

    name = "email"

    def __init__(self, settings, credential, retry: RetryPolicy):
        from azure.communication.email import EmailClient

        self._s, self._retry = settings, retry
        self._client = EmailClient(settings.acs_endpoint, credential, **retry.sdk_kwargs())

    def send(self, alert: Alert) -> None:
        from azure.core.exceptions import AzureError

        message = {"senderAddress": self._s.email_from,
                   "recipients": {"to": [{"address": a} for a in self._s.email_to]},
                   "content": {"subject": one_line(alert.subject), "plainText": plain_text(alert),
                               "html": html_body(alert)}}
        try:
            # The default poll interval is 30 s; the service's Retry-After, when sent, still wins.
            poller = self._client.begin_send(message, polling_interval=0.5)
            result = poller.result(timeout=self._retry.total)
        except (AzureError, socket.timeout) as error:
            raise ServiceError("Azure Communication Services", type(error).__name__) from None
        status = (result or {}).get("status")
        if status != "Succeeded":
            raise ServiceError("Azure Communication Services", f"send ended with status {status}")

"""The one leak assertion: no token value, whole or in part, in any output the product makes."""

from __future__ import annotations

import base64
import logging
from urllib.parse import quote

# Where a token legitimately travels: the Basic header to Azure DevOps, the ARM settings PUT
# (it is the setting), and Key Vault secret writes (it is the secret).
_DEVOPS_HOSTS = ("dev.azure.com", "visualstudio.com", "tfs.contoso.test")


# Every token list of every World of the session, for scrubbing failure reports (conftest).
TRACKED: list[list[str]] = []


def track(world) -> list[str]:
    """Add what the sandbox issued since (created PATs, Entra access and refresh tokens, device codes)
    to the world's secrets, in place, so every leak check and failure scrub covers them; return them."""
    known = set(world.tokens)
    sandbox = world.sandbox
    world.tokens.extend(s for s in [*sandbox.devops.pat_values(), *sandbox.entra.issued_secrets()] if s not in known)
    return world.tokens


def fp(value: str | None) -> str | None:
    """Compare tokens in assertions by fingerprint, so a failing assert never prints one."""
    from pat_watchdog.core.secret import fingerprint
    return fingerprint(value) if value else None


def scrub(text: str) -> str:
    """Replace every known token in `text` (a failure report) by its fingerprint."""
    for tokens in TRACKED:
        for token in tokens:
            if token in text:
                text = text.replace(token, f"<token {fp(token)}>")
    return text


def _forms(token: str) -> list[str]:
    if token.count(".") == 2 and token.startswith("eyJ"):   # a JWT: its header is the same in every token
        return [token, token.rsplit(".", 1)[1][:32], quote(token, safe="")]
    forms = [token, token[:16], token[-16:], quote(token, safe=""),
             base64.b64encode(b":" + token.encode()).decode(), base64.b64encode(token.encode()).decode()]
    if len(token) == 84:  # a new-format PAT ends in a fixed signature: also look for the end of its random part
        forms.append(token[36:52])
    return forms


def assert_no_leak(text: str | bytes, tokens: list[str], *, where: str) -> None:
    """Fail naming the place (never the token) when any form of a token appears in `text`."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for index, token in enumerate(tokens):
        for form in _forms(token):
            if form and form in text:
                at = text.find(form)
                context = text[max(0, at - 200):at].replace(form, "<token>")
                raise AssertionError(f"token #{index} (or part of it) leaked into {where}, after: "
                                     f"{scrub(context)!r}")


class LogTap(logging.Handler):
    """Collects every record as the Functions host would ship it: message, extras, traceback."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self.format(record) + " " + repr(getattr(record, "custom_dimensions", "")))

    def text(self) -> str:
        return "\n".join(self.records)


def sandbox_outputs(sandbox):
    """(place, text) for everything the sandbox received outside the token's legitimate paths."""
    for rec in sandbox.requests:
        host = rec.host.lower()
        headers = {k: v for k, v in rec.headers.items()
                   if not (k.lower() == "authorization" and any(h in host for h in _DEVOPS_HOSTS))}
        # The webhook's own URL carries its signature: that is where it legitimately goes.
        path = rec.path.split("?")[0] if host.endswith(".logic.azure.com") else rec.path
        yield f"request headers {rec.method} {host}", repr(headers) + path
        legit_body = (host.startswith("management.") and rec.method == "PUT" and "/config/appsettings" in rec.path) \
            or (".vault." in host and rec.method == "PUT" and "/secrets/" in rec.path) \
            or (host == "login.microsoftonline.com" and rec.method == "POST" and "/oauth2/" in rec.path)
        if not legit_body:
            yield f"request body {rec.method} {host}{rec.path.split('?')[0]}", rec.body
    for message in sandbox.smtp.messages:
        yield "email", message.as_string()

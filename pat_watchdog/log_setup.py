"""Logging that never carries a secret: SDK and HTTP loggers quiet, and signatures masked.

urllib3 logs every request line at DEBUG, query string included: a Teams Workflows URL carries
its `sig` there. azure-core logs each request at INFO, and the Functions worker's root logger is
INFO. So both stay at WARNING unless asked (-v), and a filter masks signatures on the loggers
that write URLs, whatever their level.
"""

from __future__ import annotations

import logging
import re

QUIET = ("azure", "urllib3", "msal", "requests")
URL_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "azure.core.pipeline.policies.http_logging_policy",
               "pat_watchdog")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:sig|code|key|token|password|client_secret)=)[^&\s'\"]+")


def redact(text: str) -> str:
    return _SECRET_QUERY.sub(r"\1REDACTED", text)


class RedactSecrets(logging.Filter):
    """Masks secret query parameters in a record's message (formatted once, here)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


_FILTER = RedactSecrets()


def configure(*, verbose: bool = False) -> None:
    """Idempotent: quiet SDK loggers (unless verbose, or their level was set on purpose, as a test's
    DEBUG tap does) and mask secrets on every logger that writes URLs."""
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    if not verbose:
        for name in QUIET:
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.WARNING)

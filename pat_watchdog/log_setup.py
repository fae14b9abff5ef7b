"""Logging that never carries a secret: SDK and HTTP loggers quiet, and signatures masked.

urllib3 logs every request line at DEBUG, query string included: a Teams Workflows URL carries
its `sig` there. azure-core logs each request at INFO, and the Functions worker's root logger is
INFO. So both stay at WARNING unless asked (-v), and a filter masks signatures on the loggers
that write URLs, whatever their level.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from typing import Iterator, TextIO

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


@contextmanager
def command_line(stream: TextIO, *, verbose: bool) -> Iterator[None]:
    """Logging for one command of the console script: records go to `stream` (stderr; never stdout,
    which `--json` keeps one JSON document), INFO and up with -v, else WARNING and up. Without -v
    the Azure SDK's own warnings stay out too: they repeat what the report says. Everything is put
    back afterwards, so commands run one after another in a process do not stack handlers."""
    configure(verbose=verbose)
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_FILTER)    # a logger's own filter misses what its children log; a handler's does not
    root, azure = logging.getLogger(), logging.getLogger("azure")
    root_level, azure_level = root.level, azure.level
    root.setLevel(min(root_level, handler.level))
    if not verbose and azure_level in (logging.NOTSET, logging.WARNING):
        azure.setLevel(logging.ERROR)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(root_level)
        azure.setLevel(azure_level)

"""One error hierarchy; transient vs permanent is decided here and nowhere else."""

from __future__ import annotations


class WatchdogError(Exception):
    """Base of every error the watchdog raises on purpose. Messages never hold a token."""


class ConfigError(WatchdogError):
    """One or more settings are missing or malformed; lists every problem at once."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))


class ServiceError(WatchdogError):
    """An outside system answered with an error or not at all."""

    def __init__(self, system: str, message: str, *, status: int | None = None):
        self.system = system
        self.status = status
        super().__init__(f"{system}: {message}")


class UnexpectedAnswer(ServiceError):
    """An answer the watchdog will not follow or cannot read (docs/reference.md, "Answers and deadlines"):
    a redirect, a nextLink to another host or one already read, a listing past its page limit, a body of
    an unexpected shape. Never retried: asking again gets the same answer."""


class EmptySecret(WatchdogError):
    """A secret version that holds no token (empty, or white space only: `--file` with a newline)."""


def is_transient_status(status: int | None) -> bool:
    """The one retry classifier: throttling, timeouts and server errors are worth retrying."""
    return status is None or status in (408, 429) or status >= 500

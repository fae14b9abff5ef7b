"""Alert channels: each a small adapter with `name` and `send(alert)`; one failing never stops another."""

from __future__ import annotations

from typing import Protocol

from pat_watchdog.alerts import Alert


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver or raise ServiceError; retries are the channel's own, bounded."""

"""Microsoft Teams through a Workflows webhook ("When a Teams webhook request is received")."""

from __future__ import annotations

import requests

from pat_watchdog.alerts import Alert
from pat_watchdog.errors import ServiceError
from pat_watchdog.http import RetryPolicy, send
from pat_watchdog.notify.card import envelope


class TeamsChannel:
    name = "teams"

    def __init__(self, webhook_url: str, session: requests.Session, retry: RetryPolicy):
        self._url, self._session, self._retry = webhook_url, session, retry

    def send(self, alert: Alert) -> None:
        # 2xx is success (Workflows answers 202: accepted, not yet shown); 429/5xx are retried.
        response = send(self._session, "POST", self._url, system="Teams", policy=self._retry,
                        json=envelope(alert))
        if not 200 <= response.status_code < 300:
            raise ServiceError("Teams", f"the webhook answered HTTP {response.status_code}",
                               status=response.status_code)

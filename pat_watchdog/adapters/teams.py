"""Microsoft Teams through a Workflows webhook ("When a Teams webhook request is received").

The message is an Adaptive Card 1.4 (Workflows rejects newer) in the Workflows envelope.
"""

from __future__ import annotations

import json

import requests

from pat_watchdog.adapters.retry import RetryPolicy, send
from pat_watchdog.core.alerts import Alert
from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.text import markdown_escape

MAX_BYTES = 28 * 1024  # Teams Workflows limit (docs/reference.md, "Alerts")
_STYLE = {"CRITICAL": ("attention", "Attention"), "WARNING": ("warning", "Warning"), "INFO": ("good", "Good")}
_ICON = {"CRITICAL": "\u26d4", "WARNING": "\u26a0\ufe0f", "INFO": "\u2705"}


def _text(text: str, **style) -> dict:
    # Teams renders TextBlock text as markdown: every text is escaped, ours and what came from
    # outside alike (a tag value or an error body must not become a link in an official alert).
    return {"type": "TextBlock", "text": markdown_escape(text), "wrap": True, **style}


def card(alert: Alert) -> dict:
    """The card itself: level by colour and words, the facts, the next step, a portal link."""
    container, colour = _STYLE.get(alert.level, ("default", "Default"))
    body = [
        {"type": "Container", "style": container, "bleed": True, "items": [
            _text(f"{_ICON.get(alert.level, '')} {alert.level}: {alert.instance}", size="Large",
                  weight="Bolder", color=colour),
            _text(alert.summary, weight="Bolder"),
        ]},
        _text(alert.message, spacing="Medium"),
        {"type": "FactSet", "facts": [{"title": k, "value": markdown_escape(v)} for k, v in alert.facts()]},
        _text("Next step", weight="Bolder", spacing="Medium"),
        _text(alert.next_step),
    ]
    if alert.command:
        body.append(_text(alert.command, fontType="Monospace", size="Small"))
    return {
        "type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4", "msteams": {"width": "Full"}, "body": body,
        "actions": [{"type": "Action.OpenUrl", "title": "Open the Aggregator app in the Azure portal",
                     "url": alert.portal_url}],
    }


def envelope(alert: Alert) -> dict:
    """The Workflows webhook body; shortened to stay under the size limit."""
    message = {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card(alert)}]}
    if len(json.dumps(message).encode()) > MAX_BYTES:
        body = message["attachments"][0]["content"]["body"]
        body[1]["text"] = body[1]["text"][:2000] + " (shortened)"
    return message


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

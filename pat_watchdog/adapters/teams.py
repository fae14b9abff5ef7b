"""Microsoft Teams through a Workflows webhook ("When a Teams webhook request is received").

The message is an Adaptive Card 1.4 (Workflows rejects newer) in the Workflows envelope.
"""

from __future__ import annotations

import json
from dataclasses import replace

import requests

from pat_watchdog.adapters.retry import RetryPolicy, send
from pat_watchdog.core.alerts import Alert
from pat_watchdog.core.errors import ServiceError

MAX_BYTES = 28 * 1024  # Teams Workflows limit (docs/reference.md, "Alerts")
_STYLE = {"CRITICAL": ("attention", "Attention"), "WARNING": ("warning", "Warning"), "INFO": ("good", "Good")}
_ICON = {"CRITICAL": "\u26d4", "WARNING": "\u26a0\ufe0f", "INFO": "\u2705"}
_SHORTENED = 2000

# Every text of the card is a TextRun in a RichTextBlock, never a TextBlock or a FactSet: Teams reads
# TextBlock text and fact titles and values as markdown ("Format cards in Teams", Microsoft Learn),
# a TextRun's text never ("Text to display. Markdown is not supported.", Adaptive Cards schema,
# TextRun). So nothing is escaped: a backslash escape would show as typed on Teams mobile clients
# (microsoft/AdaptiveCards #5590 and PR #7474; microsoft/Teams-AdaptiveCards-Mobile #58), and a
# command copied from the card must run exactly as printed.
def _text(text: str, block: dict | None = None, **run) -> dict:
    return {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": text, **run}], **(block or {})}


def _fact(title: str, value: str) -> dict:
    """One fact as a row of two columns: what a FactSet shows, without its markdown."""
    return {"type": "ColumnSet", "spacing": "None", "columns": [
        {"type": "Column", "width": "140px", "items": [_text(title, weight="Bolder")]},
        {"type": "Column", "width": "stretch", "items": [_text(value)]}]}


def card(alert: Alert) -> dict:
    """The card itself: level by colour and words, the facts, the next step, a portal link."""
    container, colour = _STYLE.get(alert.level, ("default", "Default"))
    body = [
        {"type": "Container", "style": container, "bleed": True, "items": [
            _text(f"{_ICON.get(alert.level, '')} {alert.level}: {alert.instance}", size="Large", weight="Bolder",
                  color=colour),
            _text(alert.summary, weight="Bolder"),
        ]},
        _text(alert.message, {"spacing": "Medium"}),
        {"type": "Container", "spacing": "Medium", "items": [_fact(k, v) for k, v in alert.facts()]},
        _text("Next step", {"spacing": "Medium"}, weight="Bolder"),
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


def texts(node) -> list[str]:
    """Every text a card (or any part of it) shows, in order: the texts of its TextRuns."""
    if isinstance(node, list):
        return [text for item in node for text in texts(item)]
    if not isinstance(node, dict):
        return []
    own = [node["text"]] if node.get("type") == "TextRun" else []
    return own + [text for key, value in node.items() if key != "text" for text in texts(value)]


def _message(alert: Alert) -> dict:
    return {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card(alert)}]}


def envelope(alert: Alert) -> dict:
    """The Workflows webhook body; an alert whose message (an error body, say) would pass the size
    limit is sent with the message shortened."""
    message = _message(alert)
    if len(json.dumps(message).encode()) > MAX_BYTES:
        message = _message(replace(alert, message=alert.message[:_SHORTENED] + " (shortened)"))
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

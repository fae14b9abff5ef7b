"""Alert sinks: Teams Workflows webhook and Azure Communication Services Email."""

from __future__ import annotations

import re
import secrets
import threading
import uuid
from typing import Any

from .identity import Identity
from .web import Request, Response, error, json_response

MAX_TEAMS_BODY = 28 * 1024
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
ACS_AUDIENCE = "https://communication.azure.com"


class Teams:
    """Workflows ("When a Teams webhook request is received") endpoints, one per name."""

    host = "prod-00.westeurope.logic.azure.com"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hooks: dict[str, tuple[str, str]] = {}  # name -> (workflow id, sig)
        self._by_id: dict[str, list[dict]] = {}
        self.received: list[dict] = []

    def url(self, name: str = "alerts") -> str:
        """The webhook URL for a channel name (stable per name)."""
        with self._lock:
            if name not in self._hooks:
                self._hooks[name] = (uuid.uuid4().hex, secrets.token_urlsafe(32)[:43])
                self._by_id[self._hooks[name][0]] = []
            workflow, sig = self._hooks[name]
        return (f"https://{self.host}:443/workflows/{workflow}/triggers/manual/paths/invoke"
                f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={sig}")

    def received_for(self, name: str) -> list[dict]:
        """Bodies posted to one named webhook, in order."""
        with self._lock:
            workflow = self._hooks.get(name, ("", ""))[0]
            return list(self._by_id.get(workflow, []))

    def handle(self, request: Request) -> Response:
        """POST /workflows/<id>/triggers/manual/paths/invoke."""
        # No spec file: payload rules from the Teams Workflows docs.
        match = re.match(r"^/workflows/([0-9a-f]{32})/triggers/manual/paths/invoke/?$", request.path)
        with self._lock:
            hook = next((h for h in self._hooks.values() if match and h[0] == match.group(1)), None)
        if hook is None:
            return error(404, "WorkflowNotFound", f"The workflow '{request.path}' could not be found.")
        if not secrets.compare_digest(request.query.get("sig", ""), hook[1]):
            return error(401, "DirectApiInvalidAuthorizationSignature",
                         "The provided authorization signature is not valid.")
        if request.method != "POST":
            return error(405, "MethodNotAllowed", "The trigger accepts POST only.")
        if len(request.body) > MAX_TEAMS_BODY:
            return error(413, "RequestEntityTooLarge",
                         f"The request body is {len(request.body)} bytes; the limit is {MAX_TEAMS_BODY}.")
        problem = card_problem(request.json())
        if problem:
            return error(400, "InvalidRequestContent", problem)
        with self._lock:
            self.received.append(request.json())
            self._by_id[hook[0]].append(request.json())
        return Response(202)


def card_problem(payload: Any) -> str | None:
    """Why a payload is not a Teams message with Adaptive Card attachments (None: fine)."""
    if not isinstance(payload, dict):
        return "The request body must be a JSON object."
    if payload.get("type") != "message":
        return "The message 'type' must be 'message'."
    attachments = payload.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return "'attachments' must be a non-empty list."
    for index, attachment in enumerate(attachments):
        if not isinstance(attachment, dict) or attachment.get("contentType") != CARD_TYPE:
            return f"attachments[{index}].contentType must be '{CARD_TYPE}'."
        content = attachment.get("content")
        if not isinstance(content, dict) or content.get("type") != "AdaptiveCard":
            return f"attachments[{index}].content must be an object of type 'AdaptiveCard'."
    return None


class Acs:
    """Azure Communication Services Email: POST /emails:send, GET /emails/operations/<id>."""

    def __init__(self, identity: Identity) -> None:
        self._identity = identity
        self._lock = threading.Lock()
        self._operations: set[str] = set()
        self.messages: list[dict] = []

    def url(self, name: str = "contoso-acs") -> str:
        """The ACS endpoint of a resource name."""
        return f"https://{name}.europe.communication.azure.com"

    def handle(self, request: Request) -> Response:
        """Authenticate, then send or report an operation."""
        # No spec file: shapes from the ACS Email REST docs and azure-communication-email 1.1.
        if self._identity.audience(request) != ACS_AUDIENCE:
            return error(401, "Denied", "Denied by the resource provider.")
        if not request.query.get("api-version"):
            return error(400, "MissingApiVersion", "The api-version query parameter is required.")
        if request.method == "POST" and request.path == "/emails:send":
            return self._send(request)
        match = re.match(r"^/emails/operations/([^/]+)$", request.path)
        if request.method == "GET" and match:
            with self._lock:
                known = match.group(1) in self._operations
            if not known:
                return error(404, "NotFound", "The operation was not found.")
            return json_response(200, {"id": match.group(1), "status": "Succeeded", "error": None})
        return error(404, "NotFound", f"No route for {request.method} {request.path}.")

    def _send(self, request: Request) -> Response:
        """202 + Operation-Location; the SDK's poller then GETs the operation."""
        message = request.json()
        problem = email_problem(message)
        if problem:
            return error(400, "BadRequest", problem)
        operation = request.header("Operation-Id") or str(uuid.uuid4())
        with self._lock:
            self._operations.add(operation)
            self.messages.append(message)
        # The service also sends Retry-After (30 s); the SDK would then wait that long
        # whatever polling_interval says, so the sandbox leaves it out.
        location = (f"https://{request.host}/emails/operations/{operation}"
                    f"?api-version={request.query['api-version']}")
        return json_response(202, {"id": operation, "status": "Running", "error": None},
                             {"Operation-Location": location})


def email_problem(message: Any) -> str | None:
    """Why an ACS email message is malformed (None: fine)."""
    if not isinstance(message, dict) or not isinstance(message.get("senderAddress"), str):
        return "senderAddress is required."
    recipients = message.get("recipients")
    to = recipients.get("to") if isinstance(recipients, dict) else None
    if not isinstance(to, list) or not to or not all(
            isinstance(r, dict) and isinstance(r.get("address"), str) for r in to):
        return "recipients.to must list at least one {address}."
    content = message.get("content")
    if not isinstance(content, dict) or not isinstance(content.get("subject"), str):
        return "content.subject is required."
    if not (content.get("plainText") or content.get("html")):
        return "content needs plainText or html."
    return None

"""Azure DevOps service hook subscriptions: how work-item events reach Aggregator's rules.

REST shapes: MicrosoftDocs/vsts-rest-api-specs specification/hooks/7.1/serviceHooks.json (Subscription,
SubscriptionStatus; Subscriptions_List / _Get / _Replace) and its httpExamples (tests/specs/
devops__ListSubscriptions.json, devops__GetSubscription.json, devops__ReplaceSubscription.json). The
webHooks consumer's inputs and their validation come from httpExamples/consumers/GET__hooks_consumers.json
(tests/specs/devops__ListConsumers.json).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import urlsplit

from .devops_shapes import vss_error
from .web import Request, Response, json_response

# SubscriptionStatus (serviceHooks.json, Subscription.status).
STATUSES = ("enabled", "onProbation", "disabledByUser", "disabledBySystem", "disabledByInactiveIdentity")
_SYSTEM_STATUSES = ("onProbation", "disabledBySystem", "disabledByInactiveIdentity")
# Events of the "tfs" publisher (httpExamples/eventtypes, plus workitem.deleted/restored from Microsoft
# Learn "Service hooks events", which Aggregator's rules also subscribe to).
EVENT_TYPES = ("build.complete", "message.posted", "git.pullrequest.created", "git.pullrequest.updated",
               "git.push", "tfvc.checkin", "workitem.created", "workitem.commented", "workitem.updated",
               "workitem.deleted", "workitem.restored")
# The service's own identity, which puts subscriptions on probation and disables them (the examples
# show such subscriptions modified by an identity other than their creator).
SYSTEM_IDENTITY = "31394b6e-666e-4ca8-8f92-4cc712caf9e2"
MASK = "********"  # how confidential consumer inputs are returned (the list example shows it)
# webHooks / httpRequest inputs (consumers example): id -> (required, pattern, confidential).
_NOT_BLANK = re.compile(r"^\S+$")
WEBHOOK_INPUTS: dict[str, tuple[bool, re.Pattern | None, bool]] = {
    "url": (True, None, False),
    "httpHeaders": (False, re.compile(r"^([\S]+[\s]*:[\s]*[\S]+[\s]*[\r\n\f]+)*?([\S]+[\s]*:[\s]*[\S]+)+$"), False),
    "basicAuthUsername": (False, _NOT_BLANK, False),
    "basicAuthPassword": (False, _NOT_BLANK, True),
    "resourceDetailsToSend": (False, None, False),
    "messagesToSend": (False, None, False),
    "detailedMessagesToSend": (False, None, False),
}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class InvalidSubscription(ValueError):
    """A replace body Azure DevOps refuses with 400."""


@dataclass
class Subscription:
    """One service hook subscription (webHooks consumer, tfs publisher)."""

    id: str
    event_type: str
    publisher_inputs: dict[str, str]
    consumer_inputs: dict[str, str]
    status: str
    created_by: str
    created: datetime
    modified_by: str
    modified: datetime
    resource_version: str | None = "1.0"
    probation_retries: int = 0
    event_description: str = ""  # the service describes filters here; empty for "any work item"


def hook_date(moment: datetime) -> str:
    """Dates as the examples show them: milliseconds without trailing zeros ("2014-05-22T21:40:27.12Z")."""
    moment = moment.astimezone(timezone.utc)
    millis = f"{moment.microsecond // 1000:03d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{millis}" if millis else "") + "Z"


def subscription_json(sub: Subscription, base_url: str, *, masked: bool = True) -> dict[str, Any]:
    """A Subscription with the keys of the list example's items (status and probationRetries always)."""
    consumer = {k: (MASK if masked and _confidential(k) else v) for k, v in sub.consumer_inputs.items()}
    host = urlsplit(sub.consumer_inputs.get("url", "")).hostname or ""
    return {
        "id": sub.id,
        "url": f"{base_url}/_apis/hooks/subscriptions/{sub.id}",
        "status": sub.status,
        "publisherId": "tfs",
        "eventType": sub.event_type,
        "resourceVersion": sub.resource_version,
        "eventDescription": sub.event_description,
        "consumerId": "webHooks",
        "consumerActionId": "httpRequest",
        "actionDescription": f"To host {host}" if host else "",  # as in the replace example
        "probationRetries": sub.probation_retries,
        "createdBy": {"id": sub.created_by},
        "createdDate": hook_date(sub.created),
        "modifiedBy": {"id": sub.modified_by},
        "modifiedDate": hook_date(sub.modified),
        "publisherInputs": dict(sub.publisher_inputs),
        "consumerInputs": consumer,
    }


class ServiceHooks:
    """Subscriptions per organization."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._subs: dict[str, dict[str, Subscription]] = {}  # org -> id -> subscription

    def add(self, org: str, host_id: str, *, url: str, event_type: str, project_id: str, status: str,
            created_by: str, consumer_inputs: dict[str, str] | None = None,
            publisher_inputs: dict[str, str] | None = None) -> str:
        """Create a subscription from the test side (as aggregator-cli's map.rule does); returns its id."""
        _check_status(status)
        inputs = {"areaPath": "", "changedFields": "", "hostId": host_id, "projectId": project_id,
                  "tfsSubscriptionId": str(uuid.uuid4()), "workItemType": "", **(publisher_inputs or {})}
        consumer = {"url": url, **(consumer_inputs or {})}
        _check_body({"publisherId": "tfs", "eventType": event_type, "consumerId": "webHooks",
                     "consumerActionId": "httpRequest", "publisherInputs": inputs, "consumerInputs": consumer})
        now = self._clock()
        sub = Subscription(str(uuid.uuid4()), event_type, inputs, consumer, status, created_by, now,
                           created_by, now)
        self._apply_status(sub, status, SYSTEM_IDENTITY if status in _SYSTEM_STATUSES else created_by)
        self._subs.setdefault(org, {})[sub.id] = sub
        return sub.id

    def set_status(self, org: str, sub_id: str, status: str) -> None:
        """What Azure DevOps (or a user in the portal) does to a subscription's status."""
        _check_status(status)
        sub = self._subs[org][sub_id.lower()]
        self._apply_status(sub, status, SYSTEM_IDENTITY if status in _SYSTEM_STATUSES else sub.created_by)
        sub.modified = self._clock()

    def all(self, org: str) -> list[Subscription]:
        """Every subscription of the organization, in creation order."""
        return list(self._subs.get(org, {}).values())

    def get(self, org: str, sub_id: str) -> Subscription | None:
        return self._subs.get(org, {}).get(sub_id.lower())

    def replace(self, org: str, sub_id: str, body: Any, user_id: str) -> Subscription:
        """PUT: replace what a client may change; read-only fields of the body are ignored."""
        sub = self._subs[org][sub_id.lower()]
        _check_body(body)
        if body.get("id") not in (None, "") and str(body["id"]).lower() != sub.id:
            raise InvalidSubscription(f"The subscription id in the body ({body['id']}) does not match the URL.")
        status = body.get("status") or sub.status
        _check_status(status)
        # A confidential input sent back masked keeps its value (the UI and clients round-trip the mask).
        consumer = {k: (sub.consumer_inputs.get(k, v) if v == MASK and _confidential(k) else v)
                    for k, v in body["consumerInputs"].items()}
        sub.event_type = body["eventType"]
        sub.publisher_inputs = {**{k: v for k, v in sub.publisher_inputs.items()
                                   if k in ("hostId", "tfsSubscriptionId")}, **(body.get("publisherInputs") or {})}
        sub.consumer_inputs = consumer
        sub.resource_version = body.get("resourceVersion", sub.resource_version)
        self._apply_status(sub, status, user_id)
        sub.modified_by, sub.modified = user_id, self._clock()
        return sub

    @staticmethod
    def _apply_status(sub: Subscription, status: str, by: str) -> None:
        """Probation counts retries; any other status clears them."""
        if status == "onProbation":
            sub.probation_retries = max(sub.probation_retries, 1)
        else:
            sub.probation_retries = 0
        sub.status, sub.modified_by = status, by

    def snapshot(self, org: str, base_url: str) -> list[dict[str, Any]]:
        """The test-side view: the API's shape, confidential inputs unmasked."""
        return [subscription_json(s, base_url, masked=False) for s in self.all(org)]


def respond_subscriptions(hooks: ServiceHooks, request: Request, org: str, user_id: str, sub_id: str | None,
                          base_url: str) -> Response:
    """GET list / GET one / PUT one (spec: devops__ListSubscriptions.json, devops__GetSubscription.json,
    devops__ReplaceSubscription.json); the caller has authenticated the PAT and checked its scopes."""
    if sub_id is None:
        wanted = {k: request.query.get(k.lower()) for k in ("publisherId", "eventType", "consumerId",
                                                            "consumerActionId")}
        items = [subscription_json(s, base_url) for s in hooks.all(org)]
        items = [i for i in items if all(v in (None, "") or i[k] == v for k, v in wanted.items())]
        return json_response(200, {"count": len(items), "value": items})
    sub = hooks.get(org, sub_id)
    if sub is None:
        # The service's wording for a missing subscription is not documented.
        return json_response(404, vss_error(f"Subscription {sub_id} does not exist.", "SubscriptionNotFoundException"))
    if request.method == "PUT":
        try:
            sub = hooks.replace(org, sub_id, request.json(), user_id)
        except InvalidSubscription as exc:
            return json_response(400, vss_error(str(exc), "ServiceHookException"))
    return json_response(200, subscription_json(sub, base_url))


def _confidential(input_id: str) -> bool:
    return WEBHOOK_INPUTS.get(input_id, (False, None, False))[2]


def _check_status(status: Any) -> None:
    if status not in STATUSES:
        raise InvalidSubscription(f"Invalid subscription status '{status}': expected one of {', '.join(STATUSES)}.")


def _check_body(body: Any) -> None:
    """The validation the service applies to a subscription (publisher, event, consumer and its inputs)."""
    if not isinstance(body, dict):
        raise InvalidSubscription("The request body must be a subscription object.")
    if body.get("publisherId") != "tfs":
        raise InvalidSubscription(f"Unknown publisher '{body.get('publisherId')}'.")
    if body.get("eventType") not in EVENT_TYPES:
        raise InvalidSubscription(f"Publisher 'tfs' does not support event type '{body.get('eventType')}'.")
    if (body.get("consumerId"), body.get("consumerActionId")) != ("webHooks", "httpRequest"):
        raise InvalidSubscription(f"Unknown consumer action '{body.get('consumerId')}/{body.get('consumerActionId')}'.")
    publisher, consumer = body.get("publisherInputs") or {}, body.get("consumerInputs")
    if not isinstance(publisher, dict) or not isinstance(consumer, dict) or \
            not all(isinstance(v, str) for v in [*publisher.values(), *consumer.values()]):
        raise InvalidSubscription("publisherInputs and consumerInputs must map input ids to strings.")
    for key in ("projectId", "teamId"):
        if publisher.get(key) and not _GUID.match(publisher[key]):
            raise InvalidSubscription(f"Publisher input '{key}' must be a GUID.")
    for key, (required, pattern, _) in WEBHOOK_INPUTS.items():
        value = consumer.get(key)
        if required and not value:
            raise InvalidSubscription(f"Consumer input '{key}' is required.")
        if value and pattern is not None and value != MASK and not pattern.match(value):
            raise InvalidSubscription(f"Consumer input '{key}' is not valid.")
    url = urlsplit(consumer["url"])
    if url.scheme not in ("http", "https") or not url.hostname:
        raise InvalidSubscription("Consumer input 'url' must be an absolute URI.")

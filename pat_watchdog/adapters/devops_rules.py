"""Azure DevOps beyond the token: the service hook subscriptions that call Aggregator's rules, and
the "Bypass rules on work item updates" permission of impersonating rules (docs/reference.md, "Reason codes").

REST: hooks/subscriptions List, Get, Replace (vsts-rest-api-specs hooks 7.1, tests/specs/
devops__ListSubscriptions.json, devops__ReplaceSubscription.json); securitynamespaces Query and
permissions HasPermissions (security 7.1, devops__GetSecurityNamespace.json, devops__HasPermissions.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import requests

from pat_watchdog.adapters.devops import _headers, service_error_text
from pat_watchdog.adapters.retry import RetryPolicy, send
from pat_watchdog.core.errors import ServiceError
from pat_watchdog.core.secret import Token

API = "api-version=7.1"
# The Project security namespace (Microsoft Learn, "Security namespace and permission reference").
PROJECT_NAMESPACE = "52d39943-cb85-4d7f-8fa8-c6baac873819"
BYPASS_RULES = "BYPASS_RULES"


@dataclass(frozen=True)
class Answer:
    """A JSON answer, or why there is none: `denied` (401/403: this source is not available to the
    token, not a verdict) or `failed` (an outage)."""

    value: object = None
    denied: str | None = None
    failed: str | None = None


class DevOpsRules:
    """One organization's hooks and permissions, asked with an Aggregator token."""

    def __init__(self, session: requests.Session, org_url: str, retry: RetryPolicy):
        self.session, self.org_url, self.retry = session, org_url.rstrip("/"), retry

    def _call(self, method: str, path: str, token: Token, **kwargs) -> Answer:
        try:
            response = send(self.session, method, f"{self.org_url}/_apis/{path}", system="Azure DevOps",
                            policy=self.retry, headers=_headers(token), **kwargs)
        except ServiceError as error:
            return Answer(failed=str(error))
        if response.status_code in (401, 403):
            return Answer(denied=f"HTTP {response.status_code}: {service_error_text(response) or 'not allowed'}")
        if not 200 <= response.status_code < 300 or "json" not in response.headers.get("Content-Type", ""):
            return Answer(failed=f"HTTP {response.status_code} from {path.split('?')[0]}")
        try:
            return Answer(response.json())
        except ValueError:
            return Answer(failed=f"a body that is not JSON from {path.split('?')[0]}")

    def subscriptions(self, token: Token) -> Answer:
        """Every service hook subscription of the organization (one call; the API has no paging)."""
        answer = self._call("GET", f"hooks/subscriptions?{API}", token)
        if answer.value is None:
            return answer
        found = answer.value.get("value") if isinstance(answer.value, dict) else None
        if not isinstance(found, list) or not all(_subscription_shaped(s) for s in found):
            return Answer(failed="hooks/subscriptions answered in an unexpected shape")
        return Answer(tuple(found))

    def subscription(self, token: Token, subscription_id: str) -> Answer:
        return self._call("GET", f"hooks/subscriptions/{quote(subscription_id)}?{API}", token)

    def replace(self, token: Token, subscription: dict) -> Answer:
        return self._call("PUT", f"hooks/subscriptions/{quote(subscription['id'])}?{API}", token, json=subscription)

    def bypass_bit(self, token: Token) -> Answer:
        """BYPASS_RULES' bit in the Project namespace, read from the service (never hard-coded)."""
        answer = self._call("GET", f"securitynamespaces/{PROJECT_NAMESPACE}?{API}", token)
        if answer.value is None:
            return answer
        namespaces = answer.value.get("value", [answer.value]) if isinstance(answer.value, dict) else answer.value
        for namespace in namespaces if isinstance(namespaces, list) else ():
            actions = namespace.get("actions") if isinstance(namespace, dict) else None
            for action in actions if isinstance(actions, list) else ():
                bit = action.get("bit") if isinstance(action, dict) else None
                if action.get("name") == BYPASS_RULES and isinstance(bit, int) and not isinstance(bit, bool):
                    return Answer(bit)
        return Answer(failed="the Project security namespace has no BYPASS_RULES action")

    def may_bypass_rules(self, token: Token, bit: int, project_id: str) -> Answer:
        """Whether the token's user holds "Bypass rules on work item updates" in the project."""
        security = quote(f"$PROJECT:vstfs:///Classification/TeamProject/{project_id}", safe="")
        answer = self._call("GET", f"permissions/{PROJECT_NAMESPACE}/{bit}?tokens={security}&{API}", token)
        if answer.value is None:
            return answer
        values = answer.value.get("value") if isinstance(answer.value, dict) else None
        return Answer(bool(values and values[0] is True))


def _subscription_shaped(subscription) -> bool:
    """A subscription as hooks.py reads it: an object whose inputs, when present, are objects."""
    return isinstance(subscription, dict) and all(
        isinstance(subscription.get(key) or {}, dict) for key in ("consumerInputs", "publisherInputs"))

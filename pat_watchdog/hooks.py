"""Rules keep firing (docs/reference.md, "Reason codes"): the service hook subscriptions that call this
instance's rules,
"Bypass rules on work item updates" for its impersonating rules, and re-enabling what Azure DevOps
disabled while the token was broken."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from pat_watchdog.core import reasons as R
from pat_watchdog.core.model import Action, ActionKind, ActionOutcome, Note, SubscriptionView
from pat_watchdog.core.secret import Token
from pat_watchdog.core.subscriptions import TO_REENABLE
from pat_watchdog.ports import Ports

log = logging.getLogger(__name__)


def rule_of(url: str) -> str:
    """`https://<host>/api/<rule>[?...]` -> `<rule>` (aggregator-cli maps rules to /api/<rule>)."""
    path = urlsplit(url).path.rstrip("/")
    return path.rsplit("/", 1)[-1] if "/api/" in path else path


def impersonating(settings: dict[str, str], rule: str) -> bool:
    """Whether a rule saves work items bypassing rules, as Aggregator's runtime reads it. aggregator-cli mirrors
    a rule file's `.impersonate=onBehalfOfInitiator` in `AzureWebJobs.<rule>.Impersonate` (value
    `onBehalfOfInitiator`, `false` when off) and `.bypassrules=true` in `AzureWebJobs.<rule>.BypassRules`
    (`true`); the runtime compares both case-insensitively (aggregator-cli src/aggregator-shared/
    AggregatorConfiguration.cs lines 73-80 and 164-165), and .NET configuration keys are case-insensitive."""
    wanted = {f"azurewebjobs.{rule}.impersonate".lower(): "onbehalfofinitiator",
              f"azurewebjobs.{rule}.bypassrules".lower(): "true"}
    return any(wanted.get(key.lower()) == str(value).strip().lower() for key, value in settings.items())


def observe_hooks(app, settings: dict[str, str], token: Token, ports: Ports) -> tuple[dict, list[Note]]:
    """Snapshot fields (this instance's subscriptions, what impersonating rules lack) and notes. One listing
    per organization and run (every instance of it shares the answer); one site GET unless discovery had it."""
    listing = ports.once.get("hooks/subscriptions", lambda: ports.rules.subscriptions(token))
    if listing.value is None:
        return {}, [Note(R.SUBSCRIPTIONS_UNAVAILABLE.name, f"service hook subscriptions not read: "
                         f"{listing.denied or listing.failed}")]
    hosts = set(ports.apps.host_names(app))
    mine = []
    for sub in listing.value:
        url = ((sub.get("consumerInputs") or {}).get("url")) or ""
        if (urlsplit(url).hostname or "").lower() in hosts:
            mine.append(SubscriptionView(str(sub.get("id")), rule_of(url), str(sub.get("eventType") or ""),
                                         (sub.get("publisherInputs") or {}).get("projectId"),
                                         str(sub.get("status") or "enabled")))
    projects = impersonated_projects(mine, settings)
    missing, unavailable = lacks_bypass(projects, token, ports) if projects else ([], None)
    notes = [Note(R.BYPASS_RULES_UNAVAILABLE.name, f"\"Bypass rules\" not checked: {unavailable}")] \
        if unavailable else []
    return {"subscriptions": tuple(mine), "bypass_missing": tuple(missing)}, notes


def impersonated_projects(subs, settings: dict[str, str]) -> list[tuple[str, str]]:
    """(rule, project) of every subscription that calls an impersonating rule of this instance."""
    return sorted({(s.rule, s.project_id) for s in subs if s.project_id and impersonating(settings, s.rule)})


def lacks_bypass(projects: list[tuple[str, str]], token: Token, ports: Ports) -> tuple[list, str | None]:
    """(rule, project) pairs whose project denies the token's user "Bypass rules", or why it could not be told."""
    bit = ports.once.get("bypass-bit", lambda: ports.rules.bypass_bit(token))
    if bit.value is None:
        return [], bit.denied or bit.failed
    missing = []
    for rule, project in projects:
        allowed = ports.once.get(f"bypass:{token.fingerprint}:{project}",
                                 lambda project=project: ports.rules.may_bypass_rules(token, bit.value, project))
        if allowed.value is None:
            return [], allowed.denied or allowed.failed
        if allowed.value is False:
            missing.append((rule, project))
    return missing, None


def reenable(subscriptions: tuple[SubscriptionView, ...], token: Token, ports: Ports,
             *, act: bool) -> list[tuple[SubscriptionView, Action]]:
    """Read, set `enabled`, replace, read again: one action per subscription Azure DevOps disabled."""
    done = []
    for sub in subscriptions:
        if sub.status not in TO_REENABLE:
            continue
        detail = f"subscription {sub.id} (rule {sub.rule}, {sub.event_type}) was {sub.status}"
        action = _reenable_one(sub, token, ports, detail) if act else \
            Action(ActionKind.REENABLE, None, "INFO", ActionOutcome.PLANNED, detail)
        done.append((sub, action))
    return done


def _reenable_one(sub: SubscriptionView, token: Token, ports: Ports, detail: str) -> Action:
    current = ports.rules.subscription(token, sub.id)
    if current.value is None:
        return Action(ActionKind.REENABLE, None, "WARNING", ActionOutcome.FAILED,
                      f"{detail}; reading it failed: {current.denied or current.failed}")
    replaced = ports.rules.replace(token, {**current.value, "status": "enabled"})
    after = ports.rules.subscription(token, sub.id) if replaced.value is not None else replaced
    if after.value is None or after.value.get("status") != "enabled":
        why = after.denied or after.failed or f"it reads {after.value.get('status')} afterwards"
        return Action(ActionKind.REENABLE, None, "WARNING", ActionOutcome.FAILED, f"{detail}; not re-enabled: {why}")
    log.info("re-enabled subscription %s (rule %s)", sub.id, sub.rule)
    return Action(ActionKind.REENABLE, None, "INFO", ActionOutcome.DONE, f"{detail}; re-enabled")

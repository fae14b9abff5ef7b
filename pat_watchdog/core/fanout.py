"""A fan-out message (docs/reference.md, "Many instances"): one instance's resource ID, nothing secret (pure)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from pat_watchdog.core.errors import WatchdogError
from pat_watchdog.core.resource_ids import ResourceId, parse_resource_id
from pat_watchdog.core.settings import Settings
from pat_watchdog.core.times import format_utc


def message(app: ResourceId, now: datetime) -> str:
    """What a message carries: the instance's resource ID and when it was queued; nothing secret."""
    return json.dumps({"app": str(app), "queued_at": format_utc(now)})


class NotATarget(WatchdogError):
    """A fan-out message names an instance outside WATCHDOG_AGGREGATOR_APP: never acted on."""


def settings_for(settings: Settings, body: str) -> Settings:
    """The run's settings narrowed to the one instance a message names, if it is a configured target
    (docs/reference.md, "What the watchdog trusts": whoever can write to the queue must not choose what the
    watchdog touches)."""
    try:
        app = parse_resource_id(json.loads(body)["app"])
    except (ValueError, KeyError, TypeError) as error:
        raise WatchdogError(f"a fan-out message is not {{\"app\": <site resource ID>}}: {error}") from None
    if not app.is_site:
        raise WatchdogError("a fan-out message must name a site, not a scope")
    if not any(target.contains(app) for target in settings.targets):
        raise NotATarget(f"a fan-out message names {app}, which is not within WATCHDOG_AGGREGATOR_APP: ignored")
    return replace(settings, targets=(app,))


def needs_discovery_check(settings: Settings, app: ResourceId) -> bool:
    """A site named only through a subscription or group target must still be an Aggregator instance."""
    return not any(t.is_site and t.key == app.key for t in settings.targets)

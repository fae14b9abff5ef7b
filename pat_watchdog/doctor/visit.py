"""What every part of the doctor shares: the settings, the adapters, who is asking, and what was seen."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping, Protocol

from pat_watchdog.adapters.retry import RetryPolicy
from pat_watchdog.core.model import InstancePlan
from pat_watchdog.core.resource_ids import ResourceId
from pat_watchdog.core.settings import Settings
from pat_watchdog.ports import Ports

_OWNER = re.compile(r"^([0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12})\+")


class Authority(Protocol):
    """What the doctor asks Resource Manager beyond the app settings (adapters/arm.py, AggregatorApps)."""

    def permissions(self, scope: str) -> list[dict]: ...
    def find(self, subscription: str, resource_type: str, name: str) -> list[str]: ...
    def vault_properties(self, vault_id: str) -> dict: ...


@dataclass
class Visit:
    """One doctor run."""

    settings: Settings
    now: datetime
    ports: Ports
    retry: RetryPolicy
    principal: str | None                  # the identity's object ID, from its ARM token
    env: Mapping[str, str] = field(default_factory=dict)
    targets: list[ResourceId] = field(default_factory=list)
    plans: list[InstancePlan] = field(default_factory=list)   # what `status` would say, per instance

    @property
    def arm(self) -> Authority:
        return self.ports.apps     # the same client as the settings calls: one token, one throttle

    def subscriptions(self) -> list[str]:
        """Where the staging vault may be: the watchdog's own subscription (App Service names it in
        WEBSITE_OWNER_NAME, `<subscription>+<group>-<region>webspace`), then the instances'."""
        own = _OWNER.match(self.env.get("WEBSITE_OWNER_NAME", ""))
        found = [own.group(1)] if own else []
        for target in [*self.targets, *self.settings.targets]:
            if target.subscription.lower() not in (s.lower() for s in found):
                found.append(target.subscription)
        return found

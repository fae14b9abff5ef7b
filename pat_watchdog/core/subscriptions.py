"""Whether this instance's rules still fire: its service hook subscriptions and the "Bypass rules"
permission of impersonating rules, as reasons (pure; docs/reference.md, "Reason codes")."""

from __future__ import annotations

from pat_watchdog.core import reasons as R
from pat_watchdog.core.model import InstanceSnapshot, Reason, SubscriptionView

# Azure DevOps' SubscriptionStatus (vsts-rest-api-specs hooks 7.1): what it disabled on its own is
# re-enabled once the token works; what a person disabled is left alone.
SYSTEM_DISABLED = ("disabledBySystem", "disabledByInactiveIdentity")
PROBATION = "onProbation"
BY_USER = "disabledByUser"
TO_REENABLE = SYSTEM_DISABLED + (PROBATION,)


def _rules(subs: list[SubscriptionView]) -> str:
    return ", ".join(sorted({s.rule for s in subs}))


def reasons(snap: InstanceSnapshot) -> list[Reason]:
    subs = snap.subscriptions or ()
    disabled = [s for s in subs if s.status in SYSTEM_DISABLED]
    probation = [s for s in subs if s.status == PROBATION]
    by_user = [s for s in subs if s.status == BY_USER]
    found = []
    if disabled:
        found.append(R.reason(R.SUBSCRIPTIONS_DISABLED, f"{len(disabled)} subscription(s) of rules {_rules(disabled)} "
                              "were disabled by Azure DevOps (after failures while the token was broken): their "
                              "events are dropped. A run re-enables them once the token works "
                              "(WATCHDOG_REENABLE_SUBSCRIPTIONS)"))
    if probation:
        found.append(R.reason(R.SUBSCRIPTIONS_ON_PROBATION, f"{len(probation)} subscription(s) of rules "
                              f"{_rules(probation)} are on probation: Azure DevOps retries less and will disable them "
                              "if failures go on"))
    if by_user:
        found.append(R.reason(R.SUBSCRIPTIONS_DISABLED_BY_USER, f"{len(by_user)} subscription(s) of rules "
                              f"{_rules(by_user)} were disabled by a person: left alone"))
    if snap.bypass_missing:
        pairs = "; ".join(f"rule {rule} in project {project}" for rule, project in snap.bypass_missing)
        found.append(R.reason(R.BYPASS_RULES_MISSING, f"the token's user lacks \"Bypass rules on work item updates\" "
                              f"for impersonating rules: {pairs}. Those rules fail to save"))
    return found

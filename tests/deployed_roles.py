"""The watchdog's custom roles as infra/ deploys them, read with the Bicep parser the infra tests use,
handed to the sandbox as data (it imports nothing of the product or the tests): the tested rights are
the deployed rights."""

from __future__ import annotations

from functools import lru_cache

from pat_watchdog.sandbox.arm_authorization import Roles
from tests.infra.infra_policy import INFRA, TOKEN_MODES, parse_templates, role_actions

# (template, role definition): the custom roles held by the watchdog's identity.
AGGREGATOR_ROLE = ("app/aggregator-access.bicep", "aggregatorSettingsRole")
VAULT_ROLE = ("app/keyvault-access.bicep", "watchdogSecretsRole")
ACS_ROLE = ("app/acs-access.bicep", "emailSenderRole")


@lru_cache(maxsize=1)
def deployed_roles() -> Roles:
    templates, problems = parse_templates(INFRA)
    assert problems == [], problems

    def actions(role: tuple[str, str], key: str = "actions", **params: str) -> tuple[str, ...]:
        template, symbol = role
        return tuple(role_actions(templates[template], symbol, key, params=params or None))

    return Roles(aggregator={mode: actions(AGGREGATOR_ROLE, tokenMode=mode) for mode in TOKEN_MODES},
                 vault_data_actions=actions(VAULT_ROLE, "dataActions"), acs_actions=actions(ACS_ROLE))


def every_action() -> list[tuple[str, str]]:
    """(role, action) for each action a role grants: what a test takes out one at a time."""
    roles = deployed_roles()
    found = [(f"aggregator ({mode} mode)", a) for mode, actions in roles.aggregator.items() for a in actions]
    found += [("Key Vault rotation", a) for a in roles.vault_data_actions]
    return found + [("ACS email sender", a) for a in roles.acs_actions]

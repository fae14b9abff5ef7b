"""The tested rights are the deployed rights (docs/deploy.md, "What gets deployed"): the sandbox grants
exactly the custom roles infra/ declares (read by the Bicep parser, tests/deployed_roles.py) and refuses,
as ARM and Key Vault do, every call they do not grant. With them the doctor, `status`, rotation in both
token modes and discovery work; without any one of their actions, a named scenario below breaks.

The ACS email role is not in the parametrization: ACS documents neither the action it checks for a send
nor the shape of its refusal, so its stand-in does not enforce it (tests/infra checks the role itself).
"""

from __future__ import annotations


import pytest

from tests.deployed_roles import deployed_roles, every_action
from tests.e2e.conftest import NAME, assert_rotated, scene
from tests.leaks import fp

TOKEN_SECRET = "aggregator-pat"      # reference mode's token secret, in the staging vault (deploy.md)
PER_NAME = {"WATCHDOG_STAGED_SECRET": "{name}-pat-staged", "WATCHDOG_PREVIOUS_SECRET": "{name}-pat-previous"}


def reference_instance(world, days: float, token_mode: str | None = "reference",
                       version: str = "") -> tuple[str, str]:
    """A reference (versionless unless `version`) to the staging vault's token secret, with that mode's
    role on the site; (token, app)."""
    token, _ = world.issue(days)
    staged = world.stage(token, days=days, secret=TOKEN_SECRET)
    uri = f"https://{world.vault}.vault.azure.net/secrets/{TOKEN_SECRET}/" + (staged if version else "")
    return token, world.add_instance(NAME, f"@Microsoft.KeyVault(SecretUri={uri})", token_mode=token_mode)


def status_reads_the_token_and_the_vault(world, run_cli, sandbox, channels):
    token, _ = world.issue(100)
    world.add_instance(NAME, token)
    world.stage(token, days=100, tags={"watchdog-status": "current"})
    result = run_cli("status", "--json")
    assert result.code == 0 and result.instance(NAME)["status"] == "OK", result.out


def rotation_in_setting_mode(world, run_cli, sandbox, channels):
    s = scene(world)
    assert run_cli("run", **channels).code == 0
    assert_rotated(sandbox, s)


def rotation_in_reference_mode(world, run_cli, sandbox, channels, token_mode="reference"):
    _, app = reference_instance(world, 5, token_mode)
    new, _ = world.issue(365)
    world.stage(new, days=365)
    assert run_cli("run", **channels).code == 0
    assert fp(sandbox.vault.versions(world.vault, TOKEN_SECRET)[-1]["value"]) == fp(new)
    assert sandbox.arm.writes == [] and [a.lower() for a in sandbox.arm.restarts] == [app.lower()]


def versionless_reference_in_setting_mode(world, run_cli, sandbox, channels):
    """A setting-mode deployment whose instance holds a versionless reference: rotated by a restart too."""
    rotation_in_reference_mode(world, run_cli, sandbox, channels, token_mode="setting")


def doctor_on_a_versioned_reference_in_setting_mode(world, run_cli, sandbox, channels):
    reference_instance(world, 100, "setting", version="pinned")
    found = {c["id"]: c for c in run_cli("doctor", "--json", **channels).json["checks"]}
    assert found["instance.reference"]["status"] == "OK", found["instance.reference"]


def doctor_reads_how_the_reference_resolves(world, run_cli, sandbox, channels):
    reference_instance(world, 100)
    found = {c["id"]: c for c in run_cli("doctor", "--json", **channels).json["checks"]}
    assert found["instance.reference"]["status"] == "OK", found["instance.reference"]
    assert found["instance.settings"]["status"] == "OK" and found["vault.reachable"]["status"] == "OK"


def discovery_in_the_aggregator_group(world, run_cli, sandbox, channels):
    apps = []
    for name in ("team1aggregator", "team2aggregator"):
        token, _ = world.issue(100)
        apps.append(world.add_instance(name, token, group="aggregator-teams", token_mode=None))
        world.stage(token, days=100, secret=f"{name}-pat-staged", tags={"watchdog-status": "current"})
    group = apps[0].split("/providers/")[0]
    sandbox.arm.assign_aggregator_role(group)          # aggregatorAccessScope=resourceGroup
    result = run_cli("status", "--json", WATCHDOG_AGGREGATOR_APP=group, **PER_NAME)
    assert result.code == 0 and sorted(i["name"] for i in result.json["instances"]) == \
        ["team1aggregator", "team2aggregator"], result.out


def discovery_in_reference_mode(world, run_cli, sandbox, channels):
    """aggregatorAccessScope=resourceGroup with tokenMode=reference: the group's instances are read and
    their references' resolution is seen (status and doctor)."""
    _, app = reference_instance(world, 100, token_mode=None)
    group = app.split("/providers/")[0]
    sandbox.arm.assign_aggregator_role(group, "reference")
    result = run_cli("status", "--json", WATCHDOG_AGGREGATOR_APP=group, WATCHDOG_STAGED_SECRET="{name}-s",
                     WATCHDOG_PREVIOUS_SECRET="{name}-p")
    assert result.code == 0 and [i["name"] for i in result.json["instances"]] == [NAME], result.out
    found = {c["id"]: c for c in run_cli("doctor", "--json", WATCHDOG_AGGREGATOR_APP=group,
                                         WATCHDOG_STAGED_SECRET="{name}-s", WATCHDOG_PREVIOUS_SECRET="{name}-p",
                                         **channels).json["checks"]}
    assert found["instance.reference"]["status"] == "OK", found


SCENARIOS = [status_reads_the_token_and_the_vault, rotation_in_setting_mode, rotation_in_reference_mode,
             versionless_reference_in_setting_mode, doctor_on_a_versioned_reference_in_setting_mode,
             doctor_reads_how_the_reference_resolves, discovery_in_the_aggregator_group, discovery_in_reference_mode]
# The scenario that breaks without each action: the call it stands for (docs/reference.md, "Azure calls").
NEEDS = {
    ("aggregator (setting mode)", "Microsoft.Web/sites/read"): discovery_in_the_aggregator_group,
    ("aggregator (setting mode)", "Microsoft.Web/sites/config/appsettings/read"):
        doctor_on_a_versioned_reference_in_setting_mode,
    ("aggregator (setting mode)", "Microsoft.Web/sites/config/list/action"): status_reads_the_token_and_the_vault,
    ("aggregator (setting mode)", "Microsoft.Web/sites/config/write"): rotation_in_setting_mode,
    ("aggregator (setting mode)", "Microsoft.Web/sites/restart/action"): versionless_reference_in_setting_mode,
    ("aggregator (reference mode)", "Microsoft.Web/sites/read"): discovery_in_reference_mode,
    ("aggregator (reference mode)", "Microsoft.Web/sites/config/appsettings/read"):
        doctor_reads_how_the_reference_resolves,
    ("aggregator (reference mode)", "Microsoft.Web/sites/config/list/action"): rotation_in_reference_mode,
    ("aggregator (reference mode)", "Microsoft.Web/sites/restart/action"): rotation_in_reference_mode,
    ("Key Vault rotation", "Microsoft.KeyVault/vaults/secrets/getSecret/action"): rotation_in_setting_mode,
    ("Key Vault rotation", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"): status_reads_the_token_and_the_vault,
    ("Key Vault rotation", "Microsoft.KeyVault/vaults/secrets/setSecret/action"): rotation_in_setting_mode,
    ("Key Vault rotation", "Microsoft.KeyVault/vaults/secrets/update/action"): rotation_in_setting_mode,
}
ENFORCED = [(role, action) for role, action in every_action() if not role.startswith("ACS")]


def test_every_deployed_action_has_a_scenario_that_needs_it():
    # An action added to a role without a call that needs it, or a call without its action, shows here.
    assert set(NEEDS) == set(ENFORCED)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_with_exactly_the_deployed_roles(scenario, world, run_cli, sandbox, channels):
    scenario(world, run_cli, sandbox, channels)


def _without(role_action):
    role, action = role_action
    roles = deployed_roles()
    if role.startswith("aggregator"):
        mode = role.split("(")[1].split()[0]
        return type(roles)({**roles.aggregator, mode: tuple(a for a in roles.aggregator[mode] if a != action)},
                           roles.vault_data_actions, roles.acs_actions)
    return roles.without(action)


@pytest.mark.parametrize("sandbox_roles, role_action", [(_without(ra), ra) for ra in ENFORCED],
                         ids=[f"{r}-{a.split('/', 1)[1]}" for r, a in ENFORCED], indirect=["sandbox_roles"])
def test_without_one_action_its_scenario_breaks(sandbox_roles, role_action, world, run_cli, sandbox, channels):
    with pytest.raises(AssertionError):
        NEEDS[role_action](world, run_cli, sandbox, channels)

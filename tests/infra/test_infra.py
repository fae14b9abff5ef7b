"""Offline validation of the deployment in infra/: the whole check on infra/ and on broken copies.

The validation itself (parsers, checkov, the repository's policy) is in infra_policy.py.
"""

from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pycep import BicepParser

from tests.infra.infra_policy import (
    AGGREGATOR_ACTIONS, ALLOWED_BUILTIN_ROLES, BROAD_ROLES, CHECKOV_VERSION, CONFIG_WRITE, GET_SECRET, INFRA,
    MAY_HOLD, READ_METADATA, REFERENCE_MODE_AGGREGATOR_ACTIONS, ROOT, SECRET_SETTINGS, SET_SECRET, SKIP_COMMENT,
    UPDATE_SECRET, WATCHDOG_SETTINGS, all_keys, assignment_data_actions, checkov_executable, dotted, evaluate,
    find_key, parse_templates, policy_problems, resources, role_actions, role_of_assignment, stores_channel_secrets,
    unwrap, validate_infra,
)


# ---------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------


def break_copy(tmp: Path, name: str, edits: list[tuple[str, str, str]]) -> Path:
    """A copy of infra/ with (file, text, replacement) edits; each edit must apply."""
    copy = tmp / name
    shutil.copytree(INFRA, copy)
    for file, old, new in edits:
        target = copy / file
        text = target.read_text()
        assert old in text, f"{file} no longer contains {old!r}: update the broken-copy test"
        target.write_text(text.replace(old, new, 1))
    return copy


BROKEN = {
    "syntax error": [
        ("app/storage.bicep", "resource blobService", "resource blobService = {{ ]\nresource blobService2")
    ],
    # Two regressions in one copy: one checkov run fewer (each takes ~10 s of CPU).
    # Microsoft's Flex Consumption deprecation table: ARM rejects the whole site.
    "flex deprecated property": [
        ("app/function.bicep", "minTlsVersion: '1.2'", "minTlsVersion: '1.2'\n      ftpsState: 'Disabled'"),
    ],
    "security regression": [
        ("app/function.bicep", "minTlsVersion: '1.2'", "minTlsVersion: '1.0'"),
        ("app/storage.bicep", "allowBlobPublicAccess: false", "allowBlobPublicAccess: true"),
    ],
}


@pytest.fixture(scope="session")
def validations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """validate_infra on infra/ and on each broken copy, run side by side (checkov takes ~10 s)."""
    checkov_executable()
    BicepParser()  # builds lark's grammar cache once, before the threads would race to write it
    tmp = tmp_path_factory.mktemp("broken")
    folders = {"infra": INFRA}
    for label, edits in BROKEN.items():
        folders[label] = break_copy(tmp, re.sub(r"\W+", "-", label), edits)
    with ThreadPoolExecutor(max_workers=len(folders)) as pool:
        futures = {label: pool.submit(validate_infra, folder) for label, folder in folders.items()}
        return {label: future.result() for label, future in futures.items()}


@pytest.fixture(scope="session")
def templates() -> dict[str, dict]:
    parsed, problems = parse_templates(INFRA)
    assert problems == []
    return parsed


def settings_of(templates: dict[str, dict]) -> set[str]:
    return {key for key in all_keys(templates["main.bicep"].get("variables")) if key.startswith("WATCHDOG_")}


# ---------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------


def test_infra_passes_the_whole_validation(validations: dict[str, list[str]]) -> None:
    assert validations["infra"] == []


@pytest.mark.parametrize("label", list(BROKEN))
def test_a_broken_copy_fails_the_validation(validations: dict[str, list[str]], label: str) -> None:
    assert validations[label], f"the copy with a {label} passed the validation"


def test_a_syntax_error_fails_both_parsers(validations: dict[str, list[str]]) -> None:
    problems = validations["syntax error"]
    assert any("does not parse" in p for p in problems)
    assert any("checkov could not parse" in p for p in problems)


def test_tls_1_0_is_caught_by_checkov_and_the_policy(validations: dict[str, list[str]]) -> None:
    problems = validations["security regression"]
    assert any(p.startswith("checkov CKV_AZURE_") and "functionApp" in p for p in problems)
    assert any("minTlsVersion is '1.0'" in p for p in problems)


def test_public_blob_access_is_caught_by_the_policy(validations: dict[str, list[str]]) -> None:
    # checkov has no check for allowBlobPublicAccess in Bicep: the policy is what catches it.
    assert any("allowBlobPublicAccess is True" in p for p in validations["security regression"])


# What the template had until Microsoft's Flex page was read: "Diagnostic settings aren't currently supported".
FLEX_SITE_DIAGNOSTICS = """resource functionDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'function-to-log-analytics'
  scope: functionApp
  properties: {
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

"""
# Regressions the policy alone must catch: (file, text, replacement, expected problem).
REGRESSIONS = [
    pytest.param(
        "app/channel-secrets.bicep",
        "4633458b-17de-408a-b874-0445c86b69e6",
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "built-in role Owner",
        id="owner-instead-of-secrets-user",
    ),
    pytest.param(
        "app/storage.bicep",
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
        "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "built-in role Contributor",
        id="contributor-instead-of-table-data",
    ),
    pytest.param(
        "app/aggregator-access.bicep",
        "'Microsoft.Web/sites/restart/action'",
        "'Microsoft.Web/sites/*'",
        "wildcards",
        id="wildcard-action",
    ),
    pytest.param(
        "app/aggregator-access.bicep",
        "      resourceGroup().id\n    ]",
        "      subscription().id\n    ]",
        "assignable at resourceGroup().id only",
        id="role-assignable-at-subscription",
    ),
    pytest.param(
        "app/storage.bicep",
        "// Role: Storage Table Data Contributor",
        "// Storage Table Data Contributor",
        "without a '// Role: ... Why: ...' comment",
        id="assignment-without-reason",
    ),
    pytest.param(
        "app/storage.bicep",
        "allowSharedKeyAccess: false",
        "allowSharedKeyAccess: true",
        "allowSharedKeyAccess is True",
        id="storage-shared-keys",
    ),
    pytest.param(
        "app/keyvault.bicep",
        "resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {",
        "resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = if (true) {",
        "is conditional",
        id="vault-hidden-from-checkov-by-if",
    ),
    pytest.param(
        "app/function.bicep",
        "name: 'ftp'",
        "name: 'ftpx'",
        "basic publishing off",
        id="ftp-basic-publishing-left-on",
    ),
    pytest.param(
        "app/keyvault.bicep",
        "scope: vault\n",
        "scope: null\n",
        "has no diagnostic settings",
        id="vault-without-diagnostic-logs",
    ),
    pytest.param(
        "app/function.bicep",
        "output name string",
        FLEX_SITE_DIAGNOSTICS + "output name string",
        "on a Flex Consumption site is not supported",
        id="diagnostic-settings-on-the-flex-site",
    ),
    pytest.param(
        "app/channel-secrets.bicep",
        "@secure()\nparam smtpPassword",
        "param smtpPassword",
        "must be @secure()",
        id="password-parameter-not-secure",
    ),
    pytest.param(
        "main.bicep",
        "'@Microsoft.KeyVault(SecretUri=${channelAccess.outputs.smtpPasswordSecretUri})'",
        "smtpPassword",
        "must be a Key Vault reference",
        id="literal-smtp-password-setting",
    ),
    pytest.param(
        "app/function.bicep",
        "AzureWebJobsStorage__accountName: storageAccountName",
        "AzureWebJobsStorage: 'DefaultEndpointsProtocol=https;AccountKey=x'",
        "AccountKey=",
        id="storage-connection-string",
    ),
]


@pytest.mark.parametrize(("file", "old", "new", "expected"), REGRESSIONS)
def test_the_policy_rejects_a_regression(tmp_path: Path, file: str, old: str, new: str, expected: str) -> None:
    copy = break_copy(tmp_path, "copy", [(file, old, new)])
    parsed, parse_errors = parse_templates(copy)
    assert parse_errors == []
    problems = policy_problems(copy, parsed)
    assert any(expected in p for p in problems), problems


def test_no_role_assignment_uses_a_broad_built_in_role(templates: dict[str, dict]) -> None:
    roles = {
        role_of_assignment(unwrap(r["config"])[0], templates[name])
        for name, _, r in resources(templates)
        if r["type"] == "Microsoft.Authorization/roleAssignments"
    }
    builtin = {role.split(":")[1] for role in roles if role.startswith("builtin:")}
    assert builtin == set(ALLOWED_BUILTIN_ROLES), {ALLOWED_BUILTIN_ROLES.get(g, g) for g in builtin}
    assert not builtin & set(BROAD_ROLES)
    assert {role for role in roles if role.startswith("custom:")} == {
        "custom:aggregatorSettingsRole",
        "custom:emailSenderRole",
        "custom:watchdogSecretsRole",
        "custom:operatorStagingRole",
    }


@pytest.mark.parametrize(("mode", "expected"), [
    ("setting", AGGREGATOR_ACTIONS),
    ("reference", REFERENCE_MODE_AGGREGATOR_ACTIONS),
])
def test_the_aggregator_role_holds_exactly_the_watchdogs_actions_per_token_mode(
    templates: dict[str, dict], mode: str, expected: set[str]
) -> None:
    template = templates["app/aggregator-access.bicep"]
    actions = role_actions(template, "aggregatorSettingsRole", params={"tokenMode": mode})
    assert set(actions) == expected and len(actions) == len(expected)
    assert (CONFIG_WRITE in actions) is (mode == "setting")
    for key in ("notActions", "dataActions", "notDataActions"):
        assert role_actions(template, "aggregatorSettingsRole", key, params={"tokenMode": mode}) == []


def test_reference_mode_is_one_role_updated_in_place_not_a_second_role(templates: dict[str, dict]) -> None:
    # Switching modes must leave no assignment of the setting-mode role behind: one role, one
    # deterministic name, whose actions depend on the mode.
    template = templates["app/aggregator-access.bicep"]
    roles = [s for s, r in template["resources"].items() if r["type"] == "Microsoft.Authorization/roleDefinitions"]
    assert roles == ["aggregatorSettingsRole"]
    assert template["parameters"]["tokenMode"]["default"] == "setting"
    assert evaluate("referenceMode", template, {"tokenMode": "reference"}) is True
    assert evaluate("referenceMode", template, {"tokenMode": "setting"}) is False
    assert evaluate("referenceMode", template) is False  # the default mode


def test_the_aggregator_role_is_assigned_on_the_site_by_default(templates: dict[str, dict]) -> None:
    template = templates["app/aggregator-access.bicep"]
    assert template["parameters"]["accessScope"]["default"] == "site"
    on_site, _ = unwrap(template["resources"]["onAggregatorSite"]["config"])
    assert on_site["scope"] == "aggregatorSite"
    assert template["resources"]["aggregatorSite"]["existing"] is True
    main = templates["main.bicep"]
    assert main["parameters"]["aggregatorAccessScope"]["default"] == "site"


def test_every_role_assignment_targets_one_resource_not_a_subscription(templates: dict[str, dict]) -> None:
    for name, symbol, resource in resources(templates):
        if resource["type"] == "Microsoft.Authorization/roleAssignments":
            config, _ = unwrap(resource["config"])
            if symbol == "onAggregatorGroup":  # the documented opt-in: the Aggregator's resource group
                assert "scope" not in config
                continue
            scope = templates[name]["resources"].get(config.get("scope"), {})
            assert scope.get("type") in {
                "Microsoft.Web/sites",
                "Microsoft.KeyVault/vaults",
                "Microsoft.KeyVault/vaults/secrets",
                "Microsoft.Storage/storageAccounts",
                "Microsoft.Insights/components",
                "Microsoft.Communication/communicationServices",
            }, f"{name}: {symbol}"
    assert templates["main.bicep"]["globals"]["scope"]["value"] == "resourceGroup"


def test_storage_is_reached_through_the_identity_only(templates: dict[str, dict]) -> None:
    account = templates["app/storage.bicep"]["resources"]["storage"]["config"]["properties"]
    assert account["allowSharedKeyAccess"] is False
    function = templates["app/function.bicep"]
    settings = function["variables"]["platformSettings"]["value"]
    assert settings["AzureWebJobsStorage__accountName"] == "storageAccountName"
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert "AzureWebJobsStorage" not in settings
    site = function["resources"]["functionApp"]["config"]
    assert site["identity"]["type"] == "UserAssigned"
    authentication = site["properties"]["functionAppConfig"]["deployment"]["storage"]["authentication"]
    assert authentication == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}
    assert site["properties"]["keyVaultReferenceIdentity"] == "identityId"


def test_the_function_app_is_flex_consumption_python_3_11(templates: dict[str, dict]) -> None:
    function = templates["app/function.bicep"]["resources"]
    assert function["plan"]["config"]["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert function["functionApp"]["config"]["kind"] == "functionapp,linux"
    assert function["functionApp"]["config"]["properties"]["functionAppConfig"]["runtime"] == {
        "name": "python",
        "version": "3.11",
    }


def test_every_watchdog_setting_is_wired(templates: dict[str, dict]) -> None:
    assert set(WATCHDOG_SETTINGS) - settings_of(templates) == set()
    assert settings_of(templates) - set(WATCHDOG_SETTINGS) == set()


def test_secret_settings_are_key_vault_references(templates: dict[str, dict]) -> None:
    for setting in SECRET_SETTINGS:
        (value,) = find_key(templates["main.bicep"]["variables"], setting)
        # The channel vault's secrets, never the staging vault's.
        assert value.startswith("@Microsoft.KeyVault(SecretUri=${channelAccess.outputs.")
    for param in ("teamsWebhookUrl", "smtpPassword"):
        decorators = templates["main.bicep"]["parameters"][param]["decorators"]
        assert {"type": "secure"} in decorators


def test_the_watchdogs_vault_role_is_custom_read_list_set_tag_on_the_staging_vault(
    templates: dict[str, dict]
) -> None:
    template = templates["app/keyvault-access.bicep"]
    assignment = template["resources"]["watchdogSecrets"]["config"]
    assert assignment["scope"] == "vault" and template["resources"]["vault"]["existing"] is True
    assert assignment["properties"]["principalId"] == "principalId"
    assert role_of_assignment(assignment, template) == "custom:watchdogSecretsRole"
    data_actions = role_actions(template, "watchdogSecretsRole", "dataActions")
    assert data_actions == [GET_SECRET, READ_METADATA, SET_SECRET, UPDATE_SECRET]
    assert set(data_actions) == MAY_HOLD["watchdog"]
    assert role_actions(template, "watchdogSecretsRole") == []
    assert not any(word in action for action in data_actions
                   for word in ("delete", "purge", "backup", "restore", "recover", "*"))


def test_the_operator_stages_pats_without_reading_any(templates: dict[str, dict]) -> None:
    template = templates["app/keyvault-access.bicep"]
    resource = template["resources"]["operatorStaging"]
    assignment, conditional = unwrap(resource["config"])
    assert conditional and resource["config"]["condition"] == {
        "operator": {"type": "not", "operands": {"bool_value": {
            "function": {"type": "empty", "parameters": {"item_to_test": "operatorPrincipalId"}}}}}
    }
    assert assignment["scope"] == "vault" and assignment["properties"]["principalId"] == "operatorPrincipalId"
    assert role_of_assignment(assignment, template) == "custom:operatorStagingRole"
    # az keyvault secret set needs setSecret; list-versions needs readMetadata; no value is readable.
    assert set(role_actions(template, "operatorStagingRole", "dataActions")) == {SET_SECRET, READ_METADATA}
    assert GET_SECRET not in assignment_data_actions(assignment, template)
    # Nothing for the operator where the channel secrets live.
    channel = templates["app/channel-secrets.bicep"]
    assert "operatorPrincipalId" not in (channel.get("parameters") or {})


def test_channel_secrets_live_in_a_vault_the_watchdog_can_only_read(templates: dict[str, dict]) -> None:
    channel = templates["app/channel-secrets.bicep"]
    assert stores_channel_secrets(channel) and not stores_channel_secrets(templates["app/keyvault-access.bicep"])
    assignments = {s: unwrap(r["config"])[0] for s, r in channel["resources"].items()
                   if r["type"] == "Microsoft.Authorization/roleAssignments"}
    assert list(assignments) == ["watchdogChannelReader"]
    reader = assignments["watchdogChannelReader"]
    assert reader["scope"] == "vault" and reader["properties"]["principalId"] == "principalId"
    assert role_of_assignment(reader, channel) == "builtin:4633458b-17de-408a-b874-0445c86b69e6"
    assert assignment_data_actions(reader, channel) == {GET_SECRET, READ_METADATA}
    # main.bicep: a vault of its own, other than the staging vault, for the channel secrets only.
    main = templates["main.bicep"]
    modules = main["modules"]
    assert modules["channelVault"]["detail"]["path"] == "app/keyvault.bicep"
    assert unwrap(modules["channelVault"]["config"])[0]["params"]["name"] == "channelVaultName"
    assert unwrap(modules["channelAccess"]["config"])[0]["params"]["vaultName"] == "channelVaultName"
    assert unwrap(modules["vaultAccess"]["config"])[0]["params"]["vaultName"] == "vaultName"
    assert main["variables"]["channelVaultName"]["value"] != main["variables"]["vaultName"]["value"]
    assert {"teamsWebhookUrl", "smtpPassword"} & set(unwrap(modules["vaultAccess"]["config"])[0]["params"]) == set()
    for module in ("channelVault", "channelAccess"):
        assert modules[module]["config"]["condition"] == "useChannelVault"


def test_reference_mode_lets_the_aggregator_read_its_token_secret_only(templates: dict[str, dict]) -> None:
    template = templates["app/keyvault-access.bicep"]
    resource = template["resources"]["aggregatorTokenReader"]
    assert resource["config"]["condition"] == "referenceMode"
    assignment = resource["config"]["config"]
    assert assignment["properties"]["principalId"] == "aggregatorPrincipalId"
    assert role_of_assignment(assignment, template) == "builtin:4633458b-17de-408a-b874-0445c86b69e6"
    secret = template["resources"][assignment["scope"]]
    assert secret["type"] == "Microsoft.KeyVault/vaults/secrets" and secret["existing"] is True
    assert secret["config"] == {"parent": "vault", "name": "tokenSecretName"}
    # The token secret is never one of the watchdog's own secrets (docs/reference.md, "What the watchdog trusts").
    names = {templates["main.bicep"]["parameters"][p]["default"]
             for p in ("stagedSecretName", "previousSecretName", "tokenSecretName")}
    assert len(names) == 3


def test_main_passes_the_token_mode_and_the_right_principals(templates: dict[str, dict]) -> None:
    main = templates["main.bicep"]
    assert main["parameters"]["tokenMode"]["default"] == "setting"
    for module in ("aggregatorAccess", "vaultAccess"):
        params = unwrap(main["modules"][module]["config"])[0]["params"]
        assert params["tokenMode"] == "tokenMode"
        assert dotted(params["principalId"]) == "identity.properties.principalId"
    vault_params = unwrap(main["modules"]["vaultAccess"]["config"])[0]["params"]
    assert vault_params["operatorPrincipalId"] == "operatorPrincipalId"
    assert vault_params["aggregatorPrincipalId"] == "aggregatorPrincipalId"
    channel_params = unwrap(main["modules"]["channelAccess"]["config"])[0]["params"]
    assert dotted(channel_params["principalId"]) == "identity.properties.principalId"


# Grants wider than least privilege, the old ones first: (file, text, replacement, expected problems).
SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
WATCHDOG_ROLE_ID = "roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', watchdogSecretsRole.name)"
OPERATOR_ROLE_ID = "roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', operatorStagingRole.name)"
LAST_WATCHDOG_DATA_ACTION = "          'Microsoft.KeyVault/vaults/secrets/update/action'\n"
CHANNEL_SECRET_IN_STAGING_VAULT = """module teamsWebhookSecret 'secret.bicep' = {
  name: 'pat-watchdog-teams-webhook-secret'
  params: {
    vaultName: vault.name
    secretName: 'pat-watchdog-teams-webhook-url'
    value: 'https://example.invalid/'
    contentType: 'text/uri-list'
  }
}

output vaultUri string"""
LEAST_PRIVILEGE_REGRESSIONS = [
    pytest.param(
        "app/keyvault-access.bicep", WATCHDOG_ROLE_ID,
        f"roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '{SECRETS_OFFICER}')",
        ["built-in role Key Vault Secrets Officer", "gives the watchdog ['Microsoft.KeyVault/vaults/secrets/*']"],
        id="old-grant-watchdog-gets-key-vault-secrets-officer",
    ),
    pytest.param(
        "app/keyvault-access.bicep", OPERATOR_ROLE_ID,
        f"roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '{SECRETS_OFFICER}')",
        ["built-in role Key Vault Secrets Officer", "gives the operator ['Microsoft.KeyVault/vaults/secrets/*']"],
        id="old-grant-operator-gets-key-vault-secrets-officer",
    ),
    pytest.param(
        "app/keyvault-access.bicep", "output vaultUri string", CHANNEL_SECRET_IN_STAGING_VAULT,
        ["lets the watchdog write in the vault of the channel secrets"],
        id="old-layout-channel-secret-in-the-staging-vault",
    ),
    pytest.param(
        "app/keyvault-access.bicep", LAST_WATCHDOG_DATA_ACTION,
        LAST_WATCHDOG_DATA_ACTION + "          'Microsoft.KeyVault/vaults/secrets/delete'\n",
        ["grants the data action Microsoft.KeyVault/vaults/secrets/delete",
         "gives the watchdog ['Microsoft.KeyVault/vaults/secrets/delete']"],
        id="rotation-role-can-delete",
    ),
    pytest.param(
        "app/keyvault-access.bicep", LAST_WATCHDOG_DATA_ACTION,
        LAST_WATCHDOG_DATA_ACTION + "          'Microsoft.KeyVault/vaults/secrets/purge/action'\n",
        ["grants the data action Microsoft.KeyVault/vaults/secrets/purge/action"],
        id="rotation-role-can-purge",
    ),
    pytest.param(
        "app/keyvault-access.bicep", LAST_WATCHDOG_DATA_ACTION,
        LAST_WATCHDOG_DATA_ACTION + "          'Microsoft.KeyVault/vaults/secrets/backup/action'\n"
        "          'Microsoft.KeyVault/vaults/secrets/restore/action'\n",
        ["grants the data action Microsoft.KeyVault/vaults/secrets/backup/action",
         "grants the data action Microsoft.KeyVault/vaults/secrets/restore/action"],
        id="rotation-role-can-back-up-and-restore",
    ),
    pytest.param(
        "app/keyvault-access.bicep", LAST_WATCHDOG_DATA_ACTION,
        "          'Microsoft.KeyVault/vaults/secrets/*'\n",
        ["uses wildcards in dataActions"],
        id="rotation-role-wildcard-data-action",
    ),
    pytest.param(
        "app/keyvault-access.bicep", "dataActions: [\n          'Microsoft.KeyVault/vaults/secrets/setSecret/action'",
        "dataActions: [\n          'Microsoft.KeyVault/vaults/secrets/getSecret/action'\n"
        "          'Microsoft.KeyVault/vaults/secrets/setSecret/action'",
        ["gives the operator ['Microsoft.KeyVault/vaults/secrets/getSecret/action']"],
        id="operator-can-read-secret-values",
    ),
    pytest.param(
        "app/keyvault-access.bicep", OPERATOR_ROLE_ID, WATCHDOG_ROLE_ID,
        ["gives the operator ['Microsoft.KeyVault/vaults/secrets/getSecret/action', "
         "'Microsoft.KeyVault/vaults/secrets/update/action']"],
        id="operator-gets-the-rotation-role",
    ),
    pytest.param(
        "app/keyvault-access.bicep", "  scope: tokenSecret\n", "  scope: vault\n",
        ["must be scoped to the Aggregator's token secret only"],
        id="aggregator-reads-the-whole-staging-vault",
    ),
    pytest.param(
        "app/aggregator-access.bicep", "actions: referenceMode ? referenceModeActions : settingModeActions",
        "actions: settingModeActions",
        [f"keeps {CONFIG_WRITE} in reference mode"],
        id="reference-mode-keeps-config-write",
    ),
    pytest.param(
        "main.bicep", "    accessScope: aggregatorAccessScope\n    tokenMode: tokenMode\n",
        "    accessScope: aggregatorAccessScope\n",
        ["module aggregatorAccess is not given tokenMode"],
        id="reference-mode-not-passed-to-the-aggregator-role",
    ),
    pytest.param(
        "main.bicep", "    principalId: identity.properties.principalId\n    teamsWebhookUrl",
        "    principalId: operatorPrincipalId\n    teamsWebhookUrl",
        ["module channelAccess gets principalId from 'operatorPrincipalId'"],
        id="channel-reader-given-to-someone-else",
    ),
    pytest.param(
        "app/aggregator-access.bicep", "  'Microsoft.Web/sites/restart/action'\n]",
        "  'Microsoft.Web/sites/restart/action'\n  'Microsoft.Authorization/roleAssignments/write'\n]",
        ["no role of the watchdog may read or change role assignments"],
        id="role-can-change-role-assignments",
    ),
]


@pytest.mark.parametrize(("file", "old", "new", "expected"), LEAST_PRIVILEGE_REGRESSIONS)
def test_least_privilege_rejects_a_wider_grant(
    tmp_path: Path, file: str, old: str, new: str, expected: list[str]
) -> None:
    copy = break_copy(tmp_path, "copy", [(file, old, new)])
    parsed, parse_errors = parse_templates(copy)
    assert parse_errors == []
    problems = policy_problems(copy, parsed)
    for text in expected:
        assert any(text in p for p in problems), (text, problems)


def test_alerts_watch_for_a_failed_run_and_26_hours_without_success(templates: dict[str, dict]) -> None:
    alerts = templates["app/alerts.bicep"]["resources"]
    rules = {
        s: r["config"]["properties"] for s, r in alerts.items() if r["type"] == "Microsoft.Insights/scheduledQueryRules"
    }
    assert set(rules) == {"failedRun", "noSuccessfulRun"}
    failed = rules["failedRun"]["criteria"]["allOf"][0]
    assert "success == false" in failed["query"] and failed["operator"] == "GreaterThan"
    missing = rules["noSuccessfulRun"]["criteria"]["allOf"][0]
    assert "ago(26h)" in missing["query"] and "success == true" in missing["query"]
    assert (missing["operator"], missing["threshold"]) == ("LessThan", 1)
    for rule in rules.values():
        assert rule["actions"]["actionGroups"] == [
            {"operator": {"type": "property_accessor", "operands": {"operand_1": "actionGroup", "operand_2": "id"}}}
        ]
    receivers = alerts["actionGroup"]["config"]["properties"]["emailReceivers"]
    assert receivers[0]["emailAddress"] == "alertEmail"
    assert templates["main.bicep"]["parameters"]["alertEmail"]["default"] is None


def test_checkov_skips_all_carry_a_reason() -> None:
    skips = [m for p in INFRA.rglob("*.bicep") for m in SKIP_COMMENT.finditer(p.read_text())]
    assert skips, "expected the documented skips"
    assert all(len((m.group(2) or "").strip()) >= 40 for m in skips)


def test_azure_yaml_deploys_the_repository_root_as_a_function() -> None:
    text = (ROOT / "azure.yaml").read_text()
    for line in (
        "name: pat-watchdog",
        "  watchdog:",
        "    project: .",
        "    language: python",
        "    host: function",
        "  path: infra",
    ):
        assert f"\n{line}\n" in f"\n{text}\n", line
    function = (INFRA / "app" / "function.bicep").read_text()
    assert "'azd-service-name': 'watchdog'" in function


def test_the_parameters_file_matches_main_bicep(templates: dict[str, dict]) -> None:
    params = templates["main.bicep"]["parameters"]
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(given) - set(params) == set()
    required = {name for name, spec in params.items() if spec.get("default") is None}
    assert required - set(given) == set()


def test_the_checkov_install_script_pins_the_version_the_tests_expect() -> None:
    # run_checkov compares the version that ran with CHECKOV_VERSION.
    script = (ROOT / "scripts" / "install-checkov.sh").read_text()
    assert f'CHECKOV_VERSION="{CHECKOV_VERSION}"' in script


# ---------------------------------------------------------------------------------------
# azd is the one configuration path (docs/deploy.md, "Change a setting")
# ---------------------------------------------------------------------------------------

# Settings the template derives from other resources, not from a parameter of their own: each is an
# output of the same name, so that `azd env get-values` holds the app's value.
DERIVED = {
    "WATCHDOG_ARM_ENDPOINT": "environment().resourceManager",
    "WATCHDOG_KEY_VAULT_URL": "the staging vault (created, or keyVaultName)",
    "WATCHDOG_ACS_ENDPOINT": "the host name of the acsResourceId resource",
}
AZD_VALUE = re.compile(r"^\$\{(?P<name>\w+)(?:=(?P<default>.*))?\}$")
MINIMAL = {"WATCHDOG_AGGREGATOR_APP": "/subscriptions/8c56d827-5f07-45ce-8f2b-6c5001db5c6f/resourceGroups/g"
                           "/providers/Microsoft.Web/sites/a",
           "WATCHDOG_DEVOPS_ORG_URL": "https://dev.azure.com/contoso"}


def azd_values() -> dict[str, tuple[str, str | None]]:
    """parameter -> (azd environment variable, its default or None), from main.parameters.json."""
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    found = {}
    for param, spec in given.items():
        match = AZD_VALUE.match(spec["value"])
        assert match, f"{param}: {spec['value']!r} is not ${{NAME}} or ${{NAME=default}}"
        found[param] = (match["name"], match["default"])
    return found


def names_in(value, template: dict, seen: set[str] | None = None) -> set[str]:
    """Every parameter an expression depends on, through the variables it uses."""
    seen = set() if seen is None else seen
    params, variables = template.get("parameters") or {}, template.get("variables") or {}
    found: set[str] = set()
    if isinstance(value, dict):
        for item in value.values():
            found |= names_in(item, template, seen)
    elif isinstance(value, list):
        for item in value:
            found |= names_in(item, template, seen)
    elif isinstance(value, str):
        for name in {value, *re.findall(r"\$\{(\w+)", value)}:
            if name in params:
                found.add(name)
            elif name in variables and name not in seen:
                seen.add(name)
                found |= names_in(variables[name]["value"], template, seen)
    return found


def setting_sources(template: dict) -> dict[str, set[str]]:
    """WATCHDOG_* setting -> the parameters its value, or the conditions that set it at all, depend on."""
    sources: dict[str, set[str]] = {}

    def walk(node, conditions: set[str]) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, conditions)
        if not isinstance(node, dict):
            return
        operands = (node.get("operator") or {}).get("operands") or {}
        if (node.get("operator") or {}).get("type") == "conditional":
            conditions = conditions | names_in(operands.get("condition"), template)
        for key, item in node.items():
            if key.startswith("WATCHDOG_"):
                sources.setdefault(key, set()).update(conditions | names_in(item, template))
            else:
                walk(item, conditions)

    for variable in (template.get("variables") or {}).values():
        walk(variable["value"], set())
    return sources


def bicep_default(spec: dict) -> str | None:
    default = spec.get("default")
    if isinstance(default, bool):
        return "true" if default else "false"
    return None if default is None else str(default)


def test_every_watchdog_setting_comes_from_the_azd_variable_of_its_own_name(templates: dict[str, dict]) -> None:
    from pat_watchdog.core.settings import load_settings

    main = templates["main.bicep"]
    values, sources = azd_values(), setting_sources(main)
    assert set(sources) == set(WATCHDOG_SETTINGS)
    for setting, params in sorted(sources.items()):
        mapped = [p for p in params if values.get(p, ("",))[0] == setting]
        if setting in DERIVED:
            assert mapped == [] and setting in main["outputs"], setting
            continue
        assert len(mapped) == 1, f"{setting}: no parameter (of {sorted(params)}) is filled from ${{{setting}}}"
        (param,) = mapped
        _, default = values[param]
        # The same default three times: azd's, the template's and the product's (core/settings.py).
        assert default == bicep_default(main["parameters"][param]) or (default == "" and setting in SECRET_SETTINGS), \
            (setting, default, main["parameters"][param].get("default"))
        if default is None:
            assert setting in MINIMAL, f"{setting} has no default in main.parameters.json"
            continue
        with_default = load_settings({**MINIMAL, setting: default}) if default else None
        assert with_default is None or with_default == load_settings(MINIMAL), \
            f"{setting}={default!r} (azd's default) does not mean what the product assumes without it"


def test_an_empty_azd_default_leaves_the_setting_out_of_the_app(templates: dict[str, dict]) -> None:
    # azd passes "" for ${NAME=}: the app must then not see NAME at all, but the product's own default.
    main = templates["main.bicep"]
    values = azd_values()
    empty_ones = {name: param for param, (name, default) in values.items()
                  if default == "" and name.startswith("WATCHDOG_")}
    assert set(empty_ones) >= {"WATCHDOG_PAT_EXPIRES_ON", "WATCHDOG_SIGNIN_CLIENT_ID", "WATCHDOG_REFERENCE_VAULTS"}
    guards: dict[str, list] = {}

    def walk(node, guard) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, guard)
        if not isinstance(node, dict):
            return
        if (node.get("operator") or {}).get("type") == "conditional":
            guard = node["operator"]["operands"]["condition"]
        for key, item in node.items():
            if key.startswith("WATCHDOG_"):
                guards.setdefault(key, []).append(guard)
            walk(item, guard)

    for variable in main["variables"].values():
        walk(variable["value"], None)
    for name, param in empty_ones.items():
        assert guards.get(name) == [{"function": {"type": "empty", "parameters": {"item_to_test": param}}}], \
            f"{name} is set even when {param} is empty: {guards.get(name)}"


def test_the_acs_role_holds_exactly_what_sending_with_an_identity_needs(templates: dict[str, dict]) -> None:
    template = templates["app/acs-access.bicep"]
    assert role_actions(template, "emailSenderRole") == ["Microsoft.Communication/CommunicationServices/Read",
                                                         "Microsoft.Communication/CommunicationServices/Write"]
    for key in ("notActions", "dataActions", "notDataActions"):
        assert role_actions(template, "emailSenderRole", key) == []


def test_the_flex_site_has_no_diagnostic_settings(templates: dict[str, dict]) -> None:
    function = templates["app/function.bicep"]["resources"]
    assert not [s for s, r in function.items() if r["type"] == "Microsoft.Insights/diagnosticSettings"]
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in templates["app/function.bicep"]["variables"][
        "platformSettings"]["value"]

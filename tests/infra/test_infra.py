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
    AGGREGATOR_ACTIONS, ALLOWED_BUILTIN_ROLES, BROAD_ROLES, CHECKOV_VERSION, INFRA, ROOT, SECRET_SETTINGS,
    SKIP_COMMENT, WATCHDOG_SETTINGS, all_keys, checkov_executable, find_key, parse_templates, policy_problems,
    resources, role_of_assignment, unwrap, validate_infra,
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


# Regressions the policy alone must catch: (file, text, replacement, expected problem).
REGRESSIONS = [
    pytest.param(
        "app/keyvault-access.bicep",
        "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "built-in role Owner",
        id="owner-instead-of-secrets-officer",
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
        "app/function.bicep",
        "scope: functionApp\n",
        "scope: plan\n",
        "has no diagnostic settings",
        id="function-without-diagnostic-logs",
    ),
    pytest.param(
        "app/keyvault-access.bicep",
        "@secure()\nparam smtpPassword",
        "param smtpPassword",
        "must be @secure()",
        id="password-parameter-not-secure",
    ),
    pytest.param(
        "main.bicep",
        "'@Microsoft.KeyVault(SecretUri=${vaultAccess.outputs.smtpPasswordSecretUri})'",
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
    }


def test_the_aggregator_role_holds_exactly_the_watchdogs_actions(templates: dict[str, dict]) -> None:
    role = templates["app/aggregator-access.bicep"]["resources"]["aggregatorSettingsRole"]["config"]
    (permission,) = role["properties"]["permissions"]
    assert set(permission["actions"]) == AGGREGATOR_ACTIONS
    assert len(permission["actions"]) == len(AGGREGATOR_ACTIONS)
    assert permission["notActions"] == permission["dataActions"] == permission["notDataActions"] == []


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
        assert value.startswith("@Microsoft.KeyVault(SecretUri=${vaultAccess.outputs.")
    for param in ("teamsWebhookUrl", "smtpPassword"):
        decorators = templates["main.bicep"]["parameters"][param]["decorators"]
        assert {"type": "secure"} in decorators


def test_the_vault_role_is_secrets_officer_on_that_vault_only(templates: dict[str, dict]) -> None:
    template = templates["app/keyvault-access.bicep"]
    assignment = template["resources"]["watchdogSecretsOfficer"]["config"]
    assert assignment["scope"] == "vault"
    assert role_of_assignment(assignment, template) == "builtin:b86a8fe4-44ce-4948-aee5-eccb2c155cd7"


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


def test_funcignore_keeps_tests_docs_and_the_sandbox_out_of_the_package() -> None:
    entries = {line.strip() for line in (ROOT / ".funcignore").read_text().splitlines()}
    assert {"tests/", "docs/", "pat_watchdog/sandbox/", "infra/", ".venv*/", "node_modules/"} <= entries
    assert "function_app.py" not in entries and "pat_watchdog/" not in entries


def test_the_checkov_install_script_pins_the_version_the_tests_expect() -> None:
    # run_checkov compares the version that ran with CHECKOV_VERSION.
    script = (ROOT / "scripts" / "install-checkov.sh").read_text()
    assert f'CHECKOV_VERSION="{CHECKOV_VERSION}"' in script

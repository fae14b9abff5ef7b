"""Offline validation of the deployment in infra/ (no Bicep compiler can be installed here).

`validate_infra(folder)` is the whole check: every .bicep parses (pycep-parser), checkov
finds no failed check and no file it could not parse, and the repository's own policy
holds (security baseline as literals, least privilege, secrets only as Key Vault
references). The tests run it on infra/ and on deliberately broken copies.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
CHECKOV_VERSION = "3.3.30"  # keep equal to scripts/install-checkov.sh

# Built-in roles the templates may assign, by ID (Azure built-in roles reference).
ALLOWED_BUILTIN_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
# Broad built-in roles that must never appear (named in failure messages).
BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "de139f84-1756-47ae-9be6-808fbbe84772": "Website Contributor",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
}
# The ARM actions the watchdog calls on the Aggregator app (README: expiry sources, rotation protocol, many instances).
AGGREGATOR_ACTIONS = {
    "Microsoft.Web/sites/read",
    "Microsoft.Web/sites/config/read",
    "Microsoft.Web/sites/config/list/action",
    "Microsoft.Web/sites/config/write",
    "Microsoft.Web/sites/restart/action",
}
# README, "Settings": every setting the deployment must be able to wire.
WATCHDOG_SETTINGS = (
    "WATCHDOG_AGGREGATOR_APP",
    "WATCHDOG_DEVOPS_ORG_URL",
    "WATCHDOG_DEVOPS_VSSPS_URL",
    "WATCHDOG_TOKEN_SETTING",
    "WATCHDOG_ARM_ENDPOINT",
    "WATCHDOG_KEY_VAULT_URL",
    "WATCHDOG_STAGED_SECRET",
    "WATCHDOG_PREVIOUS_SECRET",
    "WATCHDOG_ROTATION",
    "WATCHDOG_ROTATE_WITHIN_DAYS",
    "WATCHDOG_WARN_DAYS",
    "WATCHDOG_CRITICAL_DAYS",
    "WATCHDOG_REQUIRED_SCOPES",
    "WATCHDOG_PAT_EXPIRES_ON",
    "WATCHDOG_PAT_AUTHORIZATION_ID",
    "WATCHDOG_SCHEDULE",
    "WATCHDOG_TEAMS_WEBHOOK_URL",
    "WATCHDOG_EMAIL_TO",
    "WATCHDOG_EMAIL_FROM",
    "WATCHDOG_ACS_ENDPOINT",
    "WATCHDOG_SMTP_HOST",
    "WATCHDOG_SMTP_PORT",
    "WATCHDOG_SMTP_USERNAME",
    "WATCHDOG_SMTP_PASSWORD",
    "WATCHDOG_SMTP_STARTTLS",
    "WATCHDOG_REPEAT_HOURS",
    "WATCHDOG_STATE_TABLE",
    "WATCHDOG_CONCURRENCY",
    "WATCHDOG_FANOUT_QUEUE",
)
SECRET_SETTINGS = ("WATCHDOG_TEAMS_WEBHOOK_URL", "WATCHDOG_SMTP_PASSWORD")

# Security-relevant properties, as literals (checkov does not resolve parameters, so a
# parameter here could pass a check with a bad default: checkov reads parameter references as literals).
BASELINE: dict[str, dict[str, Any]] = {
    "Microsoft.Storage/storageAccounts": {
        "properties.allowBlobPublicAccess": False,
        "properties.allowSharedKeyAccess": False,
        "properties.minimumTlsVersion": "TLS1_2",
        "properties.supportsHttpsTrafficOnly": True,
    },
    "Microsoft.Storage/storageAccounts/blobServices/containers": {
        "properties.publicAccess": "None",
    },
    "Microsoft.Web/sites": {
        "properties.httpsOnly": True,
        "properties.siteConfig.minTlsVersion": "1.2",
        "properties.siteConfig.scmMinTlsVersion": "1.2",
        "properties.siteConfig.ftpsState": "Disabled",
    },
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies": {"properties.allow": False},
    "Microsoft.KeyVault/vaults": {
        "properties.enableRbacAuthorization": True,
        "properties.enableSoftDelete": True,
        "properties.enablePurgeProtection": True,
    },
    "Microsoft.Insights/components": {"properties.DisableLocalAuth": True},
}
# Resources that must carry diagnostic logs (a diagnosticSettings resource scoped to them
# or, for storage, to one of its services).
NEEDS_DIAGNOSTICS = ("Microsoft.Web/sites", "Microsoft.KeyVault/vaults", "Microsoft.Storage/storageAccounts")
GUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
SKIP_COMMENT = re.compile(r"checkov:skip=(\w+)(?::(.*))?")


# ---------------------------------------------------------------------------------------
# The validation
# ---------------------------------------------------------------------------------------


def checkov_executable() -> Path:
    """checkov from $CHECKOV or the repository's .venv-checkov; fails with the fix."""
    path = Path(os.environ.get("CHECKOV") or ROOT / ".venv-checkov" / "bin" / "checkov")
    if not path.is_file():
        pytest.fail(f"checkov not found at {path}: run scripts/install-checkov.sh (or set CHECKOV)")
    return path


def parse_templates(folder: Path) -> tuple[dict[str, dict], list[str]]:
    """Every .bicep under folder parsed by pycep-parser; a syntax error is a problem."""
    parser = BicepParser()
    templates, problems = {}, []
    for path in sorted(folder.rglob("*.bicep")):
        name = path.relative_to(folder).as_posix()
        try:
            templates[name] = parser.parse(file_path=path)
        except Exception as error:  # lark raises many types; any of them means "invalid"
            problems.append(f"{name}: does not parse: {str(error).splitlines()[0]}")
    if not templates and not problems:
        problems.append(f"{folder}: no .bicep file")
    return templates, problems


def run_checkov(folder: Path) -> list[str]:
    """checkov's failed checks, unparsed files and reason-less skips, as problems."""
    result = subprocess.run(
        [str(checkov_executable()), "-d", str(folder), "--framework", "bicep", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        reports = json.loads(result.stdout)
    except json.JSONDecodeError:
        return [f"checkov exited {result.returncode} without a JSON report: {result.stderr[-2000:]}"]
    problems = []
    for report in reports if isinstance(reports, list) else [reports]:
        summary = report.get("summary", report)
        results = report.get("results", {})
        # checkov exits 0 on a file it could not parse: the summary is the only sign.
        if summary.get("parsing_errors", 0):
            files = results.get("parsing_errors") or ["?"]
            problems.append(f"checkov could not parse {summary['parsing_errors']} file(s): {files}")
        for check in results.get("failed_checks", []):
            problems.append(
                f"checkov {check['check_id']} failed on {check['resource']} ({check['file_path']}): "
                f"{check['check_name']}"
            )
        for check in results.get("skipped_checks", []):
            if len((check["check_result"].get("suppress_comment") or "").strip()) < 20:
                problems.append(f"checkov {check['check_id']} skipped on {check['resource']} without a reason")
        if not summary.get("resource_count"):
            problems.append("checkov scanned no resource")
        # The skips and check IDs in infra/ were reviewed against this version.
        if summary.get("checkov_version") != CHECKOV_VERSION:
            problems.append(
                f"checkov {summary.get('checkov_version')} ran, {CHECKOV_VERSION} expected: "
                "run scripts/install-checkov.sh"
            )
    return problems


def validate_infra(folder: Path) -> list[str]:
    """All problems of the deployment in folder; empty means valid."""
    templates, problems = parse_templates(folder)
    problems += run_checkov(folder)
    problems += policy_problems(folder, templates)
    return problems


# ---------------------------------------------------------------------------------------
# Reading parsed templates (pycep JSON)
# ---------------------------------------------------------------------------------------


def unwrap(config: Any) -> tuple[Any, bool]:
    """A resource body without its `if (...)` / `for` wrapper, and whether it had one."""
    wrapped = False
    while isinstance(config, dict) and "config" in config and ("condition" in config or "loop_type" in config):
        config, wrapped = config["config"], True
    return config, wrapped


def resources(templates: dict[str, dict]) -> Iterator[tuple[str, str, dict]]:
    """(file, symbol, resource) for every resource declared (not `existing`)."""
    for name, template in templates.items():
        for symbol, resource in (template.get("resources") or {}).items():
            if not resource.get("existing"):
                yield name, symbol, resource


def lookup(config: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(config, dict) or key not in config:
            return "<missing>"
        config = config[key]
    return config


def resolve(value: Any, template: dict) -> Any:
    """A variable reference replaced by the variable's value (pycep keeps names as strings)."""
    variables = template.get("variables") or {}
    seen = set()
    while isinstance(value, str) and value in variables and value not in seen:
        seen.add(value)
        value = variables[value]["value"]
    return value


def role_of_assignment(config: dict, template: dict) -> str:
    """'builtin:<guid>', 'custom:<symbol>' or 'unknown:<json>' for a role assignment."""
    value = resolve(lookup(config, "properties.roleDefinitionId"), template)
    if isinstance(value, dict) and "function" in value:
        params = value["function"]["parameters"]
        value = resolve(params.get("resource_name_1"), template)
    if isinstance(value, str) and GUID.fullmatch(value):
        return f"builtin:{value.lower()}"
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "property_accessor":
        symbol = value["operator"]["operands"]["operand_1"]
        target = (template.get("resources") or {}).get(symbol, {})
        if target.get("type") == "Microsoft.Authorization/roleDefinitions":
            return f"custom:{symbol}"
    return f"unknown:{json.dumps(value)[:120]}"


def all_keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from all_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from all_keys(item)


def find_key(value: Any, wanted: str) -> Iterator[Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == wanted:
                yield item
            yield from find_key(item, wanted)
    elif isinstance(value, list):
        for item in value:
            yield from find_key(item, wanted)


# ---------------------------------------------------------------------------------------
# The repository's policy over the parsed templates
# ---------------------------------------------------------------------------------------


def policy_problems(folder: Path, templates: dict[str, dict]) -> list[str]:
    problems: list[str] = []
    for rule in (baseline_problems, diagnostics_problems, role_problems, comment_problems, secret_problems):
        problems += rule(folder, templates)
    return problems


def baseline_problems(folder: Path, templates: dict[str, dict]) -> list[str]:
    problems = []
    for name, symbol, resource in resources(templates):
        config, wrapped = unwrap(resource["config"])
        required = BASELINE.get(resource["type"], {})
        # checkov reads no property of a resource declared with `if` or `for`: a
        # security-relevant resource must be unconditional (make its module conditional).
        if required and wrapped:
            problems.append(
                f"{name}: {symbol} is conditional, so checkov cannot see it; move the condition to a module"
            )
        for dotted, expected in required.items():
            actual = lookup(config, dotted)
            if actual != expected or type(actual) is not type(expected):
                problems.append(f"{name}: {symbol}.{dotted} is {actual!r}, must be the literal {expected!r}")
    for name, template in templates.items():
        policies = {
            unwrap(r["config"])[0].get("name")
            for r in (template.get("resources") or {}).values()
            if r["type"] == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
        }
        for symbol, resource in (template.get("resources") or {}).items():
            site = resource["type"] == "Microsoft.Web/sites" and not resource.get("existing")
            if site and not {"ftp", "scm"} <= policies:
                problems.append(f"{name}: {symbol} must turn basic publishing off for both ftp and scm")
    return problems


def diagnostics_problems(folder: Path, templates: dict[str, dict]) -> list[str]:
    problems = []
    for name, template in templates.items():
        declared = template.get("resources") or {}
        scopes = {
            unwrap(r["config"])[0].get("scope")
            for r in declared.values()
            if r["type"] == "Microsoft.Insights/diagnosticSettings"
        }
        for symbol, resource in declared.items():
            if resource.get("existing") or resource["type"] not in NEEDS_DIAGNOSTICS:
                continue
            children = {s for s, r in declared.items() if unwrap(r["config"])[0].get("parent") == symbol}
            if not ({symbol} | children) & scopes:
                problems.append(f"{name}: {symbol} ({resource['type']}) has no diagnostic settings")
    return problems


def role_problems(folder: Path, templates: dict[str, dict]) -> list[str]:
    problems = []
    for path in folder.rglob("*.bicep"):
        for guid in GUID.findall(path.read_text()):
            if guid.lower() in BROAD_ROLES:
                problems.append(
                    f"{path.name}: built-in role {BROAD_ROLES[guid.lower()]} ({guid}) is not least privilege"
                )
            elif guid.lower() not in ALLOWED_BUILTIN_ROLES:
                problems.append(
                    f"{path.name}: unknown GUID {guid}: if it is a role, add it to ALLOWED_BUILTIN_ROLES with its name"
                )
    for name, symbol, resource in resources(templates):
        config, _ = unwrap(resource["config"])
        template = templates[name]
        if resource["type"] == "Microsoft.Authorization/roleAssignments":
            role = role_of_assignment(config, template)
            if role.startswith("unknown:"):
                problems.append(f"{name}: {symbol} assigns a role the policy cannot identify: {role}")
            scope = config.get("scope")
            if isinstance(scope, dict) or (isinstance(scope, str) and "(" in scope):
                problems.append(
                    f"{name}: {symbol} is scoped by an expression; scope it to a declared resource or the group"
                )
        if resource["type"] == "Microsoft.Authorization/roleDefinitions":
            for permission in lookup(config, "properties.permissions") or []:
                actions = permission.get("actions") or []
                if any("*" in action for action in actions) or permission.get("dataActions"):
                    problems.append(f"{name}: {symbol} uses wildcards or data actions: {actions}")
            scopes = lookup(config, "properties.assignableScopes")
            if scopes != [
                {
                    "operator": {
                        "type": "property_accessor",
                        "operands": {
                            "operand_1": {
                                "function": {
                                    "type": "resource_group",
                                    "parameters": {"resource_group_name": None, "subscription_id": None},
                                }
                            },
                            "operand_2": "id",
                        },
                    }
                }
            ]:
                problems.append(f"{name}: {symbol} must be assignable at resourceGroup().id only, not {scopes}")
    return problems


def comment_problems(folder: Path, templates: dict[str, dict]) -> list[str]:
    """Each role assignment says which role and why, in the comment right above it."""
    problems = []
    for path in sorted(folder.rglob("*.bicep")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if re.match(r"resource \w+ 'Microsoft.Authorization/roleAssignments@", line):
                above = []
                for previous in reversed(lines[:number]):
                    if not previous.startswith("//"):
                        break
                    above.append(previous)
                text = " ".join(above)
                if "Role:" not in text or "Why:" not in text:
                    problems.append(
                        f"{path.name}:{number + 1}: role assignment without a '// Role: ... Why: ...' comment"
                    )
        for match in SKIP_COMMENT.finditer(path.read_text()):
            if len((match.group(2) or "").strip()) < 20:
                problems.append(f"{path.name}: checkov skip {match.group(1)} without a reason")
    return problems


def secret_problems(folder: Path, templates: dict[str, dict]) -> list[str]:
    problems = []
    for name, template in templates.items():
        for param, spec in (template.get("parameters") or {}).items():
            secretive = re.search(r"password|webhookurl|^value$", param, re.I)
            if secretive and not any(d["type"] == "secure" for d in spec.get("decorators", [])):
                problems.append(f"{name}: parameter {param} holds a secret and must be @secure()")
        for setting in SECRET_SETTINGS:
            for value in find_key(template, setting):
                if not (isinstance(value, str) and value.startswith("@Microsoft.KeyVault(")):
                    problems.append(f"{name}: {setting} must be a Key Vault reference, not {value!r}")
        text = (folder / name).read_text()
        for forbidden in ("listKeys(", "AccountKey=", "SharedAccessSignature", "listSecrets("):
            if forbidden in text:
                problems.append(f"{name}: uses {forbidden!r}: storage and secrets go through the identity")
        if "AzureWebJobsStorage" in set(all_keys(template)):
            problems.append(f"{name}: AzureWebJobsStorage as a connection string; use AzureWebJobsStorage__accountName")
    return problems


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

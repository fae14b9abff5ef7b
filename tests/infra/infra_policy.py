"""The offline validation of infra/ (no Bicep compiler can be installed here), used by test_infra.py.

`validate_infra(folder)` is the whole check: every .bicep parses (pycep-parser), checkov
finds no failed check and no file it could not parse, and the repository's own policy
holds (security baseline as literals, least privilege per identity and per token mode,
secrets only as Key Vault references, nothing Flex Consumption rejects).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import subprocess
from collections.abc import Iterator
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
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
# Broad built-in roles that must never appear (named in failure messages). Key Vault Secrets
# Officer holds Microsoft.KeyVault/vaults/secrets/*: delete, purge, backup and restore too.
BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "de139f84-1756-47ae-9be6-808fbbe84772": "Website Contributor",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
}
# The ARM actions the watchdog calls on the Aggregator app (docs/reference.md, docs/rotation.md),
# in setting mode; reference mode needs no config/write (the token lives in Key Vault and a
# restart picks up a new version). tests/e2e/test_deployed_rights.py shows each one is needed.
CONFIG_WRITE = "Microsoft.Web/sites/config/write"
AGGREGATOR_ACTIONS = {
    "Microsoft.Web/sites/read",
    "Microsoft.Web/sites/config/appsettings/read",
    "Microsoft.Web/sites/config/list/action",
    CONFIG_WRITE,
    "Microsoft.Web/sites/restart/action",
}
REFERENCE_MODE_AGGREGATOR_ACTIONS = AGGREGATOR_ACTIONS - {CONFIG_WRITE}
TOKEN_MODES = ["setting", "reference"]

# Key Vault secret data actions (Microsoft's "Azure resource provider operations",
# Microsoft.KeyVault DataActions).
GET_SECRET = "Microsoft.KeyVault/vaults/secrets/getSecret/action"        # read a value
READ_METADATA = "Microsoft.KeyVault/vaults/secrets/readMetadata/action"  # list / properties, no value
SET_SECRET = "Microsoft.KeyVault/vaults/secrets/setSecret/action"        # write a new version
UPDATE_SECRET = "Microsoft.KeyVault/vaults/secrets/update/action"        # attributes and tags
SECRET_WRITES = frozenset({SET_SECRET, UPDATE_SECRET})
# What each principal may hold, at most (docs/reference.md, "What the watchdog trusts": read, list, set and tag; never delete,
# purge, back up or restore). The access modules name their principals by these parameters.
MAY_HOLD = {
    "watchdog": frozenset({GET_SECRET, READ_METADATA, SET_SECRET, UPDATE_SECRET}),
    "operator": frozenset({SET_SECRET, READ_METADATA}),    # stages PATs, reads none
    "aggregator": frozenset({GET_SECRET, READ_METADATA}),  # resolves its own reference
}
PRINCIPALS = {"principalId": "watchdog", "operatorPrincipalId": "operator", "aggregatorPrincipalId": "aggregator"}
# How main.bicep must fill those parameters: the watchdog's principal is its identity.
PRINCIPAL_SOURCES = {
    "principalId": {"identity.properties.principalId", "principalId"},
    "operatorPrincipalId": {"operatorPrincipalId"},
    "aggregatorPrincipalId": {"aggregatorPrincipalId"},
}
# Data actions of the built-in roles that carry Key Vault ones (Azure built-in roles reference).
BUILTIN_DATA_ACTIONS = {
    "4633458b-17de-408a-b874-0445c86b69e6": frozenset({GET_SECRET, READ_METADATA}),  # Secrets User
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": frozenset({"Microsoft.KeyVault/vaults/secrets/*"}),  # Secrets Officer
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": frozenset({"Microsoft.KeyVault/vaults/*"}),  # Key Vault Administrator
}
# README, "Settings": every setting the deployment must be able to wire.
WATCHDOG_SETTINGS = (
    "WATCHDOG_AGGREGATOR_APP",
    "WATCHDOG_DEVOPS_ORG_URL",
    "WATCHDOG_DEVOPS_VSSPS_URL",
    "WATCHDOG_TOKEN_SETTING",
    "WATCHDOG_ARM_ENDPOINT",
    "WATCHDOG_KEY_VAULT_URL",
    "WATCHDOG_REFERENCE_VAULTS",
    "WATCHDOG_REENABLE_SUBSCRIPTIONS",
    "WATCHDOG_STAGED_SECRET",
    "WATCHDOG_PREVIOUS_SECRET",
    "WATCHDOG_ROTATION",
    "WATCHDOG_PAT_LIFETIME_DAYS",
    "WATCHDOG_REVOKE_AFTER_DAYS",
    "WATCHDOG_SIGNIN_SECRET",
    "WATCHDOG_SIGNIN_CLIENT_ID",
    "WATCHDOG_ROTATE_WITHIN_DAYS",
    "WATCHDOG_WARN_DAYS",
    "WATCHDOG_CRITICAL_DAYS",
    "WATCHDOG_REQUIRED_SCOPES",
    "WATCHDOG_RECOMMENDED_SCOPES",
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
    },
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies": {"properties.allow": False},
    "Microsoft.KeyVault/vaults": {
        "properties.enableRbacAuthorization": True,
        "properties.enableSoftDelete": True,
        "properties.enablePurgeProtection": True,
    },
    "Microsoft.Insights/components": {"properties.DisableLocalAuth": True},
}
# Microsoft Learn, "App settings reference for Azure Functions", section "Flex Consumption plan
# deprecations" (functions-app-settings.md, 2025-12-22): app settings and site properties that
# Flex Consumption does not support. ARM rejects a site that sets one ("The following list of ...
# site configuration properties (Site.SiteConfig.FtpsState, ...) for Flex Consumption sites is
# invalid. Please remove or rename them"; microsoft/azure-pipelines-tasks#21032).
# FunctionsRuntimeScaleMonitoringEnabled is not in the table but is rejected the same way
# (Azure/azure-functions-host#10643). Compared case-insensitively.
FLEX_UNSUPPORTED_SETTINGS = (
    "ENABLE_ORYX_BUILD", "FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION", "FUNCTIONS_MAX_HTTP_CONCURRENCY", "FUNCTIONS_WORKER_PROCESS_COUNT",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED", "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTOVERVNET", "WEBSITE_CONTENTSHARE",
    "WEBSITE_DNS_SERVER", "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT", "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_SKIP_CONTENTSHARE_VALIDATION", "WEBSITE_VNET_ROUTE_ALL",
)
FLEX_UNSUPPORTED_SITE_PROPERTIES = (
    "alwaysOn", "containerSize", "dnsConfiguration", "ftpsState", "isReserved", "IsXenon", "javaVersion",
    "linuxFxVersion", "netFrameworkVersion", "powerShellVersion", "functionAppScaleLimit",
    "preWarmedInstanceCount", "use32BitWorkerProcess", "vnetBackupRestoreEnabled", "vnetContentShareEnabled",
    "vnetImagePullEnabled", "vnetRouteAllEnabled", "windowsFxVersion", "functionsRuntimeScaleMonitoringEnabled",
)
# Microsoft Learn, "Azure Functions Flex Consumption plan hosting", Considerations: "Diagnostic
# settings aren't currently supported". Extension resources of these types must not be scoped to a
# Flex site (its logs go to Application Insights instead).
FLEX_UNSUPPORTED_EXTENSIONS = ("Microsoft.Insights/diagnosticSettings",)
# Microsoft Learn, "Flex Consumption plan": instance memory is 512, 2048 or 4096 MB; the
# maximum instance count is 40 to 1000 (lower values only in some regions, in preview).
FLEX_INSTANCE_MEMORY = {512, 2048, 4096}
FLEX_MIN_INSTANCES = 40
# Log search alert windows the service accepts, in minutes (azure-rest-api-specs#21258).
ALERT_WINDOWS = {5, 10, 15, 30, 45, 60, 120, 180, 240, 300, 360, 1440, 2880}

# Resources that must carry diagnostic logs (a diagnosticSettings resource scoped to them
# or, for storage, to one of its services). Not the Flex site: see FLEX_UNSUPPORTED_EXTENSIONS.
NEEDS_DIAGNOSTICS = ("Microsoft.KeyVault/vaults", "Microsoft.Storage/storageAccounts")
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


def evaluate(value: Any, template: dict, params: dict[str, Any] | None = None) -> Any:
    """An expression reduced as far as the policy can: variables; parameters from `params`, else their
    default; `a ? b : c`, `==`, `!=`, `!`, `&&`, `||`. Anything else is returned as pycep gives it."""
    params = params or {}
    variables = template.get("variables") or {}
    declared = template.get("parameters") or {}
    if isinstance(value, str):
        if value in params:
            return params[value]
        if value in variables:
            return evaluate(variables[value]["value"], template, params)
        if value in declared and "default" in declared[value]:
            return declared[value]["default"]
        return value
    if isinstance(value, list):
        return [evaluate(item, template, params) for item in value]
    if isinstance(value, dict) and "operator" in value:
        kind, ops = value["operator"]["type"], value["operator"].get("operands") or {}
        if kind == "conditional":
            condition = evaluate(ops["condition"], template, params)
            if isinstance(condition, bool):
                return evaluate(ops["true_value" if condition else "false_value"], template, params)
        elif kind in ("equals", "not_equals", "and", "or"):
            left, right = (evaluate(ops[k], template, params) for k in ("operand_1", "operand_2"))
            if kind == "equals":
                return left == right
            if kind == "not_equals":
                return left != right
            if isinstance(left, bool) and isinstance(right, bool):
                return (left and right) if kind == "and" else (left or right)
        elif kind == "not":
            inner = evaluate(ops.get("bool_value"), template, params)
            if isinstance(inner, bool):
                return not inner
    return value


def alternatives(value: Any, template: dict) -> list[Any]:
    """Every value an expression can take through its `a ? b : c` branches, variables resolved."""
    value = resolve(value, template)
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "conditional":
        ops = value["operator"]["operands"]
        return alternatives(ops["true_value"], template) + alternatives(ops["false_value"], template)
    return [value]


def dotted(value: Any) -> str | None:
    """`identity.properties.principalId` for pycep's nested property accessors; a plain name as is."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "property_accessor":
        ops = value["operator"]["operands"]
        left, right = dotted(ops["operand_1"]), dotted(ops["operand_2"])
        if left and right:
            return f"{left}.{right}"
    return None


def role_actions(template: dict, symbol: str, key: str = "actions", params: dict | None = None) -> list[str]:
    """The `actions` (or `dataActions`) of a role definition in the template, for given parameter values."""
    config, _ = unwrap(template["resources"][symbol]["config"])
    found: list[str] = []
    for permission in lookup(config, "properties.permissions") or []:
        value = evaluate(permission.get(key) or [], template, params)
        if not isinstance(value, list):
            raise ValueError(f"{symbol}.{key} cannot be read: {json.dumps(value)[:120]}")
        found += value
    return found


def assignment_data_actions(config: dict, template: dict) -> set[str]:
    """Every data action a role assignment can grant, over all branches of its role's definition."""
    role = role_of_assignment(config, template)
    kind, _, ident = role.partition(":")
    if kind == "builtin":
        return set(BUILTIN_DATA_ACTIONS.get(ident, ()))
    granted: set[str] = set()
    if kind == "custom":
        definition, _ = unwrap(template["resources"][ident]["config"])
        for permission in lookup(definition, "properties.permissions") or []:
            for option in alternatives(permission.get("dataActions") or [], template):
                if isinstance(option, list):
                    granted |= {a for a in option if isinstance(a, str)}
    return granted


def stores_channel_secrets(template: dict) -> bool:
    """Whether the template writes the alert-channel secrets (it uses the secret.bicep module)."""
    return any(
        posixpath.basename((module.get("detail") or {}).get("path") or "") == "secret.bicep"
        for module in (template.get("modules") or {}).values()
    )


def module_target(name: str, module: dict) -> str:
    """The templates key of a local module declared in template `name`."""
    path = (module.get("detail") or {}).get("path") or ""
    return posixpath.normpath(posixpath.join(posixpath.dirname(name), path))


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
    for rule in (baseline_problems, diagnostics_problems, role_problems, key_vault_access_problems,
                 token_mode_problems, principal_wiring_problems, comment_problems, secret_problems,
                 flex_problems, alert_window_problems):
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
                for key in ("actions", "dataActions"):
                    for option in alternatives(permission.get(key) or [], template):
                        if not isinstance(option, list) or not all(isinstance(a, str) for a in option):
                            problems.append(f"{name}: {symbol}.{key} cannot be read by the policy: "
                                            f"{json.dumps(option)[:120]}")
                            continue
                        if any("*" in action for action in option):
                            problems.append(f"{name}: {symbol} uses wildcards in {key}: {option}")
                        for action in option:
                            if action.lower().startswith("microsoft.authorization/"):
                                problems.append(f"{name}: {symbol} holds {action}: no role of the watchdog "
                                                "may read or change role assignments or definitions")
                            if key == "dataActions" and "*" not in action and action not in MAY_HOLD["watchdog"]:
                                problems.append(
                                    f"{name}: {symbol} grants the data action {action}: a role here may only read, "
                                    "list, set and tag secrets (never delete, purge, back up, restore or recover)"
                                )
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


def key_vault_access_problems(folder: Path, templates: dict[str, dict]) -> list[str]:
    """Least privilege per identity (docs/reference.md, "What the watchdog trusts"): who may do what with secrets, and where.

    The watchdog reads, lists, sets and tags; the operator sets and lists but reads no value;
    the Aggregator reads its own token secret only; nobody writes where the channel secrets live.
    """
    problems = []
    for name, symbol, resource in resources(templates):
        if resource["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        config, _ = unwrap(resource["config"])
        template = templates[name]
        granted = {a for a in assignment_data_actions(config, template) if a.lower().startswith("microsoft.keyvault/")}
        if not granted:
            continue
        who = PRINCIPALS.get(lookup(config, "properties.principalId"))
        if who is None:
            problems.append(f"{name}: {symbol} grants Key Vault data actions to a principal the policy does not "
                            f"know ({lookup(config, 'properties.principalId')!r}; known: {sorted(PRINCIPALS)})")
            continue
        beyond = sorted(granted - MAY_HOLD[who])
        if beyond:
            problems.append(f"{name}: {symbol} gives the {who} {beyond}, beyond least privilege: the {who} may "
                            f"hold only {sorted(MAY_HOLD[who])}")
        if stores_channel_secrets(template) and (granted & SECRET_WRITES or beyond):
            problems.append(f"{name}: {symbol} lets the {who} write in the vault of the channel secrets: only the "
                            "deployment writes there, so no rotation can change where alerts go")
        if who == "aggregator":
            scope = (template.get("resources") or {}).get(config.get("scope"), {})
            if scope.get("type") != "Microsoft.KeyVault/vaults/secrets":
                problems.append(f"{name}: {symbol} must be scoped to the Aggregator's token secret only, not to "
                                f"{config.get('scope')!r}")
    return problems


def token_mode_problems(folder: Path, templates: dict[str, dict]) -> list[str]:
    """Reference mode really drops config/write: in every role, and main passes the mode on."""
    problems = []
    for name, template in templates.items():
        declared = template.get("parameters") or {}
        if "tokenMode" in declared:
            allowed = next((d.get("argument") for d in declared["tokenMode"].get("decorators", [])
                            if d["type"] == "allowed"), None)
            if allowed != TOKEN_MODES or declared["tokenMode"].get("default") != "setting":
                problems.append(f"{name}: tokenMode must allow exactly {TOKEN_MODES}, default 'setting'")
            for symbol, resource in (template.get("resources") or {}).items():
                if resource["type"] != "Microsoft.Authorization/roleDefinitions":
                    continue
                try:
                    actions = role_actions(template, symbol, params={"tokenMode": "reference"})
                except ValueError as error:
                    problems.append(f"{name}: {error}")
                    continue
                if CONFIG_WRITE in actions:
                    problems.append(f"{name}: {symbol} keeps {CONFIG_WRITE} in reference mode: the watchdog could "
                                    "still rewrite the Aggregator's settings")
        for symbol, module in (template.get("modules") or {}).items():
            target = templates.get(module_target(name, module))
            if target is None or "tokenMode" not in (target.get("parameters") or {}):
                continue
            given = (unwrap(module["config"])[0].get("params") or {}).get("tokenMode")
            if given != "tokenMode":
                problems.append(f"{name}: module {symbol} is not given tokenMode: in reference mode it would keep "
                                "the setting-mode grants")
    return problems


def principal_wiring_problems(folder: Path, templates: dict[str, dict]) -> list[str]:
    """The principal parameters the access rules rely on are filled with the right principals."""
    problems = []
    for name, template in templates.items():
        for symbol, module in (template.get("modules") or {}).items():
            params = unwrap(module["config"])[0].get("params") or {}
            for param, sources in PRINCIPAL_SOURCES.items():
                if param in params and dotted(params[param]) not in sources:
                    problems.append(f"{name}: module {symbol} gets {param} from {dotted(params[param])!r}, "
                                    f"expected one of {sorted(sources)}")
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


def flex_problems(folder: Path, templates: dict[str, dict]) -> list[str]:
    """Nothing that Flex Consumption rejects or does not support: the deprecated settings and site
    properties, diagnostic settings on the site, the scale limits."""
    problems = []
    settings = {s.lower() for s in FLEX_UNSUPPORTED_SETTINGS}
    properties = {p.lower() for p in FLEX_UNSUPPORTED_SITE_PROPERTIES}
    for name, template in templates.items():
        declared = template.get("resources") or {}
        sites = {s for s, r in declared.items() if r["type"] == "Microsoft.Web/sites" and not r.get("existing")}
        for symbol, resource in declared.items():
            if resource["type"] in FLEX_UNSUPPORTED_EXTENSIONS and unwrap(resource["config"])[0].get("scope") in sites:
                problems.append(f"{name}: {symbol} ({resource['type']}) on a Flex Consumption site is not supported "
                                "(\"Diagnostic settings aren't currently supported\"): its logs go to Application Insights")
        for key in sorted({k for k in all_keys(template) if isinstance(k, str) and k.lower() in settings}):
            problems.append(f"{name}: app setting {key} is not supported on Flex Consumption")
        for value in find_key(template, "name"):  # appSettings given as [{name, value}]
            if isinstance(value, str) and value.lower() in settings:
                problems.append(f"{name}: app setting {value} is not supported on Flex Consumption")
        for symbol, resource in (template.get("resources") or {}).items():
            if resource["type"] != "Microsoft.Web/sites" or resource.get("existing"):
                continue
            site_config = lookup(unwrap(resource["config"])[0], "properties.siteConfig")
            for key in all_keys(site_config if isinstance(site_config, dict) else {}):
                if key.lower() in properties:
                    problems.append(f"{name}: {symbol}.properties.siteConfig.{key} is not supported on Flex "
                                    "Consumption (ARM rejects the site)")
        params = template.get("parameters") or {}
        for param, spec in params.items():
            decorators = {d["type"]: d for d in spec.get("decorators", [])}
            if param == "instanceMemoryMB":
                allowed = set((decorators.get("allowed") or {}).get("argument") or [])
                if not allowed or not allowed <= FLEX_INSTANCE_MEMORY:
                    problems.append(f"{name}: instanceMemoryMB allows {sorted(allowed)}, Flex takes "
                                    f"{sorted(FLEX_INSTANCE_MEMORY)}")
            if param == "maximumInstanceCount":
                low = (decorators.get("min_value") or {}).get("argument")
                if not isinstance(low, int) or low < FLEX_MIN_INSTANCES:
                    problems.append(f"{name}: maximumInstanceCount may go down to {low}; Flex takes at least "
                                    f"{FLEX_MIN_INSTANCES}")
    return problems


def _minutes(duration: str) -> int | None:
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?", duration or "")
    if not match or not any(match.groups()):
        return None
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return days * 1440 + hours * 60 + minutes


def alert_window_problems(folder: Path, templates: dict[str, dict]) -> list[str]:
    """Every log alert's window and frequency is one the service accepts."""
    problems = []
    for name, symbol, resource in resources(templates):
        if resource["type"] != "Microsoft.Insights/scheduledQueryRules":
            continue
        config = unwrap(resource["config"])[0]
        for field in ("windowSize", "evaluationFrequency"):
            value = lookup(config, f"properties.{field}")
            if _minutes(value) not in ALERT_WINDOWS:
                problems.append(f"{name}: {symbol}.{field} {value!r} is not a window Azure Monitor accepts "
                                f"({sorted(ALERT_WINDOWS)} minutes)")
    return problems

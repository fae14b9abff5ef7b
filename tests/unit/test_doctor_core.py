"""The doctor's pure parts: ARM's permission rule, the fix commands, the document and its text."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest

from pat_watchdog.core import checkup, fixes
from pat_watchdog.core import permissions as P
from pat_watchdog.core.checkup import Check, Verdict, fix, ok, skip
from pat_watchdog.core.resource_ids import parse_resource_id

WRITE = "Microsoft.Web/sites/config/write"
SECRET_SET = "Microsoft.KeyVault/vaults/secrets/setSecret/action"
APP = "/subscriptions/8c56d827-5f07-45ce-8f2b-6c5001db5c6f/resourceGroups/aggregator-contoso/providers/" \
      "Microsoft.Web/sites/contosoaggregator"
VAULT = "/subscriptions/8c56d827-5f07-45ce-8f2b-6c5001db5c6f/resourceGroups/rg-pat-watchdog/providers/" \
        "Microsoft.KeyVault/vaults/contoso-kv"


def perm(actions=(), not_actions=(), data=(), not_data=()) -> dict:
    return {"actions": list(actions), "notActions": list(not_actions), "dataActions": list(data),
            "notDataActions": list(not_data)}


@pytest.mark.parametrize("permissions, action, data, expected", [
    ([perm([WRITE])], WRITE, False, True),
    ([perm(["microsoft.web/SITES/config/WRITE"])], WRITE, False, True),             # names ignore case
    ([perm(["Microsoft.Web/sites/*"])], WRITE, False, True),
    ([perm(["Microsoft.Web/*/write"])], WRITE, False, True),                        # a wildcard in the middle
    ([perm(["*"])], WRITE, False, True),
    ([perm(["Microsoft.Web/sites/config/*/write"])], WRITE, False, False),
    ([perm(["Microsoft.Web/sites/*"], [WRITE])], WRITE, False, False),              # notActions of the same role
    ([perm(["Microsoft.Web/sites/*"], ["Microsoft.Web/sites/config/*"])], WRITE, False, False),
    ([perm(["Microsoft.Web/sites/*"], [WRITE]), perm([WRITE])], WRITE, False, True),  # another role adds it back
    ([], WRITE, False, False),
    ([perm(data=[SECRET_SET])], SECRET_SET, False, False),                          # a data action is not an action
    ([perm([SECRET_SET])], SECRET_SET, True, False),                                # ... nor the other way round
    ([perm(data=["Microsoft.KeyVault/vaults/secrets/*"])], SECRET_SET, True, True),
    ([perm(data=["Microsoft.KeyVault/vaults/secrets/*"], not_data=[SECRET_SET])], SECRET_SET, True, False),
    ([{"actions": [WRITE]}], WRITE, False, True),                                   # the example leaves lists out
])
def test_arm_permission_rule(permissions, action, data, expected):
    assert P.allows(permissions, action, data=data) is expected


def test_missing_lists_what_is_not_allowed_in_order():
    held = [perm(data=["Microsoft.KeyVault/vaults/secrets/getSecret/action",
                       "Microsoft.KeyVault/vaults/secrets/readMetadata/action"])]
    assert P.missing(held, P.VAULT_DATA_ACTIONS, data=True) == P.VAULT_DATA_ACTIONS[2:]


def _jwt(claims: dict) -> str:
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJSUzI1NiJ9.{part}.c2ln"


@pytest.mark.parametrize("token, expected", [
    (_jwt({"oid": "5dbefd19-9038-4da7-b062-ac1a480a381d", "aud": "https://management.azure.com"}),
     "5dbefd19-9038-4da7-b062-ac1a480a381d"),
    (_jwt({"aud": "x"}), None),
    (_jwt({"oid": "not a guid; rm -rf /"}), None),                 # never pasted into a command
    (_jwt(["a list"]), None),
    ("opaque-token", None),
    ("a.%%%.c", None),
])
def test_the_object_id_comes_from_the_tokens_oid_claim(token, expected):
    assert fixes.principal_id(token) == expected


def test_fix_commands():
    app = parse_resource_id(APP)
    assert fixes.site_role("oid", app) == (
        'az role assignment create --assignee-object-id oid --assignee-principal-type ServicePrincipal --role '
        '"$(az role definition list --custom-role-only true --scope /subscriptions/8c56d827-5f07-45ce-8f2b-'
        '6c5001db5c6f/resourceGroups/aggregator-contoso --query "[?starts_with(roleName, \'pat-watchdog Aggregator '
        f'settings (\')].roleName | [0]" -o tsv)" --scope {APP}')
    assert fixes.role_assignment(None, "Reader", VAULT).startswith(
        "az role assignment create --assignee-object-id <watchdog principal ID> ")
    assert fixes.vault_update(VAULT, "--enable-purge-protection") == \
        "az keyvault update --name contoso-kv --resource-group rg-pat-watchdog --enable-purge-protection true"
    assert fixes.vault_update("contoso-kv", "--enable-rbac-authorization") == \
        "az keyvault update --name contoso-kv --enable-rbac-authorization true"
    assert fixes.app_setting(app, "Aggregator_VstsTokenType", "PAT") == \
        "az functionapp config appsettings set -g aggregator-contoso -n contosoaggregator " \
        "--settings Aggregator_VstsTokenType=PAT"
    assert fixes.storage_role("oid", fixes.TABLE_ROLE, "st1").endswith(
        '--role "Storage Table Data Contributor" --scope "$(az storage account show --name st1 --query id -o tsv)"')


NOW = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)


def test_the_document_is_schema_1_and_fix_wins():
    checks = [ok("settings", "watchdog", "valid"), skip("storage.queue", "queue:-", "not set"),
              fix("vault.rbac", "https://contoso-kv.vault.azure.net", "access policies", "az keyvault update ...")]
    document = checkup.document(checks, NOW)
    assert document == {"schema": 1, "generated_at": "2026-11-28T06:00:00Z", "status": "FIX", "checks": [
        {"id": "settings", "scope": "watchdog", "status": "OK", "message": "valid", "fix": None},
        {"id": "storage.queue", "scope": "queue:-", "status": "SKIP", "message": "not set", "fix": None},
        {"id": "vault.rbac", "scope": "https://contoso-kv.vault.azure.net", "status": "FIX",
         "message": "access policies", "fix": "az keyvault update ..."}]}
    assert checkup.exit_code(checks) == 1 and checkup.exit_code(checks[:2]) == 0
    assert json.loads(json.dumps(document)) == document


def test_the_text_is_one_line_a_check_and_the_fix_under_it():
    text = checkup.render([ok("instance.token", APP, "works"), fix("vault.rbac", "https://contoso-kv.vault.azure.net",
                                                                    "access policies", "az keyvault update x")])
    assert text.splitlines() == ["OK   instance.token  contosoaggregator: works",
                                 "FIX  vault.rbac      contoso-kv: access policies",
                                 "     fix: az keyvault update x",
                                 "doctor: FIX (1 to fix, 1 OK, 0 skipped)"]


def test_only_a_fix_carries_a_command_and_a_configuration_error_is_a_fix():
    with pytest.raises(ValueError):
        Check("settings", "watchdog", Verdict.OK, "fine", "az login")
    assert [c.status for c in checkup.config_error(["A is required", "B: expected x"])] == [Verdict.FIX] * 2

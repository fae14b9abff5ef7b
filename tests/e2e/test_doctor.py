"""`pat-watchdog doctor`: every check against the sandbox, each gap with its exact fix, nothing written.

The fixes are spelt out here in full: they are what a person copies into a shell.
"""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from pat_watchdog.core import reasons as R
from pat_watchdog.sandbox.seed import SUBSCRIPTION, WATCHDOG_GROUP
from tests.conftest import FAST_RETRY, NOW
from tests.e2e.conftest import card_title

NAME, GROUP = "contosoaggregator", "aggregator-contoso"
ACCOUNT, TABLE = "stpatwatchdog", "patwatchdog"
TOKEN_SECRET = "aggregator-pat"      # reference mode's token secret (deploy.md)
VAULT_READ = "Microsoft.KeyVault/vaults/read"
ENTITIES = "Microsoft.Storage/storageAccounts/tableServices/tables/entities"
TEAMS_FIX = 'read -rs TEAMS_URL && azd env set WATCHDOG_TEAMS_WEBHOOK_URL "$TEAMS_URL" && azd provision'


def custom_role(prefix: str, group: str) -> str:
    return (f'"$(az role definition list --custom-role-only true --scope /subscriptions/{SUBSCRIPTION}/resourceGroups/'
            f'{group} --query "[?starts_with(roleName, \'{prefix} (\')].roleName | [0]" -o tsv)"')


def assign(oid: str, role: str, scope: str) -> str:
    return (f"az role assignment create --assignee-object-id {oid} --assignee-principal-type ServicePrincipal "
            f"--role {role} --scope {scope}")


def plain(world) -> str:
    """A healthy instance whose token is the plain setting, staged with its expiry and scopes."""
    token, _ = world.issue(100)
    app = world.add_instance(NAME, token)
    world.stage(token, days=100, tags={"watchdog-status": "current"})
    return app


def reference_mode(world) -> str:
    """A healthy instance whose token setting is a versionless reference to the staging vault's token secret."""
    token, _ = world.issue(100)
    world.stage(token, days=100, secret=TOKEN_SECRET)
    return world.add_instance(NAME, f"@Microsoft.KeyVault(SecretUri=https://{world.vault}.vault.azure.net/secrets/"
                                    f"{TOKEN_SECRET}/)")


def see_the_vault(world) -> None:
    """What the deployment does not grant: read on the vault's resource, so that the doctor can check it."""
    world.sandbox.arm.grant(world.vault_id, actions=[VAULT_READ])


def identity_storage(sandbox) -> dict:
    """The deployment's storage: the identity, no connection string (the Table stand-in answers)."""
    sandbox.arm.add_storage_account(SUBSCRIPTION, WATCHDOG_GROUP, ACCOUNT)
    sandbox.tables.add_table(ACCOUNT, TABLE)
    return {"AzureWebJobsStorage": None, "AzureWebJobsStorage__accountName": ACCOUNT, "WATCHDOG_STATE_TABLE": TABLE}


def checks(result) -> dict[str, dict]:
    return {c["id"]: c for c in result.json["checks"]}


def test_every_check_is_ok_when_everything_is_granted(world, run_cli, sandbox, channels, azurite):
    reference_mode(world)
    see_the_vault(world)
    result = run_cli("doctor", WATCHDOG_FANOUT_QUEUE="fanout", **channels)
    lines = result.out.splitlines()
    assert result.code == 0, result.out
    assert [line.split()[:2] for line in lines[:-1]] == [["OK", i] for i in (
        "settings", "credential", "instance.settings", "instance.write", "instance.restart",
        "instance.token_setting", "instance.reference", "instance.token_type", "instance.token", "instance.scopes",
        "vault.reachable", "vault.rbac", "vault.purge_protection", "vault.data_actions", "storage.table",
        "storage.queue", "channel.teams", "channel.email")]
    assert lines[-1] == "doctor: OK (0 to fix, 18 OK, 0 skipped)"
    assert f"object ID {sandbox.identity.object_id}" in result.out
    document = run_cli("doctor", "--json", WATCHDOG_FANOUT_QUEUE="fanout", **channels).json
    assert document["schema"] == 1 and document["status"] == "OK" and document["generated_at"] == "2026-11-28T06:00:00Z"
    assert all(set(c) == {"id", "scope", "status", "message", "fix"} and c["fix"] is None for c in document["checks"])
    assert {c["scope"] for c in document["checks"]} >= {world.apps[0], world.sandbox.vault.url("contoso-kv"),
                                                       f"table:{channels['WATCHDOG_STATE_TABLE']}", "queue:fanout"}
    _assert_storage_left_as_found(azurite, channels["WATCHDOG_STATE_TABLE"])


def _assert_storage_left_as_found(azurite, table: str) -> None:
    from azure.data.tables import TableClient
    from azure.storage.queue import QueueClient

    rows = list(TableClient.from_connection_string(azurite.connection_string, table).list_entities())
    queue = QueueClient.from_connection_string(azurite.connection_string, "fanout")
    assert rows == [] and queue.peek_messages(max_messages=32) == []


def test_a_plain_token_needs_no_reference_and_no_restart(world, run_cli, channels):
    plain(world)
    see_the_vault(world)
    world.sandbox.arm.revoke(world.apps[0], actions=["Microsoft.Web/sites/restart/action"])
    result = run_cli("doctor", "--json", **channels)
    found = checks(result)
    assert result.code == 0 and found["instance.write"]["status"] == "OK"
    assert found["instance.restart"]["status"] == "SKIP" and found["instance.reference"]["status"] == "SKIP"
    assert found["storage.queue"]["status"] == "SKIP"


def test_what_the_deployment_grants_passes_and_says_how_to_see_the_vault(world, run_cli, sandbox, channels):
    plain(world)
    result = run_cli("doctor", "--json", **channels)
    found = checks(result)
    assert result.code == 0
    skipped = [i for i, c in found.items() if c["status"] == "SKIP"]
    assert skipped == ["instance.reference", "vault.rbac", "vault.purge_protection", "vault.data_actions",
                       "storage.queue"]
    grant = assign(sandbox.identity.object_id, '"Reader"', '"$(az keyvault show --name contoso-kv --query id -o tsv)"')
    assert grant in found["vault.rbac"]["message"] and found["vault.reachable"]["status"] == "OK"


def _revoked_config_write(world, sandbox):
    app = plain(world)
    sandbox.arm.revoke(app, actions=["Microsoft.Web/sites/config/write"])
    return {}, (), "instance.write", assign(sandbox.identity.object_id, custom_role(
        "pat-watchdog Aggregator settings", GROUP), app)


def _access_policy_vault(world, sandbox):
    plain(world)
    sandbox.arm.set_vault("contoso-kv", rbac=False)
    return {}, (), "vault.rbac", \
        f"az keyvault update --name contoso-kv --resource-group {WATCHDOG_GROUP} --enable-rbac-authorization true"


def _no_purge_protection(world, sandbox):
    plain(world)
    sandbox.arm.set_vault("contoso-kv", purge_protection=False)
    return {}, (), "vault.purge_protection", \
        f"az keyvault update --name contoso-kv --resource-group {WATCHDOG_GROUP} --enable-purge-protection true"


def _missing_data_action(world, sandbox):
    plain(world)
    sandbox.arm.revoke(world.vault_id, data_actions=["Microsoft.KeyVault/vaults/secrets/setSecret/action"])
    return {}, (), "vault.data_actions", assign(sandbox.identity.object_id, custom_role(
        "pat-watchdog Key Vault rotation", WATCHDOG_GROUP), world.vault_id)


def _unresolved_reference(world, sandbox):
    app = reference_mode(world)
    sandbox.arm.set_reference_status(app, "Aggregator_VstsToken", "AccessToKeyVaultDenied")
    aggregator = f'"$(az functionapp identity show -g {GROUP} -n {NAME} --query principalId -o tsv)"'
    return {}, (), "instance.reference", assign(
        aggregator, '"Key Vault Secrets User"',
        f'"$(az keyvault show --name contoso-kv --query id -o tsv)/secrets/{TOKEN_SECRET}"')


def _token_type_pat(world, sandbox):
    token, _ = world.issue(100)
    world.add_instance(NAME, token, extra={"Aggregator_VstsTokenType": "pat"})
    world.stage(token, days=100, tags={"watchdog-status": "current"})
    return {}, (), "instance.token_type", \
        f"az functionapp config appsettings set -g {GROUP} -n {NAME} --settings Aggregator_VstsTokenType=PAT"


def _expired_token(world, sandbox):
    token, _ = world.issue(-2)
    world.add_instance(NAME, token)
    return {}, (), "instance.token", R.stage_command("contoso-kv", "aggregator-pat-staged",
                                                     expires="2027-02-26T00:00:00Z")    # 90 days on


def _table_not_writable(world, sandbox):
    plain(world)
    env = identity_storage(sandbox)
    account = sandbox.arm.resources.storage_account(ACCOUNT).id
    sandbox.arm.revoke(account, data_actions=[f"{ENTITIES}/*"])
    sandbox.arm.grant(account, data_actions=[f"{ENTITIES}/read"])    # Storage Table Data Reader's
    return env, (), "storage.table", assign(sandbox.identity.object_id, '"Storage Table Data Contributor"',
                                            f'"$(az storage account show --name {ACCOUNT} --query id -o tsv)"')


def _teams_answers_404(world, sandbox):
    plain(world)
    sandbox.inject(host="logic.azure.com", status=404, times=None)
    return {}, ("--send-test",), "channel.teams", TEAMS_FIX


@pytest.mark.parametrize("case", [_revoked_config_write, _access_policy_vault, _no_purge_protection,
                                  _missing_data_action, _unresolved_reference, _token_type_pat, _expired_token,
                                  _table_not_writable, _teams_answers_404], ids=lambda c: c.__name__.strip("_"))
def test_each_gap_exits_1_with_its_fix(case, world, run_cli, sandbox, channels):
    see_the_vault(world)
    env, args, check_id, expected = case(world, sandbox)
    overrides = {**channels, **env}
    text = run_cli("doctor", *args, **overrides)
    assert text.code == 1
    line = next(i for i, line in enumerate(text.out.splitlines()) if line.split()[:2] == ["FIX", check_id])
    assert text.out.splitlines()[line + 1] == f"     fix: {expected}"
    document = run_cli("doctor", "--json", *args, **overrides).json
    assert document["status"] == "FIX"
    assert [(c["id"], c["fix"]) for c in document["checks"] if c["status"] == "FIX"] == [(check_id, expected)]


def test_a_configuration_error_exits_2_and_names_every_setting(world, run_cli):
    result = run_cli("doctor", "--json", WATCHDOG_DEVOPS_ORG_URL=None, WATCHDOG_WARN_DAYS="30,seven")
    assert result.code == 2 and "WATCHDOG_AGGREGATOR_APP is required" in result.err
    document = result.json
    assert document["status"] == "FIX" and {c["id"] for c in document["checks"]} == {"settings"}
    problems = " ".join(c["message"] for c in document["checks"])
    assert "WATCHDOG_DEVOPS_ORG_URL" in problems and "WATCHDOG_WARN_DAYS" in problems
    assert run_cli("doctor", WATCHDOG_DEVOPS_ORG_URL=None).code == 2


def test_send_test_delivers_one_card_and_one_email_marked_as_a_test(world, run_cli, sandbox, channels):
    plain(world)
    assert run_cli("doctor", **channels).code == 0
    assert sandbox.teams.received == [] and sandbox.smtp.messages == []
    result = run_cli("doctor", "--send-test", **channels)
    assert result.code == 0, result.out
    assert len(sandbox.teams.received) == 1 and len(sandbox.smtp.messages) == 1
    assert card_title(sandbox.teams.received[0]).strip() == f"TEST: {NAME}"
    subject = " ".join(sandbox.smtp.messages[0]["Subject"].split())   # unfolded, as a mail client shows it
    assert subject == f"[pat-watchdog] TEST: {NAME}: test message from pat-watchdog doctor"
    assert "Nothing is wrong" in sandbox.smtp.messages[0].get_body(("plain",)).get_content()


def test_the_doctor_writes_nothing_to_arm_or_key_vault(world, run_cli, sandbox, channels):
    reference_mode(world)
    see_the_vault(world)
    secrets_before = {n: sandbox.vault.versions("contoso-kv", n) for n in (TOKEN_SECRET, "aggregator-pat-staged")}
    settings_before = sandbox.arm.settings(world.apps[0])
    sandbox.reset_requests()
    assert run_cli("doctor", "--send-test", **{**channels, **identity_storage(sandbox)}).code == 0
    arm = [(r.method, r.path.split("?")[0]) for r in sandbox.requests if r.host == "management.azure.com"]
    assert arm and all(m == "GET" or (m == "POST" and p.endswith("/config/appsettings/list")) for m, p in arm)
    assert {r.method for r in sandbox.requests if ".vault." in r.host} == {"GET"}
    assert {r.method for r in sandbox.requests if "dev.azure.com" in r.host} == {"GET"}
    assert sandbox.arm.writes == [] and sandbox.arm.restarts == []
    assert sandbox.arm.settings(world.apps[0]) == settings_before
    assert {n: sandbox.vault.versions("contoso-kv", n) for n in secrets_before} == secrets_before
    (first, table, row), (second, _, same) = sandbox.tables.writes
    assert (first, second, table, row) == ("POST", "DELETE", TABLE, same)
    assert sandbox.tables.rows(ACCOUNT, TABLE) == []


def fresh_functions():
    import importlib
    import sys

    sys.modules.pop("function_app", None)
    return importlib.import_module("function_app").app.get_functions()


def test_the_http_function_runs_the_doctor_after_each_deployment(world, sandbox, channels, monkeypatch, log_tap):
    function = next(f for f in fresh_functions() if f.get_function_name() == "watchdog_doctor")
    trigger = json.loads(function.get_function_json())["bindings"][0]
    assert trigger == {"direction": "IN", "type": "httpTrigger", "name": "req", "methods": ["POST"],
                       "authLevel": "FUNCTION", "route": "doctor"}
    plain(world)
    from pat_watchdog import functions as module

    original = module.doctor
    monkeypatch.setattr(module, "doctor", lambda send_test, output: original(
        send_test, output, env=world.env(**channels), now=NOW, retry=FAST_RETRY))
    body = function.get_user_function()
    answer = body(func.HttpRequest("POST", "/api/doctor", params={"format": "text"}, body=b""))
    assert answer.status_code == 200 and answer.mimetype == "text/plain"
    assert answer.get_body().decode().splitlines()[-1].startswith("doctor: OK")
    assert sandbox.teams.received == []
    answer = body(func.HttpRequest("POST", "/api/doctor", params={"sendTest": "true"}, body=b""))
    assert json.loads(answer.get_body())["status"] == "OK" and len(sandbox.teams.received) == 1
    assert "doctor check=instance.token status=OK" in log_tap.text()


class NoCredential:
    """What DefaultAzureCredential raises on a laptop without `az login`."""

    def get_token(self, *scopes, **kwargs):
        from azure.core.exceptions import ClientAuthenticationError
        raise ClientAuthenticationError("no credential in this environment")


def test_without_a_credential_the_azure_checks_wait_and_the_channels_still_answer(world, sandbox, channels):
    import io

    from pat_watchdog import cli

    plain(world)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["doctor", "--json"], env=world.env(**channels), now=lambda: NOW, stdout=out, stderr=err,
                    credential=NoCredential(), retry=FAST_RETRY)
    found = {c["id"]: c for c in json.loads(out.getvalue())["checks"]}
    assert code == 1 and found["credential"]["status"] == "FIX" and "az login" in found["credential"]["message"]
    assert found["instances"]["status"] == "SKIP" and "vault.reachable" not in found
    assert found["storage.table"]["status"] == "OK" and found["channel.teams"]["status"] == "OK"
    assert [r for r in sandbox.requests if r.host == "management.azure.com"] == []


@pytest.mark.parametrize("client, verdict", [("6f0c9a2e-5d4b-4c3a-9e8f-7a6b5c4d3e2f", "OK"),
                                             ("04b07795-8ddb-461a-bbee-02f9e1bf7b46", "FIX")],
                         ids=["dedicated app registration", "the Azure CLI's client"])
def test_the_sign_in_client_of_auto_rotation_is_checked(world, run_cli, sandbox, channels, client, verdict):
    """A client of Microsoft's family of client IDs yields refresh tokens for ARM, Graph and Key Vault too."""
    plain(world)
    see_the_vault(world)
    result = run_cli("doctor", "--json", WATCHDOG_ROTATION="auto", WATCHDOG_SIGNIN_CLIENT_ID=client, **channels)
    check = checks(result)["signin_client"]
    assert check["status"] == verdict, check
    if verdict == "FIX":
        assert check["message"].startswith("SIGNIN_CLIENT_BROAD (WARNING)") and "Microsoft Graph" in check["message"]
        assert check["fix"].startswith("az ad app create --display-name pat-watchdog-signin") and result.code == 1

"""Settings: every problem reported at once, by name, with what is expected."""

from __future__ import annotations

import pytest

from pat_watchdog.core.errors import ConfigError
from pat_watchdog.core.settings import derive_vssps_url, load_settings

SUB = "00000000-0000-0000-0000-00000000000a"
APP = f"/subscriptions/{SUB}/resourceGroups/aggregator-contoso/providers/Microsoft.Web/sites/contosoaggregator"
BASE = {"WATCHDOG_AGGREGATOR_APP": APP, "WATCHDOG_DEVOPS_ORG_URL": "https://dev.azure.com/contoso"}


def problems(env: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    return caught.value.problems


def test_defaults():
    s = load_settings(BASE)
    assert s.token_setting == "Aggregator_VstsToken" and s.warn_days == (30, 14, 7, 3, 1)
    assert s.critical_days == 3 and s.rotate_within_days == 14 and s.repeat_hours == 20
    assert s.required_scopes == ("vso.work_write",)
    assert s.recommended_scopes == ("vso.identity", "vso.project", "vso.serviceendpoint_manage", "vso.work_full")
    assert s.vssps_url == "https://vssps.dev.azure.com/contoso" and s.schedule == "0 0 6 * * *"
    assert s.state_table == "patwatchdog" and s.concurrency == 8 and s.smtp_port == 587 and s.smtp_starttls
    assert not s.rotation_enabled  # no vault, no rotation


def test_every_problem_at_once_named_with_what_is_expected():
    found = problems({"WATCHDOG_WARN_DAYS": "30,fourteen", "WATCHDOG_CONCURRENCY": "0",
                      "WATCHDOG_ROTATION": "sometimes", "WATCHDOG_KEY_VAULT_URL": "http://kv",
                      "WATCHDOG_PAT_EXPIRES_ON": "next year", "WATCHDOG_SCHEDULE": "daily"})
    text = "\n".join(found)
    for name in ("WATCHDOG_AGGREGATOR_APP is required", "WATCHDOG_DEVOPS_ORG_URL is required",
                 "WATCHDOG_WARN_DAYS='30,fourteen': expected comma-separated whole days",
                 "WATCHDOG_CONCURRENCY='0': expected a whole number 1-64",
                 "WATCHDOG_ROTATION='sometimes': expected off, staged or auto",
                 "WATCHDOG_KEY_VAULT_URL='http://kv': expected an https vault URL",
                 "WATCHDOG_PAT_EXPIRES_ON='next year': expected an ISO 8601 date",
                 "WATCHDOG_SCHEDULE='daily': expected an NCRONTAB expression"):
        assert name in text
    assert len(found) == 8


def test_auto_rotation_settings_are_read_and_checked():
    s = load_settings({**BASE, "WATCHDOG_ROTATION": "AUTO", "WATCHDOG_KEY_VAULT_URL": "https://kv.vault.azure.net",
                       "WATCHDOG_REVOKE_AFTER_DAYS": "off", "WATCHDOG_PAT_LIFETIME_DAYS": "30",
                       "AZURE_TENANT_ID": "contoso.onmicrosoft.com",
                       "WATCHDOG_SIGNIN_CLIENT_ID": "6f0c9a2e-5d4b-4c3a-9e8f-7a6b5c4d3e2f"})
    assert (s.rotation, s.auto, s.rotation_enabled) == ("auto", True, True)
    assert (s.revoke_after_days, s.pat_lifetime_days, s.signin_tenant) == (None, 30, "contoso.onmicrosoft.com")
    assert s.signin_client_id == "6f0c9a2e-5d4b-4c3a-9e8f-7a6b5c4d3e2f" and s.signin_name("x") == "pat-watchdog-signin"
    assert "pat-watchdog-signin" in s.own_secrets("x")


def test_auto_rotation_has_no_default_sign_in_client():
    """The Azure CLI's client is in Microsoft's family of client IDs: never a default, only when set."""
    found = problems({**BASE, "WATCHDOG_ROTATION": "auto", "WATCHDOG_KEY_VAULT_URL": "https://kv.vault.azure.net"})
    assert len(found) == 1 and found[0].startswith("WATCHDOG_ROTATION=auto needs WATCHDOG_SIGNIN_CLIENT_ID")
    assert "The sign-in's app registration" in found[0] and "user_impersonation" in found[0]
    assert load_settings({**BASE, "WATCHDOG_ROTATION": "staged"}).signin_client_id is None
    explicit = load_settings({**BASE, "WATCHDOG_ROTATION": "auto", "WATCHDOG_KEY_VAULT_URL": "https://kv.vault.azure.net",
                              "WATCHDOG_SIGNIN_CLIENT_ID": "04b07795-8ddb-461a-bbee-02f9e1bf7b46"})
    assert explicit.signin_client_id == "04b07795-8ddb-461a-bbee-02f9e1bf7b46"


def test_a_reference_may_name_no_instances_staged_previous_or_sign_in_secret():
    s = load_settings({**BASE, "WATCHDOG_STAGED_SECRET": "{name}-pat-staged",
                       "WATCHDOG_PREVIOUS_SECRET": "{name}-pat-previous", "WATCHDOG_SIGNIN_SECRET": "{name}-signin"})
    for name in ("baggregator-pat-staged", "ANY-other-PAT-PREVIOUS", "x-signin", "contosoaggregator-pat-staged"):
        assert s.is_own_secret(name), name
    for name in ("aggregator-pat", "pat-staged", "b-pat-staged-2", "signin"):
        assert not s.is_own_secret(name), name
    found = problems({**BASE, "WATCHDOG_ROTATION": "auto", "WATCHDOG_PAT_LIFETIME_DAYS": "400",
                      "WATCHDOG_REVOKE_AFTER_DAYS": "never", "WATCHDOG_SIGNIN_CLIENT_ID": "azure-cli",
                      "WATCHDOG_SIGNIN_SECRET": "aggregator-pat-staged", "AZURE_TENANT_ID": "contoso"})
    assert [p.split("=")[0].split(" ")[0] for p in found] == [
        "WATCHDOG_SIGNIN_SECRET", "WATCHDOG_ROTATION", "WATCHDOG_PAT_LIFETIME_DAYS", "WATCHDOG_REVOKE_AFTER_DAYS",
        "WATCHDOG_SIGNIN_CLIENT_ID", "AZURE_TENANT_ID"]
    assert "needs WATCHDOG_KEY_VAULT_URL" in found[1] and "or off" in found[3]


def test_malformed_resource_id_is_named():
    found = problems({**BASE, "WATCHDOG_AGGREGATOR_APP": f"{APP},/subscriptions/nope/resourceGroups/x"})
    assert found == ["WATCHDOG_AGGREGATOR_APP item '/subscriptions/nope/resourceGroups/x': "
                     "subscription 'nope' is not a GUID"]


def test_several_instances_need_name_placeholders():
    other = APP.replace("contoso", "fabrikam")
    found = problems({**BASE, "WATCHDOG_AGGREGATOR_APP": f"{APP}\n{other}"})
    assert [p.split("=")[0] for p in found] == ["WATCHDOG_STAGED_SECRET", "WATCHDOG_PREVIOUS_SECRET"]
    assert "{name}" in found[0]
    ok = load_settings({**BASE, "WATCHDOG_AGGREGATOR_APP": f"{APP}, {other}, {APP.upper().replace('SUBSCRIPTIONS', 'subscriptions')}",
                        "WATCHDOG_STAGED_SECRET": "{name}-pat-staged",
                        "WATCHDOG_PREVIOUS_SECRET": "{name}-pat-previous"})
    assert len(ok.targets) == 2  # duplicates (case-insensitive, as ARM) watched once
    assert ok.secret_names("contosoaggregator") == ("contosoaggregator-pat-staged", "contosoaggregator-pat-previous")


def test_email_needs_a_sender_and_a_service():
    found = problems({**BASE, "WATCHDOG_EMAIL_TO": "ops@contoso.com"})
    assert any(p.startswith("WATCHDOG_EMAIL_FROM is required") for p in found)
    assert any("WATCHDOG_ACS_ENDPOINT or WATCHDOG_SMTP_HOST" in p for p in found)


def test_secret_values_are_not_echoed_in_errors():
    found = problems({**BASE, "WATCHDOG_TEAMS_WEBHOOK_URL": "http://x/?sig=SECRETSIG"})
    assert found == ["WATCHDOG_TEAMS_WEBHOOK_URL=<hidden: it may be a secret>: expected the https URL of a Teams Workflows webhook"]


def test_identity_based_storage():
    s = load_settings({**BASE, "AzureWebJobsStorage__accountName": "patwdst"})
    assert s.storage.table_endpoint == "https://patwdst.table.core.windows.net"
    s = load_settings({**BASE, "AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert s.storage.connection_string == "UseDevelopmentStorage=true"


@pytest.mark.parametrize("org,vssps", [
    ("https://dev.azure.com/contoso", "https://vssps.dev.azure.com/contoso"),
    ("https://contoso.visualstudio.com", "https://contoso.vssps.visualstudio.com"),
    ("https://tfs.contoso.test/tfs/DefaultCollection", "https://tfs.contoso.test/tfs/DefaultCollection"),
])
def test_vssps_derivation(org, vssps):
    assert derive_vssps_url(org) == vssps


# Issue "Tried as a new user would", bug 7 and the smaller validations: each is a named configuration
# error, and a password in a URL is never echoed.
REFUSED = {
    "vault URL with a path": ({"WATCHDOG_KEY_VAULT_URL": "https://contoso-kv.vault.azure.net/secrets/x"},
                              "WATCHDOG_KEY_VAULT_URL='https://contoso-kv.vault.azure.net/secrets/x': expected"),
    "vault URL with an invalid port": ({"WATCHDOG_KEY_VAULT_URL": "https://contoso-kv.vault.azure.net:99999"},
                                       "WATCHDOG_KEY_VAULT_URL='https://contoso-kv.vault.azure.net:99999': expected"),
    "org URL with user and password": ({"WATCHDOG_DEVOPS_ORG_URL": "https://me:hunter2@dev.azure.com/contoso"},
                                       "WATCHDOG_DEVOPS_ORG_URL=<hidden: it may be a secret>: expected"),
    "org URL with a query": ({"WATCHDOG_DEVOPS_ORG_URL": "https://dev.azure.com/contoso?x=1"},
                             "WATCHDOG_DEVOPS_ORG_URL='https://dev.azure.com/contoso?x=1': expected"),
    "org URL with a fragment": ({"WATCHDOG_DEVOPS_ORG_URL": "https://dev.azure.com/contoso#top"},
                                "WATCHDOG_DEVOPS_ORG_URL='https://dev.azure.com/contoso#top': expected"),
    "ARM endpoint with a path": ({"WATCHDOG_ARM_ENDPOINT": "https://management.azure.com/subscriptions"},
                                 "WATCHDOG_ARM_ENDPOINT='https://management.azure.com/subscriptions': expected"),
    "staged and previous the same": ({"WATCHDOG_STAGED_SECRET": "pat", "WATCHDOG_PREVIOUS_SECRET": "PAT"},
                                     "WATCHDOG_PREVIOUS_SECRET='PAT': expected a secret other than"),
    "a schedule out of range": ({"WATCHDOG_SCHEDULE": "99 99 99 * * *"}, "WATCHDOG_SCHEDULE='99 99 99 * * *'"),
    "a schedule with a zero step": ({"WATCHDOG_SCHEDULE": "0 */0 * * * *"}, "WATCHDOG_SCHEDULE='0 */0 * * * *'"),
    "a backwards range": ({"WATCHDOG_SCHEDULE": "0 0 9-5 * * *"}, "WATCHDOG_SCHEDULE='0 0 9-5 * * *'"),
    "two senders": ({"WATCHDOG_EMAIL_TO": "a@contoso.com", "WATCHDOG_SMTP_HOST": "smtp.contoso.com",
                     "WATCHDOG_EMAIL_FROM": "a@contoso.com, b@contoso.com"},
                    "WATCHDOG_EMAIL_FROM='a@contoso.com, b@contoso.com': expected one email address"),
    "non-ASCII digits": ({"WATCHDOG_WARN_DAYS": "30,\u0663"}, "WATCHDOG_WARN_DAYS='30,\u0663': expected"),
    "an unknown scope": ({"WATCHDOG_REQUIRED_SCOPES": "vso.work_writ"},
                         "WATCHDOG_REQUIRED_SCOPES='vso.work_writ': expected space-separated Azure DevOps scope"),
    "a malformed storage connection string": ({"AzureWebJobsStorage": "garbage"},
                                              "AzureWebJobsStorage='garbage': expected a storage connection"),
    "a connection string without a key": ({"AzureWebJobsStorage": "AccountName=x"},
                                          "AzureWebJobsStorage='AccountName=x': expected"),
}


@pytest.mark.parametrize("env, expected", REFUSED.values(), ids=REFUSED.keys())
def test_settings_that_cannot_work_are_refused(env: dict, expected: str) -> None:
    found = problems({**BASE, **env})
    assert len(found) == 1 and found[0].startswith(expected), found
    assert "hunter2" not in found[0]


PAT_84 = "A" * 20 + "b7" * 28 + "AZDO" + "x1y2"
ECHOES = {
    "a new-format PAT pasted into the authorization ID": ("WATCHDOG_PAT_AUTHORIZATION_ID", PAT_84),
    "a classic PAT pasted into the expiry": ("WATCHDOG_PAT_EXPIRES_ON", "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"),
    "a connection string with its key": ("AzureWebJobsStorage", "AccountKey=c2VjcmV0a2V5c2VjcmV0a2V5c2VjcmV0a2V5c2VjcmV0;x"),
}


@pytest.mark.parametrize("name, value", ECHOES.values(), ids=ECHOES.keys())
def test_a_secret_pasted_anywhere_is_not_echoed(name: str, value: str) -> None:
    found = problems({**BASE, name: value + "!"})
    assert found[0].startswith(f"{name}=<hidden: it may be a secret>") and value not in found[0]


def test_an_echo_is_cut_at_120_characters() -> None:
    found = problems({**BASE, "WATCHDOG_STATE_TABLE": "t" * 100_000})
    assert len(found[0]) < 300 and found[0].count("t") < 130


ACCEPTED = {
    "enumerations in any case": ({"WATCHDOG_ROTATION": "Off"}, "rotation", "off"),
    "a named weekday range": ({"WATCHDOG_SCHEDULE": "0 30 5 * * mon-fri"}, "schedule", "0 30 5 * * mon-fri"),
    "a step list": ({"WATCHDOG_SCHEDULE": "0 */15 6,18 1-31/2 * *"}, "schedule", "0 */15 6,18 1-31/2 * *"),
    "full access": ({"WATCHDOG_REQUIRED_SCOPES": "app_token"}, "required_scopes", ("app_token",)),
    "Azurite": ({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}, "storage",
                "UseDevelopmentStorage=true"),
}


@pytest.mark.parametrize("env, field, expected", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_what_works_is_accepted(env: dict, field: str, expected) -> None:
    value = getattr(load_settings({**BASE, **env}), field)
    assert (value.connection_string if field == "storage" else value) == expected

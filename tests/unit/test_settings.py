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
    assert s.required_scopes == ("vso.identity", "vso.project", "vso.serviceendpoint_manage", "vso.work_full")
    assert s.vssps_url == "https://vssps.dev.azure.com/contoso" and s.schedule == "0 0 6 * * *"
    assert s.state_table == "patwatchdog" and s.concurrency == 8 and s.smtp_port == 587 and s.smtp_starttls
    assert not s.rotation_enabled  # no vault, no rotation


def test_every_problem_at_once_named_with_what_is_expected():
    found = problems({"WATCHDOG_WARN_DAYS": "30,fourteen", "WATCHDOG_CONCURRENCY": "0",
                      "WATCHDOG_ROTATION": "auto", "WATCHDOG_KEY_VAULT_URL": "http://kv",
                      "WATCHDOG_PAT_EXPIRES_ON": "next year", "WATCHDOG_SCHEDULE": "daily"})
    text = "\n".join(found)
    for name in ("WATCHDOG_AGGREGATOR_APP is required", "WATCHDOG_DEVOPS_ORG_URL is required",
                 "WATCHDOG_WARN_DAYS='30,fourteen': expected comma-separated whole days",
                 "WATCHDOG_CONCURRENCY='0': expected a whole number 1-64",
                 "WATCHDOG_ROTATION='auto': expected off or staged",
                 "WATCHDOG_KEY_VAULT_URL='http://kv': expected an https vault URL",
                 "WATCHDOG_PAT_EXPIRES_ON='next year': expected an ISO 8601 date",
                 "WATCHDOG_SCHEDULE='daily': expected an NCRONTAB expression"):
        assert name in text
    assert len(found) == 8


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
    assert found == ["WATCHDOG_TEAMS_WEBHOOK_URL=<hidden>: expected the https URL of a Teams Workflows webhook"]


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

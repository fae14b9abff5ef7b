"""The run's HTTP session reads the environment once per host: its answers must be requests' own."""

from __future__ import annotations

import pytest
import requests

from pat_watchdog.adapters.retry import RunSession, new_session

URLS = ["https://management.azure.com/subscriptions/s?api-version=1", "https://contoso-kv.vault.azure.net/secrets/x",
        "http://127.0.0.1:5000/msi/token", "https://localhost:8443/x", "https://dev.azure.com/contoso/_apis/x",
        "http://example.com/plain"]
ENVIRONMENTS = [
    {},
    {"HTTPS_PROXY": "http://127.0.0.1:3128", "HTTP_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "127.0.0.1,localhost"},
    {"https_proxy": "http://proxy:8080", "no_proxy": ".vault.azure.net", "REQUESTS_CA_BUNDLE": "/tmp/ca.pem"},
    {"ALL_PROXY": "http://all:1", "CURL_CA_BUNDLE": "/tmp/curl.pem", "NO_PROXY": "*"},
]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("verify", [None, True, False, "/etc/ssl/own.pem"])
@pytest.mark.parametrize("explicit", [None, {}, {"https": "http://explicit:1"}, {"no_proxy": "dev.azure.com"}])
def test_the_environment_read_once_answers_as_requests_reads_it_each_time(monkeypatch, environment, verify,
                                                                         explicit) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    ours, theirs = RunSession(), requests.Session()
    for _ in range(2):      # the second answer comes from what the first read
        for url in URLS:
            mine = ours.merge_environment_settings(url, None if explicit is None else dict(explicit), None, verify, None)
            want = theirs.merge_environment_settings(url, None if explicit is None else dict(explicit), None, verify,
                                                     None)
            assert mine == want, url


def test_a_session_without_trust_in_the_environment_reads_none_of_it(monkeypatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    session = new_session(4)
    session.trust_env = False
    assert session.merge_environment_settings(URLS[0], {}, None, True, None)["proxies"] == {}

"""Which page of a listing comes next (core/paging.py): only the endpoint that answered, never twice, at
most 1,000 pages."""

from __future__ import annotations

import pytest

from pat_watchdog.core.errors import UnexpectedAnswer
from pat_watchdog.core.paging import PAGE_LIMIT, Pages

FIRST = "https://management.azure.com/subscriptions/s/providers/Microsoft.Web/sites?api-version=1"


@pytest.mark.parametrize("link, followed", [
    ("https://management.azure.com/subscriptions/s/providers/Microsoft.Web/sites?$skiptoken=2",
     "https://management.azure.com/subscriptions/s/providers/Microsoft.Web/sites?$skiptoken=2"),
    ("https://MANAGEMENT.azure.com:443/subscriptions/s/sites?$skiptoken=2",     # same origin, spelt otherwise
     "https://MANAGEMENT.azure.com:443/subscriptions/s/sites?$skiptoken=2"),
    ("/subscriptions/s/sites?$skiptoken=3", "https://management.azure.com:443/subscriptions/s/sites?$skiptoken=3"),
    (None, None), ("", None),
])
def test_a_link_to_the_same_endpoint_is_followed(link, followed):
    assert Pages("ARM", "listing", FIRST).follow(link) == followed


@pytest.mark.parametrize("link, shown", [
    ("https://attacker.example/subscriptions/s/sites", "https://attacker.example"),
    ("http://management.azure.com/subscriptions/s/sites", "http://management.azure.com"),     # no TLS
    ("https://management.azure.com:8443/subscriptions/s/sites", "https://management.azure.com:8443"),
    ("https://management.azure.com.attacker.example/subscriptions/s", "https://management.azure.com.attacker.example"),
    ("https://management.azure.com@attacker.example/subscriptions/s", "https://attacker.example"),
    ("//attacker.example/subscriptions/s", "https://attacker.example"),
])
def test_a_link_to_another_scheme_host_or_port_is_refused(link, shown):
    with pytest.raises(UnexpectedAnswer) as refused:
        Pages("Azure Resource Manager", "listing the sites", FIRST).follow(link)
    assert str(refused.value) == (f"Azure Resource Manager: listing the sites: page 1's nextLink points at {shown}, "
                                  "not at https://management.azure.com that answered: not followed (the "
                                  "credential would go with it)")


@pytest.mark.parametrize("link", [{"href": FIRST}, 7, ["x"]])
def test_a_next_page_that_is_not_a_string_is_refused(link):
    with pytest.raises(UnexpectedAnswer, match="names its next page with a"):
        Pages("ARM", "listing", FIRST).follow(link)


def test_a_link_is_never_followed_twice_whatever_its_spelling():
    pages = Pages("Key Vault", "listing versions", "https://kv.vault.azure.net/secrets/s/versions?api-version=7.5")
    second = pages.follow("https://kv.vault.azure.net:443/secrets/s/versions?api-version=7.5&$skiptoken=a")
    assert second and pages.read == 2
    with pytest.raises(UnexpectedAnswer, match="page 2's next page is one already read: the listing loops"):
        pages.follow("https://KV.vault.azure.net/secrets/s/versions?api-version=7.5")      # the first page again


def test_continuation_tokens_are_never_followed_twice():
    pages = Pages("PAT Lifecycle", "listing PATs", None)
    assert pages.follow("a") == "a" and pages.follow("b") == "b"
    with pytest.raises(UnexpectedAnswer, match="loops"):
        pages.follow("a")


def test_a_listing_ends_after_the_page_limit():
    pages = Pages("ARM", "listing", FIRST)
    for number in range(2, PAGE_LIMIT + 1):
        assert pages.follow(f"{FIRST}&$skiptoken={number}")
    assert pages.read == PAGE_LIMIT == 1000
    with pytest.raises(UnexpectedAnswer, match="more than 1000 pages: stopped"):
        pages.follow(f"{FIRST}&$skiptoken=last")


def test_a_link_that_is_not_a_url_is_refused():
    with pytest.raises(UnexpectedAnswer, match="is not a URL"):
        Pages("ARM", "listing", FIRST).follow("https://management.azure.com:99999999/x")

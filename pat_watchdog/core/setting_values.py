"""Reading setting values: one reader that collects every problem, and the converters it uses (pure)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Callable, Mapping
from urllib.parse import urlsplit

from pat_watchdog.core.times import parse_utc


class Reader:
    """Reads raw values and collects every problem instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return value.strip() if value is not None and value.strip() else None

    def parse(self, name: str, default, convert: Callable[[str], object], expected: str):
        value = self.raw(name)
        if value is None:
            return default
        try:
            return convert(value)
        except (ValueError, TypeError):
            self.problems.append(f"{name}={quote(name, value)}: expected {expected}")
            return default

    def require(self, name: str, expected: str) -> str:
        value = self.raw(name)
        if value is None:
            self.problems.append(f"{name} is required: expected {expected}")
            return ""
        return value


# What a secret looks like, whatever setting it was pasted into: an Azure DevOps PAT (52 lower-case
# base32 characters, or since 2024 84 characters with "AZDO" at 77-80: Microsoft Learn, "Use
# personal access tokens", Changes to format), a URL with a signature or user info, a storage key.
_SECRET_FORMS = (
    re.compile(r"[a-z2-7]{52}"),
    re.compile(r"[A-Za-z0-9]{76}AZDO[A-Za-z0-9]{4}"),
    re.compile(r"(?i)[?&](sig|code|key|token|password)="),
    re.compile(r"(?i)^[a-z][a-z0-9+.-]*://[^/@\s]*@"),
    re.compile(r"(?i)(AccountKey|SharedAccessSignature|SharedAccessKey|password|pwd)\s*="),
    re.compile(r"[A-Za-z0-9+/]{40,}={0,2}"),
)
ECHO_LIMIT = 120


def looks_secret(value: str) -> bool:
    return any(form.search(value) for form in _SECRET_FORMS)


def quote(name: str, value: str) -> str:
    """The value for a configuration error: never a secret (by name or by form), never over 120 characters."""
    if any(word in name.upper() for word in ("PASSWORD", "WEBHOOK", "SECRET", "KEY")) and "VAULT" not in name.upper() \
            or looks_secret(value):
        return "<hidden: it may be a secret>"
    printable = "".join(c if c.isprintable() else "?" for c in value)
    return repr(printable if len(printable) <= ECHO_LIMIT else printable[:ECHO_LIMIT - 3] + "...")


def int_in(low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        number = int(text)
        if not low <= number <= high:
            raise ValueError(text)
        return number
    return convert


def days_or_off(text: str) -> int | None:
    """Whole days (0-366), or `off` (None): never."""
    if text.strip().lower() == "off":
        return None
    return int_in(0, 366)(text)


def positive_float(text: str) -> float:
    number = float(text)
    if not 0 < number < 24 * 366:
        raise ValueError(text)
    return number


def day_list(text: str) -> tuple[int, ...]:
    parts = [p for p in re.split(r"[,\s]+", text) if p]
    if any(not re.fullmatch(r"[0-9]+", p) for p in parts):   # int() also takes "٣" and "1_0"
        raise ValueError(text)
    days = sorted({int_in(0, 366)(p) for p in parts}, reverse=True)
    if not days:
        raise ValueError(text)
    return tuple(days)


def https_url(text: str, *, path: bool = True) -> str:
    """An https URL with a host, a valid port, no user info, query or fragment (`path=False`: no path either)."""
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        raise ValueError(text) from None
    if parts.scheme.lower() != "https" or not parts.hostname or "@" in parts.netloc \
            or parts.query or parts.fragment or (not path and parts.path.strip("/")):
        raise ValueError(text)
    return text.rstrip("/")


def https_base(text: str) -> str:
    """An https URL with nothing after the host: an endpoint such as a vault or Resource Manager."""
    return https_url(text, path=False)


def url_list(text: str) -> tuple[str, ...]:
    return tuple(https_base(item.strip()) for item in re.split(r"[,\s]+", text) if item.strip()) or _empty()


def _empty():
    raise ValueError("empty")


def webhook_url(text: str) -> str:
    """A Teams Workflows webhook: https, a host, and its query (the signature) kept."""
    parts = urlsplit(text)
    if parts.scheme.lower() != "https" or not parts.hostname or "@" in parts.netloc:
        raise ValueError(text)
    return text


def choice(*allowed: str) -> Callable[[str], str]:
    """One of `allowed`, case-insensitive, returned in its canonical spelling."""
    def convert(text: str) -> str:
        for option in allowed:
            if text.lower() == option.lower():
                return option
        raise ValueError(text)
    return convert


def boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(text)


def parse_expiry(text: str) -> datetime:
    """An ISO date (`2027-01-15`) or date-time; naive values are UTC."""
    return parse_utc(text)


# NCRONTAB (Azure Functions timer trigger): second minute hour day month day-of-week; each field
# `*`, a number, a range a-b, a list, and a step /n; months and days may be named.
CRON_FIELDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12),
                ("day of week", 0, 6))
_CRON_NAMES = {**{m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
               **{d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}}


def cron_value(text: str, low: int, high: int) -> int:
    value = _CRON_NAMES.get(text.lower()) if not text.isdigit() else int(text)
    if value is None or not low <= value <= high:
        raise ValueError(text)
    return value


def schedule(text: str) -> str:
    fields = text.split()
    if len(fields) != 6:
        raise ValueError(text)
    for field, (_, low, high) in zip(fields, CRON_FIELDS, strict=True):
        for item in field.split(","):
            base, _, step = item.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                raise ValueError(text)
            if base == "*":
                continue
            start, _, end = base.partition("-")
            first = cron_value(start, low, high)
            if end and cron_value(end, low, high) < first:
                raise ValueError(text)
    return text


def email(text: str) -> str:
    found = emails(text)
    if len(found) != 1:
        raise ValueError(text)
    return found[0]


def emails(text: str) -> tuple[str, ...]:
    addresses = tuple(a.strip() for a in re.split(r"[,;]", text) if a.strip())
    if not addresses or any(not re.fullmatch(r"[^@\s<>,;\r\n]+@[^@\s<>,;\r\n]+\.[^@\s<>,;\r\n]+", a)
                            for a in addresses):
        raise ValueError(text)
    return addresses


def matching(pattern: re.Pattern) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if not pattern.fullmatch(text):
            raise ValueError(text)
        return text
    return convert


# Azure DevOps PAT scopes (Microsoft Learn, "Authenticate with OAuth 2.0: scopes"); `app_token` is
# full access as the listing shows it.
KNOWN_SCOPES = frozenset("""
app_token vso.advsec vso.advsec_write vso.advsec_manage vso.agentpools vso.agentpools_manage
vso.analytics vso.auditlog vso.auditstreams_manage vso.build vso.build_execute vso.code vso.code_write
vso.code_manage vso.code_full vso.code_status vso.connected_server vso.dashboards vso.dashboards_manage
vso.entitlements vso.environment_manage vso.extension vso.extension_manage vso.extension.data
vso.extension.data_write vso.graph vso.graph_manage vso.githubconnections vso.githubconnections_manage
vso.hooks vso.hooks_write vso.hooks_interact vso.identity vso.identity_manage vso.loadtest
vso.loadtest_write vso.machinegroup_manage vso.memberentitlementmanagement
vso.memberentitlementmanagement_write vso.notification vso.notification_write vso.notification_manage
vso.notification_diagnostics vso.packaging vso.packaging_write vso.packaging_manage vso.pipelineresources_use
vso.pipelineresources_manage vso.profile vso.profile_write vso.project vso.project_write vso.project_manage
vso.release vso.release_execute vso.release_manage vso.securefiles_read vso.securefiles_write
vso.securefiles_manage vso.security_manage vso.serviceendpoint vso.serviceendpoint_query
vso.serviceendpoint_manage vso.symbols vso.symbols_write vso.symbols_manage vso.taskgroups_read
vso.taskgroups_write vso.taskgroups_manage vso.test vso.test_write vso.threads_full vso.tokens
vso.tokenadministration vso.variablegroups_read vso.variablegroups_write vso.variablegroups_manage
vso.wiki vso.wiki_write vso.work vso.work_write vso.work_full
""".split())


def scopes(text: str) -> tuple[str, ...]:
    found = tuple(s for s in re.split(r"[\s,]+", text) if s)
    if not found or any(scope not in KNOWN_SCOPES for scope in found):
        raise ValueError(text)
    return found


_CONNECTION_KEYS = {"defaultendpointsprotocol", "accountname", "accountkey", "endpointsuffix", "tableendpoint",
                    "queueendpoint", "blobendpoint", "fileendpoint", "sharedaccesssignature",
                    "usedevelopmentstorage", "developmentstorageproxyuri"}


def connection_string(text: str) -> str:
    """A storage connection string the Table and Queue clients can use (never echoed: it holds a key)."""
    pairs = [part.partition("=") for part in text.split(";") if part.strip()]
    keys = {key.strip().lower() for key, sep, value in pairs if sep and value.strip()}
    if not pairs or any(not sep for _, sep, _ in pairs) or not keys <= _CONNECTION_KEYS:
        raise ValueError("malformed")
    if "usedevelopmentstorage" in keys:
        return text
    if not ({"accountname", "accountkey"} <= keys or
            ("tableendpoint" in keys and "sharedaccesssignature" in keys) or
            ("accountname" in keys and "sharedaccesssignature" in keys)):
        raise ValueError("incomplete")
    return text

"""Every setting of docs/reference.md, "Settings", read and validated into one frozen object; all problems at once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping
from urllib.parse import urlsplit

from pat_watchdog.core import setting_values as V
from pat_watchdog.core.references import is_reference
from pat_watchdog.core.errors import ConfigError
from pat_watchdog.core.resource_ids import ResourceId, parse_resource_id

DEFAULT_SCOPES = "vso.work_write"
DEFAULT_RECOMMENDED = "vso.identity vso.project vso.serviceendpoint_manage vso.work_full"
_SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_QUEUE_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_SETTING_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")
# The Azure CLI's public client. It is in Microsoft's family of client IDs, whose refresh tokens can be
# redeemed for other Microsoft resources (ARM, Graph, Key Vault) as the user: allowed only when set
# explicitly, and `doctor` warns (SIGNIN_CLIENT_BROAD). docs/reference.md, "The sign-in's app registration".
AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
BROAD_CLIENTS = {AZURE_CLI_CLIENT_ID: "the Azure CLI",
                 "1950a258-227b-4e31-a9cf-717495945fc2": "Azure PowerShell",
                 "872cd9fa-d31f-45e0-9eab-6e460a02d1f1": "Visual Studio"}
SIGNIN_CLIENT_DOCS = "docs/reference.md, \"The sign-in's app registration\""
_TENANT = re.compile(r"^([0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"   # a tenant ID
                     r"|[A-Za-z0-9.-]+\.[A-Za-z]{2,}|organizations)$")           # a domain, or any tenant


@dataclass(frozen=True)
class StorageTarget:
    """Where the ledger lives: a connection string, or an endpoint used with the managed identity."""

    connection_string: str | None = None
    table_endpoint: str | None = None
    queue_endpoint: str | None = None


# The channel settings the deployment makes Key Vault references (infra/main.bicep), by channel. App
# Service passes the reference text itself when it cannot resolve one (Microsoft Learn, "Use Key Vault
# references as app settings", Troubleshooting): that channel fails, the run goes on.
CHANNEL_SECRETS = {"WATCHDOG_TEAMS_WEBHOOK_URL": "teams", "WATCHDOG_SMTP_PASSWORD": "email"}


@dataclass(frozen=True)
class Unresolved:
    """A channel whose setting holds an unresolved Key Vault reference: the text, never a secret."""

    channel: str
    setting: str
    reference: str


@dataclass(frozen=True)
class Settings:
    targets: tuple[ResourceId, ...]
    devops_org_url: str
    vssps_url: str
    token_setting: str = "Aggregator_VstsToken"
    arm_endpoint: str = "https://management.azure.com"
    key_vault_url: str | None = None
    reference_vaults: tuple[str, ...] = ()
    reenable_subscriptions: bool = True
    staged_secret: str = "aggregator-pat-staged"
    previous_secret: str = "aggregator-pat-previous"
    rotation: str = "staged"
    rotate_within_days: int = 14
    warn_days: tuple[int, ...] = (30, 14, 7, 3, 1)
    critical_days: int = 3
    required_scopes: tuple[str, ...] = tuple(DEFAULT_SCOPES.split())
    recommended_scopes: tuple[str, ...] = tuple(DEFAULT_RECOMMENDED.split())
    pat_expires_on: datetime | None = None
    pat_authorization_id: str | None = None
    schedule: str = "0 0 6 * * *"
    teams_webhook_url: str | None = None
    email_to: tuple[str, ...] = ()
    email_from: str | None = None
    acs_endpoint: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    repeat_hours: float = 20.0
    state_table: str = "patwatchdog"
    concurrency: int = 8
    fanout_queue: str | None = None
    storage: StorageTarget | None = None
    pat_lifetime_days: int = 90
    revoke_after_days: int | None = 7          # None: `off`, never revoke
    signin_secret: str = "pat-watchdog-signin"
    signin_client_id: str | None = None
    signin_tenant: str = "organizations"       # AZURE_TENANT_ID, else any work or school account
    unresolved: tuple[Unresolved, ...] = ()    # channels whose secret App Service could not resolve

    def secret_names(self, site_name: str) -> tuple[str, str]:
        """The staged and previous secret names for one instance (`{name}` filled in)."""
        return (self.staged_secret.replace("{name}", site_name),
                self.previous_secret.replace("{name}", site_name))

    def own_secrets(self, site_name: str) -> tuple[str, str, str]:
        """This instance's staged, previous and sign-in secrets."""
        return (*self.secret_names(site_name), self.signin_name(site_name))

    def is_own_secret(self, secret_name: str) -> bool:
        """Whether `secret_name` is the staged, previous or sign-in secret of any instance the watchdog could
        watch: `{name}` stands for every site name (letters, digits, hyphens), so one instance's token setting
        can never name another's secrets. Key Vault secret names are case-insensitive."""
        return any(re.fullmatch(re.escape(template).replace(re.escape("{name}"), "[0-9A-Za-z-]+"), secret_name,
                                re.IGNORECASE)
                   for template in (self.staged_secret, self.previous_secret, self.signin_secret))

    def signin_name(self, site_name: str) -> str:
        """The Key Vault secret holding the delegated sign-in for one instance (`{name}` filled in)."""
        return self.signin_secret.replace("{name}", site_name)

    @property
    def vault_name(self) -> str:
        """The staging vault's name (for the `az keyvault secret set` line), a placeholder without one."""
        return urlsplit(self.key_vault_url).hostname.split(".")[0] if self.key_vault_url else "<vault>"

    def followable_vaults(self) -> tuple[str, ...]:
        """Vaults a Key Vault reference in the token setting may point to (docs/reference.md, "What the
        watchdog trusts")."""
        return ((self.key_vault_url,) if self.key_vault_url else ()) + self.reference_vaults

    @property
    def rotation_enabled(self) -> bool:
        return self.rotation in ("staged", "auto") and self.key_vault_url is not None

    @property
    def auto(self) -> bool:
        """`auto` rotation: the watchdog creates the replacement itself (docs/reference.md, "Hands-free rotation")."""
        return self.rotation == "auto" and self.key_vault_url is not None

    def unresolved_channels(self) -> tuple[Unresolved, ...]:
        """The channels in use whose secret is an unresolved reference (an SMTP password counts only
        while email goes through SMTP)."""
        return tuple(u for u in self.unresolved
                     if u.channel == "teams" or (self.email_to and not self.acs_endpoint))

    def __repr__(self) -> str:  # the SMTP password must not appear in a traceback or log
        return f"Settings(targets={len(self.targets)}, org={self.devops_org_url!r})"


def derive_vssps_url(org_url: str) -> str:
    """Token service base for an organization URL (docs/reference.md, "Settings")."""
    parts = urlsplit(org_url)
    host = (parts.hostname or "").lower()
    segments = [s for s in parts.path.split("/") if s]
    if host == "dev.azure.com" and segments:
        return f"https://vssps.dev.azure.com/{segments[0]}"
    if host.endswith(".visualstudio.com") and not host.endswith(".vssps.visualstudio.com"):
        return f"https://{host.split('.')[0]}.vssps.visualstudio.com"
    return org_url.rstrip("/")


def _targets(reader: V.Reader) -> tuple[ResourceId, ...]:
    raw = reader.require(
        "WATCHDOG_AGGREGATOR_APP",
        "the ARM resource ID of the Aggregator Function App "
        "(/subscriptions/S/resourceGroups/G/providers/Microsoft.Web/sites/N), several separated by "
        "commas or newlines, or a subscription or resource group ID to discover them")
    seen: dict[str, ResourceId] = {}
    items = [i.strip() for i in re.split(r"[,\n]", raw) if i.strip()]
    if raw and not items:     # " , , ": set, yet it names no instance; watching nothing must not look healthy
        reader.problems.append(f"WATCHDOG_AGGREGATOR_APP={V.quote('WATCHDOG_AGGREGATOR_APP', raw)}: names no "
                               "instance (only separators and spaces): expected at least one ARM resource ID of "
                               "an Aggregator Function App, a resource group or a subscription")
    for item in items:
        try:
            target = parse_resource_id(item)
        except ValueError as problem:
            reader.problems.append(f"WATCHDOG_AGGREGATOR_APP item {item!r}: {problem}")
            continue
        seen.setdefault(target.key, target)
    return tuple(seen.values())


def _org_url(reader: V.Reader) -> str:
    expected = ("an https URL such as https://dev.azure.com/contoso, https://contoso.visualstudio.com "
                "or an Azure DevOps Server collection URL")
    raw = reader.require("WATCHDOG_DEVOPS_ORG_URL", expected)
    if not raw:
        return ""
    try:
        url = V.https_url(raw)
    except ValueError:
        reader.problems.append(f"WATCHDOG_DEVOPS_ORG_URL={V.quote('WATCHDOG_DEVOPS_ORG_URL', raw)}: expected "
                               f"{expected}, without user name, password, query or fragment")
        return ""
    if urlsplit(url).hostname == "dev.azure.com" and not urlsplit(url).path.strip("/"):
        reader.problems.append(f"WATCHDOG_DEVOPS_ORG_URL={V.quote('WATCHDOG_DEVOPS_ORG_URL', raw)}: expected "
                               "the organization in the path (https://dev.azure.com/<organization>)")
    return url


def _email(reader: V.Reader) -> dict:
    to = reader.parse("WATCHDOG_EMAIL_TO", (), V.emails, "comma-separated email addresses")
    sender = reader.parse("WATCHDOG_EMAIL_FROM", None, V.email, "one email address")
    acs = reader.parse("WATCHDOG_ACS_ENDPOINT", None, V.https_base,
                       "the https endpoint of an Azure Communication Services resource")
    smtp_host = reader.raw("WATCHDOG_SMTP_HOST")
    if to and not sender and not reader.raw("WATCHDOG_EMAIL_FROM"):   # a malformed one is reported already
        reader.problems.append("WATCHDOG_EMAIL_FROM is required when WATCHDOG_EMAIL_TO is set: "
                               "expected the sender address")
    if to and not (acs or smtp_host):
        reader.problems.append("WATCHDOG_EMAIL_TO is set but no mail service is: expected "
                               "WATCHDOG_ACS_ENDPOINT or WATCHDOG_SMTP_HOST")
    return dict(
        email_to=to, email_from=sender, acs_endpoint=acs, smtp_host=smtp_host,
        smtp_port=reader.parse("WATCHDOG_SMTP_PORT", 587, V.int_in(1, 65535), "a TCP port (1-65535)"),
        smtp_username=reader.raw("WATCHDOG_SMTP_USERNAME"),
        smtp_password=reader.raw("WATCHDOG_SMTP_PASSWORD"),
        smtp_starttls=reader.parse("WATCHDOG_SMTP_STARTTLS", True, V.boolean, "true or false"))


def _storage(reader: V.Reader) -> StorageTarget | None:
    connection = reader.parse("AzureWebJobsStorage", None, V.connection_string,
                              "a storage connection string (AccountName=...;AccountKey=..., or "
                              "UseDevelopmentStorage=true), or AzureWebJobsStorage__accountName with the identity")
    if connection:
        return StorageTarget(connection_string=connection)
    account = reader.raw("AzureWebJobsStorage__accountName")
    table = reader.raw("AzureWebJobsStorage__tableServiceUri")
    queue = reader.raw("AzureWebJobsStorage__queueServiceUri")
    if account:
        table = table or f"https://{account}.table.core.windows.net"
        queue = queue or f"https://{account}.queue.core.windows.net"
    if table or queue:
        return StorageTarget(table_endpoint=table, queue_endpoint=queue)
    return None


def _secrets(reader: V.Reader, several: bool) -> tuple[str, str, str]:
    names = []
    for setting, default in (("WATCHDOG_STAGED_SECRET", "aggregator-pat-staged"),
                             ("WATCHDOG_PREVIOUS_SECRET", "aggregator-pat-previous"),
                             ("WATCHDOG_SIGNIN_SECRET", "pat-watchdog-signin")):
        name = reader.raw(setting) or default
        if not _SECRET_NAME.fullmatch(name.replace("{name}", "x")):
            reader.problems.append(f"{setting}={name!r}: expected a Key Vault secret name "
                                   "(1-127 letters, digits and dashes; may contain {name})")
        elif several and "{name}" not in name and setting != "WATCHDOG_SIGNIN_SECRET":
            reader.problems.append(
                f"{setting}={name!r}: expected a name containing {{name}} (e.g. {{name}}-pat-staged), "
                "since several Aggregator instances are watched and must never share a replacement")
        names.append(name)
    if names[0].lower() == names[1].lower():
        reader.problems.append(f"WATCHDOG_PREVIOUS_SECRET={names[1]!r}: expected a secret other than "
                               "WATCHDOG_STAGED_SECRET (the replaced token must never become a candidate)")
    if names[2].lower() in (names[0].lower(), names[1].lower()):
        reader.problems.append(f"WATCHDOG_SIGNIN_SECRET={names[2]!r}: expected a secret of its own, other than "
                               "WATCHDOG_STAGED_SECRET and WATCHDOG_PREVIOUS_SECRET")
    return names[0], names[1], names[2]


def _auto(reader: V.Reader, rotation: str) -> dict:
    """The settings of `auto` rotation (docs/reference.md, "Hands-free rotation"); checked whatever the mode,
    so a typo shows at once."""
    if rotation == "auto" and not reader.raw("WATCHDOG_KEY_VAULT_URL"):
        reader.problems.append("WATCHDOG_ROTATION=auto needs WATCHDOG_KEY_VAULT_URL: expected the vault that "
                               "holds the staged replacement and the sign-in")
    if rotation == "auto" and not (reader.raw("WATCHDOG_SIGNIN_CLIENT_ID") or "").strip():
        reader.problems.append("WATCHDOG_ROTATION=auto needs WATCHDOG_SIGNIN_CLIENT_ID: expected the application "
                               "(client) ID of a dedicated app registration whose only API permission is Azure "
                               f"DevOps user_impersonation ({SIGNIN_CLIENT_DOCS} gives the az commands)")
    return dict(
        pat_lifetime_days=reader.parse("WATCHDOG_PAT_LIFETIME_DAYS", 90, V.int_in(1, 365),
                                       "whole days (1-365; Azure DevOps allows a PAT one year at most)"),
        revoke_after_days=reader.parse("WATCHDOG_REVOKE_AFTER_DAYS", 7, V.days_or_off,
                                       "whole days (0-366) or off"),
        signin_client_id=reader.parse("WATCHDOG_SIGNIN_CLIENT_ID", None, V.matching(_GUID),
                                      "the application (client) ID of a public client, a GUID"),
        signin_tenant=reader.parse("AZURE_TENANT_ID", "organizations", V.matching(_TENANT),
                                   "the Entra tenant ID (a GUID) or its domain name"))


def _unresolved(env: Mapping[str, str]) -> tuple[Mapping[str, str], tuple[Unresolved, ...]]:
    """The environment without the channel settings that hold a reference's text, and those settings."""
    found = tuple(Unresolved(channel, name, env[name].strip()) for name, channel in CHANNEL_SECRETS.items()
                  if is_reference(env.get(name)))
    return ({k: v for k, v in env.items() if k not in {u.setting for u in found}} if found else env), found


def load_settings(env: Mapping[str, str]) -> Settings:
    """Read and validate every setting; raise ConfigError naming every bad or missing one."""
    env, unresolved = _unresolved(env)
    reader = V.Reader(env)
    targets = _targets(reader)
    several = len(targets) > 1 or any(not t.is_site for t in targets)
    org_url = _org_url(reader)
    staged, previous, signin = _secrets(reader, several)
    rotation = reader.parse("WATCHDOG_ROTATION", "staged", V.choice("off", "staged", "auto"), "off, staged or auto")
    values = dict(
        targets=targets,
        devops_org_url=org_url,
        vssps_url=reader.parse("WATCHDOG_DEVOPS_VSSPS_URL", None, V.https_url,
                               "an https URL without user name, password, query or fragment")
        or (derive_vssps_url(org_url) if org_url else ""),
        token_setting=reader.parse("WATCHDOG_TOKEN_SETTING", "Aggregator_VstsToken",
                                   V.matching(_SETTING_NAME), "an app setting name"),
        arm_endpoint=reader.parse("WATCHDOG_ARM_ENDPOINT", "https://management.azure.com", V.https_base,
                                  "an https URL such as https://management.azure.com"),
        key_vault_url=reader.parse("WATCHDOG_KEY_VAULT_URL", None, V.https_base,
                                   "an https vault URL without a path, such as https://contoso-kv.vault.azure.net"),
        reference_vaults=reader.parse("WATCHDOG_REFERENCE_VAULTS", (), V.url_list,
                                      "comma-separated https vault URLs without a path"),
        reenable_subscriptions=reader.parse("WATCHDOG_REENABLE_SUBSCRIPTIONS", True, V.boolean, "true or false"),
        staged_secret=staged, previous_secret=previous, signin_secret=signin,
        rotation=rotation, **_auto(reader, rotation),
        rotate_within_days=reader.parse("WATCHDOG_ROTATE_WITHIN_DAYS", 14, V.int_in(0, 366),
                                        "whole days (0-366)"),
        warn_days=reader.parse("WATCHDOG_WARN_DAYS", (30, 14, 7, 3, 1), V.day_list,
                               "comma-separated whole days (0-366), e.g. 30,14,7,3,1"),
        critical_days=reader.parse("WATCHDOG_CRITICAL_DAYS", 3, V.int_in(0, 366), "whole days (0-366)"),
        required_scopes=reader.parse("WATCHDOG_REQUIRED_SCOPES", tuple(DEFAULT_SCOPES.split()), V.scopes,
                                     "space-separated Azure DevOps scope names, e.g. " + DEFAULT_SCOPES),
        recommended_scopes=reader.parse("WATCHDOG_RECOMMENDED_SCOPES", tuple(DEFAULT_RECOMMENDED.split()),
                                        V.scopes, "space-separated Azure DevOps scope names, e.g. "
                                        + DEFAULT_RECOMMENDED),
        pat_expires_on=reader.parse("WATCHDOG_PAT_EXPIRES_ON", None, V.parse_expiry,
                                    "an ISO 8601 date such as 2027-01-15"),
        pat_authorization_id=reader.parse("WATCHDOG_PAT_AUTHORIZATION_ID", None, V.matching(_GUID),
                                          "the PAT's authorizationId (a GUID)"),
        schedule=reader.parse("WATCHDOG_SCHEDULE", "0 0 6 * * *", V.schedule,
                              "an NCRONTAB expression: six fields (second minute hour day month "
                              "day-of-week) within their ranges, e.g. 0 0 6 * * *"),
        teams_webhook_url=reader.parse("WATCHDOG_TEAMS_WEBHOOK_URL", None, V.webhook_url,
                                       "the https URL of a Teams Workflows webhook"),
        repeat_hours=reader.parse("WATCHDOG_REPEAT_HOURS", 20.0, V.positive_float,
                                  "a positive number of hours"),
        state_table=reader.parse("WATCHDOG_STATE_TABLE", "patwatchdog", V.matching(_TABLE_NAME),
                                 "an Azure Table name (3-63 letters and digits, starting with a letter)"),
        concurrency=reader.parse("WATCHDOG_CONCURRENCY", 8, V.int_in(1, 64), "a whole number 1-64"),
        fanout_queue=reader.parse("WATCHDOG_FANOUT_QUEUE", None, V.matching(_QUEUE_NAME),
                                  "a Storage queue name (3-63 lower-case letters, digits, dashes)"),
        storage=_storage(reader),
        unresolved=unresolved,
        **_email(reader),
    )
    if reader.problems:
        raise ConfigError(reader.problems)
    return Settings(**values)


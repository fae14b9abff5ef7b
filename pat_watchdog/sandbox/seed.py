"""A seeded Aggregator world in the sandbox: instances, PATs, a staging vault. Used by demo and tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import pat_format
from .server import Sandbox

SUBSCRIPTION = "8c56d827-5f07-45ce-8f2b-6c5001db5c6f"
WATCHDOG_GROUP = "rg-pat-watchdog"     # where the deployment puts the watchdog and its staging vault
USER_ID = "bb5bb6c8-ef0a-400f-8987-92b3674d2043"
PROJECT_ID = "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c"
FULL_SCOPES = "vso.identity vso.project vso.serviceendpoint_manage vso.work_full"


def new_pat(*, classic: bool = False) -> str:
    """A random PAT in Azure DevOps' 84-character format, or the classic 52-character one."""
    return pat_format.new_pat(classic=classic)


def aggregator_settings(token_value: str, name: str) -> dict[str, str]:
    """What aggregator-cli's `install.instance` + `configure.instance` leave in the app settings."""
    return {
        "FUNCTIONS_EXTENSION_VERSION": "~4",
        "FUNCTIONS_WORKER_RUNTIME": "dotnet",
        "AzureWebJobsStorage": f"DefaultEndpointsProtocol=https;AccountName={name[:20]}st;"
                               "AccountKey=c2FuZGJveC1ub3QtYS1yZWFsLWtleQ==;EndpointSuffix=core.windows.net",
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
        "WEBSITE_RUN_FROM_PACKAGE": "https://github.com/tfsaggregator/aggregator-cli/releases/download/"
                                    "v1.3.1/FunctionRuntime.zip",
        "Aggregator_VstsTokenType": "PAT",
        "Aggregator_VstsToken": token_value,
        "Aggregator_Note": "Ünïcödé, ; = \"quoted\" and  two spaces",
        "Aggregator_Empty": "",
    }


@dataclass
class World:
    """One organization, one vault, any number of Aggregator instances; tracks every token made."""

    sandbox: Sandbox
    org: str = "contoso"
    vault: str = "contoso-kv"
    apps: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    _staged: int = 0
    vault_id: str = field(init=False, default="")

    def __post_init__(self) -> None:
        # The staging vault as ARM sees it (RBAC, purge protection), with the watchdog's data actions.
        self.vault_id = self.sandbox.arm.add_vault(SUBSCRIPTION, WATCHDOG_GROUP, self.vault)

    @property
    def now(self) -> datetime:
        return self.sandbox.clock()

    def issue(self, days: float, *, scope: str = FULL_SCOPES, global_pat: bool = False,
              user_id: str = USER_ID, authorization_id: str | None = None,
              classic: bool = False) -> tuple[str, str]:
        """A PAT valid for `days` more days (negative: already expired); returns (value, authorizationId).

        84 characters like every PAT Azure DevOps issues since July 2024; `classic=True` for the
        52-character form (Azure DevOps Server, older PATs).
        """
        value = pat_format.new_pat(classic=classic, issued=self.now.date())
        self.tokens.append(value)
        auth = self.sandbox.devops.add_pat(
            self.org, value, user_id=user_id, valid_to=self.now + timedelta(days=days),
            valid_from=self.now - timedelta(days=max(0.0, 365 - days)), scope=scope,
            global_pat=global_pat, authorization_id=authorization_id)
        return value, auth

    def add_instance(self, name: str, token_value: str | None, *, group: str | None = None,
                     tags: dict | None = None, extra: dict | None = None,
                     default_host: str | None = None, token_mode: str | None = "setting") -> str:
        """An Aggregator Function App; `default_host="unique"` for a unique default hostname; `token_mode`
        picks the deployment's Aggregator role on the site (None: none there, a group's role instead)."""
        settings = aggregator_settings(token_value or "", name)
        if token_value is None:
            del settings["Aggregator_VstsToken"]
        settings.update(extra or {})
        app_id = self.sandbox.arm.add_site(SUBSCRIPTION, group or f"aggregator-{name.removesuffix('aggregator')}",
                                           name, settings, tags=tags if tags is not None else
                                           {"aggregatorVersion": "1.3.1"}, default_host=default_host,
                                           token_mode=token_mode)
        self.apps.append(app_id)
        return app_id

    def map_rule(self, app_id: str, rule: str, *, event_type: str = "workitem.updated",
                 project_id: str = PROJECT_ID, status: str = "enabled") -> str:
        """A service hook subscription calling `rule` of the instance, as `map.rule` makes it; returns its id."""
        url = f"https://{self.sandbox.arm.default_host(app_id)}/api/{rule}"
        return self.sandbox.devops.add_subscription(self.org, url=url, event_type=event_type,
                                                    project_id=project_id, status=status)

    def stage(self, value: str, *, days: float, secret: str = "aggregator-pat-staged",
              scopes: str | None = FULL_SCOPES, tags: dict | None = None, **kwargs) -> str:
        """Stage `value` like `az keyvault secret set --expires ... --tags scopes=...` does."""
        all_tags = {**({"scopes": scopes} if scopes else {}), **(tags or {})}
        self._staged += 1  # distinct creation times, one second apart, in staging order
        kwargs.setdefault("created_on", self.now - timedelta(hours=1) + timedelta(seconds=self._staged))
        return self.sandbox.vault.set_secret(self.vault, secret, value,
                                             expires_on=self.now + timedelta(days=days), tags=all_tags, **kwargs)

    def env(self, **overrides: str) -> dict[str, str]:
        """Sandbox environment plus the watchdog settings for this world."""
        env = dict(self.sandbox.env())
        env.update({
            "WATCHDOG_AGGREGATOR_APP": ",".join(self.apps),
            "WATCHDOG_DEVOPS_ORG_URL": self.sandbox.devops.org_url(self.org),
            "WATCHDOG_KEY_VAULT_URL": self.sandbox.vault.url(self.vault),
        })
        env.update(overrides)
        return {k: v for k, v in env.items() if v is not None}

    def token_setting(self, app_id: str, setting: str = "Aggregator_VstsToken") -> str | None:
        return self.sandbox.arm.settings(app_id).get(setting)

"""Key Vault references in app settings: `@Microsoft.KeyVault(...)`, both documented syntaxes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

# https://learn.microsoft.com/azure/app-service/app-service-key-vault-references#reference-syntax
_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\((?P<body>.*)\)$", re.IGNORECASE | re.DOTALL)

# Vault DNS suffix by Resource Manager host, for the VaultName= syntax (sovereign clouds).
_VAULT_SUFFIX = {
    "management.azure.com": "vault.azure.net",
    "management.usgovcloudapi.net": "vault.usgovcloudapi.net",
    "management.chinacloudapi.cn": "vault.azure.cn",
}


@dataclass(frozen=True)
class KeyVaultReference:
    vault_url: str
    secret_name: str
    version: str | None

    @property
    def versioned(self) -> bool:
        return bool(self.version)

    def as_setting(self, version: str | None) -> str:
        """The reference re-pointed to `version` (SecretUri syntax), or versionless for None."""
        uri = f"{self.vault_url}/secrets/{self.secret_name}"
        return f"@Microsoft.KeyVault(SecretUri={uri}/{version})" if version else \
            f"@Microsoft.KeyVault(SecretUri={uri}/)"


def not_allowed(ref: KeyVaultReference, vaults: tuple[str, ...], forbidden) -> str | None:
    """Why the watchdog must not follow `ref` (docs/reference.md, "What the watchdog trusts"), or None: only
    to the vaults it is told about, and never to a secret of its own, any instance's (an Aggregator setting
    must not steer its powers). `forbidden`: the names, or a predicate over a secret name."""
    allowed = {v.rstrip("/").lower() for v in vaults}
    if ref.vault_url.rstrip("/").lower() not in allowed:
        return (f"the token setting points at the vault {ref.vault_url}, which is neither WATCHDOG_KEY_VAULT_URL's "
                "nor in WATCHDOG_REFERENCE_VAULTS: nothing is read there")
    own = forbidden(ref.secret_name) if callable(forbidden) else \
        ref.secret_name.lower() in {f.lower() for f in forbidden}
    if own:
        return (f"the token setting points at {ref.secret_name}, a staged, previous or sign-in secret of the "
                "watchdog's own (of this or another instance): nothing is read there, and the watchdog never "
                "rotates into it")
    return None


def is_reference(value: str | None) -> bool:
    return bool(value) and bool(_REFERENCE.match(value.strip()))


def parse_reference(value: str, arm_endpoint: str = "https://management.azure.com") -> KeyVaultReference:
    """Parse a reference; raise ValueError naming what is wrong (never echoing the value)."""
    match = _REFERENCE.match(value.strip())
    if not match:
        raise ValueError("not a @Microsoft.KeyVault(...) reference")
    parts = {}
    for item in match["body"].split(";"):
        key, sep, val = item.partition("=")
        if sep:
            parts[key.strip().lower()] = val.strip()
    if "secreturi" in parts:
        return _from_uri(parts["secreturi"])
    if "vaultname" in parts and "secretname" in parts:
        host = urlsplit(arm_endpoint).hostname or "management.azure.com"
        suffix = _VAULT_SUFFIX.get(host, "vault.azure.net")
        return KeyVaultReference(f"https://{parts['vaultname']}.{suffix}", parts["secretname"],
                                 parts.get("secretversion") or None)
    raise ValueError("expected SecretUri=... or VaultName=...;SecretName=...[;SecretVersion=...]")


def _from_uri(uri: str) -> KeyVaultReference:
    split = urlsplit(uri)
    segments = [s for s in split.path.split("/") if s]
    if split.scheme != "https" or len(segments) not in (2, 3) or segments[0] != "secrets":
        raise ValueError("SecretUri must look like https://<vault>.vault.azure.net/secrets/<name>[/<version>]")
    version = segments[2] if len(segments) == 3 else None
    return KeyVaultReference(f"https://{split.netloc}", segments[1], version)

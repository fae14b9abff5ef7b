"""Certificates for the sandbox: one trustme CA, one leaf covering every stand-in hostname."""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass

import trustme

# Real Azure hostnames the sandbox answers for (the proxy tunnels only these). The two
# regional ACS wildcards are extra: a certificate wildcard covers a single label, and ACS
# endpoints look like https://<name>.<geo>.communication.azure.com.
HOSTNAMES = (
    "127.0.0.1",
    "localhost",
    "management.azure.com",
    "management.usgovcloudapi.net",
    "*.vault.azure.net",
    "*.vault.usgovcloudapi.net",
    "dev.azure.com",
    "vssps.dev.azure.com",
    "*.visualstudio.com",
    "*.vssps.visualstudio.com",
    "login.microsoftonline.com",
    "*.westeurope.logic.azure.com",
    "*.communication.azure.com",
    "*.europe.communication.azure.com",
    "*.unitedstates.communication.azure.com",
    "*.table.core.windows.net",
    "tfs.contoso.test",
    "attacker.example",     # outside Azure: where a forged nextLink or redirect points (foreign.py)
)


def covered(host: str) -> bool:
    """True when the certificate (hence the sandbox) covers this hostname."""
    host = host.lower().rstrip(".")
    for name in HOSTNAMES:
        if name.startswith("*."):
            first, _, rest = host.partition(".")
            if first and rest == name[2:]:
                return True
        elif host == name:
            return True
    return False


@dataclass
class Certificates:
    """The CA file clients trust, and the server contexts (HTTPS and SMTP STARTTLS)."""

    directory: tempfile.TemporaryDirectory
    ca_path: str
    server_context: ssl.SSLContext

    def cleanup(self) -> None:
        """Remove the temporary directory holding the CA file."""
        self.directory.cleanup()


def make_certificates() -> Certificates:
    """Create a fresh CA and server certificate; write ca.pem to a temporary directory."""
    ca = trustme.CA(organization_name="pat-watchdog sandbox")
    leaf = ca.issue_cert(*HOSTNAMES, common_name="pat-watchdog sandbox")
    directory = tempfile.TemporaryDirectory(prefix="pat-watchdog-sandbox-")
    ca_path = os.path.join(directory.name, "ca.pem")
    ca.cert_pem.write_to_path(ca_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    leaf.configure_cert(context)
    return Certificates(directory, ca_path, context)

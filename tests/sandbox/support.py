"""Constants and small helpers shared by the sandbox fidelity tests."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

import msal

SUB = "34adfa4f-cedf-4dc0-ba29-b6d1a69ab345"
NOW = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)
SUPPRESS = {"X-TFS-FedAuthRedirect": "Suppress"}
FAST = {"retry_total": 0, "connection_timeout": 5, "read_timeout": 5}
SPECS = Path(__file__).parents[1] / "specs"  # Microsoft's example payloads, copied byte for byte
ADO_SCOPE = "499b84ac-1321-427f-aa17-267ca6975798/.default"  # the Azure DevOps resource
AZURE_CLI = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"


def spec_body(name: str, status: str = "200") -> dict:
    """The example response body of a spec file."""
    return spec(name)["responses"][status]["body"]


def spec(name: str) -> dict:
    """A whole spec example file."""
    return json.loads((SPECS / name).read_text(encoding="utf-8-sig"))


def bearer(cred, resource: str) -> dict[str, str]:
    """Authorization header for raw requests."""
    return {"Authorization": "Bearer " + cred.get_token(resource + "/.default").token}


def basic(pat: str) -> dict[str, str]:
    """Azure DevOps PAT authentication."""
    return {"Authorization": "Basic " + base64.b64encode(f":{pat}".encode()).decode()}


def fingerprint(secret: str) -> str:
    """A short digest standing for a token in comparisons (a failing assert then shows no secret)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def jwt_claims(token: str) -> dict:
    """The claims of a JWT-shaped token (not verified)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def entra_user(sb, name: str = "Ada Lovelace") -> tuple[str, str]:
    """A fresh Entra user mapped to a fresh Azure DevOps user: (oid, Azure DevOps user id)."""
    oid, devops_id = str(uuid.uuid4()), str(uuid.uuid4())
    sb.entra.add_user(oid, f"{oid[:8]}@contoso.test", devops_id, name)
    return oid, devops_id


def public_app(sb, cache=None, authority: str | None = None, client_id: str = AZURE_CLI):
    """The real MSAL public client against the sandbox tenant (no MSAL option weakened)."""
    return msal.PublicClientApplication(client_id, authority=authority or f"https://login.microsoftonline.com/{sb.tenant_id}",
                                        token_cache=cache)


def device_sign_in(sb, app, oid: str) -> dict:
    """Device code sign-in approved by `oid`; MSAL's token answer."""
    flow = app.initiate_device_flow([ADO_SCOPE])
    sb.entra.approve(flow["user_code"], oid)
    return app.acquire_token_by_device_flow(flow, exit_condition=lambda _flow: True)

"""Constants and small helpers shared by the sandbox fidelity tests."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from pathlib import Path

SUB = "34adfa4f-cedf-4dc0-ba29-b6d1a69ab345"
NOW = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)
SUPPRESS = {"X-TFS-FedAuthRedirect": "Suppress"}
FAST = {"retry_total": 0, "connection_timeout": 5, "read_timeout": 5}
SPECS = Path(__file__).parents[1] / "specs"  # Microsoft's example payloads, copied byte for byte


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

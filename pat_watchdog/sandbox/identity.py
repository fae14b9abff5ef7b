"""App Service managed identity endpoint and the bearer tokens it issues."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid

from .web import Request, Response, error, json_response

TOKEN_LIFETIME = 24 * 3600


def audience_of(resource: str) -> str:
    """Normalise a resource/scope to the audience a service checks ("https://vault.azure.net")."""
    resource = resource.strip()
    if resource.endswith("/.default"):
        resource = resource[: -len("/.default")]
    return resource.rstrip("/").lower()


def _segment(part: dict | bytes) -> str:
    raw = part if isinstance(part, bytes) else json.dumps(part, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Identity:
    """Issues access tokens shaped like Entra ID's (a JWT: header, claims, signature) and remembers
    which audience each was issued for. The claims carry `oid`, the identity's object ID, as Entra ID's
    do; the signature is random: the stand-ins look a token up, they never verify it."""

    def __init__(self) -> None:
        self.header = secrets.token_urlsafe(24)
        self.client_id = str(uuid.uuid4())
        self.object_id = str(uuid.uuid4())
        self.tenant_id = str(uuid.uuid4())
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}

    def issue(self, resource: str) -> str:
        """A new token for this resource (the audience is remembered)."""
        now = int(time.time())
        claims = {"aud": resource.removesuffix("/.default"), "iss": f"https://sts.windows.net/{self.tenant_id}/",
                  "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME, "appid": self.client_id, "idtyp": "app",
                  "oid": self.object_id, "sub": self.object_id, "tid": self.tenant_id}
        token = ".".join((_segment({"typ": "JWT", "alg": "RS256", "kid": "sandbox"}), _segment(claims),
                          _segment(secrets.token_bytes(64))))
        with self._lock:
            self._tokens[token] = audience_of(resource)
        return token

    def audience(self, request: Request) -> str | None:
        """The audience of the request's bearer token; None when absent or never issued."""
        value = request.header("Authorization") or ""
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self._lock:
            return self._tokens.get(token.strip())

    def has_bearer(self, request: Request) -> bool:
        """True when the request carries any Authorization: Bearer header."""
        return (request.header("Authorization") or "").lower().startswith("bearer ")

    def handle(self, request: Request) -> Response:
        """GET /msi/token (App Service flavour, api-version 2019-08-01)."""
        # No spec file: shape from the App Service managed identity documentation
        # (Microsoft publishes no example for this endpoint).
        if request.method != "GET" or request.path.rstrip("/") != "/msi/token":
            return error(404, "NotFound", "No such managed identity endpoint.")
        query = request.query
        given = request.header("X-IDENTITY-HEADER")
        if given is None:
            return json_response(400, {"statusCode": 400, "message": "X-IDENTITY-HEADER is required."})
        if not secrets.compare_digest(given, self.header):
            return json_response(401, {"statusCode": 401, "message": "Invalid X-IDENTITY-HEADER."})
        if not query.get("api-version") or not query.get("resource"):
            return json_response(400, {"statusCode": 400,
                                       "message": "api-version and resource are required."})
        return json_response(200, self._token_body(query))

    def _token_body(self, query: dict[str, str]) -> dict[str, str]:
        """The token document; expires_on is real time, since clients check it against it."""
        resource = query["resource"]
        return {
            "access_token": self.issue(resource),
            "expires_on": str(int(time.time()) + TOKEN_LIFETIME),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": query.get("client_id") or self.client_id,
        }

"""Microsoft Entra ID response shapes: OpenID configuration, instance discovery, tokens and errors.

Shapes are copied from recorded Entra traffic: Azure/azure-sdk-for-js
sdk/identity/identity/recordings/node/cae/recording_devicecodecredential.js (instance discovery, OpenID
configuration, device code answer, authorization_pending body, token answer) and
.../cae/recording_usernamepasswordcredential.js (AADSTS50173 with "suberror": "bad_token"). Entra's error
fields: error, error_description (AADSTS text, then Trace ID, Correlation ID and Timestamp lines),
error_codes, timestamp, trace_id, correlation_id, error_uri (Microsoft Learn, "Microsoft Entra
authentication and authorization error codes").
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from .web import Response, json_response

HOST = "login.microsoftonline.com"
AZURE_DEVOPS = "499b84ac-1321-427f-aa17-267ca6975798"  # the Azure DevOps resource (application id)
# Entra maps the Azure DevOps app ID URI to the same application.
AZURE_DEVOPS_RESOURCES = (AZURE_DEVOPS, "https://app.vssps.visualstudio.com")
AZURE_CLI = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"  # pre-authorized by Azure DevOps; in the FOCI family
# The dedicated sign-in client of the sandbox's tenant: an app registration with public client flows on and
# one delegated permission, Azure DevOps user_impersonation (docs/reference.md, "The sign-in's app registration").
SIGNIN_CLIENT = "6f0c9a2e-5d4b-4c3a-9e8f-7a6b5c4d3e2f"
OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
VERIFICATION_URI = "https://microsoft.com/devicelogin"
_NO_CACHE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


def segment(part: dict | bytes) -> str:
    """One base64url JWT segment without padding."""
    raw = part if isinstance(part, bytes) else json.dumps(part, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def jwt(claims: dict[str, Any]) -> str:
    """A JWT-shaped token; the signature is random (the stand-ins look tokens up, they never verify)."""
    header = {"typ": "JWT", "alg": "RS256", "kid": "sandbox"}
    return ".".join((segment(header), segment(claims), segment(secrets.token_bytes(64))))


def epoch(moment: datetime) -> int:
    """Seconds since the epoch."""
    return int(moment.timestamp())


def access_claims(*, tenant: str, oid: str, upn: str, name: str, client_id: str, audience: str,
                  now: datetime, expires: datetime) -> dict[str, Any]:
    """A v1 delegated access token's claims (Azure DevOps accepts v1 tokens: iss is sts.windows.net)."""
    return {"aud": audience, "iss": f"https://sts.windows.net/{tenant}/", "iat": epoch(now),
            "nbf": epoch(now), "exp": epoch(expires), "acr": "1", "amr": ["pwd", "mfa"], "appid": client_id,
            "appidacr": "0", "name": name, "oid": oid, "scp": "user_impersonation", "sub": oid, "tid": tenant,
            "unique_name": upn, "upn": upn, "uti": secrets.token_urlsafe(16), "ver": "1.0"}


def id_claims(*, tenant: str, oid: str, upn: str, name: str, client_id: str, now: datetime) -> dict[str, Any]:
    """A v2 ID token's claims (what MSAL reads to build the cached account)."""
    return {"aud": client_id, "iss": f"https://{HOST}/{tenant}/v2.0", "iat": epoch(now), "nbf": epoch(now),
            "exp": epoch(now + timedelta(hours=1)), "name": name, "oid": oid, "preferred_username": upn,
            "rh": "0.sandbox.", "sub": secrets.token_urlsafe(32), "tid": tenant,
            "uti": secrets.token_urlsafe(16), "ver": "2.0"}


def client_info(oid: str, tenant: str) -> str:
    """base64url JSON {uid, utid}: MSAL's home account id is "uid.utid"."""
    return segment({"uid": oid, "utid": tenant})


def openid_configuration(tenant: str, tenant_id: str) -> dict[str, Any]:
    """GET /{tenant}/v2.0/.well-known/openid-configuration (recorded shape; "organizations" and "common"
    keep their name in the endpoints and a {tenantid} placeholder in the issuer)."""
    base = f"https://{HOST}/{tenant}"
    issuer_tenant = "{tenantid}" if tenant in ("organizations", "common") else tenant_id
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"https://{HOST}/{issuer_tenant}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
                             "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username",
                             "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": f"{base}/kerberos",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


def instance_metadata(tenant: str) -> dict[str, Any]:
    """GET /common/discovery/instance?api-version=1.1 (recorded shape): the public cloud's host aliases."""
    return {
        "tenant_discovery_endpoint": f"https://{HOST}/{tenant}/v2.0/.well-known/openid-configuration",
        "api-version": "1.1",
        "metadata": [
            {"preferred_network": HOST, "preferred_cache": "login.windows.net",
             "aliases": [HOST, "login.windows.net", "login.microsoft.com", "sts.windows.net"]},
            {"preferred_network": "login.partner.microsoftonline.cn",
             "preferred_cache": "login.partner.microsoftonline.cn",
             "aliases": ["login.partner.microsoftonline.cn", "login.chinacloudapi.cn"]},
            {"preferred_network": "login.microsoftonline.us", "preferred_cache": "login.microsoftonline.us",
             "aliases": ["login.microsoftonline.us", "login.usgovcloudapi.net"]},
        ],
    }


def device_code_answer(user_code: str, device_code: str, expires_in: int, interval: int) -> dict[str, Any]:
    """POST /{tenant}/oauth2/v2.0/devicecode (recorded shape; 900 s and 5 s are Entra's values)."""
    return {"user_code": user_code, "device_code": device_code, "verification_uri": VERIFICATION_URI,
            "expires_in": expires_in, "interval": interval,
            "message": f"To sign in, use a web browser to open the page {VERIFICATION_URI} and enter the code "
                       f"{user_code} to authenticate."}


def aad_error(status: int, error: str, code: int, message: str, now: datetime, correlation_id: str | None,
              suberror: str | None = None) -> Response:
    """An Entra token-endpoint error: AADSTS text plus the trace/correlation/timestamp lines and fields."""
    trace, correlation = str(uuid.uuid4()), correlation_id or str(uuid.uuid4())
    stamp = now.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    body: dict[str, Any] = {
        "error": error,
        "error_description": f"AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}"
                             f"\r\nTimestamp: {stamp}",
        "error_codes": [code], "timestamp": stamp, "trace_id": trace, "correlation_id": correlation,
        "error_uri": f"https://{HOST}/error?code={code}",
    }
    if suberror:
        body["suberror"] = suberror
    return json_response(status, body, {**_NO_CACHE, "x-ms-request-id": trace})


def token_answer(body: dict[str, Any]) -> Response:
    """A successful token answer (never cached by intermediaries)."""
    return json_response(200, body, dict(_NO_CACHE))


def dotnet_date(moment: datetime) -> str:
    """A date as Entra prints it in messages ("2021-10-29T17:06:26.4084709Z")."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def timespan(span: timedelta) -> str:
    """A .NET TimeSpan ("90.00:00:00")."""
    seconds = int(span.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{days}.{hours:02d}:{minutes:02d}:{seconds:02d}" if days else f"{hours:02d}:{minutes:02d}:{seconds:02d}"

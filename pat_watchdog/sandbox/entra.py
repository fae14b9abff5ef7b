"""Microsoft Entra ID stand-in (login.microsoftonline.com): OpenID configuration, instance discovery, the
device code flow and refresh tokens, enough for MSAL Python's PublicClientApplication.

Behaviour, with sources (response shapes: entra_shapes.py):
- Device code flow: authorization_pending (AADSTS70016) until a person approves the user code,
  authorization_declined, expired_token after 15 minutes, bad_verification_code (Microsoft Learn,
  "OAuth 2.0 device authorization grant flow", its error table). AADSTS70020 is the expiry code clients
  report (Azure/azure-cli#22251); AADSTS65004 (UserDeclinedConsent) and AADSTS70018 (BadVerificationCode)
  are from the AADSTS error code reference.
- Refresh tokens: every use returns a new refresh token, and the old one is not revoked by that (Microsoft
  Learn, "Refresh tokens in the Microsoft identity platform"); each expires after 90 days of inactivity
  (AADSTS700082, "...The token was issued on ... and was inactive for 90.00:00:00.", Microsoft Q&A
  "Refresh token expiry and the corresponding error message"); revoking a user's sessions invalidates
  the refresh tokens of earlier sign-ins (AADSTS50173, with "suberror": "bad_token" as recorded), while
  access tokens stay valid until they expire.
- Unknown clients: 400 unauthorized_client AADSTS700016 (as Entra answers in published client logs).
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable
from urllib.parse import parse_qsl

from . import entra_shapes as shapes
from .web import Request, Response, error, json_response

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
FOCI_CLIENTS = frozenset({shapes.AZURE_CLI})  # family-of-client-ids members answer "foci": "1"
_USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass
class EntraUser:
    """A user of the tenant, and the Azure DevOps user id its delegated tokens act as."""

    oid: str
    upn: str
    devops_user_id: str
    name: str
    epoch: int = 0  # bumped by revoke_sessions(): sign-ins of earlier epochs are revoked
    tokens_valid_from: datetime | None = None


@dataclass
class _DeviceCode:
    device_code: str
    user_code: str
    client_id: str
    scopes: list[str]
    expires: datetime
    oid: str | None = None  # who approved it
    declined: bool = False
    redeemed: bool = False


@dataclass
class _Grant:
    """One refresh token: the sign-in it descends from (auth_time, epoch) and when it was issued."""

    oid: str
    client_id: str
    epoch: int
    auth_time: datetime
    issued: datetime


@dataclass(frozen=True)
class Principal:
    """What a delegated access token stands for (looked up by the sandbox's Azure DevOps)."""

    oid: str
    upn: str
    name: str
    devops_user_id: str
    audience: str
    client_id: str
    expires: datetime


class Entra:
    """Users, device codes, refresh and access tokens of the sandbox tenant."""

    def __init__(self, clock: Callable[[], datetime], tenant_id: str) -> None:
        self._clock = clock
        self.tenant_id = tenant_id
        self._lock = threading.RLock()
        self.known_clients: set[str] = {shapes.AZURE_CLI, shapes.SIGNIN_CLIENT}
        self.accept_any_client = True  # False: clients outside known_clients get AADSTS700016
        self.auto_approve: str | None = None  # an oid approving every new device code on its first poll
        self.refresh_lifetime = timedelta(days=90)
        self.access_lifetime = timedelta(minutes=75)  # Entra picks 60-90 minutes
        self.device_code_lifetime = timedelta(minutes=15)
        self.poll_interval = 5
        self.issued: Counter[str] = Counter()  # access_token, refresh_token, id_token
        self.grants: Counter[str] = Counter()  # successful token answers per grant type
        self._users: dict[str, EntraUser] = {}
        self._codes: dict[str, _DeviceCode] = {}  # device_code -> code
        self._refresh: dict[str, _Grant] = {}
        self._access: dict[str, Principal] = {}

    # -- control surface ---------------------------------------------------------------------
    def add_user(self, oid: str, upn: str, devops_user_id: str, name: str | None = None) -> None:
        """A tenant user whose delegated tokens act as `devops_user_id` in the sandbox's Azure DevOps."""
        with self._lock:
            self._users[oid] = EntraUser(oid, upn, devops_user_id, name or upn.split("@")[0])

    def approve(self, user_code: str, oid: str) -> None:
        """The user `oid` enters `user_code` and consents (KeyError for an unknown code or user)."""
        with self._lock:
            code, _ = self._by_user_code(user_code), self._users[oid]
            code.oid = oid

    def decline(self, user_code: str) -> None:
        """The person at the sign-in page declines."""
        with self._lock:
            self._by_user_code(user_code).declined = True

    def revoke_sessions(self, oid: str) -> None:
        """revokeSignInSessions: refresh tokens of every earlier sign-in stop working (AADSTS50173)."""
        with self._lock:
            user = self._users[oid]
            user.epoch += 1
            user.tokens_valid_from = self._clock()

    def pending_codes(self) -> list[str]:
        """User codes waiting for a person (not approved, declined, redeemed or expired), oldest first."""
        now = self._clock()
        with self._lock:
            return [c.user_code for c in self._codes.values()
                    if c.oid is None and not c.declined and not c.redeemed and now < c.expires]

    def issued_secrets(self) -> list[str]:
        """Every access token, refresh token and device code handed out (for leak checks)."""
        with self._lock:
            return [*self._access, *self._refresh, *self._codes]

    def principal(self, token: str) -> Principal | None:
        """Who a delegated access token stands for; None when this tenant never issued it."""
        with self._lock:
            return self._access.get(token)

    def _by_user_code(self, user_code: str) -> _DeviceCode:
        for code in self._codes.values():
            if code.user_code == user_code.strip().upper():
                return code
        raise KeyError(user_code)

    # -- HTTP ----------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        """Route by path: /{tenant}/v2.0/.well-known/openid-configuration, /common/discovery/instance,
        /{tenant}/oauth2/v2.0/devicecode and /{tenant}/oauth2/v2.0/token."""
        parts = request.path.strip("/").split("/", 1)
        tenant, rest = parts[0], (parts[1] if len(parts) > 1 else "")
        if request.method == "GET" and rest == "discovery/instance":
            return json_response(200, shapes.instance_metadata(self.tenant_id))
        known = tenant.lower() in (self.tenant_id, "organizations", "common")
        if request.method == "GET" and rest == "v2.0/.well-known/openid-configuration":
            if not known:
                return self._unknown_tenant(request, tenant)
            return json_response(200, shapes.openid_configuration(tenant, self.tenant_id))
        if request.method == "POST" and rest in ("oauth2/v2.0/devicecode", "oauth2/v2.0/token"):
            if not known:
                return self._unknown_tenant(request, tenant)
            form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
            refusal = self._client_refusal(request, form.get("client_id", ""))
            if refusal is not None:
                return refusal
            with self._lock:
                return self._device_code(request, form) if rest.endswith("devicecode") else self._token(request, form)
        return error(404, "NotFound", f"The sandbox's Entra ID has no endpoint {request.path}.")

    def _fail(self, request: Request, error_name: str, code: int, message: str, *, status: int = 400,
              suberror: str | None = None) -> Response:
        """An Entra error answer; the correlation id echoes MSAL's client-request-id."""
        return shapes.aad_error(status, error_name, code, message, self._clock(),
                                request.header("client-request-id"), suberror)

    def _unknown_tenant(self, request: Request, tenant: str) -> Response:
        return self._fail(request, "invalid_tenant", 90002, f"Tenant '{tenant}' not found. Check to make sure you "
                          "have the correct tenant ID and are signing into the correct cloud.")

    def _client_refusal(self, request: Request, client_id: str) -> Response | None:
        if (self.accept_any_client and client_id) or client_id in self.known_clients:
            return None
        return self._fail(request, "unauthorized_client", 700016, f"Application with identifier '{client_id}' was "
                          f"not found in the directory '{self.tenant_id}'. This can happen if the application has "
                          "not been installed by the administrator of the tenant or consented to by any user in the "
                          "tenant. You may have sent your authentication request to the wrong tenant.")

    def _scope_refusal(self, request: Request, scopes: list[str]) -> Response | None:
        """Only the Azure DevOps resource is served (plus MSAL's OpenID Connect scopes)."""
        resources = {s.rsplit("/", 1)[0] for s in scopes if s not in shapes.OIDC_SCOPES}
        if not resources:
            return self._fail(request, "invalid_scope", 70011,
                              "The provided value for the input parameter 'scope' is not valid.")
        unknown = sorted(r for r in resources if r not in shapes.AZURE_DEVOPS_RESOURCES)
        if unknown:
            return self._fail(request, "invalid_resource", 500011, f"The resource principal named {unknown[0]} was "
                              f"not found in the tenant named {self.tenant_id}. This can happen if the application "
                              "has not been installed by the administrator of the tenant or consented to by any user "
                              "in the tenant. You might have sent your authentication request to the wrong tenant.")
        return None

    def _device_code(self, request: Request, form: dict[str, str]) -> Response:
        scopes = form.get("scope", "").split()
        refusal = self._scope_refusal(request, scopes)
        if refusal is not None:
            return refusal
        user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9))
        device_code = "DAQABIQEAAAD" + secrets.token_urlsafe(96)
        self._codes[device_code] = _DeviceCode(device_code, user_code, form["client_id"], scopes,
                                               self._clock() + self.device_code_lifetime)
        answer = shapes.device_code_answer(user_code, device_code, int(self.device_code_lifetime.total_seconds()),
                                           self.poll_interval)
        return shapes.token_answer(answer)

    def _token(self, request: Request, form: dict[str, str]) -> Response:
        grant = form.get("grant_type", "")
        if grant == DEVICE_GRANT:
            return self._redeem_device_code(request, form)
        if grant == "refresh_token":
            return self._redeem_refresh_token(request, form)
        return self._fail(request, "unsupported_grant_type", 70003,
                          f"The app requested an unsupported grant type '{grant}'.")

    def _redeem_device_code(self, request: Request, form: dict[str, str]) -> Response:
        code = self._codes.get(form.get("device_code", ""))
        if code is None or code.redeemed or code.client_id != form.get("client_id"):
            return self._fail(request, "bad_verification_code", 70018,
                              "The provided value for the input parameter 'device_code' is not valid.")
        now = self._clock()
        if now >= code.expires:
            return self._fail(request, "expired_token", 70020, "The provided value for the input parameter "
                              "'device_code' is not valid. This device code has expired.")
        if code.declined:
            return self._fail(request, "authorization_declined", 65004, "User declined to consent to access the app.")
        if code.oid is None and self.auto_approve is not None:
            code.oid = self._users[self.auto_approve].oid
        if code.oid is None:
            return self._fail(request, "authorization_pending", 70016,
                              "OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
        code.redeemed = True
        user = self._users[code.oid]
        self.grants["device_code"] += 1
        return self._issue(user, code.client_id, code.scopes, _Grant(user.oid, code.client_id, user.epoch, now, now))

    def _redeem_refresh_token(self, request: Request, form: dict[str, str]) -> Response:
        grant = self._refresh.get(form.get("refresh_token", ""))
        client = form.get("client_id", "")
        if grant is None or (grant.client_id != client and not {grant.client_id, client} <= FOCI_CLIENTS):
            return self._fail(request, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        user, now = self._users[grant.oid], self._clock()
        if grant.epoch < user.epoch:
            valid_from = shapes.dotnet_date(user.tokens_valid_from or now)
            return self._fail(request, "invalid_grant", 50173, "The provided grant has expired due to it being "
                              "revoked, a fresh auth token is needed. The user might have changed or reset their "
                              f"password. The grant was issued on '{shapes.dotnet_date(grant.auth_time)}' and the "
                              f"TokensValidFrom date (before which tokens are not valid) for this user is "
                              f"'{valid_from}'.", suberror="bad_token")
        if now - grant.issued >= self.refresh_lifetime:
            return self._fail(request, "invalid_grant", 700082, "The refresh token has expired due to inactivity. "
                              f"The token was issued on {shapes.dotnet_date(grant.issued)} and was inactive for "
                              f"{shapes.timespan(self.refresh_lifetime)}.")
        scopes = form.get("scope", "").split()
        refusal = self._scope_refusal(request, scopes)
        if refusal is not None:
            return refusal
        self.grants["refresh_token"] += 1
        return self._issue(user, client, scopes, _Grant(user.oid, client, grant.epoch, grant.auth_time, now))

    def _issue(self, user: EntraUser, client_id: str, scopes: list[str], grant: _Grant) -> Response:
        """Access token, a new refresh token, ID token and client_info, as Entra answers a user grant."""
        now = self._clock()
        expires = now + self.access_lifetime
        resource = next(s.rsplit("/", 1)[0] for s in scopes if s not in shapes.OIDC_SCOPES)
        access = shapes.jwt(shapes.access_claims(tenant=self.tenant_id, oid=user.oid, upn=user.upn, name=user.name,
                                                 client_id=client_id, audience=shapes.AZURE_DEVOPS, now=now,
                                                 expires=expires))
        refresh = "1.AXkA" + secrets.token_urlsafe(180)
        self._access[access] = Principal(user.oid, user.upn, user.name, user.devops_user_id, shapes.AZURE_DEVOPS,
                                         client_id, expires)
        self._refresh[refresh] = grant
        self.issued.update(("access_token", "refresh_token", "id_token"))
        lifetime = int(self.access_lifetime.total_seconds())
        body = {"token_type": "Bearer", "scope": f"{resource}/user_impersonation {resource}/.default",
                "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access, "refresh_token": refresh,
                "id_token": shapes.jwt(shapes.id_claims(tenant=self.tenant_id, oid=user.oid, upn=user.upn,
                                                        name=user.name, client_id=client_id, now=now)),
                "client_info": shapes.client_info(user.oid, self.tenant_id)}
        if client_id in FOCI_CLIENTS:
            body["foci"] = "1"
        return shapes.token_answer(body)

"""Azure DevOps response shapes: connectionData, token listing entries, error pages."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

ZERO_GUID = "00000000-0000-0000-0000-000000000000"
EXPIRED = "Access Denied: The Personal Access Token used has expired."
NOT_AUTHORIZED = "TF400813: The user '' is not authorized to access this resource."


@dataclass
class Pat:
    """A personal access token known to the sandbox."""

    org: str
    token: str
    user_id: str
    valid_from: datetime
    valid_to: datetime
    scope: str
    global_pat: bool
    authorization_id: str
    display_name: str
    revoked: bool = False


def vss_date(moment: datetime) -> str:
    """Azure DevOps dates: 7-digit fraction and Z ("2020-11-02T22:56:52.1033333Z")."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def identity(user_id: str, tenant_id: str, name: str, account: str) -> dict[str, Any]:
    """authenticatedUser/authorizedUser of connectionData (documented shape; no spec file)."""
    subject = base64.urlsafe_b64encode(user_id.encode()).decode().rstrip("=")
    return {
        "id": user_id,
        "descriptor": f"Microsoft.IdentityModel.Claims.ClaimsIdentity;{tenant_id}\\{account}",
        "subjectDescriptor": f"aad.{subject}",
        "providerDisplayName": name,
        "isActive": True,
        "properties": {"Account": {"$type": "System.String", "$value": account}},
        "resourceVersion": 2,
        "metaTypeId": 0,
    }


def connection_data(user: dict[str, Any], org_id: str, deployment_id: str, hosted: bool) -> dict:
    """GET _apis/connectionData (location service; documented shape, no spec file)."""
    return {
        "authenticatedUser": user,
        "authorizedUser": dict(user),
        "instanceId": org_id,
        "deploymentId": deployment_id,
        "deploymentType": "hosted" if hosted else "onPremises",
        "locationServiceData": {
            "serviceOwner": "00025394-6065-48ca-87d9-7f5672854ef7",
            "defaultAccessMappingMoniker": "PublicAccessMapping",
            "lastChangeId": 287317093,
            "lastChangeId64": 287317093,
        },
    }


def token_entry(pat: Pat, org_id: str) -> dict[str, Any]:
    """One SessionTokens entry (spec: devops__GetPersonalAccessTokensForAUserInYourOrganization.json)."""
    return {
        "clientId": ZERO_GUID,
        "accessId": ZERO_GUID,
        "authorizationId": pat.authorization_id,
        "hostAuthorizationId": ZERO_GUID,
        "userId": pat.user_id,
        "validFrom": vss_date(pat.valid_from),
        "validTo": vss_date(pat.valid_to),
        "displayName": pat.display_name,
        "scope": pat.scope,
        "targetAccounts": None if pat.global_pat else [org_id],
        "token": None,
        "alternateToken": None,
        "isValid": not pat.revoked,
        "isPublic": False,
        "publicData": None,
        "source": None,
    }


def vss_error(message: str, type_name: str) -> dict[str, Any]:
    """The Azure DevOps JSON error body."""
    return {"$id": "1", "innerException": None, "message": message,
            "typeName": f"Microsoft.VisualStudio.Services.{type_name}, Microsoft.VisualStudio.Services.Common",
            "typeKey": type_name, "errorCode": 0, "eventId": 3000}


def denial_headers(message: str, tenant_id: str) -> dict[str, str]:
    """401 headers; X-TFS-ServiceError is URL-encoded like the service sends it."""
    return {
        "X-TFS-ServiceError": quote(message, safe=""),
        "WWW-Authenticate": f"Bearer authorization_uri=https://login.microsoftonline.com/{tenant_id}, "
                            'Basic realm="https://tfsprodweu2.visualstudio.com/", TFS-Federated',
        "X-TFS-ProcessId": "8f1c0c5e-5d0e-4f0e-9a51-6c2b0d7f1e11",
    }


def denial_page(message: str) -> str:
    """The small HTML body of a 401."""
    return (f"<!DOCTYPE html><html><head><title>Access Denied</title></head>"
            f"<body><h1>401 - Unauthorized</h1><p>{message}</p></body></html>")


SIGN_IN_PAGE = (
    "<!DOCTYPE html><html><head><title>Azure DevOps Services | Sign In</title>"
    '<meta http-equiv="X-UA-Compatible" content="IE=11;&#32;IE=10;&#32;IE=9;&#32;IE=8" />'
    "</head><body><div>Sign in to your account</div>"
    '<form action="https://login.microsoftonline.com/" method="get"></form></body></html>'
)

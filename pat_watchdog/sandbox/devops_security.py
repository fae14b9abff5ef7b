"""Azure DevOps security: the Project namespace and permission checks (who may bypass rules).

REST shapes: MicrosoftDocs/vsts-rest-api-specs specification/security/7.1/security.json
(Security Namespaces_Query, Permissions_Has Permissions) and its httpExamples
(tests/specs/devops__GetSecurityNamespace.json, devops__HasPermissions.json). Neither operation
lists an OAuth scope there: any valid PAT of the organization may call them.
"""

from __future__ import annotations

from typing import Any

from .devops_shapes import vss_error
from .web import Request, Response, json_response

PROJECT_NAMESPACE = "52d39943-cb85-4d7f-8fa8-c6baac873819"  # Microsoft Learn, "Security namespace reference"
# The Project namespace's actions. Names and order: Microsoft Learn's namespace reference (which notes
# that AGILETOOLS_PLANS is not listed by the service, so it is left out). Display names: Microsoft's
# terraform-provider-azuredevops, azuredevops_project_permissions docs. Bits: powers of two in that
# order with 1024 unused, as published dumps of this query agree. BYPASS_RULES ("Bypass rules on work
# item updates") is 1048576 = 1 << 20; clients should still look it up by name (docs/reference.md, "Reason codes").
PROJECT_ACTIONS = (
    (1, "GENERIC_READ", "View project-level information"),
    (2, "GENERIC_WRITE", "Edit project-level information"),
    (4, "DELETE", "Delete team project"),
    (8, "PUBLISH_TEST_RESULTS", "Create test runs"),
    (16, "ADMINISTER_BUILD", "Administer a build"),
    (32, "START_BUILD", "Start a build"),
    (64, "EDIT_BUILD_STATUS", "Edit build quality"),
    (128, "UPDATE_BUILD", "Write to build operational store"),
    (256, "DELETE_TEST_RESULTS", "Delete test runs"),
    (512, "VIEW_TEST_RESULTS", "View test runs"),
    (2048, "MANAGE_TEST_ENVIRONMENTS", "Manage test environments"),
    (4096, "MANAGE_TEST_CONFIGURATIONS", "Manage test configurations"),
    (8192, "WORK_ITEM_DELETE", "Delete and restore work items"),
    (16384, "WORK_ITEM_MOVE", "Move work items out of this project"),
    (32768, "WORK_ITEM_PERMANENTLY_DELETE", "Permanently delete work items"),
    (65536, "RENAME", "Rename team project"),
    (131072, "MANAGE_PROPERTIES", "Manage project properties"),
    (262144, "MANAGE_SYSTEM_PROPERTIES", "Manage system project properties"),
    (524288, "BYPASS_PROPERTY_CACHE", "Bypass project property cache"),
    (1048576, "BYPASS_RULES", "Bypass rules on work item updates"),
    (2097152, "SUPPRESS_NOTIFICATIONS", "Suppress notifications for work item updates"),
    (4194304, "UPDATE_VISIBILITY", "Update project visibility"),
    (8388608, "CHANGE_PROCESS", "Change process of team project."),
    (16777216, "AGILETOOLS_BACKLOG", "Agile backlog management."),
)
BYPASS_RULES = next(bit for bit, name, _ in PROJECT_ACTIONS if name == "BYPASS_RULES")


def project_token(project_id: str) -> str:
    """The Project namespace's security token of one project (Learn: `$PROJECT:vstfs:///...`)."""
    return f"$PROJECT:vstfs:///Classification/TeamProject/{project_id}"


def namespace_description(namespace_id: str) -> dict[str, Any]:
    """GET _apis/securitynamespaces/{id}: {"count", "value"} with the keys of the example's item.

    Only the Project namespace is known; any other id answers an empty list, as a query does.
    """
    if namespace_id.lower() != PROJECT_NAMESPACE:
        return {"count": 0, "value": []}
    actions = [{"bit": bit, "name": name, "displayName": display, "namespaceId": PROJECT_NAMESPACE}
               for bit, name, display in PROJECT_ACTIONS]
    return {"count": 1, "value": [{
        "namespaceId": PROJECT_NAMESPACE, "name": "Project", "displayName": "Project",
        "separatorValue": ":", "elementLength": -1, "writePermission": 2, "readPermission": 1,
        "dataspaceCategory": "Default", "actions": actions, "structureValue": 1,
        "extensionType": "Microsoft.TeamFoundation.Server.Core.TeamProjectSecurityNamespaceExtension",
        "isRemotable": True, "useTokenTranslator": False,
    }]}


class Permissions:
    """Allowed permission bits per (organization, user, namespace, token); tokens are case-insensitive."""

    def __init__(self) -> None:
        self._allowed: dict[tuple[str, str, str, str], int] = {}

    def set(self, org: str, user_id: str, namespace_id: str, token: str, bits: int, allowed: bool) -> None:
        """Allow (or take back) `bits` for a user on a token."""
        key = (org.lower(), user_id.lower(), namespace_id.lower(), token.lower())
        current = self._allowed.get(key, 0)
        self._allowed[key] = (current | bits) if allowed else (current & ~bits)

    def has(self, org: str, user_id: str, namespace_id: str, token: str, bits: int) -> bool:
        """Whether every one of `bits` is allowed (the service's HasPermissions semantics)."""
        granted = self._allowed.get((org.lower(), user_id.lower(), namespace_id.lower(), token.lower()), 0)
        return bits != 0 and granted & bits == bits


def has_permissions(permissions: Permissions, request: Request, org: str, user_id: str, namespace_id: str,
                    bits: str) -> Response:
    """GET _apis/permissions/{ns}/{bits}?tokens=... for the caller (spec: devops__HasPermissions.json).

    `tokens` split on `delimiter` (default ","); the older single `token` is read too.
    alwaysAllowAdministrators is accepted: the sandbox has no administrators.
    """
    if not bits.isdigit():
        return json_response(400, vss_error(f"Invalid permissions value '{bits}'.", "ArgumentException"))
    query = request.query
    raw = query.get("tokens", query.get("token", ""))
    tokens = raw.split(query.get("delimiter") or ",") if raw else [""]
    value = [permissions.has(org, user_id, namespace_id, token, int(bits)) for token in tokens]
    return json_response(200, {"count": len(value), "value": value})

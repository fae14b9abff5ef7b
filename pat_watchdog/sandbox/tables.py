"""Azure Table storage stand-in at `<account>.table.core.windows.net`, with Entra ID and RBAC.

Azurite serves the tables of most tests (with a connection string). This stand-in is for the
identity-based form the deployment uses (`AzureWebJobsStorage__accountName`): a bearer token for
`https://storage.azure.com`, and the caller's data actions on the storage account (arm_authorization)
decide, as in Azure, answering 403 `AuthorizationPermissionMismatch` otherwise. It serves what the
doctor needs: create a table, read a page of entities, insert and delete one entity. Shapes: the
Table service REST reference (Insert Entity, Query Entities, Delete Entity, Create Table) and its
error format (`odata.error`, `x-ms-error-code`).
"""

from __future__ import annotations

import re
import threading
from datetime import datetime
from typing import Callable

from .arm_resources import Resources
from .arm_authorization import Authorization
from .identity import Identity
from .web import Request, Response, json_response

AUDIENCE = "https://storage.azure.com"
_TABLE = "Microsoft.Storage/storageAccounts/tableServices/tables"
_ENTITY = re.compile(r"^/([A-Za-z][A-Za-z0-9]{2,62})(?:\((?:PartitionKey='([^']*)',\s*RowKey='([^']*)')?\))?$")
_JSON = "application/json;odata=minimalmetadata;streaming=true;charset=utf-8"


def _error(status: int, code: str, message: str) -> Response:
    return json_response(status, {"odata.error": {"code": code, "message": {"lang": "en-US", "value": message}}},
                         {"x-ms-error-code": code, "Content-Type": _JSON})


class Tables:
    """Tables per storage account; what the identity may do comes from its grants on the account."""

    def __init__(self, identity: Identity, resources: Resources, authorization: Authorization,
                 clock: Callable[[], datetime]) -> None:
        self._identity, self._resources, self._authorization, self._clock = identity, resources, authorization, clock
        self._lock = threading.Lock()
        self._tables: dict[tuple[str, str], dict[tuple[str, str], dict]] = {}
        self.writes: list[tuple[str, str, str]] = []   # (method, table, row key) of every entity write

    def add_table(self, account: str, table: str) -> None:
        """A table that exists already (the deployment creates the state table), from the test side."""
        with self._lock:
            self._tables.setdefault((account.lower(), table.lower()), {})

    def rows(self, account: str, table: str) -> list[dict]:
        """The entities of a table, from the test side."""
        with self._lock:
            return [dict(e) for e in self._tables.get((account.lower(), table.lower()), {}).values()]

    def handle(self, request: Request) -> Response:
        account = self._resources.storage_account(request.host.split(".")[0])
        if account is None:
            return _error(404, "ResourceNotFound", "The specified storage account does not exist.")
        if self._identity.audience(request) != AUDIENCE:
            return _error(401, "InvalidAuthenticationInfo", "Server failed to authenticate the request.")
        if request.path.rstrip("/").lower() == "/tables" and request.method == "POST":
            return self._create_table(request, account.id)
        match = _ENTITY.match(request.path)
        if not match:
            return _error(400, "InvalidUri", "The requested URI does not represent any resource on the server.")
        table, partition, row = match.groups()
        needed = {"GET": "read", "POST": "write", "PUT": "write", "PATCH": "write", "DELETE": "delete"}
        if request.method not in needed:
            return _error(405, "UnsupportedHttpVerb", "The resource doesn't support the specified HTTP verb.")
        if not self._authorization.allows(account.id, f"{_TABLE}/entities/{needed[request.method]}", data=True):
            return _error(403, "AuthorizationPermissionMismatch",
                          "This request is not authorized to perform this operation using this permission.")
        with self._lock:
            rows = self._tables.get((account.name.lower(), table.lower()))
            if rows is None:
                return _error(404, "TableNotFound", "The table specified does not exist.")
            return self._entities(request, table, rows, partition, row)

    def _create_table(self, request: Request, account_id: str) -> Response:
        name = (request.json() or {}).get("TableName", "")
        if not self._authorization.allows(account_id, f"{_TABLE}/write"):
            return _error(403, "AuthorizationPermissionMismatch",
                          "This request is not authorized to perform this operation using this permission.")
        key = (account_id.rsplit("/", 1)[1].lower(), name.lower())
        with self._lock:
            if key in self._tables:
                return _error(409, "TableAlreadyExists", "The table specified already exists.")
            self._tables[key] = {}
        return Response(204, headers={"Preference-Applied": "return-no-content"})

    def _entities(self, request: Request, table: str, rows: dict, partition: str | None, row: str | None) -> Response:
        if request.method == "GET":
            found = [rows[(partition, row)]] if (partition, row) in rows else [] if partition is not None \
                else list(rows.values())
            if partition is not None and not found:
                return _error(404, "ResourceNotFound", "The specified resource does not exist.")
            top = int(request.query.get("$top") or 1000)
            return json_response(200, found[0] if partition is not None else {"value": found[:top]},
                                 {"Content-Type": _JSON})
        if request.method == "DELETE":
            if rows.pop((partition, row), None) is None:
                return _error(404, "ResourceNotFound", "The specified resource does not exist.")
            self.writes.append(("DELETE", table, row))
            return Response(204)
        entity = {k: v for k, v in (request.json() or {}).items() if not k.startswith("odata.")}
        key = (entity.get("PartitionKey", partition), entity.get("RowKey", row))
        if request.method == "POST" and key in rows:
            return _error(409, "EntityAlreadyExists", "The specified entity already exists.")
        rows[key] = {**(rows.get(key, {}) if request.method == "PATCH" else {}), **entity,
                     "Timestamp": self._clock().strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        self.writes.append((request.method, table, key[1]))
        return Response(204, headers={"ETag": f"W/\"datetime'{len(self.writes)}'\"",
                                      "Preference-Applied": "return-no-content"})

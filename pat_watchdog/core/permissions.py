"""What ARM's permissions answer allows (pure): the rule Azure RBAC applies to role definitions.

`GET {scope}/providers/Microsoft.Authorization/permissions` lists one Permission per role assignment
that applies at the scope (made there or above). Microsoft Learn, "Understand Azure role
definitions": a role allows its `actions` minus its `notActions` (and `dataActions` minus
`notDataActions`); `*` is a wildcard for any run of characters, anywhere in the name; operation
names are case-insensitive. Roles add up: an action is allowed when ONE Permission allows it, and a
`notActions` entry removes only from its own Permission, never from another role's (it is not a
deny). Deny assignments are not in this answer; the doctor cannot see them.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

# The watchdog's actions per resource (infra/app/aggregator-access.bicep, keyvault-access.bicep).
SITE_WRITE = "Microsoft.Web/sites/config/write"
SITE_RESTART = "Microsoft.Web/sites/restart/action"
VAULT_DATA_ACTIONS = ("Microsoft.KeyVault/vaults/secrets/getSecret/action",
                      "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
                      "Microsoft.KeyVault/vaults/secrets/setSecret/action",
                      "Microsoft.KeyVault/vaults/secrets/update/action")


def matches(pattern: str, action: str) -> bool:
    """Whether one entry of a role definition (wildcards allowed) names `action`."""
    parts = pattern.split("*")
    return re.fullmatch(".*".join(map(re.escape, parts)), action, re.IGNORECASE) is not None


def allows(permissions: Iterable[Mapping], action: str, *, data: bool = False) -> bool:
    """Whether some Permission grants `action` without excluding it."""
    grant, exclude = ("dataActions", "notDataActions") if data else ("actions", "notActions")
    return any(any(matches(p, action) for p in perm.get(grant) or ())
               and not any(matches(p, action) for p in perm.get(exclude) or ())
               for perm in permissions)


def missing(permissions: Iterable[Mapping], actions: Iterable[str], *, data: bool = False) -> tuple[str, ...]:
    """The actions the permissions do not allow, in the order asked."""
    held = list(permissions)
    return tuple(a for a in actions if not allows(held, a, data=data))

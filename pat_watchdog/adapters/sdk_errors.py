"""The one translator from Azure SDK (azure-core) errors to ServiceError, for every adapter."""

from __future__ import annotations

from azure.core.exceptions import AzureError, ClientAuthenticationError

from pat_watchdog.adapters.deadlines import DeadlinePassed
from pat_watchdog.core.errors import ServiceError

NO_CREDENTIAL = ("no Azure credential: sign in with `az login`, or give the Function App a managed identity "
                 "(AZURE_CLIENT_ID for a user-assigned one)")


def service_error(system: str, error: AzureError, what: str) -> ServiceError:
    """`system: what: HTTP 404 ResourceNotFound`; Azure's error messages are left out: they can echo values."""
    response = getattr(error, "response", None)
    if isinstance(error, ClientAuthenticationError) and response is None:
        return ServiceError(system, f"{what}: {NO_CREDENTIAL}")
    if isinstance(error, DeadlinePassed):   # our own words: which deadline cut the call
        return ServiceError(system, f"{what}: {error.message}")
    status = getattr(response, "status_code", None)
    code = getattr(getattr(error, "error", None), "code", None)
    detail = f"HTTP {status}" if status else type(error).__name__
    if code:
        detail += f" {code}"
    return ServiceError(system, f"{what}: {detail}", status=status)

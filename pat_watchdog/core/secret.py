"""The PAT as a value that cannot leak by accident: its repr and str show only a fingerprint."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re


# The forms of an Azure DevOps PAT (Microsoft Learn, "Use personal access tokens", Changes to
# format; microsoft/azure-devops-node-api#608): since July 2024, 84 characters of letters and digits
# with "AZDO" at positions 77-80; before (and on Azure DevOps Server), 52 lower-case base32 characters.
_PAT_FORMS = (re.compile(r"[A-Za-z0-9]{76}AZDO[A-Za-z0-9]{4}"), re.compile(r"[a-z2-7]{52}"))


def looks_like_pat(value: str) -> bool:
    """Whether `value` has the form of an Azure DevOps PAT: only then may it be sent to Azure DevOps
    after following a Key Vault reference (a reference must not turn another secret into a credential)."""
    return any(form.fullmatch(value.strip()) for form in _PAT_FORMS)


def fingerprint(value: str) -> str:
    """First 8 hex digits of SHA-256 of the token (docs/reference.md, "Alerts")."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


class Token:
    """Holds a token value; printing, logging or formatting it shows the fingerprint only."""

    __slots__ = ("_value", "fingerprint", "digest")

    def __init__(self, value: str):
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a token must be a non-empty string")
        self._value = value.strip()
        # The whole SHA-256 identifies a token in the watchdog's record; the first 8 hex digits are for
        # people only (32 bits: a value with a chosen fingerprint is found in CPU-minutes).
        self.digest = hashlib.sha256(self._value.encode("utf-8")).hexdigest()
        self.fingerprint = self.digest[:8]

    def reveal(self) -> str:
        """The value itself: only for the Authorization header, Key Vault and the ARM setting."""
        return self._value

    def basic_auth(self) -> str:
        """`Authorization` header value for Azure DevOps (empty user name, PAT as password)."""
        return "Basic " + base64.b64encode(b":" + self._value.encode("utf-8")).decode("ascii")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Token) and hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"Token(fingerprint={self.fingerprint})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self):
        raise TypeError("a Token is never pickled or serialised")

"""Azure DevOps PAT values as the service issues them: the 84-character format and the classic one.

Since July 2024 Azure DevOps issues 84-character PATs: 52 random characters, then a fixed signature,
"AZDO" at positions 77-80 (1-based) and a checksum (Microsoft Learn, "Use personal access tokens",
Changes to format; release notes sprint 241). The layout after the random part is Microsoft's
common annotated security key, as its own detector reads it (microsoft/security-utilities,
GeneratedRegexPatterns/PreciselyClassifiedSecurityKeys.json, SEC101/200):
`[A-Za-z0-9]{52} JQQJ9 [9DH] . [A-L] .{16} [A-Za-z] .{7}`. The classic format, still issued by
Azure DevOps Server, is 52 lower-case base32 characters (same file, SEC101/102 AdoLegacyPat).
"""

from __future__ import annotations

import re
import secrets
import string
import zlib
from datetime import date

CLASSIC_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
ALPHABET = string.ascii_letters + string.digits
YEARS = string.ascii_uppercase + string.ascii_lowercase + string.digits  # A = 2024
SIGNATURE = "JQQJ9"      # the common annotated key signature, positions 53-57
KIND = "9"               # key kind (SEC101/200 accepts 9, D or H)
RESERVED = "A" * 16      # platform and provider reserved fields, zero-filled
PROVIDER = "AZDO"        # positions 77-80
NEW_FORM = re.compile(r"[A-Za-z0-9]{52}JQQJ9[9DH][A-Za-z0-9][A-L][A-Za-z0-9]{16}AZDO[A-Za-z0-9]{4}")
CLASSIC_FORM = re.compile(r"[a-z2-7]{52}")


def new_pat(*, classic: bool = False, issued: date | None = None) -> str:
    """A fresh random PAT: 84 characters by default, or 52 lower-case base32 ones (`classic=True`)."""
    if classic:
        return "".join(secrets.choice(CLASSIC_ALPHABET) for _ in range(52))
    issued = issued or date.today()
    head = _random_part()
    # Year (A = 2024) and month (A-L) of issue, then the reserved fields and the provider signature.
    body = (head + SIGNATURE + KIND + YEARS[(issued.year - 2024) % len(YEARS)]
            + "ABCDEFGHIJKL"[issued.month - 1] + RESERVED + PROVIDER)
    return body + _checksum(body)


def is_new_format(value: str) -> bool:
    """Whether `value` has the 84-character form."""
    return NEW_FORM.fullmatch(value) is not None


def is_classic(value: str) -> bool:
    """Whether `value` has the classic 52-character form."""
    return CLASSIC_FORM.fullmatch(value) is not None


def _random_part() -> str:
    """52 random letters and digits, with at least one upper-case letter, lower-case letter and digit."""
    while True:
        part = "".join(secrets.choice(ALPHABET) for _ in range(52))
        if any(c.isupper() for c in part) and any(c.islower() for c in part) and any(c.isdigit() for c in part):
            return part


def _checksum(body: str) -> str:
    """Four characters derived from the rest (a stand-in: the service's own checksum is not published)."""
    value = zlib.crc32(body.encode("ascii"))
    chars = []
    for _ in range(4):
        value, digit = divmod(value, len(ALPHABET))
        chars.append(ALPHABET[digit])
    return "".join(chars)

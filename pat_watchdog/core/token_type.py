"""`Aggregator_VstsTokenType` as Aggregator's runtime parses it (pure).

aggregator-cli (master 95a12bc) `src/aggregator-ruleng/AggregatorConfiguration.cs`, `Read`:
`Enum.TryParse(config["Aggregator_VstsTokenType"], out DevOpsTokenType vtt)` over
`enum DevOpsTokenType { Integrated = 0, PAT = 1 }`; a failed parse leaves `default` (Integrated), and
`RuleExecutor.ExecuteAsync` throws for anything but PAT. .NET's `Enum.TryParse<TEnum>(string, out)`
(dotnet/runtime `Enum.cs`, TryParse and TryParseByName): null or blank fails; leading white space
is skipped; a value starting with an ASCII digit, '+' or '-' is read as an Int32 (trailing white
space allowed, any number, even one the enum does not name); otherwise comma-separated names,
each trimmed, matched case-sensitively, OR-ed together.
"""

from __future__ import annotations

import re

SETTING = "Aggregator_VstsTokenType"      # the one home of the name
NAMES = {"Integrated": 0, "PAT": 1}
PAT = 1
# char.IsWhiteSpace: the Unicode space separators, line and paragraph separators, and U+0009-U+000D,
# U+0085 (not Python's wider str.isspace, which also counts U+001C-U+001F).
_WHITE = "\t\n\x0b\x0c\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
         "\u2028\u2029\u202f\u205f\u3000 "
_INT = re.compile(r"[+-]?[0-9]+")


def parse(value: str | None) -> int | None:
    """The enum value Aggregator gets, or None when Enum.TryParse fails (Aggregator then uses 0)."""
    if value is None:
        return None
    text = value.lstrip(_WHITE)
    if not text:
        return None
    if text[0] in "0123456789+-":
        number = text.rstrip(_WHITE)
        if not _INT.fullmatch(number):
            return None
        parsed = int(number)
        return parsed if -2**31 <= parsed < 2**31 else None
    result = 0
    for part in text.split(","):
        name = part.strip(_WHITE)
        if name not in NAMES:
            return None
        result |= NAMES[name]
    return result


def describe(value: str | None) -> str:
    """What is wrong, in words; the value itself only when it is short and cannot be a secret."""
    parsed = parse(value)
    name = {0: "Integrated"}.get(parsed)
    if value is None or not value.strip(_WHITE):
        what = "is not set (Aggregator reads it as Integrated)"
    elif name or parsed is not None:
        what = f"reads as {name or parsed}, not PAT"
    elif re.fullmatch(r"[A-Za-z0-9 ,+_.-]{1,20}", value) and not re.search(r"[A-Za-z0-9]{20}", value):
        what = f"is {value!r}, which Aggregator cannot read (names are case-sensitive: PAT)"
    else:
        what = "holds a value Aggregator cannot read (not shown: it may be a secret)"
    return (f"Aggregator_VstsTokenType {what}: every rule fails. Set it to PAT (aggregator-cli "
            "configure.instance, or the app setting); a rotation writes PAT")


def works(value: str | None) -> bool:
    """Whether Aggregator runs its rules with this token type: only PAT (1) does."""
    return parse(value) == PAT


def key_in(settings, name: str) -> str | None:
    """The key under which `settings` holds `name` as Aggregator reads it: .NET configuration keys are
    case-insensitive (Microsoft Learn, "Configuration in ASP.NET Core": "Configuration keys are
    case-insensitive"), so `AGGREGATOR_VSTSTOKEN` is Aggregator's token. The exact spelling wins when both
    exist; a write goes to the key as it is spelled. None: no such setting."""
    if name in settings:
        return name
    wanted = name.lower()
    return next((key for key in settings if key.lower() == wanted), None)

"""`Aggregator_VstsTokenType` read with .NET Enum.TryParse semantics, as Aggregator reads it."""

from __future__ import annotations

import pytest

from pat_watchdog.core import token_type

FORMS = {
    "PAT": 1, "1": 1, " PAT ": 1, "\tPAT\n": 1, "\u00a0PAT": 1, "+1": 1, "01": 1, "1 ": 1,
    "Integrated, PAT": 1, "PAT,PAT": 1,              # names are OR-ed: Integrated (0) | PAT (1)
    "pat": None, "Pat": None, "PAT.": None, "PAT,": None, ",PAT": None, "": None, "   ": None,
    "Integrated": 0, "0": 0, "2": 2, "-1": -1, "1.0": None, "0x1": None, "1 1": None,
    "to-be-replaced": None, "\u0420\u0410\u0422": None,          # Cyrillic look-alike of PAT
    "\uff30\uff21\uff34": None, "\uff11": None, "\u0661": None,  # full-width PAT and 1, Arabic-Indic 1
    "PAT\u200b": None,                                           # a zero-width space is not white space
    "\x1cPAT": None,                                             # nor a file separator (Python thinks so)
    "99999999999": None,                                         # out of Int32 range
}


@pytest.mark.parametrize("value, expected", FORMS.items(), ids=[repr(k) for k in FORMS])
def test_parses_like_enum_try_parse(value: str, expected: int | None) -> None:
    assert token_type.parse(value) == expected


@pytest.mark.parametrize("value", [v for v, parsed in FORMS.items() if parsed != 1] + [None])
def test_only_pat_or_1_works(value) -> None:
    assert token_type.works(value) is False


@pytest.mark.parametrize("value", [v for v, parsed in FORMS.items() if parsed == 1])
def test_every_form_of_pat_works(value: str) -> None:
    assert token_type.works(value) is True

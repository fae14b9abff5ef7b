"""Text from outside (tag values, display names, error bodies, setting names) made inert for a mail
header (pure). Cards need nothing: their texts are TextRuns, which no renderer reads as markdown
(adapters/teams.py)."""

from __future__ import annotations


def one_line(text: str) -> str:
    """`text` on one line without control characters: safe in a mail header."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())

"""Text from outside (tag values, display names, error bodies, setting names) made inert for the
places it is shown: Adaptive Card markdown, and mail headers (pure)."""

from __future__ import annotations

import re

# CommonMark lets a backslash escape any ASCII punctuation; these are the ones that can start a
# construct (link, image, emphasis, code, heading, list, table, HTML, entity). Teams renders
# TextBlock and FactSet text as markdown: an escaped character shows as itself.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&=])")


def markdown_escape(text: str) -> str:
    """`text` shown literally by a markdown renderer: no link, emphasis or HTML can come out of it.
    Lines lose their leading indentation, which would make them a code block."""
    lines = (line.lstrip(" \t") for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return "\n".join(_MARKDOWN.sub(r"\\\1", line) for line in lines)


def one_line(text: str) -> str:
    """`text` on one line without control characters: safe in a mail header."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())

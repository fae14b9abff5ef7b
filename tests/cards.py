"""Reading Teams cards as Teams does: which texts it would read as markdown, and whether a text would
show as typed. Teams reads TextBlock text and fact titles and values as markdown ("Format cards in
Teams", Microsoft Learn); a TextRun's text never (Adaptive Cards schema, TextRun)."""

from __future__ import annotations

import html
import re
from typing import Iterator

from markdown_it import MarkdownIt

MARKDOWN = MarkdownIt("commonmark")


def strings(node, path: str = "") -> Iterator[tuple[str, str]]:
    """(JSON pointer, value) of every string in a card, keys' values and list items alike."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from strings(value, f"{path}/{index}")
    elif isinstance(node, str):
        yield path, node


def markdown_read(node) -> list[str]:
    """Every text of a card that Teams reads as markdown: TextBlock text, fact titles and values."""
    found = []
    if isinstance(node, dict):
        if node.get("type") == "TextBlock":
            found.append(node.get("text", ""))
        if node.get("type") == "FactSet":
            found.extend(text for fact in node.get("facts", []) for text in (fact.get("title", ""),
                                                                             fact.get("value", "")))
        for value in node.values():
            found.extend(markdown_read(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(markdown_read(value))
    return found


def shows_as_typed(text: str) -> bool:
    """Whether CommonMark renders `text` as itself: one paragraph, no element, no escape or entity
    consumed (white space aside)."""
    rendered = MARKDOWN.render(text).strip()
    inner = re.fullmatch(r"<p>(.*)</p>", rendered, re.S)
    if not text.strip():
        return rendered == ""
    if inner is None or "<" in inner.group(1).replace("&lt;", ""):
        return False
    return " ".join(html.unescape(inner.group(1)).split()) == " ".join(text.split())

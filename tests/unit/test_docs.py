"""The documentation keeps up with the code: every reason code and every setting is described, the
README stays short and leads to the docs, and no link points nowhere."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from pat_watchdog.core import reasons

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
REFERENCE = (ROOT / "docs" / "reference.md").read_text()
SETTINGS_SOURCE = "".join(p.read_text() for p in (ROOT / "pat_watchdog" / "core").glob("setting*.py"))
README_MAX_BYTES = 15_360
READER_DOCS = ("docs/deploy.md", "docs/reference.md", "docs/rotation.md", "docs/development.md")

# [text](target) and ![alt](target); the target ends at whitespace or ")" (an optional title follows).
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def test_every_reason_code_is_in_the_reference_table():
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", REFERENCE, re.MULTILINE))
    assert set(reasons.ALL) <= documented, set(reasons.ALL) - documented


def test_every_setting_is_in_the_reference_table():
    read = set(re.findall(r'"(WATCHDOG_[A-Z_]+)"', SETTINGS_SOURCE))
    documented = set(re.findall(r"`(WATCHDOG_[A-Z_]+)`", REFERENCE))
    # `WATCHDOG_SMTP_HOST`, `_PORT`, ...: the table names the SMTP family once.
    documented |= {f"WATCHDOG_SMTP_{suffix}" for suffix in re.findall(r"`_([A-Z]+)`", REFERENCE)}
    assert read <= documented, read - documented


def test_the_settings_example_lists_every_setting_with_a_comment():
    text = (ROOT / "local.settings.json.example").read_text()
    values = json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE))["Values"]
    read = set(re.findall(r'"(WATCHDOG_[A-Z_]+)"', SETTINGS_SOURCE))
    assert read <= set(values), read - set(values)
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.strip().startswith('"WATCHDOG_'):
            assert lines[index - 1].strip().startswith("//"), f"no comment above {line.strip()}"


def test_the_readme_opens_with_the_two_commands():
    head = README.split("\n## ")[0]
    assert "./dev demo" in head and "./dev test" in head
    assert ".ci/run" not in head
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_is_short_and_leads_to_every_doc():
    size = len(README.encode("utf-8"))
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/"
    targets = {_split(target)[0] for target in links(README)}
    for doc in READER_DOCS:
        assert doc in targets, f"README.md does not link {doc}"


def links(markdown: str) -> list[str]:
    """Every link target outside fenced code blocks."""
    return LINK.findall(FENCE.sub("", markdown))


def _split(target: str) -> tuple[str, str]:
    path, _, fragment = target.partition("#")
    return unquote(path), unquote(fragment)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"<[^>]+>", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    found, seen = set(), {}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", markdown), re.MULTILINE):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    found |= set(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", markdown))
    return found


DOCUMENTS = [ROOT / "README.md", *DOCS]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_a_file_that_exists(document: Path):
    text = document.read_text()
    broken = []
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto: ...
            continue
        path, fragment = _split(target)
        file = (document.parent / path).resolve() if path else document
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file.read_text()):
            broken.append(f"{target}: no heading #{fragment} in {file.relative_to(ROOT)}")
    assert not broken, broken

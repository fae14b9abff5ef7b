"""The documentation keeps up with the code: every reason code and every setting is described."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pat_watchdog.core import reasons

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
SETTINGS_SOURCE = "".join(p.read_text() for p in (ROOT / "pat_watchdog" / "core").glob("setting*.py"))


def test_every_reason_code_is_in_the_readme_table():
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", README, re.MULTILINE))
    assert set(reasons.ALL) <= documented, set(reasons.ALL) - documented


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

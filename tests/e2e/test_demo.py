"""`pat-watchdog demo`, as the README's first command runs it: the whole story, exit 0, no PAT shown."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_tells_the_whole_story():
    result = subprocess.run([sys.executable, "-m", "pat_watchdog", "demo"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for chapter in ("1. Healthy", "2. Nearing expiry", "3. Replacement staged", "4. Bad replacement",
                    "5. Expired token", "6. A stale date, not an expiry", "0. First deployment: the doctor",
                    "7. Rules that stopped firing"):
        assert f"== {chapter} " in out
    assert "Teams  <- ⚠️ WARNING: contosoaggregator / the token expires soon" in out
    assert "Teams  <- ✅ INFO: contosoaggregator / rotated" in out
    assert "rejected (missing required scopes" in out
    assert "Email  <- [pat-watchdog] CRITICAL: fabrikamaggregator: the token has expired" in out
    assert "EXPIRY_EXTENDED: Azure DevOps says the token expires" in out and "done       correct INFO" in out
    assert "FIX  instance.write" in out and "(exit 1)" in out and "fix: az role assignment create" in out
    assert out.count("reenable INFO") == 2 and "Subscriptions now: disabledByUser, enabled, enabled." in out
    assert "requests to anything but the sandbox: 0." in out
    # Every PAT the demo makes has the 84-character format (or the classic 52-character one): none may appear.
    assert "JQQJ9" not in out
    assert not re.search(r"[A-Za-z0-9]{76}AZDO[A-Za-z0-9]{4}|(?<![a-z2-7])[a-z2-7]{52}(?![a-z2-7])", out)
    page = Path(re.search(r"The status page of the last run .*\n   (\S+status\.html)\n", out).group(1))
    html = page.read_text(encoding="utf-8")
    assert ">adventureaggregator</a>" in html and "<script" not in html and html.count('class="sq ') > 5
    assert not re.search(r"[A-Za-z0-9]{76}AZDO[A-Za-z0-9]{4}|(?<![a-z2-7])[a-z2-7]{52}(?![a-z2-7])", html)
    assert re.search(r"Done in \d+\.\d s", out)  # the time is printed, not asserted (see bench/)

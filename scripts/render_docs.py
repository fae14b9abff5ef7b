#!/usr/bin/env python3
"""Regenerates docs/card-warning.png, docs/card-critical.png and docs/email-critical.png.

The alerts come from the real pipeline (snapshot -> policy.decide -> alerts.for_plan), the
Teams card from pat_watchdog.adapters.teams and the email from pat_watchdog.adapters.email. The
card is drawn by Microsoft's own renderer (npm adaptivecards, tests/render/render_page.html),
the email as it stands, both in headless Chromium (Debian package `chromium`; install it with
scripts/install-chromium.sh). tests/render/test_render.py uses the same helpers, so what the
tests check is what the pictures show.

    .venv/bin/python scripts/render_docs.py [--out docs]
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pat_watchdog.core import alerts  # noqa: E402
from pat_watchdog.core import reasons as R  # noqa: E402
from pat_watchdog.core.model import ExpiryFact, InstanceSnapshot, LiveCheck, Liveness  # noqa: E402
from pat_watchdog.adapters import teams as card_builder  # noqa: E402
from pat_watchdog.adapters import email as email_builder  # noqa: E402
from pat_watchdog.core.policy import Policy, decide  # noqa: E402
from pat_watchdog.core.settings import load_settings  # noqa: E402

RENDER_PAGE = ROOT / "tests" / "render" / "render_page.html"
VALIDATOR = ROOT / "tests" / "render" / "validate_card.js"
ADAPTIVECARDS = ROOT / "node_modules" / "adaptivecards" / "dist" / "adaptivecards.min.js"
INSTALL_HINT = ("headless Chromium is not installed: run scripts/install-chromium.sh as root "
                "(Debian packages chromium and fonts-noto-color-emoji), or set CHROMIUM to its path")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--hide-scrollbars", "--force-device-scale-factor=1",
                  "--mute-audio")

# --- Realistic alerts, through the real pipeline ---------------------------------------------

NOW = datetime(2026, 11, 28, 6, tzinfo=timezone.utc)
APP_ID = ("/subscriptions/8c56d827-5f07-45ce-8f2b-6c5001db5c6f/resourceGroups/aggregator-contoso"
          "/providers/Microsoft.Web/sites/contosoaggregator")
SCOPES = ("vso.identity", "vso.project", "vso.serviceendpoint_manage", "vso.work_full")


def sample_settings():
    return load_settings({"WATCHDOG_AGGREGATOR_APP": APP_ID,
                          "WATCHDOG_DEVOPS_ORG_URL": "https://dev.azure.com/contoso",
                          "WATCHDOG_KEY_VAULT_URL": "https://contoso-kv.vault.azure.net"})


def _plan(settings, live: Liveness, facts=(), fingerprint="1a2b3c4d"):
    snap = InstanceSnapshot(app_id=str(settings.targets[0]), name="contosoaggregator", token_present=True,
                            token_fingerprint=fingerprint, token_type="PAT", live=LiveCheck(live, user_id="u"),
                            facts=tuple(facts))
    return decide(snap, Policy.from_settings(settings, "contosoaggregator"), NOW)


def _only(found: list, code: str):
    matching = [a for a in found if a.code == code]
    if not matching:
        raise AssertionError(f"the pipeline raised no {code} alert: {[a.code for a in found]}")
    return matching[0]


def sample_alerts() -> dict:
    """One alert of each kind the channels send: name -> pat_watchdog.alerts.Alert."""
    s = sample_settings()
    warning = _only(alerts.for_plan(_plan(s, Liveness.VALID, [ExpiryFact("keyvault", NOW + timedelta(days=10),
                                                                        SCOPES)]), s, NOW), "EXPIRES_SOON")
    critical = _only(alerts.for_plan(_plan(s, Liveness.EXPIRED), s, NOW), "EXPIRED")
    critical_soon = _only(alerts.for_plan(_plan(s, Liveness.VALID, [ExpiryFact("keyvault", NOW + timedelta(days=2),
                                                                              SCOPES)]), s, NOW), "EXPIRES_CRITICAL")
    narrow = ExpiryFact("keyvault", NOW + timedelta(days=200), ("vso.work", "vso.project"))
    scope = _only(alerts.for_plan(_plan(s, Liveness.VALID, [narrow]), s, NOW), "SCOPE_MISSING")
    healthy = _plan(s, Liveness.VALID, [ExpiryFact("keyvault", NOW + timedelta(days=300), SCOPES)],
                    fingerprint="5e6f7a8b")
    resolved = alerts.resolved("EXPIRY", warning.message, healthy)
    rotated = alerts.info(healthy, R.ROTATED.name, R.ROTATED.message,
                          "The staged token replaced the one due to expire in 10 days; Aggregator was "
                          "restarted and Azure DevOps accepts the new token.")
    return {"warning": warning, "critical": critical, "critical_soon": critical_soon, "scope_missing": scope,
            "info_resolved": resolved, "info_rotated": rotated}


# --- Node: Microsoft's SDK validates the card --------------------------------------------------

def validate_card(card: dict, node: str | None = None) -> dict:
    """tests/render/validate_card.js on the card: {"ok", "events", "unknown", ...}."""
    node = node or shutil.which("node")
    if not node:
        raise RuntimeError("node is not installed (Node 20+ is needed for the Adaptive Cards SDK)")
    if not ADAPTIVECARDS.exists():
        raise RuntimeError(f"{ADAPTIVECARDS.relative_to(ROOT)} is missing: run `npm ci` (./dev test does)")
    done = subprocess.run([node, str(VALIDATOR)], input=json.dumps(card), capture_output=True, text=True,
                          timeout=30, check=False)
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise RuntimeError(f"validate_card.js failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


# --- Chromium ----------------------------------------------------------------------------------

def chromium_path() -> str | None:
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_version(binary: str) -> str:
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=False)
    return done.stdout.strip()


def chromium(args: list[str], binary: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """One headless Chromium run, in a fresh profile; no network but file:// pages."""
    binary = binary or chromium_path()
    if not binary:
        raise RuntimeError(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        done = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done


def dump_dom(url: str, binary: str | None = None) -> str:
    return chromium(["--dump-dom", url], binary).stdout


def screenshot(url: str, png: Path, width: int, height: int, binary: str | None = None) -> Path:
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    if png.exists():
        png.unlink()
    chromium([f"--window-size={width},{height}", f"--screenshot={png}", url], binary)
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png


def card_page_url(card: dict) -> str:
    """render_page.html with the card in the fragment (base64url of the UTF-8 JSON)."""
    data = base64.urlsafe_b64encode(json.dumps(card, ensure_ascii=False).encode()).decode().rstrip("=")
    return RENDER_PAGE.as_uri() + "#" + data


def render_card(card: dict, binary: str | None = None) -> dict:
    """What the page's script recorded after rendering the card: {"ok", "rendered", "events",
    "renderError", "text", "width", "height"}, plus "title" (the page title)."""
    dom = dump_dom(card_page_url(card), binary)
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    if not found or not found.group(1).strip():
        raise RuntimeError(f"the render page recorded no result; DOM starts: {dom[:500]!r}")
    result = json.loads(html.unescape(found.group(1)))
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    result["title"] = title.group(1) if title else ""
    return result


def screenshot_card(card: dict, png: Path, binary: str | None = None) -> Path:
    size = render_card(card, binary)
    if not size.get("ok"):
        raise RuntimeError(f"the card did not render cleanly: {size}")
    return screenshot(card_page_url(card), png, size["width"], size["height"], binary)


def email_height(html_text: str, width: int, binary: str | None = None) -> int:
    """The page height of an HTML email at this width (measured on a copy with a script added)."""
    with tempfile.TemporaryDirectory(prefix="email-measure-") as tmp:
        page = Path(tmp) / "email.html"
        probe = ("<script>document.title = 'height=' + Math.ceil("
                 "document.documentElement.getBoundingClientRect().height + 16);</script>")
        page.write_text(html_text.replace("</body>", probe + "</body>"), encoding="utf-8")
        dom = chromium([f"--window-size={width},600", "--dump-dom", page.as_uri()], binary).stdout
    found = re.search(r"<title>height=(\d+)</title>", dom)
    if not found:
        raise RuntimeError("could not measure the email's height")
    return int(found.group(1))


def screenshot_email(html_text: str, png: Path, width: int = 760, binary: str | None = None) -> Path:
    height = email_height(html_text, width, binary)
    with tempfile.TemporaryDirectory(prefix="email-") as tmp:
        page = Path(tmp) / "email.html"
        page.write_text(html_text, encoding="utf-8")
        return screenshot(page.as_uri(), png, width, height, binary)


# --- PNG sanity, with the standard library only --------------------------------------------------

def png_facts(png: Path) -> dict:
    """Size and a crude "not blank" measure of a PNG: {"width", "height", "distinct_bytes"}.
    A blank page's filtered scanlines are nearly all zeros; drawn text gives many byte values."""
    import struct
    import zlib

    data = Path(png).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{png} is not a PNG")
    pos, width, height, idat = 8, 0, 0, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    pixels = zlib.decompress(idat)
    return {"width": width, "height": height, "distinct_bytes": len(set(pixels)), "bytes": len(data)}


# --- The docs ----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where to write the PNGs (docs/)")
    args = parser.parse_args(argv)
    binary = chromium_path()
    if not binary:
        print(INSTALL_HINT, file=sys.stderr)
        return 1
    found = sample_alerts()
    # The CRITICAL shown is the one a person should get before anything breaks: 2 days left,
    # nothing staged (the EXPIRED one has no expiry facts to show).
    for name, alert in (("warning", found["warning"]), ("critical", found["critical_soon"])):
        content = card_builder.card(alert)
        check = validate_card(content)
        if not check["ok"]:
            print(f"the {name} card does not validate: {check}", file=sys.stderr)
            return 1
        png = screenshot_card(content, args.out / f"card-{name}.png", binary)
        print(f"wrote {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")
    png = screenshot_email(email_builder.html_body(found["critical_soon"]), args.out / "email-critical.png",
                           binary=binary)
    print(f"wrote {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")
    print(chromium_version(binary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Regenerates docs/card-warning.png, docs/card-critical.png, docs/email-critical.png and docs/status-page.png.

The alerts come from the real pipeline (snapshot -> policy.decide -> alerts.for_plan), the
Teams card from pat_watchdog.adapters.teams and the email from pat_watchdog.adapters.email; the
status page from pat_watchdog.core.status_page, over a sample fleet decided the same way. The
card is drawn by Microsoft's own renderer (npm adaptivecards, tests/render/render_page.html),
the email as it stands, both in headless Chromium (Debian package `chromium`; install it with
scripts/install-chromium.sh). tests/render/test_render.py uses the same helpers, so what the
tests check is what the pictures show.

    .venv/bin/python scripts/render_docs.py [--out docs]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
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
from pat_watchdog.core import report, status_page  # noqa: E402
from pat_watchdog.core.model import (Action, ActionKind, ActionOutcome, CandidateState, CandidateView,  # noqa: E402
                                     ExpiryFact, InstanceSnapshot, LiveCheck, Liveness, Note, SubscriptionView)
from pat_watchdog.core.times import format_utc  # noqa: E402
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


# --- A fleet, through the same pipeline, for the status page ------------------------------------

def _fleet_snapshot(i: int, site: str, app: str, fp: str):
    """Instance `i` of a fleet: most healthy, a few in each kind of trouble, the same for every count."""
    healthy = ExpiryFact("keyvault", NOW + timedelta(days=40 + (i * 37) % 320), SCOPES)
    current = CandidateView(hashlib.md5(site.encode()).hexdigest(), CandidateState.CURRENT, fp,
                            healthy.expires_on)
    enabled = tuple(SubscriptionView(f"{i:08x}-{n}", rule, "workitem.updated", "p1", "enabled")
                    for n, rule in enumerate(("close-parent", "set-owner")))
    base = dict(app_id=app, name=site, token_present=True, token_fingerprint=fp, token_type="PAT",
                live=LiveCheck(Liveness.VALID, user_id="u"), facts=(healthy,), candidate=current,
                subscriptions=enabled)
    kind = (0, 1, 2, 3, 4, 5, 6, 7)[i] if i < 8 else (8 if i % 23 else 1 + i % 7)
    if kind == 1:       # expired, nothing staged, its rules' subscriptions disabled by Azure DevOps
        disabled = tuple(SubscriptionView(s.id, s.rule, s.event_type, s.project_id, "disabledBySystem")
                         for s in enabled)
        base.update(live=LiveCheck(Liveness.EXPIRED, detail="HTTP 401: Access Denied: The Personal Access "
                                   "Token used has expired."), facts=(), candidate=CandidateView(),
                    subscriptions=disabled)
    elif kind == 2:     # 2 days left, nothing staged
        base.update(facts=(ExpiryFact("keyvault", NOW + timedelta(days=2, hours=5), SCOPES),),
                    candidate=CandidateView())
    elif kind == 3:     # could not be checked
        base = dict(app_id=app, name=site, unreachable=Note(R.ARM_UNREACHABLE.name, "Resource Manager answered "
                                                             "503 three times: the settings could not be read"))
    elif kind == 4:     # 11 days left, a replacement rejected
        base.update(facts=(ExpiryFact("devops", NOW + timedelta(days=11, hours=3), SCOPES),),
                    candidate=CandidateView("5d41402abc4b2a76b9719d911017c592", CandidateState.REJECTED, "9f8e7d6c",
                                            NOW + timedelta(days=365), "lacks vso.work_write (scopes vso.work "
                                            "vso.project)"))
    elif kind == 5:     # 24 days left, a replacement staged and waiting for the rotation window
        base.update(facts=(ExpiryFact("keyvault", NOW + timedelta(days=24, hours=2), SCOPES),),
                    candidate=CandidateView("7b52009b64fd0a2a49e6d8a939753077", CandidateState.PENDING, "0c1d2e3f",
                                            NOW + timedelta(days=365), room=True))
    elif kind == 6:     # rotated this run (below): the replacement is in place
        base.update(facts=(ExpiryFact("keyvault", NOW + timedelta(days=365), SCOPES),))
    elif kind == 7:     # 6 days left, a setting's date only
        base.update(facts=(ExpiryFact("setting", NOW + timedelta(days=6, hours=1)),), candidate=CandidateView())
    return InstanceSnapshot(**base), kind


def sample_fleet(count: int, settings=None) -> dict:
    """A `run` report of `count` instances: snapshot -> policy.decide -> report.build, as a run builds it."""
    from dataclasses import replace

    settings = settings or sample_settings()
    plans = []
    for i in range(count):
        site = ("contoso", "fabrikam", "northwind", "tailspin", "adventure", "wingtip", "litware",
                "proseware")[i % 8] + (f"{i // 8:02d}" if count > 8 else "") + "aggregator"
        app = APP_ID.replace("contosoaggregator", site).replace("aggregator-contoso", f"aggregator-{site[:-10]}")
        snap, kind = _fleet_snapshot(i, site, app, f"{i * 40503 % 16**8:08x}")
        plan = decide(snap, Policy.from_settings(settings, site), NOW)
        if kind == 6:
            plan = replace(plan, actions=(Action.rotation(ActionOutcome.DONE, "INFO", f"rotated to "
                                                          f"{plan.candidate.version} (fingerprint "
                                                          f"{plan.candidate.fingerprint})"),))
        elif plan.status.value in ("WARNING", "CRITICAL"):
            plan = replace(plan, actions=tuple(Action(ActionKind.ALERT, channel, plan.status.value,
                                                      ActionOutcome.DONE, "sent") for channel in ("teams", "email")))
        plans.append(plan)
    built = report.build(plans, NOW, command="run")
    built["outcome"] = "ok"
    return built


def sample_history(count: int = 30) -> list[dict]:
    """The run history's headers of `count` daily runs before NOW: mostly WARNING, a CRITICAL spell, one failure."""
    statuses = ["OK"] * 8 + ["WARNING"] * 12 + ["CRITICAL"] * 4 + ["UNKNOWN"] + ["CRITICAL"] * 5
    return [{"generated_at": format_utc(NOW - timedelta(days=count - n)), "command": "run",
             "status": statuses[n % len(statuses)], "outcome": "failed" if n == count - 6 else "ok"}
            for n in range(count)]


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


# --- The status page ---------------------------------------------------------------------------

PAGE_SEEN = NOW + timedelta(hours=2)     # the page is looked at two hours after the run


def sample_page(count: int) -> str:
    """The status page of a `run` over `count` instances, with 30 runs of history."""
    settings = sample_settings()
    return status_page.page(sample_fleet(count, settings), sample_history(), status_page.Thresholds.of(settings),
                            PAGE_SEEN, organization=settings.devops_org_url)


def without_csp(html_text: str) -> str:
    """The page without its Content-Security-Policy meta tag: what its markup alone fetches, and room for a
    measuring script."""
    meta = f'<meta http-equiv="Content-Security-Policy" content="{status_page.CONTENT_SECURITY_POLICY}">'
    if meta not in html_text:
        raise ValueError("the page carries no Content-Security-Policy meta tag")
    return html_text.replace(meta, "")


# What headless Chromium 156 asks for by itself, whatever the page, even with CHROMIUM_FLAGS (measured
# with about:blank): its component updater, the Google account check, the network time service.
BROWSER_OWN = ("update.googleapis.com", "accounts.google.com", "clients2.google.com")


class Recorder:
    """A proxy that answers nothing and records every request Chromium sends it (`--proxy-server`): with
    file:// pages, anything the page fetches from outside shows here, by host."""

    def __init__(self):
        import socketserver
        import threading

        self.seen: list[str] = []
        recorder = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                line = self.rfile.readline(4096).decode("latin-1").strip()
                recorder.seen.append(line or "(empty)")
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.flag = f"--proxy-server=http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def page_requests(self) -> list[str]:
        """What was asked for, less the browser's own requests (BROWSER_OWN)."""
        return [line for line in self.seen
                if not any(f" {host}" in line or f"//{host}/" in line for host in BROWSER_OWN)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()


def page_probe(html_text: str, width: int, binary: str | None = None, extra: tuple[str, ...] = ()) -> dict:
    """How the page lays out at this width: {"height", "scrollWidth", "innerWidth", "cellDisplay", "rows", "dark"}
    (measured on a copy without the CSP, with a script added)."""
    probe = ("<script>const td = document.querySelector('td'); document.title = 'probe=' + JSON.stringify({"
             "height: Math.ceil(document.documentElement.getBoundingClientRect().height),"
             "scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,"
             "cellDisplay: td ? getComputedStyle(td).display : null,"
             "rows: document.querySelectorAll('tbody tr').length,"
             "dark: matchMedia('(prefers-color-scheme: dark)').matches});</script>")
    with tempfile.TemporaryDirectory(prefix="page-measure-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(without_csp(html_text).replace("</body>", probe + "</body>"), encoding="utf-8")
        dom = chromium([f"--window-size={width},800", *extra, "--dump-dom", page.as_uri()], binary).stdout
    found = re.search(r"<title>probe=(.*?)</title>", dom, re.S)
    if not found:
        raise RuntimeError("could not measure the page")
    return json.loads(html.unescape(found.group(1)))


def screenshot_page(html_text: str, png: Path, width: int = 1280, height: int | None = None,
                    binary: str | None = None, dark: bool = False, extra: tuple[str, ...] = ()) -> Path:
    """The page as it stands (its CSP included); `height` None: the whole page. `dark`: as a browser set
    to a dark color scheme sees it (prefers-color-scheme: dark)."""
    scheme = ("--force-dark-mode", *extra) if dark else extra
    height = height or page_probe(html_text, width, binary, scheme)["height"]
    with tempfile.TemporaryDirectory(prefix="page-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(html_text, encoding="utf-8")
        png = Path(png)
        png.parent.mkdir(parents=True, exist_ok=True)
        if png.exists():
            png.unlink()
        chromium([f"--window-size={width},{height}", *scheme, f"--screenshot={png}", page.as_uri()], binary)
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png


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
    # The first pixel of the first scanline is stored as is whatever its filter (every neighbour counts 0).
    return {"width": width, "height": height, "distinct_bytes": len(set(pixels)), "bytes": len(data),
            "first_pixel": tuple(pixels[1:4])}


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
    # Twelve instances: every kind of trouble of the sample fleet once, and the healthy majority.
    png = screenshot_page(sample_page(12), args.out / "status-page.png", 1280, binary=binary)
    print(f"wrote {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")
    print(chromium_version(binary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

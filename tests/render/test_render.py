"""The Teams card and the email, checked by Microsoft's own Adaptive Cards SDK and drawn in Chromium.

- Every kind of alert (WARNING, CRITICAL, SCOPE_MISSING, INFO resolved/rotated), built through the
  real pipeline, gives a card that the SDK (npm adaptivecards 3.0.6, tests/render/validate_card.js)
  parses at version 1.4 with no parse or validation event and no property it does not know, in a
  Workflows envelope under Teams' 28 KB.
- Broken cards (a 1.5 Table, version 1.6, a misspelt "colour", ...) are reported: the check can fail.
- The card renders in headless Chromium with the SDK's renderer (tests/render/render_page.html),
  and the HTML email renders too, with the same facts as the card.

Chromium (Debian package `chromium`) is installed by scripts/install-chromium.sh (./dev test runs
it); without it these tests fail, never skip. The helpers live in scripts/render_docs.py, which
draws the docs/ pictures the same way.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pat_watchdog.adapters import teams as card_builder
from pat_watchdog.adapters import email as email_builder

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("render_docs", ROOT / "scripts" / "render_docs.py")
rd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rd)

KINDS = ("warning", "critical", "critical_soon", "scope_missing", "info_resolved", "info_rotated")
LEVEL = {"warning": "WARNING", "critical": "CRITICAL", "critical_soon": "CRITICAL",
         "scope_missing": "CRITICAL", "info_resolved": "INFO", "info_rotated": "INFO"}
CODE = {"warning": "EXPIRES_SOON", "critical": "EXPIRED", "critical_soon": "EXPIRES_CRITICAL",
        "scope_missing": "SCOPE_MISSING", "info_resolved": "RESOLVED", "info_rotated": "ROTATED"}
TEAMS_LIMIT = 28 * 1024


# --- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample():
    found = rd.sample_alerts()
    assert {k: (a.level, a.code) for k, a in found.items()} == {k: (LEVEL[k], CODE[k]) for k in KINDS}
    return found


@pytest.fixture(scope="module")
def node():
    path = shutil.which("node")
    if not path:
        pytest.fail("node is not installed: Node 20+ runs Microsoft's Adaptive Cards SDK (see ./dev)")
    if not rd.ADAPTIVECARDS.exists():
        pytest.fail(f"{rd.ADAPTIVECARDS.relative_to(ROOT)} is missing: run `npm ci` (./dev test does)")
    return path


@pytest.fixture(scope="module")
def chromium(node):  # the render page loads the same node_modules bundle
    """Chromium's path, or None: each test then fails (not errors, never skips) via _need()."""
    return rd.chromium_path()


def _need(chromium_path):
    if not chromium_path:
        pytest.fail(rd.INSTALL_HINT, pytrace=False)
    return chromium_path


@pytest.fixture(scope="module")
def rendered(sample, chromium):
    """Every kind's card rendered in Chromium, three browsers at a time: kind -> page result."""
    if not chromium:
        return None
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {k: pool.submit(rd.render_card, card_builder.card(sample[k]), chromium) for k in KINDS}
        return {k: f.result() for k, f in futures.items()}


class _Text(HTMLParser):
    """The visible text of an HTML document, and its two-cell table rows (the email's facts)."""

    def __init__(self):
        super().__init__()
        self.chunks, self.rows, self._row, self._skip = [], [], None, 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "title"):
            self._skip += 1
        elif tag == "tr":
            self._row = []
        elif tag in ("th", "td") and self._row is not None:
            self._row.append("")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "title"):
            self._skip -= 1
        elif tag == "tr" and self._row is not None:
            self.rows.append(tuple(self._row))
            self._row = None

    def handle_data(self, data):
        if self._skip:
            return
        self.chunks.append(data)
        if self._row:
            self._row[-1] += data

    @classmethod
    def of(cls, document: str) -> "_Text":
        parser = cls()
        parser.feed(document)
        parser.close()
        return parser

    @property
    def text(self) -> str:
        return " ".join("".join(self.chunks).split())


def _texts(node) -> str:
    """The text of a card element: its TextRuns, joined (every text of the cards is one)."""
    return "".join(run["text"] for run in node["inlines"])


def _card_facts(content: dict) -> list[tuple[str, str]]:
    """The facts: rows of two columns, title and value, in the container after the message."""
    return [(_texts(row["columns"][0]["items"][0]), _texts(row["columns"][1]["items"][0]))
            for row in content["body"][2]["items"]]


def _squash(text: str) -> str:
    return " ".join(text.split())


def _assert_not_blank(png: Path, width: int, height: int):
    facts = rd.png_facts(png)
    assert (facts["width"], facts["height"]) == (width, height), facts
    # Measured here: a blank page gives 4 byte values, one word ("hello") 99, a card or the email 256.
    assert facts["distinct_bytes"] > 200, f"{png.name} looks blank: {facts}"


# --- 1. the SDK accepts every card, and the envelope is what Workflows takes ----------------------

@pytest.mark.parametrize("kind", KINDS)
def test_card_passes_microsofts_sdk_at_1_4(kind, sample, node):
    result = rd.validate_card(card_builder.card(sample[kind]), node)
    assert result["sdk"] == "3.0.6" and result["targetVersion"] == "1.4"
    assert result["events"] == [], f"parse/validation events: {result['events']}"
    assert result["unknown"] == [], f"properties the SDK does not know: {result['unknown']}"
    assert result["ok"] is True


@pytest.mark.parametrize("kind", KINDS)
def test_envelope_has_the_workflows_shape_and_size(kind, sample):
    message = card_builder.envelope(sample[kind])
    size = len(json.dumps(message).encode())
    assert size < TEAMS_LIMIT, f"{size} bytes"
    assert message["type"] == "message"
    assert len(message["attachments"]) == 1
    attachment = message["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert "contentUrl" in attachment and attachment["contentUrl"] is None
    content = attachment["content"]
    assert content["type"] == "AdaptiveCard" and content["version"] == "1.4"
    assert content == card_builder.card(sample[kind])


def test_an_oversized_alert_is_shortened_under_the_limit_and_still_valid(sample, node):
    huge = dataclasses.replace(sample["warning"], message="10 days left. " + "x" * 60_000)
    message = card_builder.envelope(huge)
    assert len(json.dumps(message).encode()) < TEAMS_LIMIT
    assert rd.validate_card(message["attachments"][0]["content"], node)["ok"]


# --- 2. the check can fail -------------------------------------------------------------------------

def _header(c):  # the first TextRun: "<icon> LEVEL: instance"
    return c["body"][0]["items"][0]["inlines"][0]


BROKEN = {
    # name: (how to break the real WARNING card, what the validator must say)
    "table_is_1_5": (lambda c: c["body"].append({"type": "Table", "columns": [{"width": 1}], "rows": []}),
                     "UnknownElementType"),
    "version_1_6": (lambda c: c.update(version="1.6"), "UnsupportedCardVersion"),
    "no_version": (lambda c: c.pop("version"), "UnsupportedCardVersion"),
    "misspelt_colour": (lambda c: _header(c).update(colour=_header(c).pop("color")), "colour"),
    "bad_enum_value": (lambda c: _header(c).update(color="Purple"), "InvalidPropertyValue"),
    "textblock_style_from_1_5": (lambda c: c["body"].append({"type": "TextBlock", "text": "x", "style": "heading"}),
                                 "UnsupportedProperty"),
    "misspelt_column_width": (lambda c: c["body"][2]["items"][0]["columns"][0].update(widht="1"), "widht"),
    "unknown_action": (lambda c: c["actions"].append({"type": "Action.Frobnicate", "title": "x"}),
                       "UnknownActionType"),
    "duplicate_id": (lambda c: [b.update(id="same") for b in c["body"][1:3]], "DuplicateId"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_the_validator_reports_a_broken_card(name, sample, node):
    breaks, expected = BROKEN[name]
    content = card_builder.card(sample["warning"])
    breaks(content)
    result = rd.validate_card(content, node)
    assert result["ok"] is False
    assert expected in json.dumps(result), result


# --- 3. the card renders in Chromium with Microsoft's renderer ------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_card_renders_in_chromium(kind, sample, chromium, rendered):
    _need(chromium)
    alert, page = sample[kind], rendered[kind]
    assert page["renderError"] is None, page["renderError"]
    assert page["events"] == [], page["events"]
    assert page["markdown"] == [], "the renderer was asked to read markdown"
    assert page["rendered"] and page["ok"] and page["title"] == "rendered", page
    text = _squash(page["text"])
    assert f"{alert.level}: {alert.instance}" in text
    for title, value in alert.facts():
        assert title in text and value in text, (title, value)
    assert _squash(alert.next_step) in text
    assert page["width"] > 100 and page["height"] > 100


def test_card_screenshot_is_not_blank(sample, chromium, tmp_path):
    _need(chromium)
    content = card_builder.card(sample["critical_soon"])
    size = rd.render_card(content, chromium)
    png = rd.screenshot(rd.card_page_url(content), tmp_path / "card.png", size["width"], size["height"], chromium)
    _assert_not_blank(png, size["width"], size["height"])


def test_the_render_page_reports_a_broken_card(sample, chromium):
    _need(chromium)
    content = card_builder.card(sample["warning"])
    content["body"].append({"type": "Table", "columns": [{"width": 1}], "rows": []})
    page = rd.render_card(content, chromium)
    assert page["ok"] is False and page["title"] == "problem"
    assert any(e["event"] == "UnknownElementType" for e in page["events"]), page["events"]


# --- 4. the HTML email renders too, with the same facts as the card -------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_email_says_what_the_card_says(kind, sample):
    alert = sample[kind]
    content = card_builder.card(alert)
    mail = _Text.of(email_builder.html_body(alert))
    assert mail.rows == _card_facts(content) == alert.facts()
    for part in (f"{alert.level}: {alert.instance}", alert.summary, alert.message, alert.next_step,
                 alert.command or ""):
        assert _squash(part) in mail.text, part
    assert alert.portal_url in email_builder.html_body(alert)
    assert content["actions"][0]["url"] == alert.portal_url
    plain = email_builder.plain_text(alert)
    for title, value in alert.facts():
        assert title in plain and value in plain


def test_email_renders_in_chromium(sample, chromium, tmp_path):
    _need(chromium)
    alert = sample["critical_soon"]
    page = tmp_path / "email.html"
    page.write_text(email_builder.html_body(alert), encoding="utf-8")
    dom = _Text.of(rd.dump_dom(page.as_uri(), chromium))
    assert dom.rows == _card_facts(card_builder.card(alert))
    assert f"{alert.level}: {alert.instance}" in dom.text and _squash(alert.next_step) in dom.text
    png = rd.screenshot(page.as_uri(), tmp_path / "email.png", 760, 600, chromium)
    _assert_not_blank(png, 760, 600)


def test_the_render_page_records_what_the_renderer_would_read_as_markdown(sample, chromium):
    """The cards' "no markdown" check can fail: a TextBlock is handed to the markdown processor."""
    _need(chromium)
    content = card_builder.card(sample["warning"])
    content["body"].append({"type": "TextBlock", "text": "**bold**", "wrap": True})
    page = rd.render_card(content, chromium)
    assert page["markdown"] == ["**bold**"], page["markdown"]

"""The status page (core/status_page.py) in headless Chromium: screenshots at 1, 20 and 500 instances, light
and dark, desktop and phone width; the layout fits each width; nothing outside the page is fetched; hostile
names and reasons show as text in the DOM Chromium builds.

Chromium is found and installed as for the cards (tests/render/test_render.py): without it these tests
fail, never skip. The helpers live in scripts/render_docs.py, which draws docs/status-page.png.
"""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pat_watchdog.core import status_page
from tests.unit.test_status_page import HOSTILE, NOW, THRESHOLDS, hostile_history, hostile_report

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("render_docs", ROOT / "scripts" / "render_docs.py")
rd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rd)

COUNTS = (1, 20, 500)
SCREENS = {"desktop": (1280, 900), "phone": (390, 844)}
BACKGROUND = {"light": (255, 255, 255), "dark": (27, 27, 27)}      # the page's --bg in each scheme


@pytest.fixture(scope="module")
def chromium():
    path = rd.chromium_path()
    if not path:
        pytest.fail(rd.INSTALL_HINT, pytrace=False)
    return path


@pytest.fixture(scope="module")
def pages():
    return {count: rd.sample_page(count) for count in COUNTS}


@pytest.fixture(scope="module")
def shots(pages, chromium, tmp_path_factory):
    """Every count, screen and scheme, three browsers at a time, each behind its own recording proxy:
    (count, screen, scheme) -> (PNG path, what the page asked the network for)."""
    folder = tmp_path_factory.mktemp("status-page")

    def shoot(count, screen, scheme):
        width, height = SCREENS[screen]
        with rd.Recorder() as proxy:
            png = rd.screenshot_page(pages[count], folder / f"page-{count}-{screen}-{scheme}.png", width, height,
                                     chromium, dark=scheme == "dark", extra=(proxy.flag,))
        return png, proxy.page_requests()

    cases = [(c, s, k) for c in COUNTS for s in SCREENS for k in BACKGROUND]
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {case: pool.submit(shoot, *case) for case in cases}
        return {case: future.result() for case, future in futures.items()}


@pytest.mark.parametrize("scheme", BACKGROUND)
@pytest.mark.parametrize("screen", SCREENS)
@pytest.mark.parametrize("count", COUNTS)
def test_a_screenshot_at_each_size_screen_and_scheme(count, screen, scheme, shots):
    png, requests = shots[(count, screen, scheme)]
    facts = rd.png_facts(png)
    assert (facts["width"], facts["height"]) == SCREENS[screen], facts
    # Measured here: a blank page gives 4 byte values, one word 99; the page (text, badges, bars) 256.
    assert facts["distinct_bytes"] > 200, f"{png.name} looks blank: {facts}"
    assert facts["first_pixel"] == BACKGROUND[scheme], f"{png.name}: not the {scheme} scheme: {facts}"
    assert requests == [], f"{png.name}: the page fetched {requests}"


LAYOUTS = {
    # width: how the instances are laid out (the first cell's CSS display)
    1280: "table-cell", 1024: "table-cell", 500: "block",    # 500: the narrowest window --dump-dom lays out
}


@pytest.mark.parametrize("width", LAYOUTS)
@pytest.mark.parametrize("count", (20, 500))
def test_the_layout_fits_the_width(count, width, pages, chromium):
    found = rd.page_probe(pages[count], width, chromium)
    assert found["cellDisplay"] == LAYOUTS[width]
    assert found["scrollWidth"] <= found["innerWidth"], f"wider than the window: {found}"
    assert found["rows"] == count


def test_nothing_outside_the_page_is_fetched_and_the_check_can_fail(pages, chromium, tmp_path):
    hostile = ("<!DOCTYPE html><html><head><style>@import url(https://fonts.example/a.css);"
               "body{background:url(http://img.example/b.png)}</style></head><body>"
               '<img src="http://attacker.example/x.png">hi</body></html>')
    cases = {"as shipped": pages[20], "its markup alone": rd.without_csp(pages[20]), "control": hostile}
    seen = {}
    for name, text in cases.items():
        page = tmp_path / f"{len(seen)}.html"
        page.write_text(text, encoding="utf-8")
        with rd.Recorder() as proxy:
            rd.chromium([proxy.flag, "--window-size=1280,900", f"--screenshot={tmp_path / 'x.png'}", page.as_uri()],
                        chromium)
        seen[name] = proxy.page_requests()
    assert seen["as shipped"] == [] and seen["its markup alone"] == []
    asked = " ".join(seen["control"])
    assert "fonts.example" in asked and "img.example" in asked and "attacker.example" in asked, seen["control"]


class Dom(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_hostile_names_and_reasons_show_as_text_in_the_dom(chromium, tmp_path):
    page = tmp_path / "hostile.html"
    page.write_text(status_page.page(hostile_report(), hostile_history(), THRESHOLDS, NOW, organization=HOSTILE[0]),
                    encoding="utf-8")
    dom = Dom()
    dom.feed(rd.dump_dom(page.as_uri(), chromium))
    tags = {tag for tag, _ in dom.tags}
    assert not tags & {"script", "img", "iframe", "object", "embed", "link", "form", "input"}, tags
    assert [tag for tag, _ in dom.tags].count("h1") == 1          # the page's own title, no injected heading
    assert [tag for tag, _ in dom.tags].count("table") == 1
    for tag, attrs in dom.tags:
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        if "href" in attrs:
            assert attrs["href"].startswith("https://portal.azure.com/#@/resource/subscriptions/"), attrs
    text = "".join(dom.text)
    for hostile in HOSTILE:
        assert hostile in text, f"not shown as typed: {hostile}"

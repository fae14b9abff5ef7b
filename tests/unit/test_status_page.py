"""The fleet page (core/status_page.py), pure: sorting, what each cell says, the run history, content
negotiation, and that no outside text (names, reasons, tag-derived dates, answers) can become markup, a
link or a fetch."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest

from pat_watchdog.core import status_page as sp

NOW = datetime(2026, 11, 28, 8, 0, tzinfo=timezone.utc)
SUB = "8c56d827-5f07-45ce-8f2b-6c5001db5c6f"
THRESHOLDS = sp.Thresholds((30, 14, 7, 3, 1), 3)
HOSTILE = ('<script>alert(1)</script>', '"onload="alert(2)', "javascript:alert(3)", "<img src=x onerror=alert(4)>",
           "</td></tr></table><h1>owned</h1>", "url(https://attacker.example/x.png)", "@import 'https://a.example/c'",
           "' style='background:red", "&amp; already escaped")


def app(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/aggregator-{name}/providers/Microsoft.Web/sites/{name}"


def instance(name: str, status: str = "OK", days: int | None = 200, **extra) -> dict:
    inst = {"app": app(name), "name": name, "status": status,
            "reasons": [{"code": "HEALTHY", "level": "OK", "message": f"{days} days left"}],
            "token": {"fingerprint": "1a2b3c4d", "live": True, "expires_on": None if days is None else
                      (NOW + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "days_left": days, "expiry_source": None if days is None else "keyvault"},
            "candidate": {"version": None, "state": "none", "fingerprint": None, "expires_on": None, "reason": None},
            "actions": [], "subscriptions": []}
    inst.update(extra)
    return inst


def report(*instances: dict, **extra) -> dict:
    body = {"schema": 1, "generated_at": "2026-11-28T06:00:00Z", "command": "run", "status": "OK",
            "instances": list(instances), "errors": [], "outcome": "ok"}
    body.update(extra)
    return body


def render(rep: dict, history=(), organization: str | None = "https://dev.azure.com/contoso") -> str:
    return sp.page(rep, list(history) if history is not None else None, THRESHOLDS, NOW, organization=organization)


class Markup(HTMLParser):
    """Every element and attribute of a page, its text, its rows and its CSS."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.css: list[str] = []
        self.rows: list[list[str]] = []
        self._in_style = self._in_td = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self.rows[-1].append("")
            self._in_td = True

    def handle_endtag(self, tag):
        self._in_style = False if tag == "style" else self._in_style
        self._in_td = False if tag == "td" else self._in_td

    def handle_data(self, data):
        if self._in_style:
            self.css.append(data)
            return
        self.text.append(data)
        if self._in_td:
            self.rows[-1][-1] += " " + data

    @classmethod
    def of(cls, page: str) -> Markup:
        parser = cls()
        parser.feed(page)
        parser.close()
        return parser

    @property
    def body_rows(self) -> list[list[str]]:
        return [row for row in self.rows if row]


def visible(page: str) -> str:
    """The page's text, each element's apart (as a browser lays out its blocks)."""
    return " ".join(" ".join(Markup.of(page).text).split())


# --- sorting ---------------------------------------------------------------------------------------

SORTING = {
    "status_before_days": ([("a", "OK", 1), ("b", "WARNING", 20), ("c", "UNKNOWN", 300), ("d", "CRITICAL", 90)],
                           ["d", "c", "b", "a"]),
    "fewest_days_first": ([("a", "WARNING", 20), ("b", "WARNING", 5), ("c", "WARNING", 12)], ["b", "c", "a"]),
    "unknown_days_first_then_expired": ([("a", "CRITICAL", 2), ("b", "CRITICAL", None), ("c", "CRITICAL", -3)],
                                        ["b", "c", "a"]),
    "name_breaks_ties": ([("zeta", "OK", 100), ("alpha", "OK", 100)], ["alpha", "zeta"]),
    "unknown_status_counts_as_unknown": ([("a", "OK", 1), ("b", "BOGUS", 100), ("c", "WARNING", 1)],
                                         ["b", "c", "a"]),
}


@pytest.mark.parametrize("case", SORTING)
def test_instances_are_sorted_worst_first(case):
    given, expected = SORTING[case]
    page = render(report(*[instance(n, s, d) for n, s, d in given]))
    names = [row[0].split()[0] for row in Markup.of(page).body_rows]
    assert names == expected


# --- what each cell says ---------------------------------------------------------------------------

def cells(inst: dict, **kw) -> dict[str, str]:
    row = Markup.of(render(report(inst), **kw)).body_rows[0]
    return {label: " ".join(text.split()) for label, text in zip(sp._COLUMNS, row, strict=True)}


def test_the_summary_counts_each_status_and_the_run_says_when_and_how():
    page = render(report(instance("a"), instance("b", "WARNING", 10), instance("c", "CRITICAL", None),
                         instance("d", "CRITICAL", 1), status="CRITICAL", outcome="failed"))
    text = visible(page)
    assert "4 instances: 1 OK · 1 WARNING · 2 CRITICAL · 0 UNKNOWN" in text
    assert "Report of run at 2026-11-28 06:00 UTC (2 hours ago) · an action failed" in text
    assert "<title>pat-watchdog: CRITICAL</title>" in page


def test_a_status_report_says_it_acted_on_nothing():
    text = visible(render(report(instance("a"), command="status", outcome=None)))
    assert "Report of status at 2026-11-28 06:00 UTC (2 hours ago) · observed only, nothing acted on" in text


DAYS = {
    # days left: (the text, the zone, the width: 100 x ln(1 + days) / ln(366), percent of a year on a log scale)
    200: ("200 d", "ok", 89.85), 30: ("30 d", "warn", 58.18), 7: ("7 d", "warn", 35.23),
    3: ("3 d", "crit", 23.49), 0: ("0 d", "crit", 0.0), -2: ("expired", "crit", 0.0),
}


@pytest.mark.parametrize("days", DAYS)
def test_days_left_are_drawn_against_the_thresholds(days):
    text, zone, width = DAYS[days]
    page = render(report(instance("a", "WARNING", days)))
    assert f'<span class="fill {zone}" style="width:{width}%"></span>' in page
    assert cells(instance("a", "WARNING", days))["Days left, expiry"].startswith(text)


def test_the_bar_positions_grow_with_the_days_and_stop_at_a_year():
    widths = [sp._position(d) for d in (-5, 0, 1, 3, 7, 14, 30, 90, 365, 900)]
    assert widths == sorted(widths) and widths[0] == 0 and widths[-1] == widths[-2] == 100


def test_the_thresholds_are_drawn_in_the_css_and_under_the_column_title():
    page = render(report(instance("a")))
    style = "".join(Markup.of(page).css)
    for days in (1, 3, 7, 14, 30):
        position = sp._position(days)
        assert f"{position}%" in style
        assert f'<span class="mark" style="left:{position}%">{days}</span>' in page
    assert f"var(--crit-zone) 0 {sp._position(3)}%" in style


def test_unknown_days_draw_no_bar():
    row = cells(instance("a", "UNKNOWN", None))
    assert row["Days left, expiry"] == "unknown"
    assert "fill" not in render(report(instance("a", "UNKNOWN", None))).split("<tbody>")[1]


def test_expiry_and_its_source():
    for source, label in (("keyvault", "Key Vault tag"), ("devops", "Azure DevOps"), ("setting", "setting"),
                          ("listing-of-the-future", "listing-of-the-future")):
        inst = instance("a", "OK", 40)
        inst["token"]["expiry_source"] = source
        assert cells(inst)["Days left, expiry"] == f"40 d 2027-01-07 · {label}"


CANDIDATES = {
    "none": ({"state": "none"}, "nothing staged"),
    "pending": ({"state": "pending", "version": "7b52009b64fd0a2a49e6d8a939753077",
                 "expires_on": "2027-11-28T06:00:00Z"}, "staged, waiting version 7b52009b expires 2027-11-28"),
    "rejected": ({"state": "rejected", "version": "5d41402abc4b2a76b9719d911017c592", "reason": "lacks vso.work"},
                 "rejected version 5d41402a"),
    "current": ({"state": "current", "version": "bb3f29b2aaaa"}, "in place"),
    "failed": ({"state": "failed", "version": "0123456789"}, "failed version 01234567"),
}


@pytest.mark.parametrize("state", CANDIDATES)
def test_the_candidates_state(state):
    given, expected = CANDIDATES[state]
    assert cells(instance("a", candidate=given))["Candidate"] == expected


ROTATIONS = {
    "rotated_this_run": ([{"kind": "rotate", "channel": None, "level": "INFO", "outcome": "done",
                           "detail": "rotated to d1a14360 (fingerprint 46843478)"}], {"state": "current", "version": "d1a14360"},
                         "rotation this run rotated to d1a14360 (fingerprint 46843478)"),
    "failed_this_run": ([{"kind": "rotate", "outcome": "failed", "detail": "rolled back: ARM refused"}],
                        {"state": "failed"}, "rotation failed this run rolled back: ARM refused"),
    "planned_in_a_dry_run": ([{"kind": "rotate", "outcome": "planned", "detail": "would rotate"}],
                             {"state": "pending"}, "rotation planned would rotate"),
    "hands_free": ([{"kind": "create", "outcome": "done", "detail": "PAT created"},
                    {"kind": "rotate", "outcome": "done", "detail": "rotated"}], {"state": "current", "version": "v"},
                   "PAT created this run PAT created rotation this run rotated"),
    "in_place_before": ([], {"state": "current", "version": "bb3f29b2aaaa"},
                        "none this run in place: staged version bb3f29b2"),
    "nothing": ([{"kind": "alert", "channel": "teams", "outcome": "done", "detail": "sent"}], {"state": "none"},
                "none this run"),
}


@pytest.mark.parametrize("case", ROTATIONS)
def test_the_last_rotation_is_what_the_report_knows(case):
    actions, candidate, expected = ROTATIONS[case]
    assert cells(instance("a", actions=actions, candidate=candidate))["Last rotation"] == expected


HOOKS = {
    "not_checked": (None, [], "not checked"),
    "none": ([], [], "no subscriptions"),
    "healthy": ([{"status": "enabled"}] * 3, [], "3 enabled"),
    "broken": ([{"status": "disabledBySystem"}, {"status": "onProbation"}, {"status": "disabledByUser"},
                {"status": "enabled"}, {"status": "somethingNew"}], [],
               "1 disabled by Azure DevOps 1 on probation 1 disabled by a person 1 enabled 1 somethingNew"),
    "re_enabled": ([{"status": "enabled"}] * 2, [{"kind": "reenable", "outcome": "done", "detail": "x"}] * 2,
                   "2 enabled 2 re-enabled this run"),
}


@pytest.mark.parametrize("case", HOOKS)
def test_the_service_hooks_state(case):
    subscriptions, actions, expected = HOOKS[case]
    assert cells(instance("a", subscriptions=subscriptions, actions=actions))["Service hooks"] == expected


def test_reasons_worst_first_and_failed_actions_among_them():
    inst = instance("a", "CRITICAL", 2, reasons=[
        {"code": "CANDIDATE_STAGED", "level": "INFO", "message": "staged"},
        {"code": "EXPIRES_CRITICAL", "level": "CRITICAL", "message": "2 days left"},
        {"code": "SCOPE_RECOMMENDED_MISSING", "level": "WARNING", "message": "no vso.identity"}],
        actions=[{"kind": "alert", "channel": "email", "level": "CRITICAL", "outcome": "failed", "detail": "SMTP 535"}])
    assert cells(inst)["Reasons"] == ("EXPIRES_CRITICAL 2 days left SCOPE_RECOMMENDED_MISSING no vso.identity "
                                      "CANDIDATE_STAGED staged alert email failed SMTP 535")


def test_organization_from_the_report_else_the_configured_one_else_a_dash():
    assert cells(instance("a", organization="https://dev.azure.com/fabrikam"))["Organization"] == "fabrikam"
    assert cells(instance("a"))["Organization"] == "contoso"
    assert cells(instance("a"), organization=None)["Organization"] == "-"
    assert cells(instance("a"), organization="https://tfs.contoso.com/tfs/Rules/")["Organization"] == \
        "tfs.contoso.com/tfs/Rules"


def test_problems_of_the_run_are_listed():
    text = visible(render(report(instance("a"), errors=["discovery in /subscriptions/x failed: 403"])))
    assert "Problems of the run discovery in /subscriptions/x failed: 403" in text


def test_no_instance_says_so():
    assert "No instance in this report." in visible(render(report(status="UNKNOWN")))


# --- the run history --------------------------------------------------------------------------------

def runs(count: int) -> list[dict]:
    statuses = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
    return [{"generated_at": (NOW - timedelta(days=count - n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "status": statuses[n % 4], "outcome": "failed" if n % 5 == 0 else "ok"} for n in range(count)]


def squares(page: str) -> list[dict]:
    return [attrs for tag, attrs in Markup.of(page).tags if tag == "span" and "sq" in attrs.get("class", "").split()]


def test_the_last_30_runs_oldest_to_newest_as_titled_squares():
    history = runs(40)
    shown = squares(render(report(instance("a")), history=reversed(history)))     # any order in, time order out
    assert len(shown) == 30
    assert [s["title"] for s in shown] == [
        f"{r['generated_at'][:10]} 08:00 UTC: {r['status']}" + (", an action failed" if r["outcome"] == "failed"
                                                                 else ", outcome ok") for r in history[-30:]]
    assert [s["class"] for s in shown[:2]] == ["sq crit failed", "sq unk"]     # runs 10 and 11
    assert all(s["aria-label"] == s["title"] and s["role"] == "img" for s in shown)


def test_no_history_and_an_unreadable_history_are_told_apart():
    assert "Last runs no run recorded yet" in visible(render(report(instance("a")), history=[]))
    assert "Last runs the run history could not be read" in visible(render(report(instance("a")), history=None))


# --- content negotiation ----------------------------------------------------------------------------

NEGOTIATION = {
    # (Accept, ?format=): HTML?
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", None): True,    # a browser
    ("*/*", None): False,                                                                # curl
    (None, None): False,
    ("application/json", None): False,
    ("application/json, text/html;q=0.5", None): False,
    ("text/html;q=0.9, application/json;q=0.5", None): True,
    ("text/html, application/json", None): True,            # a tie: JSON is not preferred
    ("text/html;q=0", None): False,
    ("TEXT/HTML ; Q=0.7", None): True,
    ("text/html;q=bogus", None): False,
    ("application/json", "html"): True,
    ("text/html", "json"): False,
    (None, "HTML"): True,
}


@pytest.mark.parametrize("accept,output", NEGOTIATION)
def test_html_when_asked(accept, output):
    assert sp.wants_html(accept, output) is NEGOTIATION[(accept, output)]


# --- nothing from outside becomes markup, a link or a fetch -----------------------------------------

def hostile_report() -> dict:
    """Every field a report carries that came from outside holds markup, an event handler or a scheme."""
    fleet = []
    for n, text in enumerate(HOSTILE):
        fleet.append({
            "app": f"/subscriptions/{SUB}/resourceGroups/g/providers/Microsoft.Web/sites/{text}",
            "name": text, "status": ("CRITICAL", "WARNING", "OK", "UNKNOWN", text)[n % 5], "organization": text,
            "reasons": [{"code": text, "level": text, "message": text}, {"code": "X", "level": "WARNING",
                                                                         "message": text}],
            "token": {"expires_on": text, "days_left": text if n % 2 else 5, "expiry_source": text},
            "candidate": {"version": text, "state": text, "expires_on": text, "reason": text},
            "actions": [{"kind": "rotate", "outcome": text, "detail": text},
                        {"kind": text, "channel": text, "outcome": "failed", "detail": text}],
            "subscriptions": [{"status": text, "rule": text}]})
    fleet.append({"app": "javascript:alert(5)//", "name": "scheme"})
    fleet.append({"app": "https://attacker.example/subscriptions/x", "name": "elsewhere"})
    return report(*fleet, status=HOSTILE[0], command=HOSTILE[1], outcome=HOSTILE[2], generated_at=HOSTILE[3],
                  errors=list(HOSTILE))


def hostile_history() -> list[dict]:
    return [{"generated_at": text, "status": text, "outcome": text} for text in HOSTILE]


def test_hostile_text_is_text():
    page = render(hostile_report(), history=hostile_history(), organization=HOSTILE[0])
    markup = Markup.of(page)
    text = "".join(markup.text)
    for hostile in HOSTILE:
        assert hostile in text, hostile                         # shown as typed, after the parser's unescaping
        if any(ch in hostile for ch in "<>\"'&"):
            assert hostile not in page, f"unescaped in the page: {hostile}"
    assert {tag for tag, _ in markup.tags} <= {"html", "head", "meta", "title", "style", "body", "header", "h1",
                                               "h2", "span", "p", "b", "section", "div", "ul", "li", "table",
                                               "thead", "tbody", "tr", "th", "td", "a", "small", "br", "footer"}


def test_no_script_no_fetch_and_links_only_to_the_portal():
    page = render(hostile_report(), history=hostile_history(), organization=HOSTILE[0])
    markup = Markup.of(page)
    assert "<script" not in page.lower()
    for tag, attrs in markup.tags:
        assert not {name for name in attrs if name.startswith("on")}, (tag, attrs)
        assert "src" not in attrs and "srcset" not in attrs and "action" not in attrs, (tag, attrs)
        if "href" in attrs:
            assert tag == "a" and attrs["href"].startswith("https://portal.azure.com/#@/resource/subscriptions/"), attrs
            assert not re.search(r"[\s\"'<>]", attrs["href"]), attrs
        if "style" in attrs:     # only numbers the page computed itself
            assert re.fullmatch(r"(width|left):\d+(\.\d+)?%", attrs["style"]), attrs
    css = "".join(markup.css).lower()
    assert "url(" not in css and "@import" not in css and "expression(" not in css
    inert = ("title", "aria-label", "content")      # text a browser shows, never follows
    assert not [(tag, name, value) for tag, attrs in markup.tags for name, value in attrs.items()
                if name not in inert and value and "javascript:" in value.lower()]
    hrefs = [attrs["href"] for tag, attrs in markup.tags if "href" in attrs]
    assert len(hrefs) == len(HOSTILE)     # the javascript: and https: "resource IDs" get no link
    assert "https://portal.azure.com/#@/resource/subscriptions/8c56d827-5f07-45ce-8f2b-6c5001db5c6f/resourceGroups/g/" \
        "providers/Microsoft.Web/sites/%3Cscript%3Ealert%281%29%3C/script%3E" in hrefs


def test_the_page_carries_its_content_security_policy_and_sends_no_referrer():
    tags = Markup.of(render(report(instance("a")))).tags
    metas = [attrs for tag, attrs in tags if tag == "meta"]
    assert {"http-equiv": "Content-Security-Policy", "content": "default-src 'none'; style-src 'unsafe-inline'"} in metas
    assert {"name": "referrer", "content": "no-referrer"} in metas
    assert all(attrs.get("rel") == "noreferrer" for tag, attrs in tags if tag == "a")
    assert sp.CONTENT_SECURITY_POLICY == "default-src 'none'; style-src 'unsafe-inline'"


def test_portal_links_are_built_from_resource_ids_only():
    assert sp.portal_url(app("contosoaggregator")) == f"https://portal.azure.com/#@/resource{app('contosoaggregator')}"
    assert sp.portal_url("/subscriptions/s/x?y#z\"<") == "https://portal.azure.com/#@/resource/subscriptions/s/x%3Fy%23z%22%3C"
    for bad in ("javascript:alert(1)", "https://attacker.example/", "//attacker.example/subscriptions/", None, 42,
                " /subscriptions/x"):
        assert sp.portal_url(bad) is None


def test_a_dark_scheme_and_a_phone_layout_exist():
    css = "".join(Markup.of(render(report(instance("a")))).css)
    assert "@media (prefers-color-scheme: dark)" in css
    assert re.search(r"@media \(max-width:\d+px\)\{[^@]*table,thead,tbody,tr,td\{display:block", css)


def test_a_message_page_is_escaped_too():
    page = sp.message_page("no run recorded yet", HOSTILE[0])
    assert HOSTILE[0] not in page and "&lt;script&gt;" in page and "<script" not in page

"""The fleet page: one self-contained HTML page of a report and the run history (docs/reference.md,
"The status page").

Pure: the report, the run history, the thresholds and `now` in, the HTML out. Everything in the
page that came from outside (names, reasons, tag-derived dates, error texts) is HTML-escaped, in
attribute values too; the only link is the Azure portal's, built from the instance's ARM resource
ID, percent-quoted. The page has no script and fetches nothing: inline CSS only, no font, image or
`url(`; it carries the same Content-Security-Policy it is served with (OWASP's "Cross Site
Scripting Prevention Cheat Sheet", rules 1 and 2; MDN "Content-Security-Policy", `default-src`).
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from urllib.parse import quote

from pat_watchdog.core.times import format_utc, parse_utc

CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"
CONTENT_TYPE = "text/html; charset=utf-8"
# What the page is served with: its policy, no Referer to the portal (the Function's URL carries its key
# in ?code=), and no sniffing of the type (MDN, "Referrer-Policy", "X-Content-Type-Options").
HEADERS = {"Content-Type": CONTENT_TYPE, "Content-Security-Policy": CONTENT_SECURITY_POLICY,
           "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}
PORTAL = "https://portal.azure.com/#@/resource"
HISTORY = 30                       # runs shown as squares, oldest to newest
SCALE_DAYS = 365                   # a PAT lives at most a year: the bar's full width
STATUSES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
_RANK = {"CRITICAL": 0, "UNKNOWN": 1, "WARNING": 2, "OK": 3}   # worst first (Nagios practice)
_SOURCES = {"keyvault": ("Key Vault tag", "the staged version's expires tag"),
            "devops": ("Azure DevOps", "Azure DevOps' token listing"),
            "setting": ("setting", "WATCHDOG_PAT_EXPIRES_ON")}
_CANDIDATE = {"none": "nothing staged", "pending": "staged, waiting", "rejected": "rejected",
              "applying": "being rotated in", "current": "in place", "failed": "failed"}
# Azure DevOps' SubscriptionStatus values (core/subscriptions.py), worst first, with the page's words.
_HOOKS = (("disabledBySystem", "disabled by Azure DevOps", "crit"),
          ("disabledByInactiveIdentity", "disabled: inactive identity", "crit"),
          ("onProbation", "on probation", "warn"), ("disabledByUser", "disabled by a person", "info"),
          ("enabled", "enabled", "ok"))
_LEVELS = {"CRITICAL": 0, "UNKNOWN": 1, "WARNING": 2, "INFO": 3, "OK": 4}     # a cell's reasons, worst first
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LEVEL_CLASS = {"CRITICAL": "crit", "UNKNOWN": "unk", "WARNING": "warn", "OK": "ok", "INFO": "info"}


def e(value) -> str:
    """Outside text as HTML text or a quoted attribute value."""
    return html.escape("" if value is None else str(value), quote=True)


def wants_html(accept: str | None, output: str | None = None) -> bool:
    """`?format=html` (or `json`) decides; else an Accept header naming text/html, with JSON not preferred
    by its q-value (RFC 9110, 12.5.1: a missing q is 1; q=0 means "not acceptable")."""
    if output:
        return output.strip().lower() == "html"
    weights: dict[str, float] = {}
    for item in (accept or "").split(","):
        kind, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        kind = kind.lower()
        weights[kind] = max(weights.get(kind, 0.0), q)
    return weights.get("text/html", 0.0) > 0 and weights["text/html"] >= weights.get("application/json", 0.0)


def portal_url(app_id) -> str | None:
    """The instance's page in the Azure portal, only for an ARM resource ID (a path under /subscriptions/)."""
    if not isinstance(app_id, str) or not app_id.lower().startswith("/subscriptions/"):
        return None
    return PORTAL + quote(app_id, safe="/")


def sort_key(instance: Mapping) -> tuple:
    """CRITICAL > UNKNOWN > WARNING > OK, then fewest days left (unknown first), then the name."""
    days = _days(instance)
    return (_RANK[_status(instance.get("status"))], days is not None, days if days is not None else 0,
            str(instance.get("name") or ""))


def page(report: Mapping, history: Sequence[Mapping] | None, thresholds: Thresholds, now: datetime, *,
         organization: str | None = None) -> str:
    """The whole page. `history`: the last runs' {generated_at, status, outcome} in any order, None when
    the run history could not be read; `organization`: the configured one, for instances whose report
    names none."""
    instances = sorted((i for i in report.get("instances") or () if isinstance(i, Mapping)), key=sort_key)
    body = [_header(report, instances, now), _history(history), _errors(report.get("errors") or ()),
            _table(instances, thresholds, organization), _footer(thresholds, now)]
    title = f"pat-watchdog: {_status(report.get('status'))}"
    return _document(title, _style(thresholds), "".join(body))


def page_for(report: Mapping, history: Sequence[Mapping] | None, settings, now: datetime) -> str:
    """The page with the configured thresholds and organization (core/settings.py's Settings)."""
    return page(report, history, Thresholds.of(settings), now, organization=settings.devops_org_url or None)


def message_page(title: str, message: str) -> str:
    """A page that says why there is no report to show (no run yet, the history unreadable)."""
    return _document(f"pat-watchdog: {title}", _style(Thresholds((), 0)),
                     f"<header><h1>{e(title)}</h1></header><p>{e(message)}</p>")


class Thresholds:
    """WATCHDOG_WARN_DAYS and WATCHDOG_CRITICAL_DAYS as the bar draws them."""

    def __init__(self, warn_days: Iterable, critical_days):
        self.warn_days = tuple(sorted({int(d) for d in warn_days if _number(d) and 0 <= d <= SCALE_DAYS}))
        self.critical_days = int(critical_days) if _number(critical_days) else 0

    @classmethod
    def of(cls, settings) -> Thresholds:
        return cls(settings.warn_days, settings.critical_days)

    def zone(self, days: float) -> str:
        if days <= self.critical_days:
            return "crit"
        return "warn" if self.warn_days and days <= self.warn_days[-1] else "ok"


# --- pieces ------------------------------------------------------------------------------------------

def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _days(instance: Mapping) -> int | None:
    token = instance.get("token")
    days = token.get("days_left") if isinstance(token, Mapping) else None
    return math.floor(days) if _number(days) else None


def _position(days: float) -> float:
    """Percent of the bar: logarithmic, so 1, 3, 7, 14 and 30 days stay apart on a year's scale."""
    return round(100 * min(1.0, math.log1p(max(days, 0)) / math.log1p(SCALE_DAYS)), 2)


def _status(value) -> str:
    """A status the page knows; anything else is UNKNOWN."""
    return value if _str(value) in STATUSES else "UNKNOWN"


def _status_class(status) -> str:
    return _LEVEL_CLASS[_status(status)]


def _str(value) -> str | None:
    """A report field that should be text; anything else reads as missing (the report came from outside)."""
    return value if isinstance(value, str) else None


def _moment(value) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    try:
        return parse_utc(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _time(value) -> str | None:
    """A report or history time as `2026-11-28 06:00 UTC`; None when it does not read as one."""
    moment = _moment(value)
    return None if moment is None else format_utc(moment)[:16].replace("T", " ") + " UTC"


def _age(value, now: datetime) -> str:
    then = _moment(value)
    if then is None:
        return ""
    seconds = (now - then).total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size * (2 if unit == "day" else 1):
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def _header(report: Mapping, instances: list[Mapping], now: datetime) -> str:
    status = _status(report.get("status"))
    counts = Counter(_status(i.get("status")) for i in instances)
    summary = " · ".join(f'<span class="chip {_status_class(s)}">{counts[s]} {s}</span>' for s in STATUSES)
    total = len(instances)
    when, age = _time(report.get("generated_at")), _age(report.get("generated_at"), now)
    command, outcome = _str(report.get("command")) or "?", report.get("outcome")
    run = f"{e(command)} at {e(when or 'an unknown time')}" + (f" ({e(age)})" if age else "")
    if outcome == "ok":
        run += ' · <span class="ok-text">every action succeeded</span>'
    elif outcome == "failed":
        run += ' · <span class="crit-text">an action failed</span>'
    elif command == "status":
        run += " · observed only, nothing acted on"
    elif outcome:
        run += f" · outcome {e(outcome)}"
    return (f'<header><h1><span class="badge {_status_class(status)}">{e(status)}</span> pat-watchdog</h1>'
            f'<p class="summary">{total} instance{"s" if total != 1 else ""}: {summary}</p>'
            f'<p class="run">Report of <b>{run}</b></p></header>')


def _history(history: Sequence[Mapping] | None) -> str:
    if history is None:
        return _section("Last runs", '<p class="muted">the run history could not be read</p>')
    runs = sorted((r for r in history if isinstance(r, Mapping)),
                  key=lambda r: _moment(r.get("generated_at")) or _EPOCH)[-HISTORY:]
    if not runs:
        return _section("Last runs", '<p class="muted">no run recorded yet</p>')
    squares = []
    for run in runs:
        status = _status(run.get("status"))
        failed = run.get("outcome") == "failed"
        label = (f"{_time(run.get('generated_at')) or 'unknown time'}: {status}"
                 + (", an action failed" if failed else f", outcome {run.get('outcome')}" if run.get("outcome")
                    else ""))
        squares.append(f'<span class="sq {_status_class(status)}{" failed" if failed else ""}" role="img" '
                       f'title="{e(label)}" aria-label="{e(label)}"></span>')
    worst = Counter(_status(r.get("status")) for r in runs)
    failed = sum(1 for r in runs if r.get("outcome") == "failed")
    legend = (f"{len(runs)} run{'s' if len(runs) != 1 else ''}, oldest to newest: "
              + ", ".join(f"{worst[s]} {s}" for s in STATUSES if worst[s])
              + (f"; {failed} with a failed action (outlined)" if failed else ""))
    return _section("Last runs", f'<div class="squares">{"".join(squares)}</div><p class="muted">{e(legend)}</p>')


def _section(title: str, content: str) -> str:
    return f'<section class="history"><h2>{title}</h2>{content}</section>'


def _errors(errors: Sequence) -> str:
    if not isinstance(errors, (list, tuple)) or not errors:
        return ""
    items = "".join(f"<li>{e(error)}</li>" for error in errors)
    return f'<section class="errors"><h2>Problems of the run</h2><ul>{items}</ul></section>'


_COLUMNS = ("Instance", "Organization", "Status", "Days left, expiry", "Candidate", "Last rotation",
            "Service hooks", "Reasons")


def _table(instances: list[Mapping], thresholds: Thresholds, organization: str | None) -> str:
    if not instances:
        return '<p class="muted">No instance in this report.</p>'
    head = "".join(f'<th class="c{n}" scope="col">{c}{_scale(thresholds) if c.startswith("Days") else ""}</th>'
                   for n, c in enumerate(_COLUMNS))
    rows = "".join(_row(i, thresholds, organization) for i in instances)
    return f'<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _scale(thresholds: Thresholds) -> str:
    """The bar's scale under its column's title: the warning thresholds where the bars mark them."""
    marks = "".join(f'<span class="mark" style="left:{_position(d)}%">{d}</span>' for d in thresholds.warn_days)
    end = f'<span class="mark" style="left:100%">{SCALE_DAYS}</span>'
    return f'<span class="scale" aria-hidden="true">{marks}{end}</span>'


def _row(inst: Mapping, thresholds: Thresholds, organization: str | None) -> str:
    token = inst.get("token") if isinstance(inst.get("token"), Mapping) else {}
    candidate = inst.get("candidate") if isinstance(inst.get("candidate"), Mapping) else {}
    actions = [a for a in inst.get("actions") or () if isinstance(a, Mapping)]
    status = _status(inst.get("status"))
    org = _organization(_str(inst.get("organization")) or organization)
    cells = (_name(inst) + f'<small class="org muted"><br>{org}</small>', org,
             f'<span class="badge {_status_class(status)}">{e(status)}</span>',
             _bar(_days(inst), thresholds) + _expiry(token), _candidate(candidate),
             _rotation(actions, candidate), _hooks(inst.get("subscriptions"), actions),
             _reasons(inst.get("reasons") or (), actions))
    return f'<tr class="{_status_class(status)}">' + "".join(
        f'<td class="c{n}" data-label="{label}">{cell}</td>'
        for n, (label, cell) in enumerate(zip(_COLUMNS, cells, strict=True))) + "</tr>"


def _organization(url: str | None) -> str:
    """Its name for dev.azure.com, else the URL without its scheme (the column stays narrow); the whole
    URL as the title."""
    if not url:
        return "-"
    short = url.split("://", 1)[-1].rstrip("/")
    host, _, path = short.partition("/")
    if host.lower() == "dev.azure.com" and path:
        short = path
    return f'<span title="{e(url)}">{e(short)}</span>'


def _name(inst: Mapping) -> str:
    name = e(inst.get("name") or inst.get("app") or "?")
    url = portal_url(inst.get("app"))
    if url is None:
        return f'<span class="name">{name}</span>'
    return f'<a class="name" href="{e(url)}" rel="noreferrer" title="{e(inst.get("app"))}">{name}</a>'


def _bar(days: int | None, thresholds: Thresholds) -> str:
    if days is None:
        return '<div class="days"><span class="track"></span><span class="num muted">unknown</span></div>'
    zone = thresholds.zone(days)
    text = f"{days} d" if days >= 0 else "expired"
    return (f'<div class="days"><span class="track" role="img" aria-label="{days} days left">'
            f'<span class="fill {zone}" style="width:{_position(days)}%"></span></span>'
            f'<span class="num {zone}-text">{text}</span></div>')


def _expiry(token: Mapping) -> str:
    when = token.get("expires_on")
    source = token.get("expiry_source")
    if not when:
        return ""
    day = _time(when)
    label, title = _SOURCES.get(_str(source), (_str(source) or "unknown source",) * 2)
    return (f'<small><span class="nowrap" title="{e(when)}">{e(day[:10] if day else when)}</span> · '
            f'<span class="muted" title="{e(title)}">{e(label)}</span></small>')


def _candidate(cand: Mapping) -> str:
    state = _str(cand.get("state")) or "none"
    text = e(_CANDIDATE.get(state, state))
    cls = {"rejected": "crit-text", "failed": "crit-text", "pending": "info-text", "current": "ok-text"}.get(state, "")
    extra = []
    if state not in ("none", "current") and cand.get("version"):
        extra.append(f"version {str(cand['version'])[:8]}")
    if state in ("pending", "applying") and cand.get("expires_on"):
        day = _time(cand["expires_on"])
        extra.append(f"expires {day[:10] if day else cand['expires_on']}")
    small = "".join(f"<br><small class=\"muted nowrap\">{e(x)}</small>" for x in extra)
    return f'<span class="{cls}">{text}</span>{small}'


def _rotation(actions: list[Mapping], cand: Mapping) -> str:
    """This run's rotation (and hands-free creation or revocation) as the actions say; else, when the
    token in place is a staged version, that version. The report knows no earlier date."""
    lines = []
    for action in actions:
        if action.get("kind") not in ("rotate", "create", "revoke"):
            continue
        outcome = _str(action.get("outcome"))
        cls = {"done": "ok-text", "failed": "crit-text"}.get(outcome, "muted")
        what = {"rotate": "rotation", "create": "PAT created", "revoke": "old PAT revoked"}[action["kind"]]
        verb = {"done": "this run", "failed": "failed this run", "planned": "planned", "skipped": "skipped"}.get(
            outcome, outcome or "")
        lines.append(f'<span class="{cls}">{e(what)} {e(verb)}</span>'
                     + (f'<br><small class="muted">{e(action.get("detail"))}</small>' if action.get("detail")
                        else ""))
    if lines:
        return "<br>".join(lines)
    if cand.get("state") == "current" and cand.get("version"):
        return (f'<span class="muted">none this run</span><br><small class="muted">in place: staged version '
                f'{e(str(cand["version"])[:8])}</small>')
    return '<span class="muted">none this run</span>'


def _hooks(subscriptions, actions: list[Mapping]) -> str:
    if not isinstance(subscriptions, (list, tuple)):
        return '<span class="muted">not checked</span>'
    subs = [s for s in subscriptions if isinstance(s, Mapping)]
    if not subs:
        return '<span class="muted">no subscriptions</span>'
    counts = Counter(str(s.get("status")) for s in subs)
    known = {status for status, _, _ in _HOOKS}
    parts = [f'<span class="{cls}-text">{counts[status]} {words}</span>' for status, words, cls in _HOOKS
             if counts[status]]
    parts += [f'<span class="muted">{counts[status]} {e(status)}</span>' for status in sorted(counts)
              if status not in known]
    done = sum(1 for a in actions if a.get("kind") == "reenable" and a.get("outcome") == "done")
    if done:
        parts.append(f'<small class="ok-text">{done} re-enabled this run</small>')
    return "<br>".join(parts)


def _reasons(reasons: Sequence, actions: list[Mapping]) -> str:
    reasons = sorted((r for r in reasons if isinstance(r, Mapping)), key=lambda r: _LEVELS.get(_str(r.get("level")), 3))
    items = [f'<li><b class="{_LEVEL_CLASS.get(_str(r.get("level")), "info")}-text">{e(r.get("code"))}</b> '
             f'{e(r.get("message"))}</li>' for r in reasons]
    items += [f'<li><b class="crit-text">{e(a.get("kind"))} {e(a.get("channel") or "")} failed</b> '
              f'{e(a.get("detail"))}</li>' for a in actions
              if a.get("outcome") == "failed" and a.get("kind") not in ("rotate", "create", "revoke")]
    return f'<ul class="reasons">{"".join(items)}</ul>' if items else '<span class="muted">-</span>'


def _footer(thresholds: Thresholds, now: datetime) -> str:
    warn = ", ".join(str(d) for d in reversed(thresholds.warn_days)) or "none"
    return (f'<footer><p class="muted">Days left are drawn on a logarithmic scale to one year; the marks are '
            f'the warning thresholds ({e(warn)} days), the red zone is {thresholds.critical_days} days or fewer. '
            f'Page built {e(_time(now) or "")} by pat-watchdog; it runs no script and loads nothing.</p></footer>')


def _document(title: str, style: str, body: str) -> str:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_SECURITY_POLICY}\">"
            "<meta name=\"referrer\" content=\"no-referrer\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta name=\"color-scheme\" content=\"light dark\">"
            f"<title>{e(title)}</title><style>{style}</style></head><body>{body}</body></html>")


def _style(thresholds: Thresholds) -> str:
    """The page's CSS; the track's zones and threshold marks are drawn with gradients (no image)."""
    crit, warn = _position(thresholds.critical_days), _position(thresholds.warn_days[-1]) if thresholds.warn_days \
        else 0
    marks = ",".join(f"linear-gradient(to right,transparent calc({_position(d)}% - 1px),var(--mark) "
                     f"calc({_position(d)}% - 1px) {_position(d)}%,transparent {_position(d)}%)"
                     for d in thresholds.warn_days) or "none"
    return _CSS.replace("/*ZONES*/", f"linear-gradient(to right,var(--crit-zone) 0 {crit}%,var(--warn-zone) "
                                     f"{crit}% {warn}%,var(--track) {warn}% 100%)").replace("/*MARKS*/", marks)


_CSS = """
:root{--bg:#fff;--fg:#1b1b1b;--muted:#616161;--line:#e0e0e0;--head:#f5f5f5;--track:#ececec;--mark:#5c5c5c;
--ok:#107c10;--warn:#bc4b09;--crit:#c50f1f;--unk:#5c2e91;--info:#0f6cbd;--crit-zone:#f9d7da;--warn-zone:#fde7d2;
--link:#0f6cbd;color-scheme:light dark}
@media (prefers-color-scheme: dark){:root{--bg:#1b1b1b;--fg:#ececec;--muted:#a8a8a8;--line:#3a3a3a;
--head:#262626;--track:#333;--mark:#c8c8c8;--ok:#54b054;--warn:#f2a05a;--crit:#f1707b;--unk:#b48ee6;
--info:#62abf5;--crit-zone:#5a1e24;--warn-zone:#553314;--link:#7dbbf8}}
*{box-sizing:border-box}
body{margin:0;padding:16px 20px;background:var(--bg);color:var(--fg);
font:13px/1.4 "Segoe UI",system-ui,-apple-system,"Helvetica Neue",Arial,sans-serif}
h1{font-size:20px;margin:0 0 4px}h2{font-size:14px;margin:0 0 4px}
header p,section p{margin:2px 0}
a{color:var(--link)}
.muted{color:var(--muted)}small{font-size:11px}
.badge{display:inline-block;padding:1px 7px;border-radius:4px;color:#fff;font-weight:600;font-size:12px}
h1 .badge{font-size:16px;vertical-align:2px}
.badge.ok,.sq.ok{background:var(--ok)}.badge.warn,.sq.warn{background:var(--warn)}
.badge.crit,.sq.crit{background:var(--crit)}.badge.unk,.sq.unk{background:var(--unk)}
.chip{font-weight:600}.chip.ok,.ok-text{color:var(--ok)}.chip.warn,.warn-text{color:var(--warn)}
.chip.crit,.crit-text{color:var(--crit)}.chip.unk,.unk-text{color:var(--unk)}.info-text{color:var(--info)}
.summary{font-size:15px}
.history,.errors{margin:10px 0}
.squares{display:flex;flex-wrap:wrap;gap:3px;margin:4px 0}
.sq{display:inline-block;width:14px;height:14px;border-radius:2px}
.sq.failed{box-shadow:inset 0 0 0 2px var(--bg),0 0 0 2px var(--crit)}
.errors ul{margin:2px 0;padding-left:18px;color:var(--crit)}
table{border-collapse:collapse;width:100%;margin-top:8px}
th,td{text-align:left;vertical-align:top;padding:4px 6px;border-bottom:1px solid var(--line)}
td{overflow-wrap:anywhere}
th{position:sticky;top:0;background:var(--head);font-weight:600;z-index:1}
.org{display:none}
.nowrap,.badge{white-space:nowrap}
.name{font-weight:600}
td.c0,td.c1,td.c6{overflow-wrap:break-word}td.c4{min-width:7.5em}td.c5{min-width:10em}td.c6{min-width:6.5em}
td.c7{min-width:16em;width:32%}
.days{display:flex;align-items:center;gap:6px}
.track{position:relative;display:inline-block;flex:none;width:120px;height:10px;border-radius:2px;overflow:hidden;
background:/*ZONES*/}
.track::after{content:"";position:absolute;inset:0;background:/*MARKS*/}
.fill{position:absolute;left:0;top:2px;bottom:2px;border-radius:1px}
.fill.ok{background:var(--ok)}.fill.warn{background:var(--warn)}.fill.crit{background:var(--crit)}
.num{white-space:nowrap;font-variant-numeric:tabular-nums;font-weight:600}
.scale{display:block;position:relative;width:120px;height:12px;margin-top:1px}
.mark{position:absolute;top:0;transform:translateX(-50%);font-size:9px;line-height:12px;font-weight:400;
color:var(--muted)}
.reasons{margin:0;padding:0;list-style:none}
.reasons li{margin:0 0 2px}
footer{margin-top:12px}
@media (max-width:1199px) and (min-width:961px){
.org{display:inline}th.c1,td.c1{display:none}
td.c5{min-width:7.5em}td.c7{min-width:10em}
}
@media (min-width:961px){
tr.crit td:first-child{box-shadow:inset 3px 0 var(--crit)}tr.unk td:first-child{box-shadow:inset 3px 0 var(--unk)}
tr.warn td:first-child{box-shadow:inset 3px 0 var(--warn)}tr.ok td:first-child{box-shadow:inset 3px 0 var(--ok)}
}
@media (max-width:960px){
body{padding:10px}
table,thead,tbody,tr,td{display:block;width:100%}
thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
tr{border:1px solid var(--line);border-radius:6px;margin:0 0 8px;padding:4px 0}
tr.crit{border-left:4px solid var(--crit)}tr.unk{border-left:4px solid var(--unk)}
tr.warn{border-left:4px solid var(--warn)}tr.ok{border-left:4px solid var(--ok)}
td,td.c0,td.c1,td.c4,td.c5,td.c6,td.c7{position:relative;border:0;padding:2px 8px 2px 112px;min-height:1.6em;
min-width:0;width:100%}
td::before{content:attr(data-label);position:absolute;left:8px;width:98px;color:var(--muted);font-size:11px;
line-height:1.3;padding-top:2px}
td.c0{font-size:14px}
}
"""

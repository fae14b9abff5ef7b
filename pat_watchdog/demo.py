"""`pat-watchdog demo`: the story of the README against the built-in sandbox. No network, no Azure."""

from __future__ import annotations

import json
import os
import textwrap
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import TextIO

from pat_watchdog import watchdog
from pat_watchdog.adapters import teams
from pat_watchdog.adapters.retry import RetryPolicy
from pat_watchdog.adapters.state_table import MemoryLedger
from pat_watchdog.core.model import Mode
from pat_watchdog.core.report import render
from pat_watchdog.core.settings import load_settings
from pat_watchdog.sandbox.entra_shapes import SIGNIN_CLIENT

NAME = "contosoaggregator"
_RETRY = RetryPolicy(attempts=2, backoff=0.05, backoff_max=0.1, total=5, read_timeout=5)


@contextmanager
def _environment(values: dict[str, str]):
    """The sandbox's proxy, CA and managed identity for this process; restored afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Story:
    """Chapters over one Aggregator instance, with a clock the story moves forward."""

    def __init__(self, world, out: TextIO):
        self.world, self.out = world, out
        self.day = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)
        world.sandbox.clock = lambda: self.day
        self.seen_teams = self.seen_mail = 0
        self.shown_mail = False
        self.ledger = MemoryLedger()  # one ledger across chapters: deduplication shows
        self.last: tuple[dict, object] | None = None

    def say(self, text: str = "") -> None:
        print(text, file=self.out)

    def chapter(self, number: int, title: str, what: str) -> None:
        self.say()
        self.say(f"== {number}. {title} " + "=" * max(3, 66 - len(title)))
        self.say(textwrap.fill(what, 78))

    def run(self, command: Mode = Mode.RUN, *, force: bool = False, **env: str) -> dict:
        settings = load_settings(self.world.env(**self.channels(), **env))
        result = watchdog.run_once(settings, command, self.day, retry=_RETRY, force=force, ledger=self.ledger,
                                   local_lock=True)
        self.last = (result.report, settings)   # the status page shows the last run
        self.say(textwrap.indent(render(result.report), "   | "))
        self.show_channels()
        return result.report

    def doctor(self) -> int:
        from io import StringIO

        from pat_watchdog import doctor

        out = StringIO()
        code = doctor.command(env=self.world.env(**self.channels()), now=self.day, as_json=False, send_test=False,
                              stdout=out, stderr=out, retry=_RETRY)
        lines = [line for line in out.getvalue().splitlines() if line.startswith(("FIX", "  fix", "doctor"))
                 or "fix:" in line]
        self.say(textwrap.indent("$ pat-watchdog doctor\n" + "\n".join(lines) + f"\n(exit {code})", "   | "))
        return code

    def channels(self) -> dict[str, str]:
        smtp = self.world.sandbox.smtp
        return {"WATCHDOG_TEAMS_WEBHOOK_URL": self.world.sandbox.teams.url(),
                "WATCHDOG_EMAIL_TO": "aggregator-admins@contoso.com",
                "WATCHDOG_EMAIL_FROM": "pat-watchdog@contoso.com",
                "WATCHDOG_SMTP_HOST": smtp.host, "WATCHDOG_SMTP_PORT": str(smtp.port),
                "WATCHDOG_SMTP_USERNAME": smtp.username or "", "WATCHDOG_SMTP_PASSWORD": smtp.password or "",
                "AzureWebJobsStorage": ""}

    def show_channels(self) -> None:
        teams = self.world.sandbox.teams.received[self.seen_teams:]
        mails = self.world.sandbox.smtp.messages[self.seen_mail:]
        self.seen_teams += len(teams)
        self.seen_mail += len(mails)
        for card in teams:
            self.say(f"   Teams  <- {_card_summary(card)}")
        for mail in mails:
            self.say(f"   Email  <- {mail['Subject']}")
        if mails and not self.shown_mail:  # one message in full, as its recipient reads it
            self.shown_mail = True
            body = mails[0].get_body(("plain",)).get_content()
            self.say(textwrap.indent(body.rstrip(), "          > ", lambda line: True))
        if not teams and not mails:
            self.say("   (no message sent on any channel)")


def _card_summary(envelope: dict) -> str:
    content = envelope["attachments"][0]["content"]
    return " / ".join(teams.texts(content["body"][0])) or json.dumps(content)[:100]


def _chapters(story: Story) -> None:
    world, sb = story.world, story.world.sandbox
    token, _ = world.issue(200)
    app = world.add_instance(NAME, token)
    world.stage(token, days=200)

    story.chapter(0, "First deployment: the doctor", "Before the first run, `pat-watchdog doctor` checks every "
                  "permission and setting with harmless calls. Here the watchdog's role on the Aggregator app "
                  "lacks config/write (it could never rotate): the doctor says so, with the command that fixes it.")
    sb.arm.revoke(app, actions=["Microsoft.Web/sites/config/write"])
    story.doctor()
    sb.arm.grant(app, actions=["Microsoft.Web/sites/config/write"])
    story.say("   ... after that command, the doctor finds nothing more to fix.")

    story.chapter(1, "Healthy", "Aggregator's PAT works and has 200 days left. The person who created it "
                  "staged a copy in Key Vault with its expiry and scopes; the watchdog adopts it as the "
                  "record of the token's expiry.")
    story.run()

    story.day += timedelta(days=175)
    story.chapter(2, "Nearing expiry", "175 days later: 25 days left. The 30-day threshold is crossed, "
                  "so the watchdog warns on Teams and by email.")
    story.run()

    story.chapter(3, "Replacement staged", "Someone stages a new PAT (a year, the right scopes). It waits "
                  "for the rotation window (14 days before expiry); `--force` or the window rotates it.")
    replacement, _ = world.issue(365)
    world.stage(replacement, days=365)
    story.run(Mode.STATUS)
    story.day += timedelta(days=12)
    story.say("   ... 12 days later, inside the rotation window:")
    story.run()
    story.say(f"   Aggregator_VstsToken now holds the token with fingerprint "
              f"{_fp(world.token_setting(world.apps[0]))}.")

    story.chapter(4, "Bad replacement", "A new PAT is staged that can only read work items. The watchdog "
                  "validates it before touching anything, rejects it, tags it, and says why.")
    weak, _ = world.issue(365, scope="vso.work vso.project")
    world.stage(weak, days=365, scopes="vso.work vso.project")
    story.say("   $ pat-watchdog rotate --force")
    story.run(Mode.ROTATE, force=True)

    story.chapter(5, "Expired token", "On another instance nobody staged anything and the PAT ran out: "
                  "every Aggregator rule fails. CRITICAL, on every channel.")
    expired, _ = world.issue(-1)
    world.apps.clear()
    world.add_instance("fabrikamaggregator", expired)
    per_name = {"WATCHDOG_STAGED_SECRET": "{name}-pat-staged", "WATCHDOG_PREVIOUS_SECRET": "{name}-pat-previous"}
    story.run(**per_name)

    story.chapter(6, "A stale date, not an expiry", "On a third instance Key Vault's record says 10 days left, "
                  "but the PAT was extended in Azure DevOps to 180 days. Before it alerts on a Key Vault date, "
                  "the watchdog asks Azure DevOps: no alert, and the record is corrected.")
    extended, auth = world.issue(10)
    world.apps.clear()
    world.add_instance("northwindaggregator", extended)
    world.stage(extended, days=10, secret="northwindaggregator-pat-staged",
                tags={"watchdog-status": "current", "authorizationId": auth})
    sb.devops.extend(extended, story.day + timedelta(days=180))
    story.run(**per_name)

    story.chapter(7, "Rules that stopped firing", "On a fourth instance the PAT expired a week ago. While it was "
                  "broken, Azure DevOps disabled the service hook subscriptions that call its rules, so even a "
                  "new token would not bring them back. A replacement is staged: one run rotates it in and "
                  "re-enables exactly those subscriptions (not the one a person disabled).")
    old, _ = world.issue(-7)
    world.apps.clear()
    tailspin = world.add_instance("tailspinaggregator", old)
    new, _ = world.issue(365)
    world.stage(new, days=365, secret="tailspinaggregator-pat-staged")
    world.map_rule(tailspin, "close-parent", status="disabledBySystem")
    world.map_rule(tailspin, "set-owner", status="disabledBySystem")
    world.map_rule(tailspin, "old-rule", status="disabledByUser")
    story.run(**per_name)
    states = sorted(f"{s['status']}" for s in sb.devops.subscriptions(world.org))
    story.say(f"   Subscriptions now: {', '.join(states)}.")
    _hands_free(story)


def _hands_free(story: Story) -> None:
    """Chapter 8: WATCHDOG_ROTATION=auto, one sign-in, and the watchdog creates and revokes PATs itself."""
    from pat_watchdog.login import login
    from pat_watchdog.sandbox.seed import USER_ID

    world, sb = story.world, story.world.sandbox
    story.chapter(8, "Hands-free", "On a fifth instance nobody will ever stage a replacement. With "
                  "WATCHDOG_ROTATION=auto, the token's user signs in once (device code); from then on the "
                  "watchdog creates the replacement PAT itself when rotation is due, stages it in Key Vault, "
                  "rotates it by the same protocol, and revokes the PAT it created once it is replaced.")
    token, _ = world.issue(10)
    world.apps.clear()
    world.add_instance("adventureaggregator", token)
    sb.entra.add_user("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", "aggregator-admin@contoso.com", USER_ID)
    sb.entra.auto_approve, sb.entra.poll_interval = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", 0
    auto = {"WATCHDOG_ROTATION": "auto", "WATCHDOG_SIGNIN_CLIENT_ID": SIGNIN_CLIENT,
            "WATCHDOG_STAGED_SECRET": "{name}-pat-staged",
            "WATCHDOG_PREVIOUS_SECRET": "{name}-pat-previous"}
    story.say("   $ pat-watchdog login")
    lines = login(load_settings(world.env(**story.channels(), **auto)), None, story.day,
                  lambda text: story.say(textwrap.indent(textwrap.fill(text, 74), "   | ")), retry=_RETRY)
    story.say(textwrap.indent("\n".join(lines), "   | "))
    story.say("   ... the next run finds 10 days left and nothing staged:")
    story.run(**auto)
    story.day += timedelta(days=77)
    story.say("   ... 77 days later the PAT it created has 13 days left; the run makes the next one:")
    story.run(**auto)
    story.day += timedelta(days=7)
    story.say("   ... a week after that rotation, the PAT it replaced is revoked:")
    story.run(**auto)
    created = sb.devops.created_pats()
    story.say(f"   PATs the watchdog created: {len(created)}; still active: "
              f"{sum(1 for p in created if not sb.devops.is_revoked(p.authorization_id))}.")


def _fp(value: str | None) -> str:
    from pat_watchdog.core.secret import fingerprint
    return fingerprint(value) if value else "-"


def _status_page(story: Story):
    """The last chapter's report and the story's runs as the status page, in a temporary directory."""
    import tempfile

    from pat_watchdog import pages

    report, settings = story.last
    folder = tempfile.mkdtemp(prefix="pat-watchdog-demo-")
    return pages.write(os.path.join(folder, "status.html"), report, settings, story.day,
                       story.ledger.recent_runs())


def run_demo(out: TextIO) -> int:
    """Start the sandbox, walk the story, print what each channel received; exit 0."""
    from pat_watchdog.sandbox import Sandbox
    from pat_watchdog.sandbox.seed import World

    started = time.monotonic()
    print("pat-watchdog demo: local HTTPS stand-ins for ARM, Key Vault, managed identity, Azure DevOps, "
          "Teams and SMTP;\nnothing leaves this machine.", file=out)
    with Sandbox() as sandbox, _environment(sandbox.env()):
        story = Story(World(sandbox), out)
        _chapters(story)
        refused = sandbox.proxy_refused
    page = _status_page(story)
    print(f"\nThe status page of the last run (GET /api/status in a browser; `pat-watchdog status --html FILE`):"
          f"\n   {page}", file=out)
    print(f"\nDone in {time.monotonic() - started:.1f} s; requests to anything but the sandbox: "
          f"{len(refused)}.", file=out)
    return 0

"""A randomized simulation: days of daily runs over several instances while the world misbehaves.

Every seed draws its own story: rotation steps that fail (the connection dropped at that step),
5xx answers and short hangs, an HTML sign-in page with 200 from Azure DevOps, people editing
Aggregator's settings or the token setting, people hand-editing Key Vault tags, PATs extended in
place or revoked, good and bad replacements staged at random times, service hook subscriptions
disabled by the system. One `run` per simulated day at 06:00. After every run the invariants below
are checked; a failure names the seed, the day and the event log, so it replays exactly:

    PAT_WATCHDOG_SIM_SEEDS=17, PAT_WATCHDOG_SIM_DAYS=60 pytest tests/e2e/test_simulation.py

`PAT_WATCHDOG_SIM_SEEDS` is a comma-separated list of seeds ("1,2,3", or "17," for one) or a
count ("200": seeds 1 to 200); `PAT_WATCHDOG_SIM_DAYS` the simulated days per seed. The defaults
(seeds 1, 2, 3; 30 days) take about 40 s on 2 cores; scripts/soak.sh runs many seeds.

The invariants:

1. Aggregator always holds a token: after a run, when the instance's token works or the newest
   staged version is a working replacement (not revoked, not expired, its scopes complete; not
   marked failed by a person), the setting holds a working token; a run that exited 1 gets one
   more chance: the next run (an hour later, nothing else happening) must fix it.
2. No other Aggregator setting is ever lost or changed, in any ARM write or after any run, except
   by the simulated person; the token setting is never removed.
3. Every instance the report calls CRITICAL had a CRITICAL alert delivered on every channel
   (Teams card and email naming it) since it became CRITICAL, or the run exited 1.
4. At most one rotation per staged version: the ARM writes that put a staged token in place
   (restoring the token of the write just before, a rollback, does not count) number one at most,
   counted since the last time a person put a token in place by hand (after that, a version that was in
   place before is rightly used again once the person's token dies).
5. No secret in any output: every run's stdout and stderr, and at teardown every log record and
   everything the sandbox received (the `world` fixture).
6. A person with staging rights writes arbitrary tags on arbitrary versions (another token's
   fingerprint, another PAT's authorizationId, `created-by=pat-watchdog`, times that do not parse) and
   stages versions that claim to be the current token: no PAT is ever revoked that a person did not
   revoke, no Key Vault write lands in a secret of another instance, and invariants 1 and 3 keep
   holding (a claim never silences an alert nor keeps a working replacement out). Only a version
   tagged with a `watchdog-status` is, by the protocol, no longer a candidate: after that forgery
   invariant 1 waits for the next good replacement.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from pat_watchdog.sandbox import Step
from tests.azurite import expire_locks
from tests.conftest import NOW
from tests.e2e.conftest import (
    BEFORE_THE_WRITE, CONNECTION_DATA, VERIFYING_SETTINGS, VERIFYING_THE_CANDIDATE, card_title,
    tagging,
)
from tests.leaks import fp

TOKEN = "Aggregator_VstsToken"
NAMES = ("alphaaggregator", "betaaggregator", "gammaaggregator")
PER_NAME = {"WATCHDOG_STAGED_SECRET": "{name}-pat-staged", "WATCHDOG_PREVIOUS_SECRET": "{name}-pat-previous"}
NARROW = "vso.work vso.project"


def _seeds() -> list[int]:
    raw = os.environ.get("PAT_WATCHDOG_SIM_SEEDS", "1,2,3").strip()
    if "," not in raw:   # a count: seeds 1 to N
        return list(range(1, int(raw) + 1))
    return [int(part) for part in raw.split(",") if part.strip()]


DAYS = int(os.environ.get("PAT_WATCHDOG_SIM_DAYS", "30"))

# Where a run fails mid-rotation: the connection dropped at the request of that step (every try).
STEPS = {
    "validate the candidate": dict(CONNECTION_DATA, after=Step("GET", path="-pat-staged/versions")),
    "save the previous token": dict(method="PUT", path="-pat-previous"),
    "tag applying": tagging("applying"),
    "re-read before the write": BEFORE_THE_WRITE,
    "replace the settings": dict(method="PUT", path="config/appsettings"),
    "verify the settings": VERIFYING_SETTINGS,
    "verify the candidate": VERIFYING_THE_CANDIDATE,
    "tag current": tagging("current"),
    "tag failed": tagging("failed"),
}
HOSTS = ("management.azure.com", "vault.azure.net", "dev.azure.com", "vssps.dev.azure.com", "logic.azure.com")
SIGN_IN = "<!DOCTYPE html><html><head><title>Azure DevOps Services | Sign In</title></head><body></body></html>"


@dataclass
class Pat:
    valid_to: datetime
    full_scope: bool = True
    revoked: bool = False

    def works(self, now: datetime) -> bool:
        return not self.revoked and self.full_scope and self.valid_to > now


@dataclass
class Instance:
    name: str
    app: str
    others: dict                       # every setting but the token, as the simulation last set it
    sub: str
    staged: list = field(default_factory=list)    # (version, token) in staging order
    person_failed: set = field(default_factory=set)
    critical_since: int | None = None  # the run index where the current CRITICAL episode began
    alerted: set = field(default_factory=set)     # channels that delivered a CRITICAL alert this episode
    current: str | None = None          # the token held before the run's next write
    before_last_write: str | None = None
    rotations: dict = field(default_factory=dict)  # fingerprint -> writes that rotated to it
    blocked: bool = False               # a forged `watchdog-status` took the newest replacement out


class Simulation:
    def __init__(self, seed: int, world, sandbox, run_cli, channels):
        self.seed, self.world, self.sandbox, self.run_cli, self.channels = seed, world, sandbox, run_cli, channels
        self.rng = random.Random(seed)
        self.pats: dict[str, Pat] = {}
        self.log: list[str] = []
        self.day = 0
        self.moment = NOW
        self.instances: list[Instance] = []
        self.runs = 0
        self.writes_seen = 0
        self.last = None
        self.teams_seen = 0
        self.mail_seen = 0
        self.requests_seen = 0

    # -- the world --------------------------------------------------------------------------
    def at(self, moment: datetime) -> None:
        self.moment = moment
        self.sandbox.clock = lambda: moment

    def issue(self, days: float, *, full: bool = True) -> str:
        token, _ = self.world.issue(days, **({} if full else {"scope": NARROW}))
        self.pats[token] = Pat(self.moment + timedelta(days=days), full_scope=full)
        return token

    def note(self, text: str) -> None:
        self.log.append(f"day {self.day}: {text}")

    def setup(self, count: int) -> None:
        for name in NAMES[:count]:
            days = self.rng.randint(3, 40)
            token = self.issue(days)
            app = self.world.add_instance(name, token)
            sub = self.world.map_rule(app, "triage")
            if self.rng.random() < 0.7:
                version = self.world.stage(token, days=days, secret=f"{name}-pat-staged",
                                           tags={"watchdog-status": "current"})
                staged = [(version, token)]
            else:
                staged = []
            others = {k: v for k, v in self.sandbox.arm.settings(app).items() if k != TOKEN}
            self.instances.append(Instance(name, app, others, sub, staged))
            self.note(f"{name}: holds a token with {days} days left" + (", staged as current" if staged else ""))

    def held(self, inst: Instance) -> str | None:
        return self.sandbox.arm.settings(inst.app).get(TOKEN)

    def set_tags(self, inst: Instance, version: str, change) -> None:
        vault = self.sandbox.vault
        with vault._lock:
            found = vault._secret(self.world.vault, f"{inst.name}-pat-staged").find(version)
            change(found.tags)

    # -- events -----------------------------------------------------------------------------
    def event(self) -> None:
        rng = self.rng
        inst = rng.choice(self.instances)
        kind = rng.choices(
            ["stage good", "stage bad", "step fails", "5xx", "hang", "html", "edit setting", "edit token",
             "edit tags", "extend", "revoke", "subscription disabled", "forge"],
            weights=[14, 6, 10, 6, 3, 4, 5, 4, 5, 5, 6, 3, 8])[0]
        if kind == "forge":
            return self.forge(inst)
        if kind == "stage good":
            days = rng.choice([30, 90, 180, 365])
            token = self.issue(days)
            version = self.world.stage(token, days=days, secret=f"{inst.name}-pat-staged")
            inst.staged.append((version, token))
            inst.blocked = False
            self.note(f"{inst.name}: good replacement staged ({days} days), version {version[:8]}")
        elif kind == "stage bad":
            why = rng.choice(["revoked", "expired", "narrow scopes"])
            if why == "narrow scopes":
                token = self.issue(365, full=False)
                version = self.world.stage(token, days=365, secret=f"{inst.name}-pat-staged", scopes=NARROW)
            else:
                token = self.issue(365 if why == "revoked" else -1)
                if why == "revoked":
                    self.sandbox.devops.revoke(token)
                    self.pats[token].revoked = True
                version = self.world.stage(token, days=200, secret=f"{inst.name}-pat-staged")
            inst.staged.append((version, token))
            self.note(f"{inst.name}: bad replacement staged ({why}), version {version[:8]}")
        elif kind == "step fails":
            step = rng.choice(list(STEPS))
            self.sandbox.inject(**STEPS[step], drop=True, times=None)
            self.note(f"fault: the connection drops at '{step}' during the next run")
        elif kind == "5xx":
            host, status, times = rng.choice(HOSTS), rng.choice([500, 502, 503]), rng.randint(1, 4)
            self.sandbox.inject(host=host, status=status, times=times, nth=rng.randint(1, 6))
            self.note(f"fault: {host} answers {status} {times} time(s) in the next run")
        elif kind == "hang":
            host, hang = rng.choice(HOSTS), rng.choice([0.3, 1.0, 3.5])
            self.sandbox.inject(host=host, hang=hang, times=1, nth=rng.randint(1, 4))
            self.note(f"fault: {host} hangs {hang} s once in the next run")
        elif kind == "html":
            times = rng.choice([1, 3, None])
            self.sandbox.inject(host="dev.azure.com", status=200, body=SIGN_IN, times=times,
                                headers={"Content-Type": "text/html; charset=utf-8"})
            self.note(f"fault: dev.azure.com answers an HTML sign-in page with 200 ({times or 'every'} time(s))")
        elif kind == "edit setting":
            key = rng.choice(["Aggregator_Note", "Aggregator_Custom", "WEBSITE_TIME_ZONE"])
            value = rng.choice(["", "changed by hand", "Zürich; a=b", f"v{rng.randint(1, 999)}"])
            settings = self.sandbox.arm.settings(inst.app)
            settings[key] = value
            self.sandbox.arm.set_settings(inst.app, settings)
            inst.others[key] = value
            self.note(f"{inst.name}: a person sets {key}={value!r}")
        elif kind == "edit token":
            days = rng.randint(10, 120)
            token = self.issue(days)
            settings = self.sandbox.arm.settings(inst.app)
            settings[TOKEN] = token
            self.sandbox.arm.set_settings(inst.app, settings)
            # Invariant 4 counts rotations between hand changes: once this token dies, a staged version that
            # was in place before is rotated to again (docs/rotation.md, "When the token in place dies").
            inst.rotations.clear()
            self.note(f"{inst.name}: a person puts a working token ({days} days) in the token setting")
        elif kind == "edit tags":
            if not inst.staged:
                return self.note(f"{inst.name}: nothing staged to hand-edit")
            version, _ = rng.choice(inst.staged)
            edit = rng.choice(["note", "scopes with commas", "drop watchdog-status", "mark failed"])
            if edit == "note":
                self.set_tags(inst, version, lambda t: t.__setitem__("owner", "alice"))
            elif edit == "scopes with commas":
                self.set_tags(inst, version, lambda t: t.__setitem__("scopes", t["scopes"].replace(" ", ","))
                              if t.get("scopes") else None)
            elif edit == "drop watchdog-status":
                self.set_tags(inst, version, lambda t: t.pop("watchdog-status", None))
            else:
                self.set_tags(inst, version, lambda t: t.__setitem__("watchdog-status", "failed"))
                inst.person_failed.add(version)
            if edit == "drop watchdog-status":
                inst.person_failed.discard(version)
            self.note(f"{inst.name}: a person hand-edits the tags of version {version[:8]}: {edit}")
        elif kind == "extend":
            token = self.held(inst)
            if token not in self.pats:
                return self.note(f"{inst.name}: no known token to extend")
            valid_to = self.moment + timedelta(days=rng.randint(20, 200))
            self.sandbox.devops.extend(token, valid_to)
            self.pats[token].valid_to = valid_to
            self.note(f"{inst.name}: the PAT it holds ({fp(token)}) is extended in place to {valid_to:%Y-%m-%d}")
        elif kind == "revoke":
            token = self.held(inst) if rng.random() < 0.7 or not inst.staged else rng.choice(inst.staged)[1]
            if token not in self.pats:
                return self.note(f"{inst.name}: no known token to revoke")
            self.sandbox.devops.revoke(token)
            self.pats[token].revoked = True
            self.note(f"{inst.name}: PAT {fp(token)} is revoked")
        else:
            self.sandbox.devops.set_subscription_status(self.world.org, inst.sub, "disabledBySystem")
            self.note(f"{inst.name}: its service hook subscription is disabled by the system")

    def forge(self, inst: Instance) -> None:
        """Invariant 6: what a person with `setSecret` on the staged secret can write, and nothing more."""
        rng = self.rng
        held = self.held(inst)
        others = [t for t in self.pats if t != held]
        other = rng.choice(others) if others else held
        ids = [p.authorization_id for p in self.sandbox.devops.created_pats()] + [
            self.sandbox.devops.authorization_id_of(t) for t in (held, other) if t]
        forgery = rng.choice(["claims current", "fingerprint", "authorizationId", "created-by", "bad times",
                              "status"])
        if forgery == "claims current" or not inst.staged:
            # A version whose value is no token at all, claiming to be the token in place, late and wide.
            tags = {"fingerprint": fp(held) if held else "0" * 8, "watchdog-status": "current",
                    "authorizationId": rng.choice(ids) if ids else "", "scopes": "app_token",
                    "created-by": "pat-watchdog", "rotated-at": "2026-01-01T00:00:00Z"}
            self.world.stage(f"forged-{rng.randint(0, 10**9)}", days=rng.choice([300, 2]),
                             secret=f"{inst.name}-pat-staged", tags={k: v for k, v in tags.items() if v})
            inst.blocked = True     # newest and tagged: by the protocol no older version is a candidate now
            return self.note(f"{inst.name}: a person with staging rights stages a forged 'current' version")
        version, _ = rng.choice(inst.staged)
        change = {"fingerprint": {"fingerprint": fp(other) if other else "deadbeef"},
                  "authorizationId": {"authorizationId": rng.choice(ids) if ids else "x"},
                  "created-by": {"created-by": "pat-watchdog", "watchdog-reason": "never used"},
                  "bad times": {"rotated-at": "yesterday", "revoked-at": "soon", "expires": "never"},
                  "status": {"watchdog-status": rng.choice(["current", "rejected", "applied", "failed"])}}[forgery]
        self.set_tags(inst, version, lambda t: t.update(change))
        if forgery == "status" and version == inst.staged[-1][0]:
            inst.blocked = True
        if forgery == "status" and change["watchdog-status"] == "failed":
            inst.person_failed.add(version)
        self.note(f"{inst.name}: a person with staging rights writes {sorted(change)} on version {version[:8]}")

    def check_forgeries(self) -> None:
        """Invariant 6: revocations and Key Vault writes stay where they belong."""
        for token, pat in self.pats.items():
            aid = self.sandbox.devops.authorization_id_of(token)
            if aid and self.sandbox.devops.is_revoked(aid) and not pat.revoked:
                self.fail("6", f"PAT {fp(token)} was revoked, by nobody of the simulation")
        requests = self.sandbox.requests
        new, self.requests_seen = requests[self.requests_seen:], len(requests)
        for request in new:
            if ".vault." not in request.host or request.method not in ("PUT", "PATCH"):
                continue
            secret = request.path.split("/secrets/")[-1].split("/")[0]
            if not any(secret.startswith(f"{i.name}-pat-") for i in self.instances):
                self.fail("6", f"a Key Vault write to {secret}, no instance's secret")

    # -- runs and invariants ----------------------------------------------------------------
    def run(self, moment: datetime):
        self.at(moment)
        for inst in self.instances:
            inst.current = self.held(inst)
        if self.runs:   # a day has passed: a lock a failed run left behind has run out
            expire_locks(self.channels["AzureWebJobsStorage"], self.channels["WATCHDOG_STATE_TABLE"])
        result = self.run_cli("run", "--json", now=moment, **PER_NAME, **self.channels)
        self.sandbox.clear_faults()
        self.runs += 1
        self.last = result
        self.note(f"run at {moment:%Y-%m-%d %H:%M} exited {result.code}: " + ", ".join(
            f"{i['name']} {i['status']} [{' '.join(r['code'] for r in i['reasons'])}]"
            for i in result.json["instances"]))
        return result

    def fail(self, invariant: str, detail: str) -> None:
        pytest.fail(f"seed {self.seed}, day {self.day}: invariant {invariant} broken: {detail}\n"
                    f"replay: PAT_WATCHDOG_SIM_SEEDS={self.seed}, PAT_WATCHDOG_SIM_DAYS={self.day + 1}\n"
                    "events:\n  " + "\n  ".join(self.log) + self.last_report(), pytrace=False)

    def last_report(self) -> str:
        if self.last is None:
            return ""
        lines = ["", "the last run's report:"]
        for inst in self.last.json["instances"]:
            lines.append(f"  {inst['name']} {inst['status']}, candidate {inst['candidate']}")
            lines.extend(f"    {r['level']} {r['code']}: {r['message']}" for r in inst["reasons"])
            lines.extend(f"    action {a['kind']} {a['channel'] or ''} {a['outcome']} {a['detail'] or ''}"
                         for a in inst["actions"])
        return "\n".join(lines)

    def working_available(self, inst: Instance) -> bool:
        held = self.held(inst)
        if held in self.pats and self.pats[held].works(self.moment):
            return True
        if not inst.staged or inst.blocked:
            return False
        version, token = inst.staged[-1]
        return version not in inst.person_failed and self.pats[token].works(self.moment)

    def broken_instances(self) -> list[str]:
        """Instances whose setting holds no working token although a working one is available (1)."""
        broken = []
        for inst in self.instances:
            held = self.held(inst)
            if self.working_available(inst) and not (held in self.pats and self.pats[held].works(self.moment)):
                broken.append(inst.name)
        return broken

    def check_settings(self) -> None:
        """Invariant 2 over the ARM writes of the run and the settings after it; invariant 4 on the way."""
        writes = self.sandbox.arm.writes
        by_app = {inst.app.lower(): inst for inst in self.instances}
        for app_id, written in writes[self.writes_seen:]:
            inst = by_app[app_id.lower()]
            if TOKEN not in written:
                self.fail("2", f"{inst.name}: an ARM write removed the token setting")
            others = {k: v for k, v in written.items() if k != TOKEN}
            if others != inst.others:
                self.fail("2", f"{inst.name}: an ARM write changed other settings: {diff(inst.others, others)}")
            self.count_rotation(inst, written[TOKEN])
        self.writes_seen = len(writes)
        for inst in self.instances:
            now = self.sandbox.arm.settings(inst.app)
            if TOKEN not in now:
                self.fail("2", f"{inst.name}: the token setting is gone")
            others = {k: v for k, v in now.items() if k != TOKEN}
            if others != inst.others:
                self.fail("2", f"{inst.name}: other settings changed: {diff(inst.others, others)}")

    def count_rotation(self, inst: Instance, token: str) -> None:
        """Invariant 4: a write puts `token` in place; putting back what the previous write replaced is a
        rollback, anything else a rotation, and each staged version is rotated to once at most."""
        before = inst.current
        restore = token == inst.before_last_write
        inst.before_last_write, inst.current = before, token
        if restore:
            return
        inst.rotations[fp(token)] = inst.rotations.get(fp(token), 0) + 1
        staged = [version for version, value in inst.staged if fp(value) == fp(token)]
        if staged and inst.rotations[fp(token)] > 1:
            self.fail("4", f"{inst.name}: staged version {staged[0][:8]} ({fp(token)}) was rotated to "
                           f"{inst.rotations[fp(token)]} times")

    def check_alerts(self, result) -> None:
        """Invariant 3: CRITICAL instances were told on every channel during the episode, or the run exited 1."""
        teams = [card_title(e) for e in self.sandbox.teams.received[self.teams_seen:]]
        mails = [m["Subject"] for m in self.sandbox.smtp.messages[self.mail_seen:]]
        self.teams_seen, self.mail_seen = len(self.sandbox.teams.received), len(self.sandbox.smtp.messages)
        for inst in self.instances:
            report = next(i for i in result.json["instances"] if i["name"] == inst.name)
            if report["status"] != "CRITICAL":
                inst.critical_since, inst.alerted = None, set()
                continue
            if inst.critical_since is None:
                inst.critical_since = self.runs
            if any(f"CRITICAL: {inst.name}" in t for t in teams):
                inst.alerted.add("teams")
            if any(f"CRITICAL: {inst.name}" in s for s in mails):
                inst.alerted.add("email")
            missing = {"teams", "email"} - inst.alerted
            if missing and result.code != 1:
                self.fail("3", f"{inst.name} is CRITICAL ({[r['code'] for r in report['reasons']]}) since run "
                               f"{inst.critical_since}, no alert on {sorted(missing)}, and the run exited 0")

    def check(self, result) -> None:
        if result.code not in (0, 1):
            self.fail("1", f"the run exited {result.code}: {result.err.strip()[-500:]}")
        self.check_settings()
        self.check_alerts(result)
        self.check_forgeries()

    def simulate(self, days: int) -> None:
        self.at(NOW - timedelta(days=1))
        self.setup(self.rng.choice([2, 3]))
        for day in range(days):
            self.day = day
            self.at(NOW + timedelta(days=day) - timedelta(hours=self.rng.randint(1, 20)))
            for _ in range(self.rng.choice([0, 1, 1, 2, 2, 3])):
                self.event()
            result = self.run(NOW + timedelta(days=day))
            self.check(result)
            broken = self.broken_instances()
            if broken and result.code == 1:
                self.note(f"{', '.join(broken)} hold no working token after a failed run: the next run must fix it")
                again = self.run(NOW + timedelta(days=day, hours=1))
                self.check_settings()
                if again.code not in (0, 1):
                    self.fail("1", f"the run exited {again.code}")
                if still := self.broken_instances():
                    self.fail("1", f"{', '.join(still)} still hold no working token although one is available")
            elif broken:
                self.fail("1", f"{', '.join(broken)} hold no working token although one is available, "
                               "and the run exited 0")


def diff(expected: dict, actual: dict) -> str:
    keys = sorted(set(expected) | set(actual))
    return ", ".join(f"{k}: {expected.get(k, '<absent>')!r} -> {actual.get(k, '<absent>')!r}"
                     for k in keys if expected.get(k) != actual.get(k))


@pytest.mark.parametrize("seed", _seeds())
def test_simulated_days_keep_every_invariant(seed, world, sandbox, run_cli, channels):
    Simulation(seed, world, sandbox, run_cli, channels).simulate(DAYS)

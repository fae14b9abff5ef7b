"""What the watchdog verified itself, per instance (pure): the record kept in its state table.

A person who stages replacements holds `setSecret` on the staged secret, so every tag of every staged
version is theirs to write: tags are claims. What the watchdog saw with its own eyes lives here, in a
table only its identity writes (docs/reference.md, "What the watchdog trusts"):

- the SHA-256 digest of each staged version whose value it read (a Key Vault version's value never
  changes, so one read is enough); tokens are known by their whole digest, never by the 8-digit
  fingerprint every alert shows (32 bits: a value with the same fingerprint is found in CPU-minutes);
- what Azure DevOps said of each token while it worked (user, `global` flag, and, for an entry matched
  for sure, authorization ID, `validTo` and scopes);
- the token's user while it worked (a sign-in or a candidate of another user is refused);
- the version it put in place, and when;
- the PATs it created (display name, authorization ID, digest, staged version, and when replaced);
- the previous-secret version it wrote (the only one a rollback puts back).

Every change is a new Record; `merge` joins two records of one instance written by two runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime

from pat_watchdog.core.times import format_utc, parse_utc

# Bounds that keep one instance's row far inside Azure Table's 64 KiB property limit.
MAX_VERSIONS = 100     # ~100 characters each
MAX_TOKENS = 10        # ~400 characters each
MAX_CREATED = 20       # ~400 characters each: with the rest, under 24,000 characters (48 KB in UTF-16)


class CreatedState:
    """Where a PAT the watchdog created stands (its own record, never a tag)."""

    INTENDED = "intended"    # about to be created: the display name is recorded before the request
    CREATED = "created"      # Azure DevOps answered; the value may not have reached Key Vault
    STAGED = "staged"        # its value is a version of the staged secret
    CURRENT = "current"      # rotated in
    UNUSED = "unused"        # rejected or failed: never held by Aggregator
    REPLACED = "replaced"    # was current, another token is in place since `replaced_at`


VERIFIED = ("record", "only", "created")     # matches the watchdog made itself (core/model.VERIFIED_MATCHES)


@dataclass(frozen=True)
class TokenFacts:
    """What Azure DevOps said of one token (by digest) while it worked: the listing entry it matched, and
    how (`matched_by`: verified, or a claim the listing was asked about, replayed as such)."""

    user: str | None = None
    global_pat: bool | None = None
    authorization_id: str | None = None
    valid_to: datetime | None = None
    scopes: tuple[str, ...] | None = None
    seen: datetime | None = None              # when the listing was last asked about this token
    matched_by: str | None = None
    ambiguous: bool | None = None
    kv_date: datetime | None = None           # the Key Vault date the listing was asked with

    @property
    def verified(self) -> bool:
        return self.matched_by in VERIFIED and not self.ambiguous


@dataclass(frozen=True)
class CreatedRecord:
    display_name: str
    created_at: datetime
    state: str = CreatedState.INTENDED
    authorization_id: str | None = None
    digest: str | None = None
    version: str | None = None
    replaced_at: datetime | None = None
    revoked_at: datetime | None = None
    valid_to: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Record:
    fingerprint: str | None = None            # the token setting's fingerprint when last seen (drift)
    current: str | None = None                # ... and its digest: whether another instance holds a PAT
    form: str | None = None                   # plain, or the reference's secret (drift)
    versions: dict = field(default_factory=dict)        # staged version ID -> digest of its value
    tokens: dict = field(default_factory=dict)          # digest -> TokenFacts
    owner: str | None = None                  # the token's user, first seen while it worked (or handed over)
    placed: tuple[str, str, datetime] | None = None     # (version, digest, when) put in place by the watchdog
    previous: tuple[str, str] | None = None   # (version, digest) of the previous secret the watchdog wrote
    applying: str | None = None               # the staged version the watchdog tagged `applying` (crash recovery)
    created: tuple[CreatedRecord, ...] = ()
    lifespan_cap_days: int | None = None      # a policy shortened a created PAT to this many days
    damaged: bool = False                     # the stored row did not parse: nothing verified is known

    # -- reading -------------------------------------------------------------------------------
    def facts(self, digest: str | None) -> TokenFacts | None:
        return self.tokens.get(digest) if digest else None

    def created_pat(self, *, digest: str | None = None,
                    authorization_id: str | None = None) -> CreatedRecord | None:
        for pat in self.created:
            if digest and pat.digest == digest:
                return pat
            if authorization_id and (pat.authorization_id or "").lower() == authorization_id.lower():
                return pat
        return None

    def known_ids(self, except_digest: str | None) -> frozenset[str]:
        """Authorization IDs verified to belong to other tokens than `except_digest`."""
        ids = {f.authorization_id for d, f in self.tokens.items()
               if d != except_digest and f.authorization_id and f.verified}
        ids |= {p.authorization_id for p in self.created if p.authorization_id and p.digest != except_digest}
        return frozenset(i.lower() for i in ids)

    # -- changing ------------------------------------------------------------------------------
    def seen_versions(self, found: dict, listed: list[str] | None = None) -> Record:
        """Digests read (`found`); with `listed` (the versions listed now, newest first), only those are kept,
        the newest MAX_VERSIONS: one that is no longer listed never counts again, and the row stays small."""
        merged = {**self.versions, **found}
        if listed is not None:
            merged = {v: merged[v] for v in listed[:MAX_VERSIONS] if v in merged}
        if merged == self.versions:
            return self
        return replace(self, versions=_newest(merged, MAX_VERSIONS))

    def learned(self, digest: str, facts: TokenFacts, *, replace_match: bool = False) -> Record:
        """Azure DevOps' answer about a working token; what it did not say keeps what was known
        (`replace_match`: a new listing answer replaces the old match whole)."""
        before = self.tokens.get(digest) or TokenFacts()
        if replace_match:
            before = TokenFacts(user=before.user, global_pat=before.global_pat)
        merged = TokenFacts(**{name: new if new is not None else getattr(before, name)
                               for name, new in vars(facts).items()})
        if merged == (self.tokens.get(digest) or TokenFacts()):
            return self
        tokens = {**{k: v for k, v in self.tokens.items() if k != digest}, digest: merged}
        return replace(self, tokens=dict(list(tokens.items())[-MAX_TOKENS:]))

    def with_owner(self, user: str | None) -> Record:
        """A hand-over (`pat-watchdog login --new-user`): the instance's user becomes `user`."""
        return self if user == self.owner else replace(self, owner=user)

    def first_owner(self, user: str | None) -> Record:
        """The token's user when none is recorded yet; a later token of another user never replaces it."""
        return self if self.owner or not user else replace(self, owner=user)

    def with_previous(self, version: str, digest: str) -> Record:
        return self if self.previous == (version, digest) else replace(self, previous=(version, digest))

    def seen_setting(self, fingerprint: str | None, form: str | None, digest: str | None = None) -> Record:
        if (fingerprint, form, digest) == (self.fingerprint, self.form, self.current):
            return self
        return replace(self, fingerprint=fingerprint, form=form, current=digest)

    def put_in_place(self, version: str, digest: str, when: datetime) -> Record:
        """A verified rotation: the created PAT it replaced (if any) counts as replaced from now."""
        created = tuple(replace(p, state=CreatedState.REPLACED, replaced_at=when)
                        if p.state == CreatedState.CURRENT and p.digest != digest else
                        replace(p, state=CreatedState.CURRENT) if p.digest == digest and p.active else p
                        for p in self.created)
        return replace(self, placed=(version, digest, when), created=created)

    def with_created(self, pat: CreatedRecord) -> Record:
        """Add or update a created PAT (by display name: it is recorded before its authorization ID is known)."""
        others = [p for p in self.created if p.display_name != pat.display_name]
        # Drop the oldest revoked ones first: an active PAT the watchdog created is never forgotten.
        while len(others) >= MAX_CREATED and any(not p.active for p in others):
            others.remove(next(p for p in others if not p.active))
        return replace(self, created=tuple(others) + (pat,))

    def update_created(self, display_name: str, **changes) -> Record:
        return replace(self, created=tuple(replace(p, **changes) if p.display_name == display_name else p
                                           for p in self.created))


def _newest(mapping: dict, limit: int) -> dict:
    return dict(list(mapping.items())[-limit:])


def merge(mine: Record, theirs: Record) -> Record:
    """Two runs wrote one instance's record: keep what each verified (union), mine where both say something."""
    tokens = {**theirs.tokens}
    for fp, facts in mine.tokens.items():
        tokens[fp] = facts
    created = {p.display_name: p for p in theirs.created}
    for pat in mine.created:
        other = created.get(pat.display_name)
        created[pat.display_name] = pat if other is None or _progress(pat) >= _progress(other) else other
    placed = max((p for p in (mine.placed, theirs.placed) if p), key=lambda p: p[2], default=None)
    previous, applying = mine.previous or theirs.previous, mine.applying    # the writer's view of its rotation
    return replace(mine, versions=_newest({**theirs.versions, **mine.versions}, MAX_VERSIONS),
                   tokens=dict(list(tokens.items())[-MAX_TOKENS:]), placed=placed, previous=previous, applying=applying,
                   created=tuple(sorted(created.values(), key=lambda p: p.created_at)),
                   owner=mine.owner or theirs.owner,
                   lifespan_cap_days=mine.lifespan_cap_days or theirs.lifespan_cap_days)


_ORDER = (CreatedState.INTENDED, CreatedState.CREATED, CreatedState.STAGED, CreatedState.CURRENT,
          CreatedState.UNUSED, CreatedState.REPLACED)


def _progress(pat: CreatedRecord) -> tuple[bool, int]:
    return pat.revoked_at is not None, _ORDER.index(pat.state) if pat.state in _ORDER else -1


# -- the row --------------------------------------------------------------------------------------
def trimmed(record: Record) -> Record:
    """The record with its oldest staged-version digests left out (the least useful part): for a row that
    would not fit. A digest left out is read again when its version still matters."""
    return replace(record, versions=_newest(record.versions, max(0, len(record.versions) // 2)))


def to_json(record: Record) -> str:
    def created(p: CreatedRecord) -> dict:
        return {"name": p.display_name, "at": format_utc(p.created_at), "state": p.state, "id": p.authorization_id,
                "digest": p.digest, "version": p.version, "replaced": format_utc(p.replaced_at),
                "revoked": format_utc(p.revoked_at), "validTo": format_utc(p.valid_to)}

    def token(t: TokenFacts) -> dict:
        return {"user": t.user, "global": t.global_pat, "id": t.authorization_id, "validTo": format_utc(t.valid_to),
                "scopes": " ".join(t.scopes) if t.scopes is not None else None, "seen": format_utc(t.seen),
                "by": t.matched_by, "ambiguous": t.ambiguous, "kvDate": format_utc(t.kv_date)}

    return json.dumps({
        "v": 1, "versions": record.versions, "tokens": {fp: token(t) for fp, t in record.tokens.items()},
        "owner": record.owner, "created": [created(p) for p in record.created],
        "placed": [record.placed[0], record.placed[1], format_utc(record.placed[2])] if record.placed else None,
        "previous": list(record.previous) if record.previous else None, "applying": record.applying,
        "cap": record.lifespan_cap_days, "current": record.current}, separators=(",", ":"))


def _is_digest(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def from_row(fingerprint: str | None, form: str | None, text: str | None) -> Record:
    """A stored row; a row written before records existed holds only the drift fields. A row that does not
    parse counts as empty: the watchdog then verifies again what it needs (never trusts less)."""
    base = Record(fingerprint=fingerprint or None, form=form or None)
    if not text:
        return base
    try:
        data = json.loads(text)
        tokens = {d: TokenFacts(t.get("user"), t.get("global"), t.get("id"), parse_utc(t.get("validTo")),
                                tuple(t["scopes"].split()) if t.get("scopes") is not None else None,
                                parse_utc(t.get("seen")), t.get("by"), t.get("ambiguous"), parse_utc(t.get("kvDate")))
                  for d, t in (data.get("tokens") or {}).items()}
        created = tuple(CreatedRecord(p["name"], parse_utc(p["at"]), p.get("state") or CreatedState.INTENDED,
                                      p.get("id"), p.get("digest"), p.get("version"), parse_utc(p.get("replaced")),
                                      parse_utc(p.get("revoked")), parse_utc(p.get("validTo")))
                        for p in data.get("created") or ())
        placed, previous = data.get("placed"), data.get("previous")
        return replace(base, previous=tuple(previous) if previous else None,
                       versions={v: d for v, d in (data.get("versions") or {}).items() if _is_digest(d)},
                       tokens={d: t for d, t in tokens.items() if _is_digest(d)}, owner=data.get("owner"),
                       created=created, lifespan_cap_days=data.get("cap"),
                       current=data.get("current") if _is_digest(data.get("current")) else None,
                       applying=data.get("applying"),
                       placed=(placed[0], placed[1], parse_utc(placed[2])) if placed else None)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        return replace(base, damaged=True)

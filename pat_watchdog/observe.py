"""Gather: everything about one Aggregator instance, into a frozen snapshot (section 2, step 1)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from pat_watchdog.core import drift
from pat_watchdog.core import listing as L
from pat_watchdog.core import reasons as R
from pat_watchdog.core import references, token_type
from pat_watchdog.core.candidates import select_candidate, version_fact
from pat_watchdog.core.errors import EmptySecret, ServiceError, WatchdogError
from pat_watchdog.core.model import CandidateState, ExpiryFact, InstanceSnapshot, LiveCheck, Liveness, Note
from pat_watchdog.core.resource_ids import ResourceId
from pat_watchdog.core.secret import Token, looks_like_pat
from pat_watchdog.core.settings import Settings
from pat_watchdog.core.policy import held_scopes_missing
from pat_watchdog.core.record import Record, TokenFacts
from pat_watchdog.core.tags import FINGERPRINT_TAG, SecretVersion, tag_problems
from pat_watchdog.core.times import format_utc
from pat_watchdog.hooks import observe_hooks
from pat_watchdog.ports import Ports

log = logging.getLogger(__name__)
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)
_DAY = timedelta(days=1)


class NotAllowed(WatchdogError):
    """The token setting's reference points where the watchdog may not follow (docs/reference.md, "What the
    watchdog trusts")."""


@dataclass
class Observed:
    """The snapshot plus what must stay in memory only: token values and raw settings."""

    snapshot: InstanceSnapshot
    app: ResourceId
    current: Token | None = None
    settings: dict = field(default_factory=dict, repr=False)
    reference: references.KeyVaultReference | None = None
    reference_version: str | None = None        # the secret version the watchdog read through it
    staged: list[SecretVersion] = field(default_factory=list, repr=False)
    digests: dict[str, str] = field(default_factory=dict)   # version -> SHA-256 of its value (read now or recorded)
    unusable: dict[str, str] = field(default_factory=dict)     # staged versions that hold no token, and why
    record: Record = field(default_factory=Record)             # what the watchdog verified, after this observation


def observe(app: ResourceId, settings: Settings, ports: Ports, now: datetime, *, write: bool = False) -> Observed:
    """Read settings, check the token, read the staging vault; never raises for one instance."""
    base = InstanceSnapshot(app_id=str(app), name=app.site)
    try:
        app_settings = ports.apps.list_settings(app)
    except ServiceError as error:
        return Observed(replace(base, unreachable=Note(R.ARM_UNREACHABLE.name, str(error))), app)
    obs = Observed(replace(base, name=ports.apps.site_name(app)), app, settings=app_settings,
                   record=ports.records.get(app.key))
    try:
        _read_token(obs, settings, ports)
    except NotAllowed as refused:
        obs.current = None
        obs.snapshot = replace(obs.snapshot, unreachable=Note(R.REFERENCE_NOT_ALLOWED.name, str(refused)))
        return obs
    except WatchdogError as error:
        obs.snapshot = replace(obs.snapshot, unreachable=Note(R.KEYVAULT_REFERENCE_UNRESOLVED.name, str(error)))
        return obs
    notes: list[Note] = []
    live = ports.devops.check_live(obs.current) if obs.current else LiveCheck(Liveness.INVALID, detail="no token")
    facts = list(obs.snapshot.facts)
    if settings.key_vault_url:
        facts += _staged(obs, settings, ports, now, notes)
    facts = _claims_checked(obs, facts, notes)
    recorded = obs.record.facts(obs.current.digest) if obs.current else None
    if obs.current and live.state is Liveness.VALID:
        if _listing_needed(facts, recorded, settings, now):
            facts = _listing(obs, live, facts, settings, ports, now, notes)
        elif recorded is not None and recorded.valid_to is not None:
            facts.append(_recorded_fact(recorded))
        obs.record = obs.record.learned(obs.current.digest, TokenFacts(user=live.user_id)).first_owner(live.user_id)
        notes.extend(_owner_note(obs.record.owner, live.user_id))
    if settings.pat_expires_on:
        facts.append(ExpiryFact("setting", settings.pat_expires_on, detail="WATCHDOG_PAT_EXPIRES_ON"))
    changed = _drift(obs, settings, ports)
    if changed:
        notes.append(Note(R.TOKEN_SETTING_CHANGED.name, changed))
    hooks: dict = {}
    if obs.current and live.state is Liveness.VALID and ports.rules is not None:
        hooks, found = observe_hooks(app, obs.settings, obs.current, ports)
        notes.extend(found)
    obs.snapshot = replace(obs.snapshot, live=live, facts=tuple(facts),
                           notes=obs.snapshot.notes + tuple(notes), **hooks)
    if obs.current is not None:     # which token this instance holds: no instance revokes another's
        obs.record = obs.record.seen_setting(obs.record.fingerprint, obs.record.form, obs.current.digest)
    ports.records.put(app.key, obs.record)     # in memory: what a re-observation under the lock starts from
    return obs


def _read_token(obs: Observed, settings: Settings, ports: Ports) -> None:
    key = token_type.key_in(obs.settings, settings.token_setting)
    raw = obs.settings.get(key) if key else None
    snap = replace(obs.snapshot, token_type=obs.settings.get(token_type.key_in(obs.settings, token_type.SETTING) or ""))
    if raw and references.is_reference(raw):
        try:
            ref = references.parse_reference(raw, settings.arm_endpoint)
        except ValueError as error:
            raise WatchdogError(f"{settings.token_setting} holds a malformed Key Vault reference: {error}") from None
        why = references.not_allowed(ref, settings.followable_vaults(), settings.is_own_secret)
        if why:
            raise NotAllowed(why)
        others = ports.records.holders(drift.form_of(f"{ref.vault_url}/secrets/{ref.secret_name}")) - {obs.app.key}
        if others:    # one instance's setting must never make it read or write another's token secret
            raise NotAllowed(f"the token setting points at {ref.secret_name}, the token secret of another instance "
                             f"({', '.join(sorted(k.rsplit('/', 1)[-1] for k in others))}): nothing is read there, "
                             "and nothing is written; give each instance a secret of its own")
        token, version = ports.vaults.get(ref.vault_url).read(ref.secret_name, ref.version)
        if not looks_like_pat(token.reveal()):
            raise NotAllowed(f"the referenced secret {ref.secret_name} does not hold an Azure DevOps PAT (52 "
                             "lower-case base32 characters, or 84 with AZDO at 77-80): it is not sent anywhere")
        obs.reference, obs.current, obs.reference_version = ref, token, version.version
        snap = replace(snap, **_platform_view(obs.app, settings.token_setting, ports))
        fact = replace(version_fact(version, f"referenced secret {ref.secret_name}/{version.version}"),
                       secret=(ref.vault_url, ref.secret_name, version.version))
        snap = replace(snap, key_vault_reference=f"{ref.vault_url}/secrets/{ref.secret_name}"
                       + (f"/{ref.version}" if ref.version else ""), facts=(fact,))
    elif raw and raw.strip():
        obs.current = Token(raw)
    missing = None if key else settings.token_setting
    obs.snapshot = replace(snap, token_present=obs.current is not None, missing_setting=missing,
                           token_fingerprint=obs.current.fingerprint if obs.current else None,
                           token_digest=obs.current.digest if obs.current else None)


def _drift(obs: Observed, settings: Settings, ports: Ports) -> str | None:
    """What changed in the token setting since the last `run` remembered it (read once per run)."""
    form = drift.form_of(obs.snapshot.key_vault_reference)
    return drift.describe(ports.records.stored(obs.app.key), obs.snapshot.token_fingerprint, form,
                          settings.token_setting)


def _platform_view(app: ResourceId, setting: str, ports: Ports) -> dict:
    """How App Service itself resolved the reference, with Aggregator's identity (docs/reference.md, "Reason
    codes"): the
    watchdog reading the secret proves nothing about what Aggregator gets."""
    try:
        found = ports.apps.reference_status(app, setting)
    except ServiceError as error:   # not a verdict: the next run asks again
        log.warning("reference status of %s unavailable: %s", app.site, error)
        return {}
    return {"reference_status": found.status, "reference_details": found.details}


def _staged(obs, settings, ports, now, notes) -> list[ExpiryFact]:
    """Versions of the staged secret: expiry source 1 and the candidate. A version is the current token's
    only when its value was read and compared, now or by an earlier run (the record): never by its tags."""
    staged_name = settings.secret_names(obs.app.site)[0]
    vault = ports.vaults.get(settings.key_vault_url)
    try:
        obs.staged = vault.versions(staged_name)
        obs.digests = _digests(vault, obs.staged, obs.record.versions, obs.unusable, notes)
    except ServiceError as error:
        notes.append(Note(R.KEYVAULT_UNAVAILABLE.name, str(error)))
        return []
    newest_first = [v.version for v in sorted(obs.staged, key=_created, reverse=True)]
    obs.record = obs.record.seen_versions(obs.digests, newest_first)
    notes.extend(_tag_notes(obs.staged, obs.digests))
    candidate = select_candidate(obs.staged, now, obs.digests, obs.unusable)
    if candidate.state == CandidateState.APPLYING and obs.record.applying != candidate.version:
        # Only a rotation the watchdog started (its record says so) is finished or undone at once; an
        # `applying` tag anyone wrote makes the version an ordinary candidate, validated when due.
        notes.append(Note(R.TAG_DISAGREES.name, f"version {candidate.version} is tagged watchdog-status=applying, "
                          "but the watchdog started no rotation to it: treated as a staged replacement"))
        candidate = replace(candidate, state=CandidateState.PENDING)
    obs.snapshot = replace(obs.snapshot, candidate=candidate)
    current = obs.current.digest if obs.current else None
    same = [v for v in obs.staged if current and obs.digests.get(v.version) == current]
    if not same:
        return []
    version = max(same, key=_created)
    return [replace(version_fact(version, f"staged secret {staged_name}/{version.version}"),
                    secret=(settings.key_vault_url, staged_name, version.version))]


def _created(version: SecretVersion) -> datetime:
    return version.created_on or _EPOCH


READS_PER_RUN = 25      # values read per instance and run: thousands of staged versions cost no more


def _digests(vault, versions: list[SecretVersion], recorded: dict, unusable: dict[str, str],
             notes: list[Note]) -> dict[str, str]:
    """The SHA-256 of every usable version's value: as recorded when an earlier run read it (a version's
    value never changes), else read now, newest first and at most READS_PER_RUN per run. The `fingerprint`
    tag is a claim and never counts. A version that holds no token is set aside with the reason."""
    found, unread = {}, []
    for version in sorted(versions, key=_created, reverse=True):
        if version.version in recorded:
            found[version.version] = recorded[version.version]
        elif version.enabled:
            unread.append(version)
    for version in unread[:READS_PER_RUN]:
        try:
            token, _ = vault.read(version.name, version.version)
        except EmptySecret:
            unusable[version.version] = f"version {version.version} holds no token (empty or white space only)"
            continue
        found[version.version] = token.digest
    if len(unread) > READS_PER_RUN:
        notes.append(Note(R.CANDIDATE_SKIPPED.name, f"{len(unread) - READS_PER_RUN} older staged versions are not "
                          f"read this run (at most {READS_PER_RUN} values per run): remove the ones nobody needs"))
    return found


def _tag_notes(versions: list[SecretVersion], digests: dict[str, str]) -> list[Note]:
    """Tags that do not parse, or contradict what the watchdog verified: reported, never obeyed."""
    notes = [Note(R.TAG_UNPARSED.name, problem) for version in versions for problem in tag_problems(version)]
    for version in versions:
        claimed, verified = version.tags.get(FINGERPRINT_TAG), digests.get(version.version)
        if claimed and verified and claimed.lower() != verified[:8]:
            notes.append(Note(R.TAG_DISAGREES.name, f"version {version.version} of {version.name} is tagged "
                              f"{FINGERPRINT_TAG}, but its value has the fingerprint {verified[:8]}: the tag is "
                              "ignored (fix or remove it)"))
    return notes


def _owner_note(owner: str | None, user: str | None) -> list[Note]:
    """A working token of another user than the instance's: its user is never taken over silently."""
    if not owner or not user or owner == user:
        return []
    return [Note(R.TOKEN_USER_CHANGED.name, f"the token in place belongs to Azure DevOps user {user}, but this "
                 f"instance's user is {owner} (recorded while its earlier token worked): replacements and sign-ins "
                 f"of {user} are refused. If the hand-over is meant, run `pat-watchdog login --new-user`")]


def _claims_checked(obs: Observed, facts: list[ExpiryFact], notes: list[Note]) -> list[ExpiryFact]:
    """A Key Vault `authorizationId` claim for the current token that the record contradicts is dropped."""
    known = obs.record.facts(obs.current.digest if obs.current else None)
    if known is None or not known.authorization_id or not known.verified:
        return facts
    kept = []
    for fact in facts:
        claimed = fact.authorization_id
        if fact.source == "keyvault" and claimed and claimed.lower() != known.authorization_id.lower():
            notes.append(Note(R.TAG_DISAGREES.name, f"{fact.detail} is tagged authorizationId, but Azure DevOps "
                              f"matched this token to {known.authorization_id}: the tag is ignored"))
            fact = replace(fact, authorization_id=None)
        kept.append(fact)
    return kept


def _recorded_fact(known: TokenFacts) -> ExpiryFact:
    """What the listing said of this token when it was last asked, replayed as it was matched then."""
    return ExpiryFact("devops", known.valid_to, known.scopes, global_pat=known.global_pat,
                      authorization_id=known.authorization_id, matched_by=known.matched_by or "record",
                      ambiguous=bool(known.ambiguous),
                      detail=f"the token listing, as answered on {format_utc(known.seen)}")


def _listing_needed(facts: list[ExpiryFact], recorded: TokenFacts | None, settings: Settings,
                    now: datetime) -> bool:
    """Ask the listing once per token (whether it is global, its scopes and expiry), again when the Key Vault
    date it was asked with changed, then only when needed: nothing knows the expiry or scopes, or a date at
    or under the alert or rotation horizon must be confirmed (the PAT may have been extended in place)."""
    if recorded is None or recorded.seen is None or settings.pat_authorization_id:
        return True
    kv = next((f.expires_on for f in facts if f.source == "keyvault"), None)
    if kv != recorded.kv_date:
        return True
    known = [f.expires_on for f in facts if f.expires_on is not None]
    if recorded.valid_to is not None:
        known.append(recorded.valid_to)
    horizon = now + timedelta(days=max(settings.warn_days + (settings.rotate_within_days,)))
    scopes = any(f.scopes for f in facts) or recorded.scopes is not None
    return not known or not scopes or any(when <= horizon for when in known)


def _others_expire(obs: Observed) -> tuple[datetime, ...]:
    """Expiries of staged versions verified (by value) to be other tokens: a guess never picks an entry within
    a day of one of them. A guess stays a guess (EXPIRY_AMBIGUOUS): it never overrides another date."""
    current = obs.current.digest if obs.current else None
    return tuple(v.expires_on for v in obs.staged
                 if v.expires_on and obs.digests.get(v.version) not in (None, current))


def _unconfirmed(facts: list[ExpiryFact], entries: L.Entries, now: datetime, user: str | None,
                 notes: list[Note]) -> list[ExpiryFact]:
    """The token works, so its entry is among its user's active ones: a Key Vault date no active entry has
    (within a day) and later than one of them is disproved: kept for the report, but as a guess, which never
    overrides another date; scopes no active entry holds are dropped. Both are reported. (A date earlier
    than every active entry is a PAT extended in place: EXPIRY_EXTENDED takes it from there.)"""
    earliest = entries.earliest(now, user)
    if earliest is None:
        return facts
    kept = []
    for fact in facts:
        if fact.source != "keyvault":
            kept.append(fact)
            continue
        if fact.expires_on and fact.expires_on > earliest and not entries.near(now, user, fact.expires_on, _DAY):
            notes.append(Note(R.EXPIRY_UNCONFIRMED.name, f"{fact.detail} says the token expires "
                              f"{format_utc(fact.expires_on)}, but no active PAT of its user expires then: that date "
                              "is ignored (stage the current token again with its real expiry)"))
            fact = replace(fact, ambiguous=True)
        if fact.scopes and not any(h and not held_scopes_missing(h, fact.scopes)
                                   for h in entries.scope_sets(now, user)):
            notes.append(Note(R.SCOPES_UNCONFIRMED.name, f"{fact.detail} is tagged scopes {' '.join(fact.scopes)}, "
                              "but no active PAT of its user holds them: the tag is ignored"))
            fact = replace(fact, scopes=None)
        kept.append(fact)
    return kept


def _only(entries: L.Entries, now: datetime, user: str | None, exclude: frozenset[str], entry: dict) -> bool:
    """Whether `entry` is the user's only active PAT, other tokens' recorded IDs left out."""
    active = entries.active(now, user)
    if len(active) - len(exclude) > 1:
        return False
    return L.active_entries(entries, now, user, exclude) == [entry]


def _moved(recorded: TokenFacts | None, entry: dict, entries: L.Entries, notes: list[Note]) -> dict | None:
    """The entry the listing was matched to for this very token before, when it is still active and a claim
    (a Key Vault date, a tag) now points elsewhere: a claim changed since, not the token. None otherwise."""
    before = recorded.authorization_id if recorded is not None and not recorded.ambiguous else None
    if not before or str(entry.get("authorizationId", "")).lower() == before.lower():
        return None     # nothing sure was matched before (a guess may be corrected by any claim)
    earlier = entries.by_id.get(before.lower())
    if earlier is None:
        return None             # the PAT matched before is gone (revoked, expired): nothing contradicts
    notes.append(Note(R.TAG_DISAGREES.name, f"this token was matched to PAT {before} when the listing was asked "
                      f"on {format_utc(recorded.seen)}, which is still active; a changed Key Vault date or tag now "
                      f"points at {entry.get('authorizationId')}: the earlier match stands"))
    return earlier


def _claims_contradict(matched_by: str | None, entry: dict, kv_date: datetime | None, entries: L.Entries,
                       now: datetime, user: str | None, notes: list[Note]) -> bool:
    """The `authorizationId` tag picked an entry, while another active entry has the Key Vault date: the two
    claims about the token disagree, so the tag's pick is a guess (never overrides a date). A PAT extended in
    place has no entry at its old date: then the tag's entry is believed, as the listing is Azure DevOps'."""
    if matched_by != "tag" or kv_date is None:
        return False
    near = entries.near(now, user, kv_date, _DAY)
    if not near or any(e is entry for e in near):
        return False
    notes.append(Note(R.TAG_DISAGREES.name, f"the authorizationId tag names {entry.get('authorizationId')}, but "
                      f"another active PAT of the token's user expires on the Key Vault date {format_utc(kv_date)}: "
                      "the tag's entry is used as a guess only"))
    return True


def _listing(obs: Observed, live, facts, settings, ports, now, notes) -> list[ExpiryFact]:
    """`facts` with the token listing's entry for the current token. Picked by, in order:
    WATCHDOG_PAT_AUTHORIZATION_ID, the watchdog's own record of this token (a sure match), the Key Vault
    `authorizationId` claim, a Key Vault date, the only active PAT of the user (other tokens' IDs the record
    knows left out), else the earliest (a guess). Claims the listing disproves are dropped first."""
    token = obs.current
    listing = ports.listings.get(live.user_id, lambda: ports.devops.list_tokens(token))
    if listing.unavailable:
        notes.append(Note(R.LISTING_UNAVAILABLE.name, listing.unavailable))
        obs.record = obs.record.learned(token.digest, TokenFacts(user=live.user_id, seen=now))
        return facts
    exclude, others = obs.record.known_ids(token.digest), _others_expire(obs)
    entries = L.Entries.of(listing.entries)
    facts = _unconfirmed(facts, entries, now, live.user_id, notes)
    kv = next((f for f in facts if f.source == "keyvault"), None)
    recorded = obs.record.facts(token.digest)
    known_expiry = kv.expires_on if kv else None
    by, wanted = next(((by, wanted) for by, wanted in (
        ("setting", settings.pat_authorization_id),
        ("record", recorded and recorded.verified and recorded.authorization_id),
        ("tag", kv and kv.authorization_id)) if wanted), (None, None))
    match = L.match_entry(listing.entries, now, authorization_id=wanted, user_id=live.user_id,
                          known_expiry=known_expiry, exclude=exclude, others_expire=others)
    if match.not_found and by == "setting":
        notes.append(Note(R.PAT_NOT_IN_LISTING.name, f"WATCHDOG_PAT_AUTHORIZATION_ID={match.not_found} matches "
                          f"none of the {len(listing.entries)} active tokens in the listing; it is not used"))
        return facts
    if match.not_found:     # the recorded or claimed PAT is not listed: match without it
        by = None
        match = L.match_entry(listing.entries, now, user_id=live.user_id, known_expiry=known_expiry,
                              exclude=exclude, others_expire=others)
    if match.entry is None:
        obs.record = obs.record.learned(token.digest, TokenFacts(user=live.user_id, seen=now, kv_date=known_expiry),
                                        replace_match=True)
        return facts
    among = sum(1 for e in listing.entries if e.get("userId") in (None, live.user_id)) if match.ambiguous else 1
    matched_by = by if match.how == "id" else match.how
    earlier = _moved(recorded, match.entry, entries, notes)
    if earlier is not None:   # the entry matched for this token before still stands: the earlier answer wins
        fact = replace(L.fact_from_entry(earlier, matched_by=recorded.matched_by, ambiguous=bool(recorded.ambiguous)),
                       detail=f"the token listing's entry matched on {format_utc(recorded.seen)}")
        obs.record = obs.record.learned(token.digest, TokenFacts(user=live.user_id, seen=now))
        return facts + [fact]
    ambiguous = match.ambiguous or _claims_contradict(matched_by, match.entry, known_expiry,
                                                      entries, now, live.user_id, notes)
    if matched_by in ("tag", "date") and not ambiguous and _only(entries, now, live.user_id, exclude, match.entry):
        matched_by = "only"      # the claim agrees with the one sure answer: the user's only other-free PAT
    fact = L.fact_from_entry(match.entry, ambiguous=ambiguous, among=among, matched_by=matched_by)
    # The answer is recorded as it was matched, so later runs that skip the listing conclude the same;
    # only a verified match ever picks exclusions, revocations or a created PAT's scopes.
    obs.record = obs.record.learned(token.digest, TokenFacts(
        live.user_id, fact.global_pat, fact.authorization_id, fact.expires_on, fact.scopes, now, matched_by,
        fact.ambiguous, known_expiry), replace_match=True)
    return facts + [fact]

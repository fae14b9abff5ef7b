"""Gather: everything about one Aggregator instance, into a frozen snapshot (section 2, step 1)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from pat_watchdog.core import drift
from pat_watchdog.core import listing as L
from pat_watchdog.core import reasons as R
from pat_watchdog.core import references
from pat_watchdog.core.candidates import select_candidate, version_fact
from pat_watchdog.core.errors import EmptySecret, ServiceError, WatchdogError
from pat_watchdog.core.model import ExpiryFact, InstanceSnapshot, LiveCheck, Liveness, Note
from pat_watchdog.core.policy import GLOBAL_PAT_CUTOFF
from pat_watchdog.core.resource_ids import ResourceId
from pat_watchdog.core.secret import Token, looks_like_pat
from pat_watchdog.core.settings import Settings
from pat_watchdog.core.tags import FINGERPRINT_TAG, SecretVersion, TagLimitError, has_room
from pat_watchdog.hooks import observe_hooks
from pat_watchdog.ports import Ports

log = logging.getLogger(__name__)


class NotAllowed(WatchdogError):
    """The token setting's reference points where the watchdog may not follow (DESIGN 3.9)."""


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
    fingerprints: dict[str, str] = field(default_factory=dict)
    unusable: dict[str, str] = field(default_factory=dict)     # staged versions that hold no token, and why


def observe(app: ResourceId, settings: Settings, ports: Ports, now: datetime, *, write: bool) -> Observed:
    """Read settings, check the token, read the staging vault; never raises for one instance."""
    base = InstanceSnapshot(app_id=str(app), name=app.site)
    try:
        app_settings = ports.apps.list_settings(app)
    except ServiceError as error:
        return Observed(replace(base, unreachable=Note(R.ARM_UNREACHABLE.name, str(error))), app)
    obs = Observed(replace(base, name=ports.apps.site_name(app)), app, settings=app_settings)
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
        facts += _staged(obs, settings, ports, now, write, notes)
    if obs.current and live.state is Liveness.VALID and _listing_needed(facts, settings, now):
        facts += _listing(obs.current, live, facts, settings, ports, now, notes, _other_tokens(obs))
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
    return obs


def _read_token(obs: Observed, settings: Settings, ports: Ports) -> None:
    raw = obs.settings.get(settings.token_setting)
    snap = replace(obs.snapshot, token_type=obs.settings.get("Aggregator_VstsTokenType"))
    if raw and references.is_reference(raw):
        try:
            ref = references.parse_reference(raw, settings.arm_endpoint)
        except ValueError as error:
            raise WatchdogError(f"{settings.token_setting} holds a malformed Key Vault reference: {error}") from None
        why = references.not_allowed(ref, settings.followable_vaults(), settings.own_secrets(obs.app.site))
        if why:
            raise NotAllowed(why)
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
    missing = None if settings.token_setting in obs.settings else settings.token_setting
    obs.snapshot = replace(snap, token_present=obs.current is not None, missing_setting=missing,
                           token_fingerprint=obs.current.fingerprint if obs.current else None)


def _drift(obs: Observed, settings: Settings, ports: Ports) -> str | None:
    """What changed in the token setting since the last `run` remembered it (read once per run)."""
    try:
        memories = ports.once.get("memories", ports.ledger.memories)
    except ServiceError as error:    # not a verdict: the next run tells
        log.warning("the last run's memory is unreadable: %s", error)
        return None
    form = drift.form_of(obs.snapshot.key_vault_reference)
    return drift.describe(memories.get(obs.app.key), obs.snapshot.token_fingerprint, form, settings.token_setting)


def _platform_view(app: ResourceId, setting: str, ports: Ports) -> dict:
    """How App Service itself resolved the reference, with Aggregator's identity (DESIGN 3.8): the
    watchdog reading the secret proves nothing about what Aggregator gets."""
    try:
        found = ports.apps.reference_status(app, setting)
    except ServiceError as error:   # not a verdict: the next run asks again
        log.warning("reference status of %s unavailable: %s", app.site, error)
        return {}
    return {"reference_status": found.status, "reference_details": found.details}


def _staged(obs, settings, ports, now, write, notes) -> list[ExpiryFact]:
    """Versions of the staged secret: expiry source 1 and the candidate."""
    staged_name = settings.secret_names(obs.app.site)[0]
    vault = ports.vaults.get(settings.key_vault_url)
    try:
        obs.staged = vault.versions(staged_name)
        obs.fingerprints = _fingerprints(vault, obs.staged, write, obs.unusable)
    except ServiceError as error:
        notes.append(Note(R.KEYVAULT_UNAVAILABLE.name, str(error)))
        return []
    candidate = select_candidate(obs.staged, now, obs.fingerprints, obs.unusable)
    obs.snapshot = replace(obs.snapshot, candidate=candidate)
    current_fp = obs.current.fingerprint if obs.current else None
    same = [v for v in obs.staged if current_fp and obs.fingerprints.get(v.version) == current_fp]
    if not same:
        return []
    version = max(same, key=lambda v: v.created_on)
    return [replace(version_fact(version, f"staged secret {staged_name}/{version.version}"),
                    secret=(settings.key_vault_url, staged_name, version.version))]


def _fingerprints(vault, versions: list[SecretVersion], write: bool, unusable: dict[str, str]) -> dict[str, str]:
    """Fingerprint of every usable version: from its tag, else read once (and tagged in `run`).
    A version that holds no token is set aside with the reason: it never hides the current token's state."""
    found = {}
    for index, version in enumerate(versions):
        if version.tags.get(FINGERPRINT_TAG):
            found[version.version] = version.tags[FINGERPRINT_TAG]
            continue
        if not version.enabled:
            continue
        try:
            token, _ = vault.read(version.name, version.version)
        except EmptySecret:
            unusable[version.version] = f"version {version.version} holds no token (empty or white space only)"
            continue
        found[version.version] = token.fingerprint
        if write:  # later steps merge into these tags: keep the list current
            versions[index] = _remember_fingerprint(vault, version, token.fingerprint)
    return found


def _remember_fingerprint(vault, version: SecretVersion, fp: str) -> SecretVersion:
    if not has_room(version.tags):  # left untouched; the policy reports TAG_LIMIT for a candidate
        return version
    try:
        return vault.set_tags(version, {FINGERPRINT_TAG: fp})
    except (ServiceError, TagLimitError) as error:
        log.warning("could not remember the fingerprint of %s: %s", version.version, error)
        return version


def _listing_needed(facts: list[ExpiryFact], settings: Settings, now: datetime) -> bool:
    """Only the listing knows what Key Vault does not: and whether the PAT is global, which
    matters until global PATs stop working (after that a global PAT fails connectionData)."""
    known = [f for f in facts if f.expires_on is not None]
    global_unknown = now < GLOBAL_PAT_CUTOFF and all(f.global_pat is None for f in facts)
    # A Key Vault date is a person's record: before it raises an alert or a rotation, Azure DevOps
    # confirms it (the PAT may have been extended in place, DESIGN 3.8). Healthy instances skip this.
    horizon = now + timedelta(days=max(settings.warn_days + (settings.rotate_within_days,)))
    to_confirm = any(f.source == "keyvault" and f.expires_on <= horizon for f in known)
    return (not known or not any(f.scopes for f in facts) or bool(settings.pat_authorization_id) or global_unknown
            or to_confirm)


def _other_tokens(obs: Observed) -> tuple[frozenset[str], tuple[datetime, ...]]:
    """Staged versions that are not the current token, by authorization ID (never its listing entry)
    and, without one, by expiry (never the entry a guess picks)."""
    current = obs.current.fingerprint if obs.current else None
    others = [v for v in obs.staged if obs.fingerprints.get(v.version) != current]
    return (frozenset(v.tags["authorizationId"].lower() for v in others if v.tags.get("authorizationId")),
            tuple(v.expires_on for v in others if v.expires_on and not v.tags.get("authorizationId")))


def _listing(token, live, facts, settings, ports, now, notes, others) -> list[ExpiryFact]:
    listing = ports.listings.get(live.user_id, lambda: ports.devops.list_tokens(token))
    if listing.unavailable:
        notes.append(Note(R.LISTING_UNAVAILABLE.name, listing.unavailable))
        return []
    kv = next((f for f in facts if f.source == "keyvault"), None)
    match = L.match_entry(
        listing.entries, now, authorization_id=settings.pat_authorization_id or (kv and kv.authorization_id),
        user_id=live.user_id, known_expiry=kv.expires_on if kv else None, exclude=others[0], others_expire=others[1])
    if match.not_found and settings.pat_authorization_id:
        notes.append(Note(R.PAT_NOT_IN_LISTING.name, f"WATCHDOG_PAT_AUTHORIZATION_ID={match.not_found} matches "
                          f"none of the {len(listing.entries)} active tokens in the listing; it is not used"))
        return []
    if match.entry is None:
        return []
    among = sum(1 for e in listing.entries if e.get("userId") in (None, live.user_id)) if match.ambiguous else 1
    return [L.fact_from_entry(match.entry, ambiguous=match.ambiguous, among=among)]

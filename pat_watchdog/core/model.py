"""Plain, frozen data: what was observed (the snapshot) and what was decided (the plan)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum


class Status(str, Enum):
    """Instance and run status, Nagios-style; `rank` orders CRITICAL > UNKNOWN > WARNING > OK."""

    OK = "OK"
    WARNING = "WARNING"
    UNKNOWN = "UNKNOWN"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return {"OK": 0, "WARNING": 1, "UNKNOWN": 2, "CRITICAL": 3}[self.value]

    @property
    def exit_code(self) -> int:
        return {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}[self.value]

    @staticmethod
    def worst(statuses) -> "Status":
        return max(statuses, key=lambda s: s.rank, default=Status.OK)


class Mode(StrEnum):
    """What a run may do: `status` and `dry-run` plan only; `run` and `rotate` act."""

    STATUS = "status"
    RUN = "run"
    DRY_RUN = "dry-run"
    ROTATE = "rotate"

    @property
    def writes(self) -> bool:
        return self in (Mode.RUN, Mode.ROTATE)


class CandidateState(StrEnum):
    """A staged version's state (its `watchdog-status` tag; `pending` when untagged)."""

    NONE = "none"
    PENDING = "pending"
    REJECTED = "rejected"
    APPLYING = "applying"
    CURRENT = "current"
    FAILED = "failed"


class RotationState(StrEnum):
    """How one rotation attempt ended."""

    CURRENT = "current"          # rotated and verified
    UNRECORDED = "unrecorded"    # Aggregator uses the new token; Key Vault could not record it
    REJECTED = "rejected"
    FAILED = "failed"            # rolled back
    STOPPED = "stopped"          # someone else changed the token meanwhile
    POSTPONED = "postponed"      # nothing changed; the next run tries again


class ActionKind(StrEnum):
    ALERT = "alert"
    ROTATE = "rotate"
    ADOPT = "adopt"
    CORRECT = "correct"      # a Key Vault record brought in line with Azure DevOps (an extended PAT)
    REENABLE = "reenable"    # a service hook subscription Azure DevOps disabled, enabled again
    # `auto` rotation: a replacement PAT created and staged (docs/reference.md, "Hands-free rotation")
    CREATE = "create"
    REVOKE = "revoke"        # `auto` rotation: a replaced (or orphaned) PAT the watchdog created, revoked
    ERROR = "error"


class ActionOutcome(StrEnum):
    PLANNED = "planned"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class Liveness(str, Enum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"      # revoked, unknown or a sign-in page (203)
    UNKNOWN = "unknown"      # Azure DevOps unreachable after the retries


@dataclass(frozen=True)
class LiveCheck:
    state: Liveness
    user_id: str | None = None
    detail: str = ""
    definitive: bool = True     # False: a sign-in page or an odd answer, not Azure DevOps' verdict on the token


VERIFIED_MATCHES = ("record", "only", "created")


@dataclass(frozen=True)
class ExpiryFact:
    """What one source says about a token: expiry, scopes, whether it is a global PAT."""

    source: str                      # "keyvault" | "devops" | "setting"
    expires_on: datetime | None
    scopes: tuple[str, ...] | None = None
    global_pat: bool | None = None
    authorization_id: str | None = None
    ambiguous: bool = False
    detail: str = ""
    valid_from: datetime | None = None       # when the token was created, where the source says
    secret: tuple[str, str, str] | None = None  # Key Vault source: (vault URL, secret, version)
    # Azure DevOps source: how its entry was matched. Verified: "record" (the watchdog's own record of this
    # token), "only" (the user's only active PAT), "created" (the creation's answer). Claims or settings:
    # "tag", "date" (a Key Vault date), "setting"; "guess" is ambiguous.
    matched_by: str | None = None

    @property
    def verified(self) -> bool:
        return self.source == "devops" and self.matched_by in VERIFIED_MATCHES and not self.ambiguous


@dataclass(frozen=True)
class Note:
    """A finding made while observing, turned into a reason by the policy (e.g. TAG_LIMIT)."""

    code: str
    message: str
    level: str | None = None      # when the finding's level depends on the situation (SIGNIN_REQUIRED)


@dataclass(frozen=True)
class CandidateView:
    version: str | None = None
    state: CandidateState = CandidateState.NONE
    fingerprint: str | None = None
    expires_on: datetime | None = None
    reason: str | None = None
    scopes: tuple[str, ...] | None = None
    superseded: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()            # why newer staged versions are not the candidate
    room: bool = True                        # room for the watchdog's tags (Key Vault allows 15)
    digest: str | None = None                # SHA-256 of its value, as read: what identity compares


@dataclass(frozen=True)
class SubscriptionView:
    """A service hook subscription that calls one of this instance's rules (docs/reference.md, "Reason codes")."""

    id: str
    rule: str
    event_type: str
    project_id: str | None
    status: str                   # enabled | onProbation | disabledBySystem | disabledByUser | ...


@dataclass(frozen=True)
class InstanceSnapshot:
    """Everything gathered about one Aggregator instance, before any decision."""

    app_id: str
    name: str
    unreachable: Note | None = None          # could not be checked at all: the instance is UNKNOWN
    token_present: bool = False
    missing_setting: str | None = None       # the token setting's name when the app has no such setting
    token_fingerprint: str | None = None
    token_digest: str | None = None          # SHA-256 of the token: what identity compares (never the fingerprint)
    token_type: str | None = None
    key_vault_reference: str | None = None   # "<vault>/<secret>[/<version>]", for the report
    reference_status: str | None = None      # App Service's ResolveStatus for it (Resolved, MSINotEnabled, ...)
    reference_details: str | None = None
    live: LiveCheck = LiveCheck(Liveness.UNKNOWN)
    facts: tuple[ExpiryFact, ...] = ()
    candidate: CandidateView = CandidateView()
    notes: tuple[Note, ...] = ()
    subscriptions: tuple[SubscriptionView, ...] | None = None   # None: not checked this run
    bypass_missing: tuple[tuple[str, str], ...] = ()            # (rule, project) lacking "Bypass rules"


@dataclass(frozen=True)
class Reason:
    code: str
    level: str                               # OK | INFO | WARNING | CRITICAL | UNKNOWN
    message: str
    condition: str | None = None             # alert condition key; None: nothing to alert
    stage: str | None = None                 # e.g. the warn threshold crossed: a change even at one level


@dataclass(frozen=True)
class TokenView:
    fingerprint: str | None
    live: bool | None
    user_id: str | None
    expires_on: datetime | None
    days_left: int | None
    expiry_source: str | None
    scopes: tuple[str, ...] | None
    global_pat: bool | None
    sources: tuple[ExpiryFact, ...] = ()


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    channel: str | None
    level: str
    outcome: ActionOutcome
    detail: str
    condition: str | None = None

    @classmethod
    def rotation(cls, outcome: ActionOutcome, level: str, detail: str) -> "Action":
        return cls(ActionKind.ROTATE, None, level, outcome, detail)


@dataclass(frozen=True)
class InstancePlan:
    app_id: str
    name: str
    status: Status
    reasons: tuple[Reason, ...]
    token: TokenView
    candidate: CandidateView
    rotate: bool = False
    rotate_why: str | None = None
    adopt: bool = False
    create_setting: bool = False             # `rotate --force` into a token setting that does not exist
    forced: bool = False                     # `rotate --force`: a person means it (docs/rotation.md)
    subscriptions: tuple[SubscriptionView, ...] | None = None
    actions: tuple[Action, ...] = field(default_factory=tuple)

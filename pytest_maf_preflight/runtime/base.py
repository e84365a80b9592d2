"""``RuntimeState``: the one interface every runtime mode implements."""

from __future__ import annotations

import abc
import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

    from ..protocol.messages import Envelope

from .records import (
    AGENT_STATUSES,
    AGENT_TYPES,
    CLIMBING_STATES,
    OPEN_STATES,
    AgentRecord,
    ConfigSnapshot,
    ConflictRecord,
    DeliveryRecord,
    EscalationPathDefinition,
    EscalationRecord,
    EscalationState,
    ExecutionRecord,
    Lease,
    LeaseGrant,
    Message,
    RuntimeInfo,
    SessionBundle,
    SessionRecord,
    SmokeTestDefinition,
    now,
)


class RuntimeStateError(Exception):
    """A runtime could not do what was asked (and said why); never a half-written record."""


class RuntimeUnavailable(RuntimeStateError):
    """A mode cannot start here (unwritable directory, corrupt database, locked too long)."""


class LeaseError(RuntimeStateError):
    """A lease cannot be renewed or released: unknown, someone else's, released, or blocked."""


class EscalationError(RuntimeStateError):
    """An escalation cannot do what was asked: unknown, not open, not permitted, or a delivery
    naming an escalation the store does not have."""


class RuntimeState(abc.ABC):
    """Record and query sessions, executions, config snapshots, messages, agents, leases and
    escalations.

    Implementations: ``memory``, ``sqlite``, ``json`` (and later ``postgres``). Every write is
    atomic: a bundle is stored whole or not at all, and writing the same ids again changes
    nothing (so imports and retries are idempotent). Queries return newest first.
    """

    mode: str = ""

    # --- sessions and executions ------------------------------------------------------------

    @abc.abstractmethod
    def record_session(self, bundle: SessionBundle) -> None:
        """Store a session with its executions, snapshots, messages and conflicts, all or
        nothing."""

    @abc.abstractmethod
    def sessions(self, limit: int | None = None) -> list[SessionRecord]: ...

    @abc.abstractmethod
    def get_session(self, session_id: str) -> SessionRecord | None: ...

    @abc.abstractmethod
    def executions(self, *, config_id: str | None = None, status: str | None = None,
                   session_id: str | None = None, limit: int | None = None
                   ) -> list[ExecutionRecord]: ...

    @abc.abstractmethod
    def config_snapshots(self, config_id: str | None = None) -> list[ConfigSnapshot]: ...

    @abc.abstractmethod
    def smoke_tests(self, nodeid: str | None = None) -> list[SmokeTestDefinition]:
        """Recorded ``maf_smoke`` definitions, newest first (``recorded_at``, hash)."""

    @abc.abstractmethod
    def escalation_paths(self, path_id: str | None = None) -> list[EscalationPathDefinition]:
        """Recorded escalation path definitions, newest first (``recorded_at``, hash)."""

    # --- messages --------------------------------------------------------------------------

    def enqueue(self, message: Message | Envelope | Mapping[str, Any]) -> None:
        """Queue one message: a ``Message`` record as it is, a protocol model, or a plain
        mapping such as the original MAF passes (``{"type": "PREFLIGHT_CHECK", "agentId": ...,
        "configId": ..., "executionId": ..., "checkType": ...}``; snake_case or camelCase),
        validated first: a bad one raises ``ProtocolError`` (a ``ValueError`` naming the field)
        and nothing is written. A message id already queued changes nothing."""
        self.enqueue_many((message,))

    def enqueue_many(self, messages: Iterable[Message | Envelope | Mapping[str, Any]]) -> None:
        """Queue several messages in one write, all or none (each checked as ``enqueue``
        checks it, every one before anything is written)."""
        records = [record_of(m) for m in messages]
        if records:
            self._store_messages(records)

    @abc.abstractmethod
    def _store_messages(self, records: Sequence[Message]) -> None:
        """Store records in one write (one transaction; in the json mode one append, so a
        writer killed half-way leaves whole messages only); ids already stored keep their row
        (status included)."""

    @abc.abstractmethod
    def dequeue(self, recipient: str | None = None, limit: int = 1) -> list[Message]:
        """Oldest queued messages (for ``recipient``, or any), marked ``delivered``."""

    @abc.abstractmethod
    def ack(self, message_id: str) -> bool:
        """Mark a message ``acked``, whatever its status; False when there is no such
        message."""

    @abc.abstractmethod
    def messages(self, status: str | None = None, *, types: Sequence[str] | None = None,
                 agent_id: str | None = None, since: float | None = None) -> list[Message]:
        """Messages oldest first (``created_at``, ``id``), optionally only one status, some
        types, one sending agent, or those created at or after ``since``."""

    # --- agents ----------------------------------------------------------------------------

    @abc.abstractmethod
    def heartbeat(self, agent_id: str, at: float | None = None,
                  details: dict[str, Any] | None = None, *, agent_type: str = "worker",
                  capabilities: Sequence[str] = (), status: str = "active") -> AgentRecord:
        """Record that the agent is alive, replacing what its previous heartbeat said.

        ``agent_type`` and ``status`` are the seed's (``AGENT_TYPES``, ``AGENT_STATUSES``);
        bad ones raise ``ValueError`` before any write (``checked_agent_fields``).
        """

    @abc.abstractmethod
    def agents(self) -> list[AgentRecord]: ...

    # --- leases (SPEC S3) -------------------------------------------------------------------
    #
    # Leases are live state shared by every process of a project: each call below is one
    # atomic step across processes, and ``now`` (injectable for tests) defaults to the clock
    # read once the store is locked, so a caller that waited for the lock does not stamp its
    # lease with the moment it started waiting.

    @abc.abstractmethod
    def acquire_leases(self, agent_id: str, patterns: Sequence[str], *, exclusive: bool = True,
                       ttl: float, reason: str = "", now: float | None = None) -> LeaseGrant:
        """Lease every pattern for ``ttl`` seconds, or none of them.

        Blocked by another agent's active lease when at least one side is exclusive and the
        patterns overlap; the agent's own leases never block it, expired ones block nobody.
        Each granted lease gets a new fencing token. Bad patterns, a ``ttl`` that is not a
        positive finite number or an empty agent id raise ``ValueError`` before any write.
        """

    @abc.abstractmethod
    def renew_lease(self, lease_id: str, agent_id: str, *, ttl: float,
                    now: float | None = None) -> Lease:
        """Extend the owner's lease to ``max(now, expires_at) + ttl`` with a new fencing token.

        ``LeaseError`` when the lease is unknown, someone else's, released, or (an expired
        lease taken over meanwhile) blocked by another agent's active lease.
        """

    @abc.abstractmethod
    def release_lease(self, lease_id: str, agent_id: str, *, now: float | None = None) -> Lease:
        """Release the owner's lease; ``LeaseError`` when it is unknown or someone else's.

        Releasing a released lease again changes nothing and returns it as it is (so a
        retried release is harmless).
        """

    @abc.abstractmethod
    def release_stale_leases(self, *, now: float | None = None,
                             idle_agent_seconds: float | None = None) -> list[Lease]:
        """Force-release every expired lease and, with ``idle_agent_seconds``, every lease of
        an agent whose last heartbeat is older than that (agents that never sent one are left
        alone); the leases released, newest first."""

    @abc.abstractmethod
    def leases(self, *, active_only: bool = True, agent_id: str | None = None,
               now: float | None = None) -> list[Lease]:
        """Leases newest first (``created_at``, ``id``); by default only those active now."""

    # --- reservation conflicts ---------------------------------------------------------------

    @abc.abstractmethod
    def record_conflicts(self, conflicts: Sequence[ConflictRecord]) -> None:
        """Store conflicts found outside a session (a git hook) in one write, idempotently by
        id (the first record of an id stays); inside a session they travel in its
        ``SessionBundle``."""

    @abc.abstractmethod
    def reservation_conflicts(self, *, session_id: str | None = None,
                              limit: int | None = None) -> list[ConflictRecord]:
        """Recorded conflicts newest first (``detected_at``, ``id``)."""

    # --- escalations (SPEC S4) ---------------------------------------------------------------
    #
    # Live state like leases: every call is one atomic step across processes, ``now`` defaults
    # to the clock read once the store is locked, and the rules (what may change, from which
    # state) live in the functions below this class, so the modes cannot drift apart. Every
    # mapping stored (snapshot, details, response) is normalized to plain JSON first, so each
    # mode hands back the same data. Bad arguments raise ``ValueError`` before any write.

    @abc.abstractmethod
    def open_escalation(self, *, path_id: str, dedup_key: str, check_id: str | None,
                        failure_class: str | None, path_snapshot: Mapping[str, Any],
                        next_action_at: float | None, details: Mapping[str, Any],
                        now: float | None = None) -> tuple[EscalationRecord, bool]:
        """The open escalation of ``dedup_key`` with one more occurrence, ``(it, False)``; or,
        when none is open (a resolved or expired one does not count), a new one: state
        ``triggered``, level 1, one occurrence, ``(it, True)``."""

    @abc.abstractmethod
    def claim_escalation(self, escalation_id: str, *, expect_level: int,
                         expect_next_action_at: float | None, level: int,
                         next_action_at: float | None, state: EscalationState,
                         details: Mapping[str, Any] | None = None,
                         now: float | None = None) -> EscalationRecord | None:
        """Compare-and-set: move the escalation to ``level``/``next_action_at``/``state`` (and
        ``details``, when given) only while it is still climbing (``triggered`` or
        ``escalated``) at ``expect_level`` with ``expect_next_action_at``; else ``None``.

        Of any number of callers expecting the same (level, deadline), exactly one wins: that
        is how a tick earns the right to deliver a level. ``state`` is ``triggered``,
        ``escalated`` or ``expired`` (which clears ``next_action_at``). Comparing the floats
        with ``==`` is safe: both sides are the value the store handed out.
        """

    @abc.abstractmethod
    def transition_escalation(self, escalation_id: str, *, state: EscalationState,
                              by: str | None, from_states: Sequence[EscalationState],
                              now: float | None = None) -> EscalationRecord | None:
        """Move the escalation to ``acknowledged`` (who and when; the climb stops),
        ``resolved`` (who and when) or ``expired``, each clearing ``next_action_at``; only
        from ``from_states``, else (or for an unknown id) ``None``."""

    @abc.abstractmethod
    def get_escalation(self, escalation_id: str) -> EscalationRecord | None: ...

    @abc.abstractmethod
    def escalations(self, *, states: Sequence[str] | None = None, path_id: str | None = None,
                    check_id: str | None = None, limit: int | None = None
                    ) -> list[EscalationRecord]:
        """Escalations newest first (``created_at``, ``id``), optionally filtered."""

    @abc.abstractmethod
    def due_escalations(self, now: float) -> list[EscalationRecord]:
        """Climbing escalations whose ``next_action_at`` is at or before ``now``, the earliest
        deadline first (then ``created_at``, ``id``)."""

    @abc.abstractmethod
    def record_delivery(self, delivery: DeliveryRecord) -> None:
        """Log one delivery attempt; ``EscalationError`` when the escalation is unknown."""

    @abc.abstractmethod
    def deliveries(self, escalation_id: str | None = None) -> list[DeliveryRecord]:
        """Delivery attempts oldest first (``attempted_at``, then the order recorded)."""

    # --- the rest --------------------------------------------------------------------------

    @abc.abstractmethod
    def info(self) -> RuntimeInfo: ...

    def close(self) -> None:  # noqa: B027 - optional for modes holding nothing open
        """Release files and connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The query rules, in one place, for the modes that filter in Python (memory, json); the SQLite
# mode says the same in SQL.

def checked_limit(limit: int | None) -> int | None:
    """Limits are counts: a negative one is a caller's mistake in every mode."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be at least 0, got {limit}")
    return limit


def newest_sessions(rows: Iterable[SessionRecord], limit: int | None) -> list[SessionRecord]:
    out = sorted(rows, key=lambda s: (s.started_at, s.id), reverse=True)
    return out[:checked_limit(limit)]


def newest_snapshots(rows: Iterable[ConfigSnapshot], config_id: str | None
                     ) -> list[ConfigSnapshot]:
    return sorted((s for s in rows if config_id is None or s.config_id == config_id),
                  key=lambda s: (s.recorded_at, s.content_hash), reverse=True)


def record_of(message: Message | Envelope | Mapping[str, Any]) -> Message:
    """A message as the record a mode stores (``protocol.messages.as_record``); pydantic is
    imported only for what is not already a record."""
    if isinstance(message, Message):
        return message
    from ..protocol.messages import as_record

    return as_record(message)


def messages_in_order(rows: Iterable[Message], status: str | None = None,
                      recipient: str | None = None, *, types: Sequence[str] | None = None,
                      agent_id: str | None = None, since: float | None = None
                      ) -> list[Message]:
    """Oldest first, optionally only one status, one recipient, some types, one sender, or
    created at or after ``since``."""
    return sorted((m for m in rows if (status is None or m.status == status)
                   and (recipient is None or m.recipient == recipient)
                   and (types is None or m.type in types)
                   and (agent_id is None or m.agent_id == agent_id)
                   and (since is None or m.created_at >= since)),
                  key=lambda m: (m.created_at, m.id))


def message_filters(status: str | None, types: Sequence[str] | None, agent_id: str | None,
                    since: float | None, placeholder: str) -> tuple[str, list[Any]]:
    """``messages()``'s filters as a SQL ``WHERE`` clause (empty for none) and its
    parameters, for the SQL modes (``placeholder``: ``?`` or ``%s``)."""
    clauses: list[str] = []
    params: list[Any] = []
    if status is not None:
        clauses.append(f"status = {placeholder}")
        params.append(status)
    if types is not None:
        if not types:
            return " WHERE 1 = 0", []
        clauses.append(f"type IN ({', '.join([placeholder] * len(types))})")
        params.extend(types)
    if agent_id is not None:
        clauses.append(f"agent_id = {placeholder}")
        params.append(agent_id)
    if since is not None:
        clauses.append(f"created_at >= {placeholder}")
        params.append(since)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def newest_definitions(rows: Iterable[Any], key: str, wanted: str | None) -> list[Any]:
    """Smoke test or escalation path definitions (``key``: the id field), newest first."""
    return sorted((d for d in rows if wanted is None or getattr(d, key) == wanted),
                  key=lambda d: (d.recorded_at, d.content_hash), reverse=True)


#: Longest capability name, and most capabilities per agent: names, not documents.
MAX_CAPABILITY_LENGTH = 100
MAX_CAPABILITIES = 64


def checked_agent_fields(agent_type: str, capabilities: Sequence[str], status: str
                         ) -> tuple[str, tuple[str, ...], str]:
    """A heartbeat's type, capabilities (each once, order kept) and status; ``ValueError`` for
    bad ones."""
    if agent_type not in AGENT_TYPES:
        raise ValueError(f"agent type must be one of {', '.join(AGENT_TYPES)}; "
                         f"got {agent_type!r}")
    if status not in AGENT_STATUSES:
        raise ValueError(f"agent status must be one of {', '.join(AGENT_STATUSES)}; "
                         f"got {status!r}")
    if isinstance(capabilities, (str, bytes)):
        # One string would otherwise become one capability per character.
        raise ValueError(f"capabilities must be a list of names, not one string: "
                         f"{capabilities!r}")
    out: list[str] = []
    for name in capabilities:
        if (not isinstance(name, str) or not name.strip() or name != name.strip()
                or len(name) > MAX_CAPABILITY_LENGTH or not name.isprintable()):
            raise ValueError(f"a capability must be a printable name of 1 to "
                             f"{MAX_CAPABILITY_LENGTH} characters without surrounding "
                             f"spaces, got {name!r}")
        if name not in out:
            out.append(name)
    if len(out) > MAX_CAPABILITIES:
        raise ValueError(f"an agent has at most {MAX_CAPABILITIES} capabilities, "
                         f"got {len(out)}")
    return agent_type, tuple(out), status


def agent_record(agent_id: str, at: float, details: Mapping[str, Any] | None, *,
                 agent_type: str, capabilities: Sequence[str], status: str) -> AgentRecord:
    """A heartbeat's record, every field checked (``ValueError`` before any write)."""
    kind, names, state = checked_agent_fields(agent_type, capabilities, status)
    return AgentRecord(checked_agent(agent_id), at, dict(details or {}), agent_type=kind,
                       capabilities=names, status=state)


def filter_executions(rows: Sequence[ExecutionRecord], *, config_id: str | None,
                      status: str | None, session_id: str | None, limit: int | None
                      ) -> list[ExecutionRecord]:
    out = [r for r in rows
           if (config_id is None or r.config_id == config_id)
           and (status is None or r.status == status)
           and (session_id is None or r.session_id == session_id)]
    out.sort(key=lambda r: (r.started_at, r.id), reverse=True)
    return out[:checked_limit(limit)]


# --- leases: the rules every mode applies the same way -----------------------------------------

def at_or_now(given: float | None) -> float:
    """The moment a lease operation happens: the injected ``now``, else the clock."""
    return now() if given is None else given


def checked_time(value: float | None, name: str = "now") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return float(value)


def checked_ttl(ttl: float) -> float:
    if (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl)
            or ttl <= 0):
        raise ValueError(f"ttl must be a positive finite number of seconds, got {ttl!r}")
    return float(ttl)


def checked_agent(agent_id: str) -> str:
    if not isinstance(agent_id, str) or not agent_id.strip():
        raise ValueError(f"agent id must be a non-empty string, got {agent_id!r}")
    return agent_id


def checked_patterns(patterns: Sequence[str]) -> tuple[str, ...]:
    """The patterns normalized, duplicates dropped (order kept); ``ValueError`` for bad ones."""
    from ..reservations.patterns import validate_pattern

    if isinstance(patterns, (str, bytes)):
        # A lone string would otherwise be leased one character at a time.
        raise ValueError(f"patterns must be a list of patterns, not one string: {patterns!r}")
    normalized: list[str] = []
    for raw in patterns:
        if not isinstance(raw, str):
            raise ValueError(f"a lease pattern must be a string, got {raw!r}")
        normalized.append(validate_pattern(raw))
    if not normalized:
        raise ValueError("acquire needs at least one pattern")
    return tuple(dict.fromkeys(normalized))


@dataclasses.dataclass(frozen=True)
class LeaseRequest:
    """An acquire's arguments, checked and normalized before the store is touched."""

    agent_id: str
    patterns: tuple[str, ...]
    exclusive: bool
    ttl: float
    reason: str
    now: float | None

    @classmethod
    def check(cls, agent_id: str, patterns: Sequence[str], *, exclusive: bool, ttl: float,
              reason: str, now: float | None) -> LeaseRequest:
        if not isinstance(exclusive, bool):
            raise ValueError(f"exclusive must be true or false, got {exclusive!r}")
        if not isinstance(reason, str):
            raise ValueError(f"reason must be a string, got {reason!r}")
        return cls(checked_agent(agent_id), checked_patterns(patterns), exclusive,
                   checked_ttl(ttl), reason, checked_time(now))

    def leases(self, ids: Sequence[str], first_token: int, at: float) -> tuple[Lease, ...]:
        """The granted leases, fencing tokens ``first_token``, ``first_token + 1``, ..."""
        return tuple(Lease(id=lease_id, agent_id=self.agent_id, path_pattern=pattern,
                           exclusive=self.exclusive, reason=self.reason, created_at=at,
                           expires_at=at + self.ttl, released_at=None,
                           fencing_token=first_token + n)
                     for n, (lease_id, pattern) in enumerate(zip(ids, self.patterns,
                                                                strict=True)))


def blocking_leases(held: Iterable[Lease], agent_id: str, patterns: Sequence[str],
                    exclusive: bool, at: float) -> list[Lease]:
    """The leases in ``held`` that block ``agent_id`` from ``patterns``, newest first."""
    from ..reservations.patterns import patterns_overlap

    out = [lease for lease in held
           if lease.agent_id != agent_id and lease.active(at)
           and (exclusive or lease.exclusive)
           and any(patterns_overlap(lease.path_pattern, p) for p in patterns)]
    return newest_leases(out)


def _holders(blocking: Sequence[Lease]) -> str:
    return ", ".join(f"{b.path_pattern!r} held by agent {b.agent_id!r} (lease {b.id}, "
                     f"expires at {b.expires_at:.3f})" for b in blocking)


def owned_lease(lease: Lease | None, lease_id: str, agent_id: str) -> Lease:
    """The lease when ``agent_id`` owns it, else ``LeaseError`` saying who does."""
    if lease is None:
        raise LeaseError(f"no lease {lease_id!r}")
    if lease.agent_id != agent_id:
        raise LeaseError(f"lease {lease_id} is held by agent {lease.agent_id!r}, "
                         f"not {agent_id!r}")
    return lease


def renewed_lease(lease: Lease, agent_id: str, ttl: float, at: float, token: int,
                  held: Iterable[Lease]) -> Lease:
    """``lease`` renewed by its owner, or ``LeaseError``; ``held``: every lease to check against.

    A live lease is checked as well as an expired one: clocks of two processes can disagree,
    and no double exclusive grant is worth a refused renewal.
    """
    if lease.released_at is not None:
        raise LeaseError(f"lease {lease.id} was released at {lease.released_at:.3f} and "
                         f"cannot be renewed; acquire a new one")
    blocking = blocking_leases(held, agent_id, (lease.path_pattern,), lease.exclusive, at)
    if blocking:
        raise LeaseError(f"lease {lease.id} cannot be renewed: {_holders(blocking)}")
    return dataclasses.replace(lease, expires_at=max(at, lease.expires_at) + ttl,
                               fencing_token=token)


def stale_leases(rows: Iterable[Lease], agents: Iterable[AgentRecord], at: float,
                 idle_agent_seconds: float | None) -> list[Lease]:
    """The unreleased leases ``release_stale_leases`` releases, newest first."""
    idle: set[str] = set()
    if idle_agent_seconds is not None:
        cutoff = at - idle_agent_seconds
        idle = {a.id for a in agents if a.last_heartbeat < cutoff}
    return newest_leases(lease for lease in rows if lease.released_at is None
                         and (lease.expires_at <= at or lease.agent_id in idle))


def checked_idle(idle_agent_seconds: float | None) -> float | None:
    value = checked_time(idle_agent_seconds, "idle_agent_seconds")
    if value is not None and value < 0:
        raise ValueError(f"idle_agent_seconds must be at least 0, got {idle_agent_seconds!r}")
    return value


def newest_leases(rows: Iterable[Lease]) -> list[Lease]:
    return sorted(rows, key=lambda lease: (lease.created_at, lease.id), reverse=True)


def filter_leases(rows: Iterable[Lease], *, active_only: bool, agent_id: str | None,
                  at: float) -> list[Lease]:
    return newest_leases(lease for lease in rows
                         if (not active_only or lease.active(at))
                         and (agent_id is None or lease.agent_id == agent_id))


def newest_conflicts(rows: Iterable[ConflictRecord], session_id: str | None,
                     limit: int | None) -> list[ConflictRecord]:
    out = sorted((c for c in rows if session_id is None or c.session_id == session_id),
                 key=lambda c: (c.detected_at, c.id), reverse=True)
    return out[:checked_limit(limit)]


# --- escalations: the rules every mode applies the same way ------------------------------------

ESCALATION_STATES: tuple[EscalationState, ...] = (
    "triggered", "acknowledged", "escalated", "resolved", "expired")
#: Where ``claim_escalation`` may move an escalation (the by/at states go through
#: ``transition_escalation``).
CLAIM_STATES: tuple[EscalationState, ...] = ("triggered", "escalated", "expired")
#: Where ``transition_escalation`` may move one. Never back into an open state: that could
#: make two escalations of one dedup key open at once.
TRANSITION_STATES: tuple[EscalationState, ...] = ("acknowledged", "resolved", "expired")
DELIVERY_STATUSES = ("delivered", "failed", "fallback")

_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str, allow_nan=False)


def plain_json(value: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``value`` as plain JSON data (what every mode stores and hands back).

    Values that are not JSON (a Path, a datetime) become their text, as in the SQLite mode's
    other records; NaN, infinities and cycles are refused.
    """
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping, got {type(value).__name__}")
    try:
        out = json.loads(_JSON.encode(dict(value)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} cannot be stored as JSON: {exc}") from exc
    return dict(out)


def _checked_text(value: Any, name: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _checked_level(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    return value


def _checked_state(value: Any, allowed: Sequence[str], name: str = "state") -> EscalationState:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value  # type: ignore[no-any-return]


def checked_states(states: Sequence[str] | None, name: str = "states"
                   ) -> tuple[EscalationState, ...] | None:
    if states is None:
        return None
    if isinstance(states, (str, bytes)):
        # One string would otherwise be matched one character at a time.
        raise ValueError(f"{name} must be a list of states, not one string: {states!r}")
    return tuple(_checked_state(s, ESCALATION_STATES, f"each of {name}") for s in states)


@dataclasses.dataclass(frozen=True)
class EscalationOpening:
    """An ``open_escalation``'s arguments, checked and normalized before the store is touched."""

    path_id: str
    dedup_key: str
    check_id: str | None
    failure_class: str | None
    path_snapshot: dict[str, Any]
    next_action_at: float | None
    details: dict[str, Any]
    now: float | None

    @classmethod
    def check(cls, *, path_id: str, dedup_key: str, check_id: str | None,
              failure_class: str | None, path_snapshot: Mapping[str, Any],
              next_action_at: float | None, details: Mapping[str, Any],
              now: float | None) -> EscalationOpening:
        return cls(path_id=_checked_text(path_id, "path_id"),
                   dedup_key=_checked_text(dedup_key, "dedup_key"),
                   check_id=_checked_text(check_id, "check_id", optional=True),
                   failure_class=_checked_text(failure_class, "failure_class", optional=True),
                   path_snapshot=plain_json(path_snapshot, "path_snapshot"),
                   next_action_at=checked_time(next_action_at, "next_action_at"),
                   details=plain_json(details, "details"), now=checked_time(now))

    def record(self, escalation_id: str, at: float) -> EscalationRecord:
        return EscalationRecord(
            id=escalation_id, path_id=self.path_id, dedup_key=self.dedup_key,
            check_id=self.check_id, failure_class=self.failure_class, state="triggered",
            level=1, occurrences=1, path_snapshot=self.path_snapshot, created_at=at,
            updated_at=at, next_action_at=self.next_action_at, details=self.details)


def open_for_key(rows: Iterable[EscalationRecord], dedup_key: str) -> EscalationRecord | None:
    """The open escalation of ``dedup_key`` (the oldest, should a store ever hold two)."""
    found = [r for r in rows if r.dedup_key == dedup_key and r.state in OPEN_STATES]
    return min(found, key=lambda r: (r.created_at, r.id)) if found else None


def another_occurrence(record: EscalationRecord, at: float) -> EscalationRecord:
    return dataclasses.replace(record, occurrences=record.occurrences + 1, updated_at=at)


@dataclasses.dataclass(frozen=True)
class EscalationClaim:
    """A ``claim_escalation``'s arguments, checked."""

    expect_level: int
    expect_next_action_at: float | None
    level: int
    next_action_at: float | None
    state: EscalationState
    details: dict[str, Any] | None
    now: float | None

    @classmethod
    def check(cls, *, expect_level: int, expect_next_action_at: float | None, level: int,
              next_action_at: float | None, state: EscalationState,
              details: Mapping[str, Any] | None, now: float | None) -> EscalationClaim:
        state = _checked_state(state, CLAIM_STATES)
        next_at = checked_time(next_action_at, "next_action_at")
        return cls(expect_level=_checked_level(expect_level, "expect_level"),
                   expect_next_action_at=checked_time(expect_next_action_at,
                                                      "expect_next_action_at"),
                   level=_checked_level(level, "level"),
                   next_action_at=None if state == "expired" else next_at, state=state,
                   details=None if details is None else plain_json(details, "details"),
                   now=checked_time(now))

    def apply(self, record: EscalationRecord | None, at: float) -> EscalationRecord | None:
        """The claimed record, or ``None`` when ``record`` is not what the claimer expected."""
        if (record is None or record.state not in CLIMBING_STATES
                or record.level != self.expect_level
                or record.next_action_at != self.expect_next_action_at):
            return None
        return dataclasses.replace(
            record, level=self.level, next_action_at=self.next_action_at, state=self.state,
            details=record.details if self.details is None else self.details, updated_at=at)


@dataclasses.dataclass(frozen=True)
class EscalationTransition:
    """A ``transition_escalation``'s arguments, checked."""

    state: EscalationState
    by: str | None
    from_states: tuple[EscalationState, ...]
    now: float | None

    @classmethod
    def check(cls, *, state: EscalationState, by: str | None,
              from_states: Sequence[EscalationState], now: float | None
              ) -> EscalationTransition:
        froms = checked_states(from_states, "from_states")
        if not froms:
            raise ValueError("from_states must name at least one state")
        return cls(state=_checked_state(state, TRANSITION_STATES),
                   by=_checked_text(by, "by", optional=True), from_states=froms,
                   now=checked_time(now))

    def apply(self, record: EscalationRecord | None, at: float) -> EscalationRecord | None:
        if record is None or record.state not in self.from_states:
            return None
        changed = dataclasses.replace(record, state=self.state, next_action_at=None,
                                      updated_at=at)
        if self.state == "acknowledged":
            return dataclasses.replace(changed, acknowledged_by=self.by, acknowledged_at=at)
        if self.state == "resolved":
            return dataclasses.replace(changed, resolved_by=self.by, resolved_at=at)
        return changed


def filter_escalations(rows: Iterable[EscalationRecord], *, states: Sequence[str] | None,
                       path_id: str | None, check_id: str | None, limit: int | None
                       ) -> list[EscalationRecord]:
    wanted = checked_states(states)
    checked_limit(limit)
    out = sorted((r for r in rows if (wanted is None or r.state in wanted)
                  and (path_id is None or r.path_id == path_id)
                  and (check_id is None or r.check_id == check_id)),
                 key=lambda r: (r.created_at, r.id), reverse=True)
    return out[:limit]


def required_time(at: float, name: str = "now") -> float:
    value = checked_time(at, name)
    if value is None:
        raise ValueError(f"{name} must be a finite number of seconds, got None")
    return value


def due_in_order(rows: Iterable[EscalationRecord], at: float) -> list[EscalationRecord]:
    due = [r for r in rows if r.state in CLIMBING_STATES and r.next_action_at is not None
           and r.next_action_at <= at]
    return sorted(due, key=lambda r: (r.next_action_at, r.created_at, r.id))


def checked_delivery(delivery: DeliveryRecord) -> DeliveryRecord:
    """The delivery with its response as plain JSON; ``ValueError`` for a malformed one."""
    if not isinstance(delivery, DeliveryRecord):
        raise ValueError(f"a delivery must be a DeliveryRecord, got {type(delivery).__name__}")
    _checked_text(delivery.escalation_id, "escalation_id")
    _checked_level(delivery.level, "level")
    _checked_text(delivery.channel, "channel")
    _checked_text(delivery.target, "target")
    _checked_level(delivery.attempt, "attempt")
    if delivery.status not in DELIVERY_STATUSES:
        raise ValueError(f"delivery status must be one of {', '.join(DELIVERY_STATUSES)}; "
                         f"got {delivery.status!r}")
    if delivery.error is not None and not isinstance(delivery.error, str):
        raise ValueError(f"error must be a string or None, got {delivery.error!r}")
    at = required_time(delivery.attempted_at, "attempted_at")
    return dataclasses.replace(delivery, response=plain_json(delivery.response, "response"),
                               attempted_at=at)


def unknown_escalation(escalation_id: str) -> EscalationError:
    return EscalationError(f"no escalation {escalation_id!r} to record a delivery for")


def deliveries_in_order(rows: Iterable[DeliveryRecord], escalation_id: str | None
                        ) -> list[DeliveryRecord]:
    """Oldest first; ``sorted`` is stable, so equal times keep the order they were recorded."""
    return sorted((d for d in rows if escalation_id is None or d.escalation_id == escalation_id),
                  key=lambda d: d.attempted_at)

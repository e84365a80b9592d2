"""``RuntimeState``: the one interface every runtime mode implements."""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

from .records import (
    AgentRecord,
    ConfigSnapshot,
    ConflictRecord,
    ExecutionRecord,
    Lease,
    LeaseGrant,
    Message,
    RuntimeInfo,
    SessionBundle,
    SessionRecord,
    now,
)


class RuntimeStateError(Exception):
    """A runtime could not do what was asked (and said why); never a half-written record."""


class RuntimeUnavailable(RuntimeStateError):
    """A mode cannot start here (unwritable directory, corrupt database, locked too long)."""


class LeaseError(RuntimeStateError):
    """A lease cannot be renewed or released: unknown, someone else's, released, or blocked."""


class RuntimeState(abc.ABC):
    """Record and query sessions, executions, config snapshots, messages, agents and leases.

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

    # --- messages --------------------------------------------------------------------------

    @abc.abstractmethod
    def enqueue(self, message: Message) -> None: ...

    @abc.abstractmethod
    def dequeue(self, recipient: str | None = None, limit: int = 1) -> list[Message]:
        """Oldest queued messages (for ``recipient``, or any), marked ``delivered``."""

    @abc.abstractmethod
    def ack(self, message_id: str) -> bool:
        """Mark a delivered message ``acked``; False when there is no such message."""

    @abc.abstractmethod
    def messages(self, status: str | None = None) -> list[Message]: ...

    # --- agents ----------------------------------------------------------------------------

    @abc.abstractmethod
    def heartbeat(self, agent_id: str, at: float | None = None,
                  details: dict[str, Any] | None = None) -> AgentRecord: ...

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


def messages_in_order(rows: Iterable[Message], status: str | None = None,
                      recipient: str | None = None) -> list[Message]:
    """Oldest first, optionally only one status and one recipient."""
    return sorted((m for m in rows if (status is None or m.status == status)
                   and (recipient is None or m.recipient == recipient)),
                  key=lambda m: (m.created_at, m.id))


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

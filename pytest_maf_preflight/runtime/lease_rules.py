"""The lease rules (SPEC S3) every mode applies the same way: what a request may ask for, what
blocks it, who may renew or release a lease, and which leases are stale.

The modes differ only in how they make each step atomic (a lock, a transaction); what the step
decides is decided here, so the modes cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

from .agent_fields import checked_agent
from .arguments import checked_time
from .errors import LeaseError
from .queries import newest_leases
from .records import AgentRecord, Lease


def checked_ttl(ttl: float) -> float:
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, (int, float))
        or not math.isfinite(ttl)
        or ttl <= 0
    ):
        raise ValueError(f"ttl must be a positive finite number of seconds, got {ttl!r}")
    return float(ttl)


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
    def check(
        cls,
        agent_id: str,
        patterns: Sequence[str],
        *,
        exclusive: bool,
        ttl: float,
        reason: str,
        now: float | None,
    ) -> LeaseRequest:
        if not isinstance(exclusive, bool):
            raise ValueError(f"exclusive must be true or false, got {exclusive!r}")
        if not isinstance(reason, str):
            raise ValueError(f"reason must be a string, got {reason!r}")
        return cls(
            checked_agent(agent_id),
            checked_patterns(patterns),
            exclusive,
            checked_ttl(ttl),
            reason,
            checked_time(now),
        )

    def leases(self, ids: Sequence[str], first_token: int, at: float) -> tuple[Lease, ...]:
        """The granted leases, fencing tokens ``first_token``, ``first_token + 1``, ..."""
        return tuple(
            Lease(
                id=lease_id,
                agent_id=self.agent_id,
                path_pattern=pattern,
                exclusive=self.exclusive,
                reason=self.reason,
                created_at=at,
                expires_at=at + self.ttl,
                released_at=None,
                fencing_token=first_token + n,
            )
            for n, (lease_id, pattern) in enumerate(zip(ids, self.patterns, strict=True))
        )


def blocking_leases(
    held: Iterable[Lease], agent_id: str, patterns: Sequence[str], exclusive: bool, at: float
) -> list[Lease]:
    """The leases in ``held`` that block ``agent_id`` from ``patterns``, newest first."""
    from ..reservations.patterns import patterns_overlap

    out = [
        lease
        for lease in held
        if lease.agent_id != agent_id
        and lease.active(at)
        and (exclusive or lease.exclusive)
        and any(patterns_overlap(lease.path_pattern, p) for p in patterns)
    ]
    return newest_leases(out)


def _holders(blocking: Sequence[Lease]) -> str:
    return ", ".join(
        f"{b.path_pattern!r} held by agent {b.agent_id!r} (lease {b.id}, "
        f"expires at {b.expires_at:.3f})"
        for b in blocking
    )


def owned_lease(lease: Lease | None, lease_id: str, agent_id: str) -> Lease:
    """The lease when ``agent_id`` owns it, else ``LeaseError`` saying who does."""
    if lease is None:
        raise LeaseError(f"no lease {lease_id!r}")
    if lease.agent_id != agent_id:
        raise LeaseError(f"lease {lease_id} is held by agent {lease.agent_id!r}, not {agent_id!r}")
    return lease


def renewed_lease(
    lease: Lease, agent_id: str, ttl: float, at: float, token: int, held: Iterable[Lease]
) -> Lease:
    """``lease`` renewed by its owner, or ``LeaseError``; ``held``: every lease to check against.

    A live lease is checked as well as an expired one: clocks of two processes can disagree,
    and no double exclusive grant is worth a refused renewal.
    """
    if lease.released_at is not None:
        raise LeaseError(
            f"lease {lease.id} was released at {lease.released_at:.3f} and "
            f"cannot be renewed; acquire a new one"
        )
    blocking = blocking_leases(held, agent_id, (lease.path_pattern,), lease.exclusive, at)
    if blocking:
        raise LeaseError(f"lease {lease.id} cannot be renewed: {_holders(blocking)}")
    return dataclasses.replace(
        lease, expires_at=max(at, lease.expires_at) + ttl, fencing_token=token
    )


def stale_leases(
    rows: Iterable[Lease],
    agents: Iterable[AgentRecord],
    at: float,
    idle_agent_seconds: float | None,
) -> list[Lease]:
    """The unreleased leases ``release_stale_leases`` releases, newest first."""
    idle: set[str] = set()
    if idle_agent_seconds is not None:
        cutoff = at - idle_agent_seconds
        idle = {a.id for a in agents if a.last_heartbeat < cutoff}
    return newest_leases(
        lease
        for lease in rows
        if lease.released_at is None and (lease.expires_at <= at or lease.agent_id in idle)
    )


def checked_idle(idle_agent_seconds: float | None) -> float | None:
    value = checked_time(idle_agent_seconds, "idle_agent_seconds")
    if value is not None and value < 0:
        raise ValueError(f"idle_agent_seconds must be at least 0, got {idle_agent_seconds!r}")
    return value

"""Leases held by a test: the ``maf_reservations`` fixture and the ``maf_reserve`` marker.

Both use the configured runtime (the one the gate records in), because the point of a lease is
that other agents see it. The runtime is opened once per process, on first use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..runtime.factory import OpenedRuntime, RuntimeSettings
    from ..runtime.records import Lease

#: A test holds its lease this long unless it says otherwise (renew for longer tests).
DEFAULT_TTL = 900.0


class ReservationConflictError(Exception):
    """The requested patterns are (partly) held by other agents; nothing was granted."""

    def __init__(self, patterns: Sequence[str], blocking: Sequence[Lease]) -> None:
        from .conflicts import format_time

        holders = "; ".join(
            f"{lease.path_pattern!r} held by {lease.agent_id} "
            f"({'exclusive' if lease.exclusive else 'shared'}, until "
            f"{format_time(lease.expires_at)}, lease {lease.id[:12]})"
            for lease in blocking
        )
        super().__init__(f"cannot reserve {', '.join(map(repr, patterns))}: {holders}")
        self.patterns = tuple(patterns)
        self.blocking = tuple(blocking)


class LeaseStore:
    """The configured runtime, opened lazily and once, for the leases of one process."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self._settings = settings
        self._opened: OpenedRuntime | None = None

    @property
    def opened(self) -> OpenedRuntime:
        if self._opened is None:
            from ..runtime.errors import RuntimeUnavailable
            from ..runtime.factory import open_chain

            opened = open_chain(self._settings)
            if opened.skipped:
                # A lease in a fallback store is one no other agent sees: refuse, do not pretend.
                opened.runtime.close()
                raise RuntimeUnavailable(
                    f"leases need the configured store, which could not be opened "
                    f"({'; '.join(opened.skipped)}); the fallback {opened.mode} would hold "
                    "leases nobody else sees"
                )
            self._opened = opened
        return self._opened

    def close(self) -> None:
        if self._opened is not None:
            self._opened.runtime.close()
            self._opened = None


class MafReservations:
    """What the ``maf_reservations`` fixture gives a test: acquire, renew and release leases
    as this run's agent. Leases still held when the test ends are released."""

    def __init__(self, store: LeaseStore, agent_id: str) -> None:
        self.store = store
        self.agent_id = agent_id
        self._held: dict[str, Lease] = {}

    @property
    def mode(self) -> str:
        """The runtime mode holding the leases (``memory`` is this process only)."""
        return self.store.opened.mode

    def grant(
        self, *patterns: str, exclusive: bool = True, ttl: float = DEFAULT_TTL, reason: str = ""
    ) -> tuple[Lease, ...]:
        """Acquire leases on ``patterns`` (all or none); raise ReservationConflictError."""
        if not patterns:
            raise ValueError("name at least one path or pattern to reserve")
        from ..names import ANONYMOUS_AGENT, is_anonymous

        if is_anonymous(self.agent_id):
            raise ValueError(
                f"no agent id is set (it is {ANONYMOUS_AGENT!r}, the default), so "
                "the lease would be nobody's; set --maf-agent-id, MAF_AGENT_ID, "
                "AGENT_NAME or ini maf_agent_id"
            )
        grant = self.store.opened.runtime.acquire_leases(
            self.agent_id, patterns, exclusive=exclusive, ttl=ttl, reason=reason
        )
        if not grant.ok:
            raise ReservationConflictError(patterns, grant.conflicts)
        for lease in grant.granted:
            self._held[lease.id] = lease
        return grant.granted

    @contextlib.contextmanager
    def acquire(
        self, *patterns: str, exclusive: bool = True, ttl: float = DEFAULT_TTL, reason: str = ""
    ) -> Iterator[tuple[Lease, ...]]:
        """Hold leases on ``patterns`` inside the ``with`` block."""
        leases = self.grant(*patterns, exclusive=exclusive, ttl=ttl, reason=reason)
        try:
            yield leases
        finally:
            for lease in leases:
                self._release_quietly(lease.id)

    def renew(self, lease: Lease, ttl: float = DEFAULT_TTL) -> Lease:
        """Extend ``lease`` to max(now, its expiry) + ``ttl``; a new fencing token comes back."""
        renewed = self.store.opened.runtime.renew_lease(lease.id, self.agent_id, ttl=ttl)
        if renewed.id in self._held:
            self._held[renewed.id] = renewed
        return renewed

    def release(self, lease: Lease) -> Lease:
        released = self.store.opened.runtime.release_lease(lease.id, self.agent_id)
        self._held.pop(lease.id, None)
        return released

    def held(self) -> list[Lease]:
        """The leases this fixture acquired and has not released."""
        return list(self._held.values())

    def release_all(self) -> None:
        for lease_id in list(self._held):
            self._release_quietly(lease_id)

    def _release_quietly(self, lease_id: str) -> None:
        from ..runtime.errors import LeaseError

        if self._held.pop(lease_id, None) is None:
            return  # released by the test already
        with contextlib.suppress(LeaseError):  # force-released as stale meanwhile
            self.store.opened.runtime.release_lease(lease_id, self.agent_id)

"""``RuntimeState``: the one interface every runtime mode implements."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

from .records import (
    AgentRecord,
    ConfigSnapshot,
    ExecutionRecord,
    Message,
    RuntimeInfo,
    SessionBundle,
    SessionRecord,
)


class RuntimeStateError(Exception):
    """A runtime could not do what was asked (and said why); never a half-written record."""


class RuntimeUnavailable(RuntimeStateError):
    """A mode cannot start here (unwritable directory, corrupt database, locked too long)."""


class RuntimeState(abc.ABC):
    """Record and query sessions, executions, config snapshots, messages and agents.

    Implementations: ``memory``, ``sqlite``, ``json`` (and later ``postgres``). Every write is
    atomic: a bundle is stored whole or not at all, and writing the same ids again changes
    nothing (so imports and retries are idempotent). Queries return newest first.
    """

    mode: str = ""

    # --- sessions and executions ------------------------------------------------------------

    @abc.abstractmethod
    def record_session(self, bundle: SessionBundle) -> None:
        """Store a session with its executions, snapshots and messages, all or nothing."""

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

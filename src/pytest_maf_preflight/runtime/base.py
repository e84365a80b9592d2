"""``RuntimeState``: the one interface every runtime mode implements."""

from __future__ import annotations

import abc
from collections.abc import Sequence
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


def filter_executions(rows: Sequence[ExecutionRecord], *, config_id: str | None,
                      status: str | None, session_id: str | None, limit: int | None
                      ) -> list[ExecutionRecord]:
    """The query rule, in one place, for the modes that filter in Python (memory, json)."""
    out = [r for r in rows
           if (config_id is None or r.config_id == config_id)
           and (status is None or r.status == status)
           and (session_id is None or r.session_id == session_id)]
    out.sort(key=lambda r: (r.started_at, r.id), reverse=True)
    return out[:limit] if limit is not None else out

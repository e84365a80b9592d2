"""The ``memory`` runtime: for tests and dry runs; nothing outlives the process."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from .base import (
    RuntimeState,
    checked_limit,
    filter_executions,
    messages_in_order,
    newest_sessions,
    newest_snapshots,
)
from .records import (
    AgentRecord,
    ConfigSnapshot,
    ExecutionRecord,
    Message,
    RuntimeInfo,
    SessionBundle,
    SessionRecord,
    now,
)


class MemoryRuntime(RuntimeState):
    mode = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, SessionRecord] = {}
        self._executions: dict[str, ExecutionRecord] = {}
        self._snapshots: dict[tuple[str, str], ConfigSnapshot] = {}
        self._messages: dict[str, Message] = {}
        self._agents: dict[str, AgentRecord] = {}

    def record_session(self, bundle: SessionBundle) -> None:
        with self._lock:
            self._sessions.setdefault(bundle.session.id, bundle.session)
            for execution in bundle.executions:
                self._executions.setdefault(execution.id, execution)
            for snapshot in bundle.snapshots:
                self._snapshots.setdefault((snapshot.config_id, snapshot.content_hash), snapshot)
            for message in bundle.messages:
                self._messages.setdefault(message.id, message)

    def sessions(self, limit: int | None = None) -> list[SessionRecord]:
        with self._lock:
            return newest_sessions(self._sessions.values(), limit)

    def get_session(self, session_id: str) -> SessionRecord | None:
        with self._lock:
            return self._sessions.get(session_id)

    def executions(self, *, config_id: str | None = None, status: str | None = None,
                   session_id: str | None = None, limit: int | None = None
                   ) -> list[ExecutionRecord]:
        with self._lock:
            rows = list(self._executions.values())
        return filter_executions(rows, config_id=config_id, status=status,
                                 session_id=session_id, limit=limit)

    def config_snapshots(self, config_id: str | None = None) -> list[ConfigSnapshot]:
        with self._lock:
            return newest_snapshots(self._snapshots.values(), config_id)

    def enqueue(self, message: Message) -> None:
        with self._lock:
            self._messages.setdefault(message.id, message)

    def dequeue(self, recipient: str | None = None, limit: int = 1) -> list[Message]:
        with self._lock:
            queued = messages_in_order(self._messages.values(), "queued",
                                       recipient)[:checked_limit(limit)]
            out = []
            for message in queued:
                delivered = dataclasses.replace(message, status="delivered")
                self._messages[message.id] = delivered
                out.append(delivered)
            return out

    def ack(self, message_id: str) -> bool:
        with self._lock:
            message = self._messages.get(message_id)
            if message is None:
                return False
            self._messages[message_id] = dataclasses.replace(message, status="acked")
            return True

    def messages(self, status: str | None = None) -> list[Message]:
        with self._lock:
            return messages_in_order(self._messages.values(), status)

    def heartbeat(self, agent_id: str, at: float | None = None,
                  details: dict[str, Any] | None = None) -> AgentRecord:
        record = AgentRecord(agent_id, now() if at is None else at, dict(details or {}))
        with self._lock:
            self._agents[agent_id] = record
        return record

    def agents(self) -> list[AgentRecord]:
        with self._lock:
            return sorted(self._agents.values(), key=lambda a: a.id)

    def info(self) -> RuntimeInfo:
        with self._lock:
            counts = {"sessions": len(self._sessions), "executions": len(self._executions),
                      "config_snapshots": len(self._snapshots), "messages": len(self._messages),
                      "agents": len(self._agents)}
        return RuntimeInfo(mode=self.mode, location="(memory)", schema_version=None,
                           counts=counts)

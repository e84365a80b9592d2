"""The protocol messages a gate run produces as its checks run (SPEC S6).

``PREFLIGHT_CHECK`` when a check's first attempt starts, ``PREFLIGHT_RESULT`` when its result
is known (the same execution id, which is also the id of its row in ``preflight_executions``),
and ``RESERVATION_CONFLICT`` for each conflict a reservation check found (the same id as its
row in ``reservation_conflicts``). Every message of a run carries the session id as its
``correlation_id``.

They are written while the gate runs, not with the session's records at the end of the run (a
coordinator following the queue should see a check start while it runs, and its result when
the gate decides, not after the whole test suite), but batched, so the common path pays a
fixed number of writes per run, not one per check:

- the start messages of the runner's first pass (every check, up to ``max_concurrency``) in
  one write as the attempts begin; those of later passes wait until ``FLUSH_INTERVAL`` has
  passed since the last write and go with the next start or result after it;
- every result and conflict, with any start message still waiting, in one write when the
  gate has decided.

A write that fails is noted and not retried: the messages it held travel with the session's
bundle, and the stores ignore ids they already hold, so a message is stored once whichever
write gets it there (the bundle also carries them all to a mode the recording falls back to).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from ..checks.base import CheckResult
from ..runtime.records import ConflictRecord, Message, SessionBundle, new_id
from .recording import (
    check_execution,
    check_message,
    conflict_message,
    conflict_records,
    result_message,
)

if TYPE_CHECKING:
    from ..checks.runner import PlannedCheck
    from ..runtime.interface import RuntimeState

#: Seconds a later pass's start messages may wait for the next write.
FLUSH_INTERVAL = 0.1


class GateMessages:
    """One gate run's messages: built as the runner reports starts and results, written in
    batches to ``runtime`` (``None``: kept for the bundle only)."""

    def __init__(
        self,
        runtime: RuntimeState | None,
        *,
        agent_id: str,
        session_id: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime = runtime
        self.agent_id = agent_id
        self.session_id = session_id
        self.clock = clock
        #: Check id -> the execution id its messages and its execution row share.
        self.execution_ids: dict[str, str] = {}
        #: The conflicts found, once the gate has decided (the bundle records these rows).
        self.conflicts: tuple[ConflictRecord, ...] | None = None
        #: Why a write failed (shown with the runtime notes).
        self.errors: list[str] = []
        self.produced: list[Message] = []
        self._waiting: list[Message] = []
        self._stored: set[str] = set()
        self._written_at: float | None = None

    # --- the runner's callbacks -------------------------------------------------------------

    def started(self, checks: Sequence[PlannedCheck]) -> None:
        """``run_checks``'s ``on_start``: a ``PREFLIGHT_CHECK`` per check."""
        for check in checks:
            execution_id = self.execution_ids.setdefault(check.check_id, new_id())
            self._add(
                check_message(
                    check,
                    agent_id=self.agent_id,
                    session_id=self.session_id,
                    execution_id=execution_id,
                )
            )
        if self._written_at is None or self._due():
            self.flush()

    def poll(self) -> None:
        """Called as each result arrives: write start messages that waited long enough."""
        if self._waiting and self._due():
            self.flush()

    def finished(self, results: Iterable[CheckResult]) -> None:
        """The gate has decided: a ``PREFLIGHT_RESULT`` per result and a
        ``RESERVATION_CONFLICT`` per conflict, written with any start message still
        waiting."""
        results = list(results)
        for result in results:
            execution = check_execution(
                self.session_id,
                self.agent_id,
                result,
                self.execution_ids.setdefault(result.check_id, new_id()),
            )
            self._add(result_message(execution))
        self.conflicts = conflict_records(self.session_id, self.agent_id, results)
        for conflict in self.conflicts:
            check_id = conflict.details.get("check_id")
            self._add(conflict_message(conflict, self.execution_ids.get(str(check_id))))
        self.flush()

    # --- writing ----------------------------------------------------------------------------

    def _add(self, message: Message) -> None:
        self.produced.append(message)
        self._waiting.append(message)

    def _due(self) -> bool:
        return self._written_at is None or self.clock() - self._written_at >= FLUSH_INTERVAL

    def flush(self) -> None:
        """Write every waiting message in one write; a failure is noted, never raised: the
        messages travel with the session's bundle instead."""
        if not self._waiting or self.runtime is None:
            return
        batch, self._waiting = self._waiting, []
        try:
            self.runtime.enqueue_many(batch)
        except Exception as exc:  # messages must not break the gate; the bundle carries them
            self.errors.append(
                f"protocol messages not written as the gate ran: {type(exc).__name__}: {exc}"
            )
            self.runtime = None  # no more live writes this run
            return
        self._stored.update(m.id for m in batch)
        self._written_at = self.clock()

    def carry(self, bundle: SessionBundle, runtime: RuntimeState) -> SessionBundle:
        """``bundle`` with every message of this run that ``runtime`` does not hold yet (all
        of them when it is not the runtime they were written to), before the bundle's own."""
        import dataclasses

        ours = {m.id for m in self.produced}
        missing = [
            m for m in self.produced if runtime is not self.runtime or m.id not in self._stored
        ]
        return dataclasses.replace(
            bundle, messages=(*missing, *(m for m in bundle.messages if m.id not in ours))
        )

"""What a report page shows: plain, immutable data, filled from a gate run (``run``) or from the
runtime (``gather``) and turned into HTML by ``render``. Nothing here reads a store.

``NamedTuple``s rather than dataclasses: a tenth of the cost to define, and a run's page pays
for its imports (they are most of what it adds to a gate run; ``benchmarks/report_page.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from ..runtime.records import (
    AgentRecord,
    CheckStats,
    DeliveryRecord,
    EscalationRecord,
    RecentOutcome,
)


class TimelineBar(NamedTuple):
    """One check of a gate run on the shared time axis."""

    check_id: str
    name: str
    status: str
    #: Seconds after the first check of the run started.
    start: float
    duration: float
    attempts: int
    #: Whether its failure closes the gate (else it only warns).
    blocking: bool
    message: str = ""

    @property
    def end(self) -> float:
        return self.start + self.duration


class Timeline(NamedTuple):
    bars: tuple[TimelineBar, ...] = ()
    #: When offset 0 was (epoch seconds); 0.0 for an empty timeline.
    started_at: float = 0.0

    @property
    def span(self) -> float:
        """Seconds from the first start to the last end: the checks' share of the gate's time."""
        return max((bar.end for bar in self.bars), default=0.0)

    @property
    def decisive(self) -> TimelineBar | None:
        """The check the gate waited for last: the one that ended last (with every check started
        at once, the longest); ties go to the longer one, then to the smaller id."""
        if not self.bars:
            return None
        return max(self.bars, key=lambda b: (b.end, b.duration, _reversed_id(b.check_id)))


def _reversed_id(check_id: str) -> tuple[int, ...]:
    # max() with the smaller id winning a tie.
    return tuple(-ord(c) for c in check_id)


def timeline_of(bars: Sequence[TimelineBar]) -> Timeline:
    """Bars in the order they started (then by id)."""
    return Timeline(tuple(sorted(bars, key=lambda b: (b.start, b.check_id))))


class RunHeader(NamedTuple):
    """The session the timeline belongs to."""

    #: "This run" or "Latest session".
    title: str
    agent_id: str
    environment: str
    started_at: float
    #: The gate's verdict: ``open``, ``closed``, ``config_error``, ``interrupted``; None when the
    #: gate did not decide.
    verdict: str | None
    exit_code: int | None
    session_id: str | None = None
    blocking: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    smoke_failures: tuple[str, ...] = ()


class CheckHistory(NamedTuple):
    """One check's recent outcomes (oldest first) and its numbers over the whole history."""

    config_id: str
    kind: str
    outcomes: tuple[RecentOutcome, ...]
    stats: CheckStats | None


class LeaseRow(NamedTuple):
    pattern: str
    holder: str
    exclusive: bool
    expires_at: float
    #: Where the lease is held: the runtime's lease store, or the original MAF's.
    source: str
    reason: str = ""


class LadderStep(NamedTuple):
    """One level of an escalation path, and what was delivered at it."""

    level: int
    action: str
    target: str
    channel: str
    timeout_minutes: float | None
    deliveries: tuple[DeliveryRecord, ...] = ()


class EscalationView(NamedTuple):
    record: EscalationRecord
    steps: tuple[LadderStep, ...]
    #: Deliveries at a level the snapshot has no step for (a path changed meanwhile).
    other_deliveries: tuple[DeliveryRecord, ...] = ()


def ladder_of(record: EscalationRecord, deliveries: Sequence[DeliveryRecord]) -> EscalationView:
    """The escalation's levels as its path snapshot describes them, each with its deliveries.

    The snapshot is plain JSON (``{"id", "version", "config"}``) and is read as such: a page
    must show an old or odd snapshot, not refuse it.
    """
    config = record.path_snapshot.get("config")
    config = config if isinstance(config, Mapping) else {}
    targets = config.get("targets")
    targets = targets if isinstance(targets, Mapping) else {}
    top = config.get("max_escalation_level")
    steps: list[LadderStep] = []
    for raw in config.get("escalation_steps") or ():
        if not isinstance(raw, Mapping) or not isinstance(raw.get("level"), int):
            continue
        level = raw["level"]
        if isinstance(top, int) and level > top:
            continue
        target = str(raw.get("target", ""))
        described = targets.get(target)
        channel = described.get("channel") if isinstance(described, Mapping) else None
        steps.append(
            LadderStep(
                level=level,
                action=str(raw.get("action", "")),
                target=target,
                channel=str(channel or "mailbox"),
                timeout_minutes=_number(raw.get("timeout_minutes")),
                deliveries=tuple(d for d in deliveries if d.level == level),
            )
        )
    steps.sort(key=lambda s: s.level)
    levels = {s.level for s in steps}
    return EscalationView(
        record=record,
        steps=tuple(steps),
        other_deliveries=tuple(d for d in deliveries if d.level not in levels),
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class PageData(NamedTuple):
    """Everything one page shows."""

    generated_at: float
    #: Which history is shown: "all agents, all time", "agent a-1, since 2h", ...
    scope: str
    #: The runtime read (mode and where), or why none was.
    store: str
    run: RunHeader | None = None
    timeline: Timeline = Timeline()
    histories: tuple[CheckHistory, ...] = ()
    flaky: tuple[CheckStats, ...] = ()
    leases: tuple[LeaseRow, ...] = ()
    escalations: tuple[EscalationView, ...] = ()
    agents: tuple[AgentRecord, ...] = ()
    #: What could not be read, said on the page.
    notes: tuple[str, ...] = ()

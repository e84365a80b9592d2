"""Reading a page's sections from a runtime.

Every query is bounded by the store, not by the history: the statistics and the last outcomes
of each check are aggregated in the database (``check_stats``, ``recent_outcomes``), a
timeline reads one session's executions, and escalations, leases and agents are live state.
A section that cannot be read becomes a note on the page; the page is still written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from ..runtime.check_stats import stats_of
from ..runtime.errors import RuntimeStateError
from ..runtime.records import OPEN_STATES, ExecutionRecord, RecentOutcome, SessionRecord
from .model import (
    CheckHistory,
    EscalationView,
    LeaseRow,
    PageData,
    RunHeader,
    Timeline,
    TimelineBar,
    ladder_of,
    timeline_of,
)

if TYPE_CHECKING:
    from ..runtime.interface import RuntimeState
    from ..runtime.records import AgentRecord, CheckStats

T = TypeVar("T")

#: How many of the flakiest checks the page ranks.
FLAKY_SHOWN = 20
#: How many open escalations the page shows, newest first.
ESCALATIONS_SHOWN = 50
#: How long reading the original MAF's lease stores may take, in seconds.
ORIGINAL_MAF_TIMEOUT = 2.0


class Sections(NamedTuple):
    """What a page shows besides its timeline."""

    store: str
    histories: tuple[CheckHistory, ...] = ()
    flaky: tuple[CheckStats, ...] = ()
    leases: tuple[LeaseRow, ...] = ()
    escalations: tuple[EscalationView, ...] = ()
    agents: tuple[AgentRecord, ...] = ()
    notes: tuple[str, ...] = ()


def read_sections(
    runtime: RuntimeState,
    *,
    store: str,
    since: float | None,
    agent_id: str | None,
    rootdir: Path,
    now: float,
    config_ids: Sequence[str] | None = None,
    original_maf: bool = True,
) -> Sections:
    """The history (of ``agent_id``, since ``since``), the active leases (of ``agent_id``;
    with ``original_maf``, the original MAF's in ``rootdir``'s checkouts too), the open
    escalations and the agents.

    Without ``config_ids`` the history is every check's, its numbers over the whole history
    (``check_stats``); with them, only those checks', its numbers over their last outcomes:
    what a run's page shows, at a cost that does not grow with the history.
    """
    notes: list[str] = []

    def guarded(what: str, read: Callable[[], Sequence[T]]) -> list[T]:
        try:
            return list(read())
        except (RuntimeStateError, OSError) as exc:
            notes.append(f"{what} could not be read: {exc}")
            return []

    outcomes = guarded(
        "the recent outcomes",
        lambda: runtime.recent_outcomes(since=since, agent_id=agent_id, config_ids=config_ids),
    )
    if config_ids is None:
        stats = guarded(
            "the check statistics", lambda: runtime.check_stats(since=since, agent_id=agent_id)
        )
    else:
        stats = stats_of(outcomes, since=None, agent_id=None)
    leases = guarded("the leases", lambda: runtime_leases(runtime, agent_id, now))
    if original_maf:
        leases += original_leases(rootdir, agent_id, now, os.environ, notes)
    return Sections(
        store=store,
        histories=histories_of(stats, outcomes),
        flaky=flakiest(stats),
        leases=tuple(sorted(leases, key=lambda row: (row.expires_at, row.pattern))),
        escalations=tuple(guarded("the escalations", lambda: open_escalations(runtime))),
        agents=tuple(guarded("the agents", lambda: newest_agents(runtime.agents()))),
        notes=tuple(notes),
    )


def histories_of(
    stats: Sequence[CheckStats], outcomes: Sequence[RecentOutcome]
) -> tuple[CheckHistory, ...]:
    """One history per check: config checks first, then ``maf_smoke`` tests, each by id."""
    recent: dict[str, list[RecentOutcome]] = {}
    for outcome in outcomes:
        recent.setdefault(outcome.config_id, []).append(outcome)
    numbers = {s.config_id: s for s in stats}
    out = []
    for config_id in {*recent, *numbers}:
        rows = recent.get(config_id, [])
        out.append(
            CheckHistory(
                config_id=config_id,
                kind=rows[0].kind if rows else "check",
                outcomes=tuple(reversed(rows)),  # newest first in, oldest first shown
                stats=numbers.get(config_id),
            )
        )
    out.sort(key=lambda h: (h.kind != "check", h.config_id))
    return tuple(out)


def flakiest(stats: Sequence[CheckStats]) -> tuple[CheckStats, ...]:
    """The checks whose outcome flipped, the most often first (by rate, then count)."""
    flipped = [s for s in stats if s.flips]
    flipped.sort(key=lambda s: (-s.flip_rate, -s.flips, s.config_id))
    return tuple(flipped[:FLAKY_SHOWN])


def runtime_leases(runtime: RuntimeState, agent_id: str | None, now: float) -> list[LeaseRow]:
    return [
        LeaseRow(
            pattern=lease.path_pattern,
            holder=lease.agent_id,
            exclusive=lease.exclusive,
            expires_at=lease.expires_at,
            source=f"lease store ({runtime.mode})",
            reason=lease.reason,
        )
        for lease in runtime.leases(active_only=True, agent_id=agent_id, now=now)
    ]


def original_leases(
    rootdir: Path,
    agent_id: str | None,
    now: float,
    environ: Mapping[str, str],
    notes: list[str],
) -> list[LeaseRow]:
    """The original MAF's file leases in the checkouts of ``rootdir``'s repository, as the
    reservation checks count them."""
    from ..gitdirs import GitDirError
    from ..reservations.original_maf import (
        OriginalMafError,
        checkout_roots,
        read_original_leases,
    )

    try:
        report = read_original_leases(
            checkout_roots(rootdir), environ=environ, now=now, timeout=ORIGINAL_MAF_TIMEOUT
        )
    except (OriginalMafError, GitDirError, OSError) as exc:
        notes.append(f"the original MAF's leases could not be read: {exc}")
        return []
    return [
        LeaseRow(
            pattern=lease.pattern,
            holder=lease.agent,
            exclusive=True,
            expires_at=lease.expires_at,
            source=f"original MAF {lease.source} ({_shown(lease.location, rootdir)})",
        )
        for lease in report.leases
        if agent_id is None or lease.agent == agent_id
    ]


def _shown(location: str, root: Path) -> str:
    relative = os.path.relpath(location, root)
    return location if relative.startswith(os.pardir) else relative


def open_escalations(runtime: RuntimeState) -> tuple[EscalationView, ...]:
    """The open escalations, newest first, each with its ladder and deliveries."""
    records = runtime.escalations(states=OPEN_STATES, limit=ESCALATIONS_SHOWN)
    return tuple(ladder_of(record, runtime.deliveries(record.id)) for record in records)


def newest_agents(agents: Sequence[AgentRecord]) -> tuple[AgentRecord, ...]:
    return tuple(sorted(agents, key=lambda a: (-a.last_heartbeat, a.id)))


# --- the latest session --------------------------------------------------------------------


def latest_session(
    runtime: RuntimeState, agent_id: str | None, notes: list[str]
) -> tuple[RunHeader | None, Timeline]:
    """The newest session (of ``agent_id``) and its checks on a timeline."""
    try:
        found = runtime.sessions(limit=1, agent_id=agent_id)
        if not found:
            return None, Timeline()
        session = found[0]
        executions = runtime.executions(session_id=session.id)
    except (RuntimeStateError, OSError) as exc:
        notes.append(f"the latest session could not be read: {exc}")
        return None, Timeline()
    return session_header(session), session_timeline(session, executions)


def session_header(session: SessionRecord) -> RunHeader:
    details = session.details
    return RunHeader(
        title="Latest session",
        agent_id=session.agent_id,
        environment=session.environment,
        started_at=session.started_at,
        verdict=session.status,
        exit_code=session.exit_code,
        session_id=session.id,
        blocking=_strings(details.get("blocking")),
        warnings=_strings(details.get("warnings")),
    )


def session_timeline(session: SessionRecord, executions: Sequence[ExecutionRecord]) -> Timeline:
    """The session's config checks (not its ``maf_smoke`` tests, which run later, as tests)."""
    checks = [e for e in executions if e.kind == "check"]
    if not checks:
        return Timeline()
    zero = min(e.started_at for e in checks)
    blocked = {entry.split(" (")[0] for entry in _strings(session.details.get("blocking"))}
    bars = [
        TimelineBar(
            check_id=e.config_id,
            name=", ".join(
                str(e.result[key]) for key in ("test_type", "severity") if e.result.get(key)
            ),
            status=e.status,
            start=max(0.0, e.started_at - zero),
            duration=max(0.0, e.duration),
            attempts=e.attempts,
            blocking=e.result.get("severity") == "critical" or e.config_id in blocked,
            message=e.error_message or "",
        )
        for e in checks
    ]
    return timeline_of(bars)._replace(started_at=zero)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else ()


def page_from_runtime(
    runtime: RuntimeState,
    *,
    store: str,
    scope: str,
    since: float | None,
    agent_id: str | None,
    rootdir: Path,
    now: float,
) -> PageData:
    """A page of what the runtime holds, with the latest session's timeline."""
    notes: list[str] = []
    run, timeline = latest_session(runtime, agent_id, notes)
    sections = read_sections(
        runtime, store=store, since=since, agent_id=agent_id, rootdir=rootdir, now=now
    )
    return page_of(sections, generated_at=now, scope=scope, run=run, timeline=timeline, notes=notes)


def page_of(
    sections: Sections,
    *,
    generated_at: float,
    scope: str,
    run: RunHeader | None,
    timeline: Timeline,
    notes: Sequence[str] = (),
) -> PageData:
    return PageData(
        generated_at=generated_at,
        scope=scope,
        store=sections.store,
        run=run,
        timeline=timeline,
        histories=sections.histories,
        flaky=sections.flaky,
        leases=sections.leases,
        escalations=sections.escalations,
        agents=sections.agents,
        notes=(*notes, *sections.notes),
    )

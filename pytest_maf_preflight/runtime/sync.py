"""Copying one runtime into another (``maf-preflight runtime sync``: JSON into SQLite, or a
checkout's older ``.maf/runtime.db`` into the store its repository's worktrees now share).

Works over the ``RuntimeState`` interface alone. Every write of that interface is idempotent
by id, so a sync can be repeated, or resumed after a failure, and never duplicates a record;
what it copied is counted by asking the target before and after.

Leases are not copied: they are live state, valid only in the store that granted them (their
fencing tokens are that store's), and a lease copied into another store would block agents
there with a claim nobody can renew. An agent whose runtime fell back acquires its leases
again in the runtime it uses now.

Escalations and their delivery logs are not copied either, for the same reason: they are live
state, and the engine that climbs them works against the store it opened them in. A copy would
be a second open escalation of the same dedup key as soon as the target has one (the SQLite
store allows one per key), a second tick would deliver its levels again, and the interface
has no way to write an escalation under its own id. The report says how many the source holds
and left where they are; they keep climbing there once a run uses that mode again.

Waivers, escalation decisions and silences are copied: a waiver granted while a run used the
fallback store must keep its check's gate open in the store the runs use now, a silence must
keep its escalations quiet there, and a decision is on the record wherever the records go. A
waiver revoked (or a silence ended) in the source but not in the target is revoked (ended)
there as well, by the same agent at the same time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .interface import RuntimeState
from .records import ConfigSnapshot, ExecutionRecord, SessionBundle

KINDS = (
    "sessions",
    "executions",
    "config_snapshots",
    "messages",
    "reservation_conflicts",
    "agents",
    "smoke_tests",
    "escalation_paths",
    "waivers",
    "escalation_decisions",
    "silences",
)


@dataclasses.dataclass(frozen=True)
class SyncReport:
    """What a sync did, per record kind (the keys of ``KINDS``).

    ``copied``: written to the target by this sync. ``present``: in the target already (for
    agents: a heartbeat as recent or more). ``missing``: still not in the target afterwards,
    which ``notes`` explain.
    """

    source: str
    target: str
    copied: Mapping[str, int]
    present: Mapping[str, int]
    missing: Mapping[str, int]
    notes: tuple[str, ...] = ()

    @property
    def total_copied(self) -> int:
        return sum(self.copied.values())

    @property
    def complete(self) -> bool:
        """Whether everything of the source is now in the target."""
        return not any(self.missing.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "copied": dict(self.copied),
            "present": dict(self.present),
            "missing": dict(self.missing),
            "total_copied": self.total_copied,
            "complete": self.complete,
            "notes": list(self.notes),
        }


def _keys(runtime: RuntimeState) -> dict[str, set[Any]]:
    return {
        "sessions": {s.id for s in runtime.sessions()},
        "executions": {e.id for e in runtime.executions()},
        "config_snapshots": {(c.config_id, c.content_hash) for c in runtime.config_snapshots()},
        "messages": {m.id for m in runtime.messages()},
        "reservation_conflicts": {c.id for c in runtime.reservation_conflicts()},
        "smoke_tests": {(d.nodeid, d.content_hash) for d in runtime.smoke_tests()},
        "escalation_paths": {(d.path_id, d.content_hash) for d in runtime.escalation_paths()},
        "waivers": {w.id for w in runtime.waivers()},
        "escalation_decisions": {d.id for d in runtime.decisions()},
        "silences": {s.id for s in runtime.silences()},
    }


def _copy_waivers_decisions_silences(source: RuntimeState, target: RuntimeState) -> None:
    """Each one the target lacks, and each revocation or early end it lacks."""
    theirs = {w.id: w for w in target.waivers()}
    for waiver in source.waivers():
        mine = theirs.get(waiver.id)
        if mine is None:
            target.add_waiver(waiver)
        elif mine.revoked_at is None and waiver.revoked_at is not None:
            target.revoke_waiver(waiver.id, waiver.revoked_by or "sync", now=waiver.revoked_at)
    known = {d.id for d in target.decisions()}
    for decision in source.decisions():
        if decision.id not in known:
            target.record_decision(decision)
    quiet = {s.id: s for s in target.silences()}
    for silence in source.silences():
        present = quiet.get(silence.id)
        if present is None:
            target.add_silence(silence)
        elif present.expired_at is None and silence.expired_at is not None:
            target.expire_silence(silence.id, silence.expired_by or "sync", now=silence.expired_at)


def _where(runtime: RuntimeState) -> str:
    return f"{runtime.mode} ({runtime.info().location})"


def sync(source: RuntimeState, target: RuntimeState) -> SyncReport:
    """Copy every session bundle (session, executions, config snapshots, smoke test and
    escalation path definitions, messages), every reservation conflict, waiver, escalation
    decision and silence, and every agent of ``source`` into ``target``; what the target has
    already is left alone. Leases, escalations and deliveries are not copied (see the module
    docstring); a note counts the escalations left behind.

    Config snapshots are not tied to a session in the records, so each missing one travels
    with the first session whose executions ran that config, else with the newest session.
    Messages are enqueued as they are, status included; conflicts are recorded as they are,
    status and override included. An agent is copied when the target does not know it or has
    an older heartbeat.
    """
    notes: list[str] = []
    sessions = sorted(source.sessions(), key=lambda s: (s.started_at, s.id))
    executions = source.executions()
    snapshots = source.config_snapshots()
    messages = source.messages()
    conflicts = source.reservation_conflicts()
    agents = source.agents()
    smoke_tests = source.smoke_tests()
    paths = source.escalation_paths()
    wanted: dict[str, set[Any]] = {
        "sessions": {s.id for s in sessions},
        "executions": {e.id for e in executions},
        "config_snapshots": {(c.config_id, c.content_hash) for c in snapshots},
        "messages": {m.id for m in messages},
        "reservation_conflicts": {c.id for c in conflicts},
        "smoke_tests": {(d.nodeid, d.content_hash) for d in smoke_tests},
        "escalation_paths": {(d.path_id, d.content_hash) for d in paths},
        "waivers": {w.id for w in source.waivers()},
        "escalation_decisions": {d.id for d in source.decisions()},
        "silences": {s.id for s in source.silences()},
    }

    before = _keys(target)
    by_session: dict[str, list[ExecutionRecord]] = {}
    for execution in executions:
        by_session.setdefault(execution.session_id, []).append(execution)
    orphans = set(by_session) - wanted["sessions"]
    if orphans:
        notes.append(
            f"{sum(len(by_session[s]) for s in orphans)} executions belong to "
            f"sessions the source does not have and were not copied"
        )

    unplaced = [
        c for c in snapshots if (c.config_id, c.content_hash) not in before["config_snapshots"]
    ]
    carried: dict[str, list[ConfigSnapshot]] = {}
    for session in sessions:
        ran = {e.config_id for e in by_session.get(session.id, ())}
        carried[session.id] = [c for c in unplaced if c.config_id in ran]
        unplaced = [c for c in unplaced if c.config_id not in ran]
    if unplaced and sessions:
        carried[sessions[-1].id].extend(unplaced)
    elif unplaced:
        notes.append(
            f"{len(unplaced)} config snapshots were not copied: the source has no "
            f"session to carry them"
        )
    # Smoke test and escalation path definitions travel with the newest session (a bundle is
    # the only way in; which session carries them does not matter, they are keyed by content).
    carrier = sessions[-1].id if sessions else None
    new_smoke = tuple(
        d for d in smoke_tests if (d.nodeid, d.content_hash) not in before["smoke_tests"]
    )
    new_paths = tuple(
        d for d in paths if (d.path_id, d.content_hash) not in before["escalation_paths"]
    )
    if (new_smoke or new_paths) and carrier is None:
        notes.append(
            f"{len(new_smoke) + len(new_paths)} smoke test and escalation path "
            f"definitions were not copied: the source has no session to carry them"
        )

    for session in sessions:
        new_runs = tuple(
            e for e in by_session.get(session.id, ()) if e.id not in before["executions"]
        )
        new_snapshots = tuple(carried[session.id])
        smoke_here, paths_here = (new_smoke, new_paths) if session.id == carrier else ((), ())
        if (
            session.id in before["sessions"]
            and not new_runs
            and not new_snapshots
            and not smoke_here
            and not paths_here
        ):
            continue
        target.record_session(
            SessionBundle(
                session=session,
                executions=new_runs,
                snapshots=new_snapshots,
                smoke_tests=smoke_here,
                escalation_paths=paths_here,
            )
        )
    for message in messages:
        if message.id not in before["messages"]:
            target.enqueue(message)
    new_conflicts = [c for c in conflicts if c.id not in before["reservation_conflicts"]]
    if new_conflicts:
        target.record_conflicts(new_conflicts)
    _copy_waivers_decisions_silences(source, target)

    known = {a.id: a for a in target.agents()}
    agents_copied = agents_present = 0
    for agent in agents:
        mine = known.get(agent.id)
        if mine is not None and mine.last_heartbeat >= agent.last_heartbeat:
            agents_present += 1
            continue
        target.heartbeat(
            agent.id,
            at=agent.last_heartbeat,
            details=dict(agent.details),
            agent_type=agent.agent_type,
            capabilities=agent.capabilities,
            status=agent.status,
        )
        agents_copied += 1

    left = source.info().counts
    if left.get("escalations"):
        notes.append(
            f"{left['escalations']} escalations and "
            f"{left.get('escalation_deliveries', 0)} delivery attempts were not copied: "
            f"escalations are live state and stay in the store that opened them"
        )

    after = _keys(target)
    copied: dict[str, int] = {}
    present: dict[str, int] = {}
    missing: dict[str, int] = {}
    for kind, keys in wanted.items():
        present[kind] = len(keys & before[kind])
        copied[kind] = len((keys & after[kind]) - before[kind])
        missing[kind] = len(keys - after[kind])
        if missing[kind]:
            notes.append(
                f"{missing[kind]} {kind.replace('_', ' ')} of the source are still "
                f"not in the target"
            )
    final = {a.id: a.last_heartbeat for a in target.agents()}
    copied["agents"], present["agents"] = agents_copied, agents_present
    missing["agents"] = sum(1 for a in agents if final.get(a.id, float("-inf")) < a.last_heartbeat)
    return SyncReport(
        source=_where(source),
        target=_where(target),
        copied=copied,
        present=present,
        missing=missing,
        notes=tuple(notes),
    )

"""The escalation engine (SPEC S4): open, deduplicate, advance, acknowledge, resolve.

There is no daemon. Every gate run calls :meth:`EscalationEngine.process_session`, which opens
escalations for met triggers (a repeated failure adds an occurrence to the open one), resolves
those of checks that pass again, and then :meth:`tick`, which moves overdue escalations up a
level. ``maf-preflight escalations tick`` does the same from cron or CI. Moving up is a
compare-and-set in the runtime (``claim_escalation``): of several concurrent ticks exactly one
wins each level, and only the winner delivers it.

Step actions: ``notify`` delivers and waits for the step's timeout before climbing;
``escalate`` delivers and climbs at once to the next step, which is delivered in the same run
(at the last step it waits for its timeout, as ``notify`` does); ``approve`` and ``reject``
ask their target for a decision (``decisions``, :meth:`EscalationEngine.decide`). Before a tick
climbs, read receipts acknowledge (``receipts``) and acknowledgements that ran out send their
escalations back to triggered, delivered again (a step's ``ack_timeout_minutes``; an approval
holds for its waiver). Silences suppress deliveries, not the climb (``silencing``).

Time comes from ``clock`` so tests move it instead of sleeping. Step and path timeouts are
minutes and may be fractions.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.models import DECISION_ACTIONS, EscalationStep
from ..runtime.records import (
    CLIMBING_STATES,
    OPEN_STATES,
    DecisionRecord,
    DeliveryRecord,
    EscalationRecord,
    EscalationState,
    SilenceRecord,
    WaiverRecord,
    new_id,
)
from . import decisions, permissions, receipts, silencing, stale_agents, waiving
from .channels import Notice, NoticeKind, build_message, deliver
from .channels.notice import SEVERITIES
from .errors import EscalationError
from .paths import PathRef
from .plugin_channels import PluginChannels
from .triggers import TriggerOutcome, dedup_key, met_triggers

__all__ = ["EngineReport", "EscalationEngine"]

if TYPE_CHECKING:
    from ..checks.base import CheckResult
    from ..runtime.interface import RuntimeState


@dataclasses.dataclass
class EngineReport:
    """What one run did; the gate's summary and the CLI print it."""

    opened: list[EscalationRecord] = dataclasses.field(default_factory=list)
    occurrences: list[EscalationRecord] = dataclasses.field(default_factory=list)
    advanced: list[EscalationRecord] = dataclasses.field(default_factory=list)
    resolved: list[EscalationRecord] = dataclasses.field(default_factory=list)
    expired: list[EscalationRecord] = dataclasses.field(default_factory=list)
    #: Acknowledged by a read receipt or an approval.
    acknowledged: list[EscalationRecord] = dataclasses.field(default_factory=list)
    #: Back to triggered: their acknowledgement (or approval) ran out.
    retriggered: list[EscalationRecord] = dataclasses.field(default_factory=list)
    decisions: list[DecisionRecord] = dataclasses.field(default_factory=list)
    waivers: list[WaiverRecord] = dataclasses.field(default_factory=list)
    deliveries: list[DeliveryRecord] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def merge(self, other: EngineReport) -> EngineReport:
        for field in dataclasses.fields(self):
            getattr(self, field.name).extend(getattr(other, field.name))
        return self

    def lines(self) -> list[str]:
        """One line per event, for terminal summaries."""
        out = [f"escalation opened: {_name(e)} at level {e.level}" for e in self.opened]
        out += [
            f"escalation repeated: {_name(e)} ({e.occurrences} occurrences)"
            for e in self.occurrences
        ]
        out += [f"escalation advanced: {_name(e)} to level {e.level}" for e in self.advanced]
        out += [f"escalation resolved: {_name(e)}" for e in self.resolved]
        out += [f"escalation expired: {_name(e)}" for e in self.expired]
        out += [
            f"escalation acknowledged: {_name(e)} by {e.acknowledged_by}" for e in self.acknowledged
        ]
        out += [
            f"escalation triggered again: {_name(e)} at level {e.level} (its acknowledgement "
            "ran out)"
            for e in self.retriggered
        ]
        out += [
            f"escalation {d.decision}: {d.escalation_id[:12]} by {d.decided_by}: {d.reason}"
            for d in self.decisions
        ]
        out += [
            f"waiver granted: check {w.check_id!r} until {_utc(w.expires_at)} by {w.granted_by}"
            for w in self.waivers
        ]
        out += [
            f"  delivery {d.channel} -> {d.target} (level {d.level}, attempt {d.attempt}): "
            f"{d.status}" + (f": {d.error}" if d.error else "")
            for d in self.deliveries
        ]
        out += [f"escalations: {note}" for note in self.notes]
        return out


def _name(escalation: EscalationRecord) -> str:
    return f"{escalation.id[:12]} {escalation.dedup_key}"


def _utc(epoch: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


class EscalationEngine:
    def __init__(
        self,
        runtime: RuntimeState,
        paths: Mapping[str, PathRef],
        *,
        agent_id: str,
        mail_root: Path,
        environ: Mapping[str, str],
        deliver: bool = True,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        project_default: str = "",
        channels: PluginChannels | None = None,
    ) -> None:
        self.runtime = runtime
        self.paths = dict(paths)
        self.agent_id = agent_id
        self.mail_root = mail_root
        self.environ = environ
        self.delivering = deliver
        self.clock = clock
        self.sleep = sleep
        self.project_default = project_default
        #: The channels plugins add (a gate run's hook, the entry points).
        self.channels = channels if channels is not None else PluginChannels()

    # --- a gate run ----------------------------------------------------------------------

    def process_session(
        self,
        results: Sequence[CheckResult],
        *,
        check_paths: Mapping[str, str],
        session_id: str | None,
    ) -> EngineReport:
        """Open, repeat or resolve escalations for this run's results, then tick.

        ``check_paths``: check id -> escalation path id. The session must be recorded already,
        so the trigger history includes it. A check that passes resolves its open escalations
        on every path (not those raised by hand), and sends each a resolution notice.
        """
        report = EngineReport()
        now = self.clock()
        used: set[str] = set()
        #: Check id -> dedup keys met in this run, for the checks that passed.
        passed: dict[str | None, set[str]] = {}
        for result in results:
            met: set[str] = set()
            path_id = check_paths.get(result.check_id)
            path = self.paths.get(path_id) if path_id is not None else None
            if path_id is not None and path is None:
                report.notes.append(
                    f"check {result.check_id!r} names escalation path "
                    f"{path_id!r}, which is not loaded"
                )
            if path is not None:
                used.add(path.id)
            # A passing run can still carry a failure: the reservation conflicts an override
            # let through (the triggers count them). Without any, a pass meets no trigger, and
            # measuring the history of every passing check would be wasted.
            if path is not None and (not result.passed or result.details.get("conflicts")):
                for outcome in met_triggers(
                    path.body,
                    path.id,
                    check_id=result.check_id,
                    results=results,
                    runtime=self.runtime,
                    now=now,
                    session_id=session_id,
                ):
                    met.add(outcome.dedup_key)
                    self._open(
                        report,
                        path,
                        outcome,
                        severity=result.severity,
                        summary=_summary(result, outcome),
                        session_id=session_id,
                    )
            if result.passed:
                passed.setdefault(result.check_id, set()).update(met)
        for path_id in sorted(used):
            path = self.paths[path_id]
            for outcome in met_triggers(
                path.body,
                path_id,
                check_id=None,
                results=results,
                runtime=self.runtime,
                now=now,
                session_id=session_id,
            ):
                self._open(
                    report,
                    path,
                    outcome,
                    severity="critical",
                    session_id=session_id,
                    summary="system down: every critical preflight check failed",
                )
        if any(r.passed and r.severity == "critical" for r in results):
            # One critical check up means the system is not down, whatever the path.
            passed[None] = set()
        if passed:
            self._resolve_passed(report, passed)
        return report.merge(self.tick())

    def raise_manual(
        self,
        path_id: str,
        *,
        summary: str,
        severity: str = "critical",
        check_id: str | None = None,
        report: EngineReport | None = None,
    ) -> EscalationRecord | None:
        """Raise an escalation by hand (the ``maf_escalate`` fixture); permission-checked.
        None when delivery is off: nothing is opened then (an escalation opened but never
        delivered would sit at level 1 and swallow the next real one as an occurrence)."""
        path = self.paths.get(path_id)
        if path is None:
            raise EscalationError(
                f"no escalation path {path_id!r} (known: {', '.join(sorted(self.paths)) or 'none'})"
            )
        if severity not in SEVERITIES:
            # Refused before anything is opened: every notice of it would fail to build.
            raise EscalationError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
        first = path.after(0)
        if first is not None:
            self._permitted(permissions.check_escalate_to, path, self.agent_id, first.target)
        outcome = TriggerOutcome(
            met=True,
            value=1,
            failure_class="manual",
            check_id=check_id,
            description=f"raised by {self.agent_id}",
            condition="manual",
            dedup_key=dedup_key(path_id, check_id, "manual"),
        )
        return self._open(
            report if report is not None else EngineReport(),
            path,
            outcome,
            severity=severity,
            summary=summary,
            session_id=None,
        )

    # --- ticks ---------------------------------------------------------------------------

    def tick(self) -> EngineReport:
        """Move every overdue escalation up one level (or expire it); safe to run anywhere.

        First read receipts acknowledge, and acknowledgements that ran out send their
        escalations back to triggered; after the climb, escalations whose silence was ended
        early are delivered."""
        report = EngineReport()
        if not self.delivering:
            report.notes.append("delivery is off for this run: nothing was sent or advanced")
            return report
        now = self.clock()
        silences = self.runtime.silences(active_at=now)
        # First: an agent that is back resolves its escalation rather than climbing it.
        self._stale_agents(report, now)
        self._read_receipts(report, now)
        self._lapse_acknowledgements(report, now, silences)
        for due in self.runtime.due_escalations(now):
            self._advance(report, due, now, silences)
        self._wake_after_ended_silences(report, now, silences)
        return report

    def _advance(
        self,
        report: EngineReport,
        due: EscalationRecord,
        now: float,
        silences: Sequence[SilenceRecord],
    ) -> None:
        """One due escalation: expired, woken after its silence, or moved up a level."""
        try:
            path = PathRef.from_snapshot(due.path_snapshot)
        except (KeyError, TypeError, ValueError) as exc:
            # One unreadable row must not hold up every other escalation's climb.
            report.notes.append(
                f"{_name(due)}: cannot read its path snapshot: {_first_line(str(exc))}"
            )
            return
        total = path.body.timeout_minutes
        if total is not None and now >= due.created_at + total * 60:
            self._expire(report, due, now, "the path's timeout passed")
            return
        if silencing.waiting(due, now):
            self._wake(report, due, path, now, silences)
            return
        details: dict[str, Any] | None = None
        step = path.after(due.level)
        if step is None:
            rounds = int(due.details.get("rounds", 0))
            repeat = path.body.repeat
            if repeat is True or (not isinstance(repeat, bool) and rounds < repeat):
                step = path.after(0)
                details = {**due.details, "rounds": rounds + 1}
        if step is None:
            self._expire(report, due, now, "no level is left")
            return
        self._climb(report, due, path, step, now, silences, details=details)

    # --- acknowledge and resolve -----------------------------------------------------------

    def acknowledge(self, escalation_id: str, by: str) -> EscalationRecord:
        escalation, path = self._find(escalation_id)
        self._permitted(permissions.check_acknowledge, path, by)
        done = self.runtime.transition_escalation(
            escalation.id,
            state="acknowledged",
            by=by,
            from_states=CLIMBING_STATES,
            now=self.clock(),
        )
        if done is None:
            raise EscalationError(
                f"escalation {escalation.id[:12]} is {escalation.state}; only "
                "a triggered or escalated one can be acknowledged"
            )
        return done

    def resolve(self, escalation_id: str, by: str, note: str | None = None) -> EngineReport:
        escalation, path = self._find(escalation_id)
        self._permitted(permissions.check_resolve, path, by)
        report = EngineReport()
        if not self._resolve(report, escalation, by, note or f"resolved by {by}"):
            raise EscalationError(
                f"escalation {escalation.id[:12]} is {escalation.state}, not open"
            )
        return report

    def decide(
        self,
        escalation_id: str,
        *,
        by: str,
        approve: bool,
        reason: str,
        waiver_minutes: float | None = None,
    ) -> EngineReport:
        """Approve or reject an escalation that has reached a decision step
        (``escalations approve|reject``); ``by`` needs the path's ``approve`` permission.

        Both are recorded (who, when, why, at which level) and answered with an
        ``ESCALATION_RESPONSE`` in the runtime's queue (``accepted`` true or false). An
        approval waives the escalation's check for ``waiver_minutes`` (else the step's
        ``waiver_minutes``, else ``DEFAULT_WAIVER_MINUTES``) and acknowledges the escalation
        as ``by`` until the waiver ends. A rejection revokes the waivers earlier approvals of
        it granted; the escalation goes on as before (an approval's acknowledgement ends with
        its waiver). ``EscalationError`` for a refusal; nothing is recorded then.
        """
        escalation, path = self._find(escalation_id)
        if not escalation.is_open:
            raise EscalationError(
                f"escalation {escalation.id[:12]} is {escalation.state}, not open"
            )
        step = decisions.decision_step(path.steps(), escalation.level)
        if step is None:
            current = path.step_at(escalation.level)
            raise EscalationError(
                f"escalation {escalation.id[:12]} is at level {escalation.level}"
                f"{f' ({current.action})' if current else ''}, below every decision step: "
                "only an approve or reject step asks for a decision"
            )
        self._permitted(permissions.check_approve, path, by)
        if not reason.strip():
            raise EscalationError("a decision needs a reason")
        if waiver_minutes is not None and not (
            math.isfinite(waiver_minutes) and waiver_minutes > 0
        ):
            raise EscalationError(
                f"a waiver lasts a positive number of minutes, not {waiver_minutes!r}"
            )
        minutes = waiver_minutes or step.waiver_minutes or waiving.DEFAULT_WAIVER_MINUTES
        now = self.clock()
        decision = DecisionRecord(
            id=new_id(),
            escalation_id=escalation.id,
            level=escalation.level,
            decision="approved" if approve else "rejected",
            decided_by=by,
            reason=reason,
            decided_at=now,
        )
        try:
            answer = decisions.response_message(escalation, decision)
        except ValueError as exc:
            raise EscalationError(
                f"cannot answer escalation {escalation.id[:12]}: {_first_line(str(exc))}"
            ) from None
        report = EngineReport()
        self.runtime.record_decision(decision)
        report.decisions.append(decision)
        if approve:
            self._approve(report, escalation, by, reason, minutes, now)
        else:
            self._reject(report, escalation, by, now)
        self.runtime.enqueue(answer)
        return report

    def _approve(
        self,
        report: EngineReport,
        escalation: EscalationRecord,
        by: str,
        reason: str,
        minutes: float,
        now: float,
    ) -> None:
        if escalation.check_id is None:
            report.notes.append(f"{_name(escalation)}: approved; it names no check to waive")
        else:
            report.waivers.append(
                waiving.grant_waiver(
                    self.runtime,
                    check_id=escalation.check_id,
                    by=by,
                    reason=reason,
                    minutes=minutes,
                    now=now,
                    escalation_id=escalation.id,
                )
            )
        acknowledged = self.runtime.transition_escalation(
            escalation.id, state="acknowledged", by=by, from_states=CLIMBING_STATES, now=now
        )
        if acknowledged is not None:
            report.acknowledged.append(acknowledged)

    def _reject(
        self, report: EngineReport, escalation: EscalationRecord, by: str, now: float
    ) -> None:
        for waiver in waiving.escalation_waivers(self.runtime, escalation):
            if waiver.active(now) and self.runtime.revoke_waiver(waiver.id, by, now) is not None:
                report.notes.append(
                    f"{_name(escalation)}: waiver {waiver.id[:12]} of check "
                    f"{waiver.check_id!r} revoked by the rejection"
                )

    # --- the parts -------------------------------------------------------------------------

    def _find(self, escalation_id: str) -> tuple[EscalationRecord, PathRef]:
        escalation = self.runtime.get_escalation(escalation_id)
        if escalation is None:
            raise EscalationError(f"no escalation {escalation_id!r}")
        try:
            return escalation, PathRef.from_snapshot(escalation.path_snapshot)
        except (KeyError, TypeError, ValueError) as exc:
            raise EscalationError(
                f"escalation {escalation.id[:12]}: cannot read its path "
                f"snapshot: {_first_line(str(exc))}"
            ) from None

    def _permitted(self, rule: Callable[..., None], path: PathRef, *args: str) -> None:
        try:
            rule(path.body.permissions, *args, path_id=path.id)
        except permissions.PermissionDenied as exc:
            raise EscalationError(str(exc)) from None

    def _deadline(
        self, path: PathRef, step: EscalationStep, now: float, opened: float
    ) -> float | None:
        """When ``step`` times out, or the whole path does, whichever is first."""
        times = []
        if step.timeout_minutes is not None:
            times.append(now + step.timeout_minutes * 60)
        if path.body.timeout_minutes is not None:
            times.append(opened + path.body.timeout_minutes * 60)
        return min(times) if times and self.delivering else None

    def _open(
        self,
        report: EngineReport,
        path: PathRef,
        outcome: TriggerOutcome,
        *,
        severity: str,
        summary: str,
        session_id: str | None,
    ) -> EscalationRecord | None:
        if not self.delivering:
            report.notes.append(f"{outcome.dedup_key}: not raised (escalations are off)")
            return None
        now = self.clock()
        first = path.after(0)
        silences = self.runtime.silences(active_at=now) if first is not None else []
        silence = silencing.covering(silences, path.id, outcome.check_id)
        deadline = self._deadline(path, first, now, now) if first is not None else None
        # Where it is delivered is fixed when it opens: a later tick or resolve from another
        # directory must reach the same mailbox tree and agent-mail project.
        details = {
            "summary": summary,
            "severity": severity,
            "agent_id": self.agent_id,
            "session_id": session_id,
            "trigger": outcome.description,
            "mail_root": str(self.mail_root),
            "project": self.project_default,
            **outcome.details,
        }
        record, created = self.runtime.open_escalation(
            path_id=path.id,
            dedup_key=outcome.dedup_key,
            check_id=outcome.check_id,
            failure_class=outcome.failure_class,
            path_snapshot=path.snapshot(),
            next_action_at=silencing.wake_time(deadline, silence),
            details=(
                silencing.marked(details, first.level, deadline, silence) if first else details
            ),
            now=now,
        )
        if not created:
            report.occurrences.append(record)
            return record
        if first is not None and first.level != record.level:
            # The store opens at level 1; a path starting higher is at its first step's level,
            # or the next tick would find that step "after" level 1 and deliver it again.
            record = (
                self.runtime.claim_escalation(
                    record.id,
                    expect_level=record.level,
                    expect_next_action_at=record.next_action_at,
                    level=first.level,
                    next_action_at=record.next_action_at,
                    state="triggered",
                    now=now,
                )
                or record
            )
        report.opened.append(record)
        if first is not None and record.level == first.level:
            self._request(report, record, path, first, silence)
            following = path.after(first.level) if first.action == "escalate" else None
            if following is not None:
                self._climb(report, record, path, following, now, silences)
        return record

    def _climb(
        self,
        report: EngineReport,
        record: EscalationRecord,
        path: PathRef,
        step: EscalationStep,
        now: float,
        silences: Sequence[SilenceRecord],
        *,
        details: Mapping[str, Any] | None = None,
        state: EscalationState = "escalated",
        advancing: bool = True,
    ) -> None:
        """Move ``record`` to ``step`` and deliver it. The move is a compare-and-set: only its
        winner delivers. An ``escalate`` step climbs on at once to the next step, delivered
        too; at the last step it waits for its timeout. ``advancing`` False: ``record`` is at
        ``step`` already (triggered again), so the move is not reported as one."""
        silence = silencing.covering(silences, record.path_id, record.check_id)
        current: EscalationStep | None = step
        while current is not None:
            deadline = self._deadline(path, current, now, record.created_at)
            claimed = self.runtime.claim_escalation(
                record.id,
                expect_level=record.level,
                expect_next_action_at=record.next_action_at,
                level=current.level,
                next_action_at=silencing.wake_time(deadline, silence),
                state=state,
                details=silencing.marked(
                    record.details if details is None else details, current.level, deadline, silence
                ),
                now=now,
            )
            if claimed is None:
                return  # another tick won this level and delivers it
            if advancing:
                report.advanced.append(claimed)
            self._request(report, claimed, path, current, silence)
            record, details, state, advancing = claimed, None, "escalated", True
            current = path.after(current.level) if current.action == "escalate" else None

    def _request(
        self,
        report: EngineReport,
        escalation: EscalationRecord,
        path: PathRef,
        step: EscalationStep,
        silence: SilenceRecord | None,
    ) -> None:
        """Deliver ``step``'s request to its target (a decision step's asks for the
        decision), or record it silenced."""
        if silence is not None:
            config = path.body.targets.get(step.target)
            delivery = silencing.silenced_delivery(
                escalation,
                level=step.level,
                target=step.target,
                channel=config.channel if config else "mailbox",
                silence=silence,
                at=self.clock(),
            )
            self.runtime.record_delivery(delivery)
            report.deliveries.append(delivery)
            return
        note = None
        if step.action in DECISION_ACTIONS:
            minutes = step.waiver_minutes or waiving.DEFAULT_WAIVER_MINUTES
            note = decisions.decision_note(escalation, step, minutes)
        self._notify(report, escalation, path, step.level, step.target, "request", note=note)

    def _wake(
        self,
        report: EngineReport,
        escalation: EscalationRecord,
        path: PathRef,
        now: float,
        silences: Sequence[SilenceRecord],
    ) -> None:
        """``escalation`` waited at a silenced level: deliver that level now that no silence
        covers it, or sleep on until the silence that does ends."""
        deadline = silencing.deadline_of(escalation)
        silence = silencing.covering(silences, escalation.path_id, escalation.check_id)
        claimed = self.runtime.claim_escalation(
            escalation.id,
            expect_level=escalation.level,
            expect_next_action_at=escalation.next_action_at,
            level=escalation.level,
            next_action_at=silencing.wake_time(deadline, silence),
            state=escalation.state,
            details=silencing.marked(escalation.details, escalation.level, deadline, silence),
            now=now,
        )
        step = path.step_at(escalation.level)
        if claimed is None or silence is not None or step is None:
            return
        report.notes.append(f"{_name(claimed)}: no silence covers it any more: level delivered")
        self._request(report, claimed, path, step, None)

    def _wake_after_ended_silences(
        self, report: EngineReport, now: float, silences: Sequence[SilenceRecord]
    ) -> None:
        """Deliver what a silence ended by hand still holds back. Its escalations were
        scheduled for its own end, so no due query finds them; only the few it covers are
        read."""
        seen: set[str] = set()
        for ended in silencing.ended_early(self.runtime.silences(), now):
            found = (
                self.runtime.escalations(states=CLIMBING_STATES, check_id=ended.check_id)
                if ended.check_id is not None
                else self.runtime.escalations(states=CLIMBING_STATES, path_id=ended.path_id)
            )
            for escalation in found:
                if (
                    escalation.id in seen
                    or not ended.covers(escalation.path_id, escalation.check_id)
                    or not silencing.waiting(escalation, now)
                    or silencing.covering(silences, escalation.path_id, escalation.check_id)
                ):
                    continue
                seen.add(escalation.id)
                try:
                    path = PathRef.from_snapshot(escalation.path_snapshot)
                except (KeyError, TypeError, ValueError):
                    continue  # the due query reports it when its time comes
                self._wake(report, escalation, path, now, silences)

    def _lapse_acknowledgements(
        self, report: EngineReport, now: float, silences: Sequence[SilenceRecord]
    ) -> None:
        """Acknowledged escalations whose acknowledgement ran out go back to triggered and
        their level is delivered again: after the step's ``ack_timeout_minutes``, or, when an
        approval acknowledged it, when that approval's waiver ends."""
        for escalation in self.runtime.escalations(states=("acknowledged",)):
            try:
                path = PathRef.from_snapshot(escalation.path_snapshot)
            except (KeyError, TypeError, ValueError):
                continue  # acknowledged: nothing is sent for it, so nothing is held up
            step = path.step_at(escalation.level)
            end = waiving.approval_end(self.runtime, escalation)
            if end is None and step is not None and escalation.acknowledged_at is not None:
                minutes = step.ack_timeout_minutes
                end = None if minutes is None else escalation.acknowledged_at + minutes * 60
            if end is None or now < end:
                continue
            moved = self.runtime.transition_escalation(
                escalation.id, state="triggered", by=None, from_states=("acknowledged",), now=now
            )
            if moved is None:
                continue  # resolved meanwhile, or another tick moved it
            report.retriggered.append(moved)
            total = path.body.timeout_minutes
            if total is not None and now >= moved.created_at + total * 60:
                self._expire(report, moved, now, "the path's timeout passed")
            elif step is not None:
                self._climb(
                    report, moved, path, step, now, silences, state="triggered", advancing=False
                )

    def _read_receipts(self, report: EngineReport, now: float) -> None:
        """Acknowledge the escalations whose ``agent_mail`` request was acknowledged by its
        recipient on the server, as that recipient (if the path lets it acknowledge)."""
        loaded = {p.id: p.body for p in self.paths.values()}
        found, notes = receipts.read_receipts(self.runtime, loaded, environ=self.environ)
        report.notes.extend(notes)
        for receipt in found:
            escalation = receipt.escalation
            try:
                path = PathRef.from_snapshot(escalation.path_snapshot)
                permissions.check_acknowledge(
                    path.body.permissions, receipt.target, path_id=path.id
                )
            except (KeyError, TypeError, ValueError, permissions.PermissionDenied) as exc:
                report.notes.append(
                    f"{_name(escalation)}: {receipt.target} acknowledged agent_mail message "
                    f"{receipt.message_id}, which does not acknowledge it: {_first_line(str(exc))}"
                )
                continue
            done = self.runtime.transition_escalation(
                escalation.id,
                state="acknowledged",
                by=receipt.target,
                from_states=CLIMBING_STATES,
                now=now,
            )
            if done is not None:
                report.acknowledged.append(done)
                report.notes.append(
                    f"{_name(done)}: acknowledged by {receipt.target} (read receipt of "
                    f"agent_mail message {receipt.message_id})"
                )

    def _resolve_passed(self, report: EngineReport, passed: Mapping[str | None, set[str]]) -> None:
        """Resolve the open escalations of the checks that passed (key None: the system is
        up, for ``system_down``), on any path: an escalation opened under an older config is
        about the same check. Not those raised by hand, nor those met again in this run."""
        for escalation in self.runtime.escalations(states=OPEN_STATES):
            keep = passed.get(escalation.check_id)
            if keep is None or escalation.dedup_key in keep:
                continue
            if escalation.failure_class == "manual":
                continue  # raised by hand: resolved by hand
            if escalation.check_id is None and escalation.failure_class != "system_down":
                continue
            note = (
                "the system is up again"
                if escalation.check_id is None
                else f"check {escalation.check_id!r} passes again"
            )
            self._resolve(report, escalation, self.agent_id, note)

    def _resolve(
        self, report: EngineReport, escalation: EscalationRecord, by: str, note: str
    ) -> bool:
        done = self.runtime.transition_escalation(
            escalation.id, state="resolved", by=by, from_states=OPEN_STATES, now=self.clock()
        )
        if done is None:
            return False
        report.resolved.append(done)
        if not self.delivering:
            return True
        try:
            path = PathRef.from_snapshot(done.path_snapshot)
        except (KeyError, TypeError, ValueError) as exc:
            report.notes.append(
                f"{_name(done)}: resolved, but no resolution notice was sent: "
                f"cannot read its path snapshot: {_first_line(str(exc))}"
            )
            return True
        # Everyone who was told about it hears that it is over: the targets its deliveries
        # reached (after a repeat round that is every level, not just up to the current one;
        # with delivery off at the time, nobody).
        for level, target in self._told(done):
            self._notify(report, done, path, level, target, "resolution", note=note, agent=by)
        return True

    def _told(self, escalation: EscalationRecord) -> list[tuple[int, str]]:
        """(level, target) of each target a request reached, in the order first reached."""
        told: dict[str, int] = {}
        for delivery in self.runtime.deliveries(escalation.id):
            if delivery.status in ("delivered", "fallback"):
                told.setdefault(delivery.target, delivery.level)
        return [(level, target) for target, level in told.items()]

    def _stale_agents(self, report: EngineReport, now: float) -> None:
        """Raise ``agent_stale`` escalations, and resolve those whose agent is back or holds
        no lease any more (``stale_agents.review`` decides which)."""
        review = stale_agents.review(self.runtime, {p.id: p.body for p in self.paths.values()}, now)
        for escalation, note in review.over:
            self._resolve(report, escalation, self.agent_id, note)
        for path_id, outcome, summary in review.stale:
            path = self.paths[path_id]
            self._open(report, path, outcome, severity="warning", summary=summary, session_id=None)

    def _expire(
        self, report: EngineReport, escalation: EscalationRecord, now: float, why: str
    ) -> None:
        done = self.runtime.transition_escalation(
            escalation.id, state="expired", by=None, from_states=CLIMBING_STATES, now=now
        )
        if done is not None:
            report.expired.append(done)
            report.notes.append(f"{done.dedup_key} expired: {why}")

    def _notify(
        self,
        report: EngineReport,
        escalation: EscalationRecord,
        path: PathRef,
        level: int,
        target: str,
        kind: NoticeKind,
        note: str | None = None,
        agent: str | None = None,
    ) -> None:
        """Deliver one notice and log every attempt. ``agent`` sends it (default: this
        engine's agent; a resolution notice comes from whoever resolved)."""
        severity = str(escalation.details.get("severity", "critical"))
        summary = str(escalation.details.get("summary", escalation.dedup_key))
        sender = agent or self.agent_id
        config = path.body.targets.get(target)
        try:
            message = build_message(
                kind,
                escalation,
                level=level,
                target=target,
                severity=severity,
                summary=summary,
                agent_id=sender,
                note=note,
            )
            notice = Notice(
                kind=kind,
                escalation=escalation,
                level=level,
                target=target,
                severity=severity,
                summary=summary,
                agent_id=sender,
                message=message,
            )
            records = deliver(
                notice,
                config,
                environ=self.environ,
                sleep=self.sleep,
                now=self.clock,
                mail_root=Path(str(escalation.details.get("mail_root") or self.mail_root)),
                project_default=str(escalation.details.get("project") or self.project_default),
                plugins=self.channels,
            )
        except ValueError as exc:  # a target name or value the channels refuse
            records = [
                DeliveryRecord(
                    escalation_id=escalation.id,
                    level=level,
                    channel=config.channel if config else "mailbox",
                    target=target,
                    attempt=1,
                    status="failed",
                    error=_first_line(str(exc)),
                    response={},
                    attempted_at=self.clock(),
                )
            ]
        for record in records:
            self.runtime.record_delivery(record)
        report.deliveries.extend(records)


def _summary(result: CheckResult, outcome: TriggerOutcome) -> str:
    if result.passed:  # an override let it pass; the trigger says what is still wrong
        return f"preflight check {result.check_id!r} passed by override: {outcome.description}"
    return (
        f"preflight check {result.check_id!r} {result.status.value}: "
        f"{_first_line(result.observed or result.message)}"
    )


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""

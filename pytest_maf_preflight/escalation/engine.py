"""The escalation engine (SPEC S4): open, deduplicate, advance, acknowledge, resolve.

There is no daemon. Every gate run calls :meth:`EscalationEngine.process_session`, which opens
escalations for met triggers (a repeated failure adds an occurrence to the open one), resolves
those of checks that pass again, and then :meth:`tick`, which moves overdue escalations up a
level. ``maf-preflight escalations tick`` does the same from cron or CI. Moving up is a
compare-and-set in the runtime (``claim_escalation``): of several concurrent ticks exactly one
wins each level, and only the winner delivers it.

Time comes from ``clock`` so tests move it instead of sleeping. Step and path timeouts are
minutes and may be fractions.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.models import EscalationStep
from ..runtime.records import CLIMBING_STATES, OPEN_STATES, DeliveryRecord, EscalationRecord
from . import permissions
from .channels import Notice, NoticeKind, build_message, deliver
from .channels.notice import SEVERITIES
from .errors import EscalationError
from .paths import PathRef
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
            f"  delivery {d.channel} -> {d.target} (level {d.level}, attempt {d.attempt}): "
            f"{d.status}" + (f": {d.error}" if d.error else "")
            for d in self.deliveries
        ]
        out += [f"escalations: {note}" for note in self.notes]
        return out


def _name(escalation: EscalationRecord) -> str:
    return f"{escalation.id[:12]} {escalation.dedup_key}"


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
        """Move every overdue escalation up one level (or expire it); safe to run anywhere."""
        report = EngineReport()
        if not self.delivering:
            report.notes.append("delivery is off for this run: nothing was sent or advanced")
            return report
        now = self.clock()
        for due in self.runtime.due_escalations(now):
            try:
                path = PathRef.from_snapshot(due.path_snapshot)
            except (KeyError, TypeError, ValueError) as exc:
                # One unreadable row must not hold up every other escalation's climb.
                report.notes.append(
                    f"{_name(due)}: cannot read its path snapshot: {_first_line(str(exc))}"
                )
                continue
            total = path.body.timeout_minutes
            if total is not None and now >= due.created_at + total * 60:
                self._expire(report, due, now, "the path's timeout passed")
                continue
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
                continue
            claimed = self.runtime.claim_escalation(
                due.id,
                expect_level=due.level,
                expect_next_action_at=due.next_action_at,
                level=step.level,
                next_action_at=self._deadline(path, step, now, due.created_at),
                state="escalated",
                details=details,
                now=now,
            )
            if claimed is None:
                continue  # another tick won this level and delivers it
            report.advanced.append(claimed)
            self._notify(report, claimed, path, step.level, step.target, "request")
        return report

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
        record, created = self.runtime.open_escalation(
            path_id=path.id,
            dedup_key=outcome.dedup_key,
            check_id=outcome.check_id,
            failure_class=outcome.failure_class,
            path_snapshot=path.snapshot(),
            next_action_at=(self._deadline(path, first, now, now) if first else None),
            # Where it is delivered is fixed when it opens: a later tick or resolve from
            # another directory must reach the same mailbox tree and agent-mail project.
            details={
                "summary": summary,
                "severity": severity,
                "agent_id": self.agent_id,
                "session_id": session_id,
                "trigger": outcome.description,
                "mail_root": str(self.mail_root),
                "project": self.project_default,
            },
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
            self._notify(report, record, path, first.level, first.target, "request")
        return record

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

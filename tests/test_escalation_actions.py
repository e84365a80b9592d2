"""Step actions (SPEC S4): ``escalate`` climbs at once, ``approve``/``reject`` steps ask for a
decision that is recorded, answered with an ``ESCALATION_RESPONSE`` and, when approved, waives
the check. A real SQLite runtime, real mailbox files, an injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers_engine import AGENT, NOW, World, kinds, path
from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.config.errors import ConfigLoadError
from pytest_maf_preflight.config.loader import ConfigLoader, LoadedConfig, discover
from pytest_maf_preflight.config.models import EscalationPathBody
from pytest_maf_preflight.escalation.errors import EscalationError
from pytest_maf_preflight.escalation.waiving import DEFAULT_WAIVER_MINUTES
from pytest_maf_preflight.protocol.messages import EscalationResponse, from_record
from pytest_maf_preflight.reservations.conflicts import Conflict, Holding
from pytest_maf_preflight.runtime.records import EscalationRecord
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with SqliteRuntime(tmp_path / "runtime.db") as runtime:
        yield World(runtime, tmp_path)


def step(level: int, action: str, target: str, timeout: float | None = None, **more: Any) -> Any:
    return {"level": level, "action": action, "target": target, "timeout_minutes": timeout, **more}


def opened_one(world: World, *steps: Any, check: str = "api", **more: Any) -> EscalationRecord:
    engine = world.engine(path(steps=list(steps), **more))
    (opened,) = world.gate(engine, world.result(check, "failed")).opened
    return opened


def responses(world: World) -> list[EscalationResponse]:
    found = [from_record(m) for m in world.runtime.messages(types=["ESCALATION_RESPONSE"])]
    return [m for m in found if isinstance(m, EscalationResponse)]


# --- notify and escalate -----------------------------------------------------------------------


def test_escalate_delivers_and_climbs_at_once_and_waits_at_the_last_step(world: World) -> None:
    engine = world.engine(
        path(
            steps=[
                step(1, "escalate", "on-call", 10),
                step(2, "notify", "lead", 0.5),
                step(3, "escalate", "director", 1),
            ]
        )
    )
    report = world.gate(engine, world.result("api", "failed"))

    # Level 1 is delivered and, being ``escalate``, level 2 at once: its 10 minutes never run.
    (opened,) = report.opened
    assert [e.level for e in report.advanced] == [2]
    assert [(d.target, d.level, d.status) for d in report.deliveries] == [
        ("on-call", 1, "delivered"),
        ("lead", 2, "delivered"),
    ]
    now_at = world.stored(opened.id)
    assert (now_at.state, now_at.level, now_at.next_action_at) == ("escalated", 2, NOW + 30)
    assert kinds(world.inbox("on-call")) == [("ESCALATION_REQUEST", 1)]
    assert kinds(world.inbox("lead")) == [("ESCALATION_REQUEST", 2)]

    # ``notify`` waits for its timeout; the last step, ``escalate`` or not, waits for its own.
    world.clock.now = NOW + 29
    assert engine.tick().advanced == []
    world.clock.now = NOW + 30
    (advanced,) = engine.tick().advanced
    assert (advanced.level, advanced.next_action_at) == (3, NOW + 90)
    assert kinds(world.inbox("director")) == [("ESCALATION_REQUEST", 3)]
    world.clock.now = NOW + 90
    assert [e.id for e in engine.tick().expired] == [opened.id]
    assert [len(world.inbox(t)) for t in ("on-call", "lead", "director")] == [1, 1, 1]


def test_escalate_steps_chain_and_a_tick_climbing_into_one_goes_on(world: World) -> None:
    engine = world.engine(
        path(
            steps=[
                step(1, "notify", "on-call", 0.5),
                step(2, "escalate", "lead", 60),
                step(3, "escalate", "director", 60),
                step(4, "notify", "board", 5),
            ]
        )
    )
    (opened,) = world.gate(engine, world.result("api", "failed")).opened
    world.clock.now = NOW + 30
    report = engine.tick()
    assert [e.level for e in report.advanced] == [2, 3, 4]
    assert [(d.target, d.level) for d in report.deliveries] == [
        ("lead", 2),
        ("director", 3),
        ("board", 4),
    ]
    assert world.stored(opened.id).next_action_at == NOW + 30 + 300
    assert engine.tick().deliveries == []  # each level went out once


# --- decisions ---------------------------------------------------------------------------------


def test_a_decision_step_asks_and_waits_and_an_approval_waives_the_check(world: World) -> None:
    opened = opened_one(
        world, step(1, "approve", "on-call", waiver_minutes=30), step(2, "notify", "lead", 5)
    )
    (request,) = world.inbox("on-call")
    note = request["details"]["note"]
    assert f"maf-preflight escalations approve {opened.id} --reason TEXT" in note
    assert f"maf-preflight escalations reject {opened.id} --reason TEXT" in note
    assert "waives check 'api' for 30 minutes" in note

    engine = world.engine(
        path(steps=[step(1, "approve", "on-call", waiver_minutes=30), step(2, "notify", "lead", 5)])
    )
    world.clock.now = NOW + 3600  # a decision step without a timeout waits
    assert engine.tick().advanced == []

    report = engine.decide(opened.id, by="lead-agent", approve=True, reason="known flake")
    (decision,) = report.decisions
    assert (
        decision.escalation_id,
        decision.level,
        decision.decision,
        decision.decided_by,
        decision.reason,
        decision.decided_at,
    ) == (opened.id, 1, "approved", "lead-agent", "known flake", NOW + 3600)
    assert world.runtime.decisions(opened.id) == [decision]
    (waiver,) = report.waivers
    assert world.runtime.waivers(active_at=NOW + 3601, check_id="api") == [waiver]
    assert (waiver.granted_by, waiver.reason, waiver.escalation_id, waiver.scope) == (
        "lead-agent",
        "known flake",
        opened.id,
        {},
    )
    assert (waiver.granted_at, waiver.expires_at) == (NOW + 3600, NOW + 3600 + 30 * 60)
    acked = world.stored(opened.id)
    assert (acked.state, acked.acknowledged_by) == ("acknowledged", "lead-agent")
    (answer,) = responses(world)
    assert (answer.escalation_id, answer.action, answer.accepted, answer.responder) == (
        opened.id,
        "approve",
        True,
        "lead-agent",
    )
    assert (answer.note, answer.correlation_id) == ("known flake", opened.id)
    # Addressed to the agent that raised the escalation.
    assert world.runtime.dequeue(recipient=AGENT)[0].id == answer.id
    assert "escalation approved" in "\n".join(report.lines())

    # The approval holds for as long as its waiver: then the decision is asked again.
    world.clock.now = waiver.expires_at - 1
    assert engine.tick().retriggered == []
    world.clock.now = waiver.expires_at
    again = engine.tick()
    assert [e.id for e in again.retriggered] == [opened.id]
    assert world.stored(opened.id).state == "triggered"
    assert kinds(world.inbox("on-call")) == [("ESCALATION_REQUEST", 1)] * 2
    assert world.inbox("lead") == []


def test_the_waiver_lasts_what_the_command_says_else_the_step_else_the_default(
    world: World,
) -> None:
    engine = world.engine(
        path(steps=[step(1, "approve", "on-call", waiver_minutes=30)]),
        path("plain", steps=[step(1, "reject", "on-call")]),
    )
    first, second = (
        world.gate(engine, world.result("api", "failed")).opened[0],
        world.gate(engine, world.result("db", "failed"), path_id="plain").opened[0],
    )
    (given,) = engine.decide(
        first.id, by="lead", approve=True, reason="r", waiver_minutes=120
    ).waivers
    assert given.expires_at == NOW + 120 * 60
    (default,) = engine.decide(second.id, by="lead", approve=True, reason="r").waivers
    assert default.expires_at == NOW + DEFAULT_WAIVER_MINUTES * 60


def test_a_rejection_is_answered_and_withdraws_an_earlier_approval(world: World) -> None:
    engine = world.engine(path(steps=[step(1, "reject", "on-call", waiver_minutes=30)]))
    (opened,) = world.gate(engine, world.result("api", "failed")).opened

    world.clock.now = NOW + 10
    rejected = engine.decide(opened.id, by="lead", approve=False, reason="fix it first")
    assert [d.decision for d in rejected.decisions] == ["rejected"]
    assert rejected.waivers == []
    assert world.stored(opened.id).state == "triggered"  # it goes on as before

    world.clock.now = NOW + 20
    (waiver,) = engine.decide(opened.id, by="lead", approve=True, reason="ok for now").waivers
    world.clock.now = NOW + 30
    withdrawn = engine.decide(opened.id, by="boss", approve=False, reason="no")
    assert any("revoked by the rejection" in note for note in withdrawn.notes)
    (revoked,) = world.runtime.waivers(check_id="api")
    assert (revoked.id, revoked.revoked_by, revoked.revoked_at) == (waiver.id, "boss", NOW + 30)
    assert world.runtime.waivers(active_at=NOW + 31, check_id="api") == []
    assert [(m.action, m.accepted, m.responder) for m in responses(world)] == [
        ("reject", False, "lead"),
        ("approve", True, "lead"),
        ("reject", False, "boss"),
    ]
    assert [d.decision for d in world.runtime.decisions(opened.id)] == [
        "rejected",
        "approved",
        "rejected",
    ]
    # The approval's acknowledgement ended with its waiver: asked again at the next tick.
    assert [e.id for e in engine.tick().retriggered] == [opened.id]
    assert len(world.inbox("on-call")) == 2


def test_decisions_are_refused_below_a_decision_step_when_closed_or_not_permitted(
    world: World,
) -> None:
    engine = world.engine(
        path(
            steps=[
                step(1, "notify", "on-call", 0.5),
                step(2, "approve", "lead", 0.5),
                step(3, "notify", "boss", 5),
            ],
            permissions={"approve": ["lead"]},
        )
    )
    (opened,) = world.gate(engine, world.result("api", "failed")).opened
    with pytest.raises(EscalationError, match=r"at level 1 \(notify\), below every decision step"):
        engine.decide(opened.id, by="lead", approve=True, reason="r")

    world.clock.now = NOW + 30
    engine.tick()  # level 2: the decision is asked of lead
    assert "decision needed" in world.inbox("lead")[0]["details"]["note"]
    with pytest.raises(
        EscalationError, match=r"'someone' may not approve .*\(permissions\.approve: lead\)"
    ):
        engine.decide(opened.id, by="someone", approve=True, reason="r")
    with pytest.raises(EscalationError, match="needs a reason"):
        engine.decide(opened.id, by="lead", approve=True, reason="  ")
    with pytest.raises(EscalationError, match="positive number of minutes"):
        engine.decide(opened.id, by="lead", approve=True, reason="r", waiver_minutes=0)
    assert (world.runtime.decisions(), world.runtime.waivers(), responses(world)) == ([], [], [])

    world.clock.now = NOW + 60
    engine.tick()  # past the decision step: a decision may still be taken above it
    assert world.stored(opened.id).level == 3
    assert [
        d.level for d in engine.decide(opened.id, by="lead", approve=False, reason="r").decisions
    ] == [3]

    engine.resolve(opened.id, "lead")
    with pytest.raises(EscalationError, match="is resolved, not open"):
        engine.decide(opened.id, by="lead", approve=True, reason="r")


def test_a_reservation_checks_waiver_names_the_conflicting_leases_and_paths(world: World) -> None:
    leases = ["lease-b", "lease-a"]
    holders = [
        Holding(
            agent="claude-2",
            pattern="src/**",
            exclusive=True,
            expires_at=NOW + 600,
            source="leases",
            lease_id=lease,
        )
        for lease in leases
    ]
    conflicts = [
        Conflict(conflict_type="foreign_lease", path="src/b.py", holder=holders[0]).to_dict(),
        Conflict(conflict_type="foreign_lease", path="src/a.py", holder=holders[1]).to_dict(),
    ]
    engine = world.engine(path(steps=[step(1, "approve", "on-call")]))
    result = world.result(
        "locks",
        "failed",
        test_type="reservation_check/lock_validation",
        details={"conflicts": conflicts},
    )
    (opened,) = world.gate(engine, result).opened
    (waiver,) = engine.decide(opened.id, by="lead", approve=True, reason="pairing").waivers
    assert waiver.scope == {"leases": ["lease-a", "lease-b"], "paths": ["src/a.py", "src/b.py"]}


# --- the config --------------------------------------------------------------------------------


def _load(folder: Path, steps: str) -> list[LoadedConfig]:
    folder.mkdir()
    (folder / "path.yaml").write_text(
        "id: oncall\nname: On call\nconfigType: escalation_path\nversion: 1.0.0\nconfig:\n"
        "  triggerConditions:\n    - {condition: preflight_failure, threshold: 1}\n"
        f"  escalationSteps:\n{steps}"
    )
    files, errors = discover([folder])
    assert not errors
    return ConfigLoader(builtin_registry(), "development").load_files(files)


def test_the_step_fields_load_in_both_spellings_and_waivers_belong_to_decisions(
    tmp_path: Path,
) -> None:
    (loaded,) = _load(
        tmp_path / "good",
        "    - {level: 1, action: approve, target: lead,\n"
        "       waiverMinutes: 45, ackTimeoutMinutes: 5}\n",
    )
    assert isinstance(loaded.body, EscalationPathBody)
    (first,) = loaded.body.escalation_steps
    assert (first.waiver_minutes, first.ack_timeout_minutes) == (45, 5)
    with pytest.raises(
        ConfigLoadError, match=r"path\.yaml:.*waiver_minutes is for approve and reject"
    ):
        _load(
            tmp_path / "bad", "    - {level: 1, action: notify, target: lead, waiverMinutes: 45}\n"
        )

"""The escalation engine's own logic (SPEC S4) against real runtimes (memory and SQLite), real
mailbox files, a real webhook server on 127.0.0.1, an injected clock and an injected sleep."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers_engine import AGENT, NOW, World, kinds, path
from helpers_http import HttpServer, Response, StartHttpServer, scripted
from helpers_loopback import closed_port
from pytest_maf_preflight.escalation.engine import EngineReport, EscalationEngine
from pytest_maf_preflight.escalation.errors import EscalationError
from pytest_maf_preflight.reservations.conflicts import Conflict, Holding
from pytest_maf_preflight.runtime.interface import RuntimeState
from pytest_maf_preflight.runtime.records import DeliveryRecord, new_id


@pytest.fixture(params=["memory", "sqlite"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeState]:
    state: RuntimeState
    if request.param == "memory":
        from pytest_maf_preflight.runtime.memory import MemoryRuntime

        state = MemoryRuntime()
    else:
        from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

        state = SqliteRuntime(tmp_path / "runtime.db")
    yield state
    state.close()


@pytest.fixture
def world(runtime: RuntimeState, tmp_path: Path) -> World:
    return World(runtime, tmp_path)


# --- opening -----------------------------------------------------------------------------------


def test_opening_delivers_exactly_level_1_and_a_repeat_is_an_occurrence(world: World) -> None:
    engine = world.engine(path())
    report = world.gate(engine, world.result("api", "failed"))

    (opened,) = report.opened
    assert (opened.state, opened.level, opened.occurrences) == ("triggered", 1, 1)
    assert (opened.dedup_key, opened.check_id, opened.failure_class) == (
        "oncall:api:failed",
        "api",
        "failed",
    )
    assert opened.next_action_at == NOW + 30
    assert opened.details["agent_id"] == AGENT
    assert opened.path_snapshot["id"] == "oncall"
    assert world.deliveries(opened.id) == [("on-call", 1, "mailbox", "delivered")]
    (request,) = world.inbox("on-call")
    assert (
        request["type"],
        request["escalation_id"],
        request["level"],
        request["target"],
        request["dedup_key"],
    ) == ("ESCALATION_REQUEST", opened.id, 1, "on-call", "oncall:api:failed")
    assert world.inbox("lead") == []

    world.clock.now += 10
    again = world.gate(engine, world.result("api", "failed"))
    assert (again.opened, again.deliveries, again.advanced) == ([], [], [])
    (repeated,) = again.occurrences
    assert (repeated.id, repeated.occurrences) == (opened.id, 2)
    assert world.stored(opened.id).next_action_at == NOW + 30  # the climb keeps its pace
    assert len(world.inbox("on-call")) == 1
    assert "escalation repeated" in "\n".join(again.lines())


def test_a_skipped_check_neither_opens_nor_resolves(world: World) -> None:
    engine = world.engine(path())
    (opened,) = world.gate(engine, world.result("api", "failed")).opened
    report = world.gate(engine, world.result("api", "skipped"))
    assert (report.opened, report.resolved, report.occurrences) == ([], [], [])
    assert world.stored(opened.id).state == "triggered"


# --- ticks -------------------------------------------------------------------------------------


def test_a_tick_climbs_once_after_a_fractional_step_timeout_and_the_cap_holds(world: World) -> None:
    capped = path(
        steps=[(1, "on-call", 0.5), (2, "lead", 1), (3, "director", 1)], max_escalation_level=2
    )
    engine = world.engine(capped)
    (opened,) = world.gate(engine, world.result("api", "failed")).opened

    world.clock.now = NOW + 29.9
    early = engine.tick()
    assert (early.advanced, early.deliveries, early.expired) == ([], [], [])
    assert world.stored(opened.id).level == 1

    world.clock.now = NOW + 30  # half a minute
    report = engine.tick()
    (advanced,) = report.advanced
    assert (advanced.id, advanced.state, advanced.level) == (opened.id, "escalated", 2)
    assert advanced.next_action_at == NOW + 30 + 60
    assert [(d.target, d.level, d.status) for d in report.deliveries] == [("lead", 2, "delivered")]
    assert kinds(world.inbox("lead")) == [("ESCALATION_REQUEST", 2)]

    again = engine.tick()  # the same moment: nothing is due any more
    assert (again.advanced, again.deliveries) == ([], [])
    # Another engine on the same runtime (another process) finds nothing due either.
    assert world.engine(capped).tick().advanced == []
    assert len(world.inbox("lead")) == 1

    world.clock.now = NOW + 90
    last = engine.tick()
    assert [e.id for e in last.expired] == [opened.id]
    assert world.inbox("director") == []  # level 3 is above max_escalation_level
    done = world.stored(opened.id)
    assert (done.state, done.level, done.next_action_at) == ("expired", 2, None)
    assert world.deliveries(opened.id) == [
        ("on-call", 1, "mailbox", "delivered"),
        ("lead", 2, "mailbox", "delivered"),
    ]


def test_a_late_tick_climbs_one_level_and_restarts_the_step_clock(world: World) -> None:
    engine = world.engine(path(steps=[(1, "on-call", 0.5), (2, "lead", 0.5), (3, "director", 0.5)]))
    world.gate(engine, world.result("api", "failed"))
    world.clock.now = NOW + 600  # every step has long timed out
    (advanced,) = engine.tick().advanced
    assert (advanced.level, advanced.next_action_at) == (2, NOW + 630)
    assert world.inbox("director") == []


def test_a_path_whose_first_step_is_not_level_1_delivers_each_step_once(world: World) -> None:
    engine = world.engine(path(steps=[(2, "on-call", 0.5), (3, "lead", 0.5)]))
    (opened,) = world.gate(engine, world.result("api", "failed")).opened
    assert opened.level == 2  # the level last delivered
    assert kinds(world.inbox("on-call")) == [("ESCALATION_REQUEST", 2)]

    world.clock.now = NOW + 30
    (advanced,) = engine.tick().advanced
    assert advanced.level == 3
    assert len(world.inbox("on-call")) == 1
    assert kinds(world.inbox("lead")) == [("ESCALATION_REQUEST", 3)]


def test_the_path_timeout_expires_it_and_nothing_more_is_sent(world: World) -> None:
    engine = world.engine(
        path(steps=[(1, "on-call", 0.5), (2, "lead", 5), (3, "director", 5)], timeout_minutes=1.5)
    )
    (opened,) = world.gate(engine, world.result("api", "failed")).opened
    world.clock.now = NOW + 30
    (advanced,) = engine.tick().advanced
    assert advanced.next_action_at == NOW + 90  # the path times out before the step

    world.clock.now = NOW + 90
    report = engine.tick()
    assert [e.id for e in report.expired] == [opened.id]
    assert report.deliveries == []
    assert any("timeout" in note for note in report.notes)
    assert (world.stored(opened.id).state, world.stored(opened.id).next_action_at) == (
        "expired",
        None,
    )

    world.clock.now = NOW + 3600
    assert engine.tick().deliveries == []
    assert world.inbox("director") == []
    # An expired escalation is closed: the next failure opens a new one.
    (fresh,) = world.gate(engine, world.result("api", "failed")).opened
    assert fresh.id != opened.id


def test_with_no_level_left_it_expires(world: World) -> None:
    engine = world.engine(path(steps=[(1, "on-call", 0.5)]))
    (opened,) = world.gate(engine, world.result("api", "failed")).opened
    world.clock.now = NOW + 30
    report = engine.tick()
    assert [e.id for e in report.expired] == [opened.id]
    assert report.deliveries == []
    assert any("no level is left" in note for note in report.notes)
    assert world.stored(opened.id).state == "expired"
    assert len(world.inbox("on-call")) == 1


def _climb(world: World, engine: EscalationEngine, ticks: int) -> list[EngineReport]:
    reports = []
    for _ in range(ticks):
        world.clock.now += 30
        reports.append(engine.tick())
    return reports


def test_repeat_true_loops_back_to_level_1_and_counts_rounds(world: World) -> None:
    engine = world.engine(path(steps=[(1, "on-call", 0.5), (2, "lead", 0.5)], repeat=True))
    (opened,) = world.gate(engine, world.result("api", "failed")).opened

    reports = _climb(world, engine, 7)
    assert [[e.level for e in r.advanced] for r in reports] == [[2], [1], [2], [1], [2], [1], [2]]
    assert [r.expired for r in reports] == [[]] * 7
    current = world.stored(opened.id)
    assert (current.state, current.level, current.details["rounds"]) == ("escalated", 2, 3)
    assert (len(world.inbox("on-call")), len(world.inbox("lead"))) == (4, 4)


def test_repeat_2_allows_two_more_rounds_then_expires(world: World) -> None:
    engine = world.engine(path(steps=[(1, "on-call", 0.5), (2, "lead", 0.5)], repeat=2))
    (opened,) = world.gate(engine, world.result("api", "failed")).opened

    reports = _climb(world, engine, 7)
    assert [[e.level for e in r.advanced] for r in reports] == [[2], [1], [2], [1], [2], [], []]
    assert [[e.id for e in r.expired] for r in reports][5] == [opened.id]
    assert [r.details.get("rounds") for r in reports[1].advanced] == [1]
    done = world.stored(opened.id)
    assert (done.state, done.details["rounds"]) == ("expired", 2)
    assert (len(world.inbox("on-call")), len(world.inbox("lead"))) == (3, 3)


# --- acknowledge, resolve, permissions ---------------------------------------------------------


def test_an_acknowledged_escalation_stays_put_and_resolving_records_who_and_when(
    world: World,
) -> None:
    engine = world.engine(path())
    (opened,) = world.gate(engine, world.result("api", "failed")).opened

    world.clock.now = NOW + 10
    acked = engine.acknowledge(opened.id, "human-1")
    assert (acked.state, acked.acknowledged_by, acked.acknowledged_at) == (
        "acknowledged",
        "human-1",
        NOW + 10,
    )
    assert acked.next_action_at is None
    world.clock.now = NOW + 3600
    assert engine.tick().advanced == []
    assert world.inbox("lead") == []
    with pytest.raises(EscalationError, match="is acknowledged; only a triggered or escalated"):
        engine.acknowledge(opened.id, "human-1")
    # A repeat failure while acknowledged is one more occurrence of the same escalation.
    assert [e.id for e in world.gate(engine, world.result("api", "failed")).occurrences] == [
        opened.id
    ]

    report = engine.resolve(opened.id, "human-2", "restarted it")
    (done,) = report.resolved
    assert (done.state, done.resolved_by, done.resolved_at) == ("resolved", "human-2", NOW + 3600)
    assert done.acknowledged_by == "human-1"
    assert [(d.target, d.level, d.status) for d in report.deliveries] == [
        ("on-call", 1, "delivered")
    ]
    _, notice = world.inbox("on-call")
    assert (
        notice["type"],
        notice["escalation_id"],
        notice["action"],
        notice["responder"],
        notice["note"],
    ) == ("ESCALATION_RESPONSE", opened.id, "resolve", "human-2", "restarted it")
    with pytest.raises(EscalationError, match="is resolved, not open"):
        engine.resolve(opened.id, "human-2")
    with pytest.raises(EscalationError, match="no escalation 'nope'"):
        engine.acknowledge("nope", "human-1")


def test_permissions_refuse_naming_the_rule(world: World) -> None:
    guarded = path(
        permissions={
            "acknowledge": ["lead-agent"],
            "resolve": ["lead-agent"],
            "escalate_to": {AGENT: ["lead"], "boss": ["*"]},
        }
    )
    engine = world.engine(guarded)
    with pytest.raises(EscalationError, match=r"permissions\.escalate_to\.gate-agent: lead"):
        engine.raise_manual("oncall", summary="the data is stale")
    assert world.runtime.escalations() == []
    assert world.inbox("on-call") == []

    (opened,) = world.gate(engine, world.result("api", "failed")).opened  # a trigger may
    with pytest.raises(
        EscalationError,
        match=r"'someone' may not acknowledge .*"
        r"\(permissions\.acknowledge: lead-agent\)",
    ):
        engine.acknowledge(opened.id, "someone")
    with pytest.raises(
        EscalationError,
        match=r"'someone' may not resolve .*"
        r"\(permissions\.resolve: lead-agent\)",
    ):
        engine.resolve(opened.id, "someone")
    assert world.stored(opened.id).state == "triggered"
    assert engine.acknowledge(opened.id, "lead-agent").acknowledged_by == "lead-agent"
    assert engine.resolve(opened.id, "lead-agent").resolved[0].resolved_by == "lead-agent"

    manual = world.engine(guarded, agent_id="boss").raise_manual("oncall", summary="by hand")
    assert manual is not None
    assert (manual.failure_class, manual.details["agent_id"]) == ("manual", "boss")
    assert len(world.inbox("on-call")) == 3  # trigger request, its resolution, the manual one


def test_raise_manual_refuses_unknown_paths_and_severities(world: World) -> None:
    engine = world.engine(path())
    with pytest.raises(EscalationError, match=r"no escalation path 'other' \(known: oncall\)"):
        engine.raise_manual("other", summary="x")
    with pytest.raises(EscalationError, match="severity 'info'"):
        engine.raise_manual("oncall", summary="x", severity="info")
    assert world.runtime.escalations() == []
    first = engine.raise_manual("oncall", summary="stale", severity="warning", check_id="etl")
    again = engine.raise_manual("oncall", summary="stale", severity="warning", check_id="etl")
    assert first is not None
    assert again is not None
    assert (first.dedup_key, again.id, again.occurrences) == ("oncall:etl:manual", first.id, 2)
    (request,) = world.inbox("on-call")
    assert (request["severity"], request["summary"]) == ("warning", "stale")


# --- resolution by the gate --------------------------------------------------------------------


def test_a_passing_check_resolves_and_tells_every_target_told_so_far(world: World) -> None:
    engine = world.engine(path())
    opened = world.gate(engine, world.result("api", "failed"), world.result("db", "failed"))
    api, db = sorted(opened.opened, key=lambda e: e.check_id or "")
    manual = engine.raise_manual("oncall", summary="by hand", check_id="api")
    assert manual is not None
    world.clock.now = NOW + 30
    assert sorted(e.id for e in engine.tick().advanced) == sorted([api.id, db.id, manual.id])

    world.clock.now = NOW + 40
    report = world.gate(engine, world.result("api", "passed"), world.result("db", "failed"))
    assert [e.id for e in report.resolved] == [api.id]
    assert (report.resolved[0].resolved_by, report.resolved[0].resolved_at) == (AGENT, NOW + 40)
    assert sorted(
        (d.escalation_id, d.target, d.level, d.status) for d in report.deliveries
    ) == sorted([(api.id, "on-call", 1, "delivered"), (api.id, "lead", 2, "delivered")])
    assert [e.id for e in report.occurrences] == [db.id]
    for target in ("on-call", "lead"):
        responses = [m for m in world.inbox(target) if m["type"] == "ESCALATION_RESPONSE"]
        assert [(m["escalation_id"], m["action"]) for m in responses] == [(api.id, "resolve")]
    assert world.stored(db.id).state == "escalated"
    assert world.stored(manual.id).state == "escalated"  # raised by hand: resolved by hand


def test_after_a_repeat_round_the_resolution_reaches_every_level(world: World) -> None:
    engine = world.engine(path(steps=[(1, "on-call", 0.5), (2, "lead", 0.5)], repeat=True))
    (opened,) = world.gate(engine, world.result("api", "failed")).opened
    _climb(world, engine, 2)  # level 2, then level 1 again
    assert world.stored(opened.id).level == 1

    report = world.gate(engine, world.result("api", "passed"))
    assert sorted((d.target, d.level) for d in report.deliveries) == [("lead", 2), ("on-call", 1)]


def test_a_passing_check_resolves_its_escalation_whatever_path_it_names_now(world: World) -> None:
    old, new = path("old-path"), path("new-path", steps=[(1, "other", 1)])
    engine = world.engine(old, new)
    (opened,) = world.gate(engine, world.result("api", "failed"), path_id="old-path").opened
    report = world.gate(engine, world.result("api", "passed"), path_id="new-path")
    assert [e.id for e in report.resolved] == [opened.id]
    assert [(d.target, d.level) for d in report.deliveries] == [("on-call", 1)]
    assert world.inbox("other") == []


def test_only_targets_that_were_told_hear_the_resolution(world: World) -> None:
    engine = world.engine(path(steps=[(1, "on-call", 0.5), (2, "lead", 1)]))
    (opened,) = world.gate(engine, world.result("api", "failed")).opened
    report = engine.resolve(opened.id, "human-1")
    assert [e.id for e in report.resolved] == [opened.id]
    assert [(d.target, d.level) for d in report.deliveries] == [("on-call", 1)]
    assert world.inbox("lead") == []


def test_system_down_opens_without_a_check_and_resolves_when_a_critical_check_passes(
    world: World,
) -> None:
    engine = world.engine(path(conditions=[{"condition": "system_down"}]))
    report = world.gate(
        engine,
        world.result("api", "failed"),
        world.result("db", "timeout"),
        world.result("lint", "passed", severity="warning"),
    )
    (down,) = report.opened
    assert (down.check_id, down.failure_class, down.dedup_key) == (
        None,
        "system_down",
        "oncall:*:system_down",
    )
    assert down.details["severity"] == "critical"
    assert world.deliveries(down.id) == [("on-call", 1, "mailbox", "delivered")]

    still = world.gate(engine, world.result("api", "failed"), world.result("db", "failed"))
    assert ([e.id for e in still.occurrences], still.resolved) == ([down.id], [])

    world.clock.now += 10
    up = world.gate(engine, world.result("api", "failed"), world.result("db", "passed"))
    assert [e.id for e in up.resolved] == [down.id]
    assert [(d.target, d.status) for d in up.deliveries] == [("on-call", "delivered")]
    assert world.stored(down.id).state == "resolved"
    assert up.opened == []


def test_only_some_critical_checks_failing_is_not_system_down(world: World) -> None:
    engine = world.engine(path(conditions=[{"condition": "system_down"}]))
    report = world.gate(engine, world.result("api", "failed"), world.result("db", "passed"))
    assert report.opened == []
    assert world.runtime.escalations() == []


def test_an_overridden_reservation_conflict_stays_escalated(world: World) -> None:
    holder = Holding(
        agent="claude-2",
        pattern="src/**",
        exclusive=True,
        expires_at=NOW + 600,
        source="leases",
        lease_id=new_id(),
    )
    conflicts = [Conflict(conflict_type="foreign_lease", path="src/a.py", holder=holder).to_dict()]
    engine = world.engine(
        path(conditions=[{"condition": "preflight_failure"}, {"condition": "reservation_conflict"}])
    )
    kind = "reservation_check/lock_validation"
    report = world.gate(
        engine, world.result("locks", "failed", test_type=kind, details={"conflicts": conflicts})
    )
    keys = sorted(e.dedup_key for e in report.opened)
    assert keys == ["oncall:locks:failed", "oncall:locks:reservation_conflict"]

    overridden = world.gate(
        engine,
        world.result(
            "locks", "passed", test_type=kind, details={"conflicts": conflicts, "override": True}
        ),
    )
    # The check passes now, so its failure is over; the conflict is not.
    assert [e.dedup_key for e in overridden.resolved] == ["oncall:locks:failed"]
    assert [e.dedup_key for e in overridden.occurrences] == ["oncall:locks:reservation_conflict"]

    clean = world.gate(
        engine, world.result("locks", "passed", test_type=kind, details={"conflicts": []})
    )
    assert [e.dedup_key for e in clean.resolved] == ["oncall:locks:reservation_conflict"]


def test_a_check_naming_a_path_that_is_not_loaded_is_a_note(world: World) -> None:
    engine = world.engine(path())
    report = world.gate(engine, world.result("api", "failed"), path_id="missing")
    assert report.opened == []
    assert report.notes == ["check 'api' names escalation path 'missing', which is not loaded"]


# --- delivery off ------------------------------------------------------------------------------


def test_with_delivery_off_nothing_is_raised_sent_or_advanced(world: World) -> None:
    """An escalation opened but never delivered would sit at level 1 and swallow the next
    real failure as an occurrence: with delivery off nothing opens at all."""
    engine = world.engine(path(), deliver=False)
    report = world.gate(engine, world.result("api", "failed"))
    assert (report.opened, report.deliveries) == ([], [])
    assert report.notes == [
        "oncall:api:failed: not raised (escalations are off)",
        "delivery is off for this run: nothing was sent or advanced",
    ]
    assert world.runtime.escalations() == []
    assert not world.mail_root.exists()
    assert engine.raise_manual("oncall", summary="by hand") is None

    # The next run with delivery on opens it and delivers level 1.
    (opened,) = world.gate(world.engine(path()), world.result("api", "failed")).opened
    assert world.deliveries(opened.id) == [("on-call", 1, "mailbox", "delivered")]


# --- channels through the engine ---------------------------------------------------------------


@pytest.fixture
def hook(http_server: StartHttpServer) -> HttpServer:
    """A webhook that fails twice with a 500, then accepts."""
    return http_server(
        scripted(Response(500, b"ok"), Response(500, b"ok"), then=Response(202, b"ok"))
    )


def test_a_webhook_target_retries_through_the_injected_sleep(
    world: World, hook: HttpServer
) -> None:
    url = hook.url("/events")
    engine = world.engine(
        path(steps=[(1, "pager", 1)], targets={"pager": {"channel": "webhook", "url": url}})
    )
    (opened,) = world.gate(engine, world.result("api", "failed")).opened

    records = world.runtime.deliveries(opened.id)
    assert [(d.channel, d.target, d.attempt, d.status) for d in records] == [
        ("webhook", "pager", 1, "failed"),
        ("webhook", "pager", 2, "failed"),
        ("webhook", "pager", 3, "delivered"),
    ]
    assert len(world.sleeps) == 2  # the backoff went through the injected sleep
    bodies = [request.json() for request in hook.requests]
    assert [b["dedup_key"] for b in bodies] == ["oncall:api:failed"] * 3
    assert {b["event_action"] for b in bodies} == {"trigger"}
    assert world.inbox("pager") == []


def test_an_agent_mail_target_nobody_answers_falls_back_to_the_mailbox(world: World) -> None:
    url = f"http://127.0.0.1:{closed_port()}/mcp/"
    engine = world.engine(
        path(steps=[(1, "on-call", 1)], targets={"on-call": {"channel": "agent_mail", "url": url}})
    )
    (opened,) = world.gate(engine, world.result("api", "failed")).opened

    failed, fallback = world.runtime.deliveries(opened.id)
    assert (failed.channel, failed.attempt, failed.status) == ("agent_mail", 1, "failed")
    assert (fallback.channel, fallback.attempt, fallback.status) == ("mailbox", 2, "fallback")
    assert "did not answer" in (fallback.error or "")
    assert kinds(world.inbox("on-call")) == [("ESCALATION_REQUEST", 1)]


def test_a_target_the_channels_refuse_is_a_failed_delivery_not_a_crash(world: World) -> None:
    long_name = "t" * 200  # a valid config id, too long for a mailbox directory
    engine = world.engine(path(steps=[(1, long_name, 0.5), (2, "lead", 1)]))
    report = world.gate(engine, world.result("api", "failed"))
    (opened,) = report.opened
    (record,) = world.runtime.deliveries(opened.id)
    assert (record.target, record.channel, record.status) == (long_name, "mailbox", "failed")
    assert "invalid escalation target name" in (record.error or "")
    assert not (world.mail_root / "mailboxes").exists()

    world.clock.now = NOW + 30  # the climb goes on past the broken step
    assert [e.level for e in engine.tick().advanced] == [2]
    assert len(world.inbox("lead")) == 1


# --- robustness --------------------------------------------------------------------------------


def test_a_broken_path_snapshot_does_not_stop_the_other_escalations(world: World) -> None:
    engine = world.engine(path())
    (good,) = world.gate(engine, world.result("api", "failed")).opened
    broken, _ = world.runtime.open_escalation(
        path_id="gone",
        dedup_key="gone:x:failed",
        check_id="x",
        failure_class="failed",
        path_snapshot={"id": "gone", "version": "0", "config": {"escalation_steps": "?"}},
        next_action_at=NOW + 1,
        details={},
        now=NOW,
    )

    world.clock.now = NOW + 30
    report = engine.tick()
    assert [e.id for e in report.advanced] == [good.id]
    assert any(broken.id[:12] in note and "snapshot" in note for note in report.notes)
    with pytest.raises(EscalationError, match="snapshot"):
        engine.resolve(broken.id, "human-1")


def test_the_report_lines_name_each_event(world: World) -> None:
    engine = world.engine(path())
    (opened,) = world.gate(engine, world.result("api", "failed")).opened
    world.clock.now = NOW + 30
    lines = engine.tick().lines()
    assert lines == [
        f"escalation advanced: {opened.id[:12]} oncall:api:failed to level 2",
        "  delivery mailbox -> lead (level 2, attempt 1): delivered",
    ]


def test_deliveries_are_recorded_with_the_escalation(world: World) -> None:
    engine = world.engine(path())
    report = world.gate(engine, world.result("api", "failed"))
    assert report.deliveries == world.runtime.deliveries()
    assert all(isinstance(d, DeliveryRecord) for d in report.deliveries)

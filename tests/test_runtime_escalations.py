"""The escalation store across real processes (SPEC S4): two ticks never win the same level,
and a failure reported by many processes at once is one escalation with every occurrence
counted; for SQLite and JSON.

The contract of a single process is in ``test_runtime_contract.py``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from helpers_runtime_procs import MODES, T0, WORKERS, open_due, open_store, run_together, where
from pytest_maf_preflight.runtime.jsonl import JsonRuntime
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime


@pytest.mark.parametrize("mode", MODES)
def test_eight_ticks_claiming_one_due_level_have_one_winner(mode: str, tmp_path: Path) -> None:
    with open_store(mode, tmp_path) as store:
        due = open_due(store, "critical:git:failed", T0 + 30)
        later = open_due(store, "critical:lint:failed", T0 + 5000)  # not due: nobody claims
    reports = run_together(
        tmp_path,
        [
            ["escalation-claim", mode, str(where(mode, tmp_path)), f"tick-{n}", str(T0 + 31)]
            for n in range(WORKERS)
        ],
    )
    assert all(r["due"] == 1 for r in reports)  # every tick saw the level as due
    winners = [r for r in reports if r["won"]]
    assert len(winners) == 1, reports
    assert winners[0]["won"] == [[due, 2]]
    with open_store(mode, tmp_path) as store:
        record = store.get_escalation(due)
        assert record is not None
        assert (record.state, record.level, record.next_action_at) == ("escalated", 2, T0 + 31 + 60)
        assert record.details == {"claimed_by": winners[0]["agent"]}
        deliveries = store.deliveries()
        assert [(d.escalation_id, d.level, d.target) for d in deliveries] == [
            (due, 2, winners[0]["agent"])
        ]
        untouched = store.get_escalation(later)
        assert untouched is not None
        assert untouched.level == 1


@pytest.mark.parametrize("mode", MODES)
def test_eight_ticks_climbing_together_deliver_each_level_once(mode: str, tmp_path: Path) -> None:
    top = 12
    with open_store(mode, tmp_path) as store:
        escalation = open_due(store, "critical:git:timeout", T0 + 0.1)
    reports = run_together(
        tmp_path,
        [
            [
                "escalation-climb",
                mode,
                str(where(mode, tmp_path)),
                escalation,
                str(top),
                f"tick-{n}",
            ]
            for n in range(WORKERS)
        ],
    )
    won = Counter(level for r in reports for level in r["won"])
    assert won == Counter(range(2, top + 1))  # every level won, none twice
    with open_store(mode, tmp_path) as store:
        assert sorted(d.level for d in store.deliveries(escalation)) == list(range(2, top + 1))
        record = store.get_escalation(escalation)
        assert record is not None
        assert record.level == top


@pytest.mark.parametrize("mode", MODES)
def test_eight_processes_opening_one_key_share_one_escalation(mode: str, tmp_path: Path) -> None:
    open_store(mode, tmp_path).close()  # the children race for the key, not the schema
    reports = run_together(
        tmp_path,
        [
            [
                "escalation-open",
                mode,
                str(where(mode, tmp_path)),
                "critical:git:failed",
                f"agent-{n}",
            ]
            for n in range(WORKERS)
        ],
    )
    assert sum(bool(r["created"]) for r in reports) == 1, reports
    assert len({r["id"] for r in reports}) == 1
    assert sorted(r["occurrences"] for r in reports) == list(range(1, WORKERS + 1))
    with open_store(mode, tmp_path) as store:
        stored = store.escalations()
        assert len(stored) == 1
        assert stored[0].occurrences == WORKERS
        assert stored[0].state == "triggered"
        assert store.info().counts["escalations"] == 1


# --- the JSON log: broken lines, compaction ---------------------------------------------------


def test_json_skips_and_reports_broken_escalation_and_delivery_lines(tmp_path: Path) -> None:
    with JsonRuntime(tmp_path) as store:
        escalation = open_due(store, "critical:git:failed", T0 + 30)
        claimed = store.claim_escalation(
            escalation,
            expect_level=1,
            expect_next_action_at=T0 + 30,
            level=2,
            next_action_at=T0 + 90,
            state="escalated",
            now=T0 + 31,
        )
        assert claimed is not None
    runtime_dir = tmp_path / "runtime"
    with open(runtime_dir / "escalations.jsonl", "ab") as log:
        log.write(b'{"kind":"escalation","v":1,"record":{"id":"x"}}\n')  # fields missing
        log.write(b"not json at all\n")
        log.write(b'{"kind":"escalation","v":1,"record":{"id":"')  # a writer killed mid-line
    with open(runtime_dir / "deliveries.jsonl", "ab") as log:
        log.write(b'{"kind":"delivery","v":1,"record":{"escalation_id":"x","level":"one"}}\n')
    with JsonRuntime(tmp_path) as store:
        assert store.escalations() == [claimed]  # the last good line of the id wins
        assert store.deliveries() == []
        notes = "\n".join(store.info().notes)
        assert "escalations.jsonl line 3: invalid escalation: missing field" in notes
        assert "escalations.jsonl line 4: not valid JSON" in notes
        assert "escalations.jsonl line 5: truncated line" in notes
        assert "deliveries.jsonl line 1: invalid delivery" in notes
        # The next write ends the truncated line first, so the log stays readable.
        moved = store.transition_escalation(
            escalation, state="resolved", by="lead", from_states=("escalated",), now=T0 + 100
        )
    with JsonRuntime(tmp_path) as store:
        assert store.escalations() == [moved]


def test_json_compacts_a_long_escalation_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytest_maf_preflight.runtime.jsonl as jsonl

    monkeypatch.setattr(jsonl, "ESCALATIONS_COMPACT_LINES", 20)
    log = tmp_path / "runtime" / "escalations.jsonl"
    with JsonRuntime(tmp_path) as writer, JsonRuntime(tmp_path) as reader:
        escalation = open_due(writer, "critical:git:failed", T0)
        closed = open_due(writer, "critical:lint:failed", T0)
        writer.transition_escalation(
            closed, state="expired", by=None, from_states=("triggered",), now=T0 + 1
        )
        before = reader.escalations()  # the reader has the log cached before the rewrite
        record = writer.get_escalation(escalation)
        for _ in range(40):
            assert record is not None
            assert record.next_action_at is not None
            record = writer.claim_escalation(
                escalation,
                expect_level=record.level,
                expect_next_action_at=record.next_action_at,
                level=record.level + 1,
                next_action_at=record.next_action_at + 1,
                state="escalated",
            )
        assert record is not None
        assert record.level == 41
        lines = log.read_bytes().count(b"\n")
        assert lines < 20  # rewritten, not 43 lines
        assert len(before) == 2
        assert {e.id: e for e in reader.escalations()}[escalation] == record
        assert {e.id: e.state for e in reader.escalations()} == {
            escalation: "escalated",
            closed: "expired",
        }
        again, created = reader.open_escalation(
            path_id="critical",
            dedup_key="critical:git:failed",
            check_id="git",
            failure_class="failed",
            path_snapshot={},
            next_action_at=None,
            details={},
        )
        assert not created
        assert again.occurrences == 2


def test_sync_leaves_escalations_where_they_are_and_says_so(tmp_path: Path) -> None:
    from pytest_maf_preflight.runtime.records import DeliveryRecord
    from pytest_maf_preflight.runtime.sync import sync

    with JsonRuntime(tmp_path / "mail") as source, SqliteRuntime(tmp_path / "runtime.db") as target:
        escalation = open_due(source, "critical:git:failed", T0 + 30)
        source.record_delivery(
            DeliveryRecord(
                escalation_id=escalation,
                level=1,
                channel="mailbox",
                target="lead",
                attempt=1,
                status="delivered",
                error=None,
                response={},
                attempted_at=T0,
            )
        )
        report = sync(source, target)
        assert target.escalations() == []
        assert target.deliveries() == []
        assert report.complete
        assert (
            "1 escalations and 1 delivery attempts were not copied: escalations are live "
            "state and stay in the store that opened them"
        ) in report.notes
        assert len(source.escalations()) == 1

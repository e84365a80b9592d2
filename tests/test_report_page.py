"""The report page from the runtime (issue 16): what each section shows, read from real stores,
and every stored string shown as text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers_browser import Element, elements, text_of
from helpers_original_maf import build_database, lease_file
from helpers_report_page import LADDER, record_run
from pytest_maf_preflight.report_page.assets import SCRIPT, content_security_policy, script_hash
from pytest_maf_preflight.report_page.gather import page_from_runtime
from pytest_maf_preflight.report_page.model import PageData
from pytest_maf_preflight.report_page.render import render, write_page
from pytest_maf_preflight.runtime.interface import RuntimeState
from pytest_maf_preflight.runtime.memory import MemoryRuntime
from pytest_maf_preflight.runtime.records import DeliveryRecord
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

NOW = 1_800_000_000.0


def page(
    runtime: RuntimeState,
    root: Path,
    *,
    since: float | None = None,
    agent: str | None = None,
    now: float = NOW,
) -> PageData:
    return page_from_runtime(
        runtime,
        store="the test runtime",
        scope="all agents",
        since=since,
        agent_id=agent,
        rootdir=root,
        now=now,
    )


def bars(html: str) -> list[Element]:
    return elements(html, "data-bar")


def by_check(found: list[Element]) -> dict[str, Element]:
    return {e.attrs["data-check-id"]: e for e in found}


def test_the_timeline_shows_the_latest_sessions_checks_on_one_axis(tmp_path: Path) -> None:
    runtime = MemoryRuntime()
    record_run(runtime, NOW - 7200, [("old-check", "passed", 0.0, 1.0, 1)])
    record_run(
        runtime,
        NOW - 60,
        [
            ("api", "failed", 0.0, 0.5, 3),
            ("docker", "passed", 0.02, 2.0, 1),
            ("disk", "passed", 1.0, 0.01, 1),
        ],
    )
    html = render(page(runtime, tmp_path))
    shown = by_check(bars(html))
    assert sorted(shown) == ["api", "disk", "docker"]  # one bar per check of the latest run
    api, docker, disk = shown["api"], shown["docker"], shown["disk"]
    assert (api.attrs["data-status"], api.attrs["data-attempts"]) == ("failed", "3")
    assert "st-failed" in api.classes
    assert "st-passed" in docker.classes
    # The gate waited for docker last: it decided the gate's time.
    assert [e.attrs["data-check-id"] for e in bars(html) if e.attrs["data-decisive"] == "true"] == [
        "docker"
    ]
    assert "decisive" in docker.classes
    # Positions on the shared axis: 2.02 s in all; disk starts at 1.0 s, docker ends last.
    assert disk.attrs["style"] == "left:49.505%;width:0.495%"
    assert docker.attrs["style"] == "left:0.990%;width:99.010%"
    assert api.attrs["style"] == "left:0.000%;width:24.752%"
    assert "the gate waited last for <strong>docker</strong>" in html


def test_history_strip_sparkline_and_pass_rate(tmp_path: Path) -> None:
    with SqliteRuntime(tmp_path / "runtime.db") as runtime:
        for i in range(60):
            status = "failed" if i % 3 == 0 else "passed"
            record_run(runtime, NOW - 3600 + i * 10, [("api", status, 0.0, 0.1 + i / 100, 1)])
        html = render(page(runtime, tmp_path))
    [row] = elements(html, "data-history")
    assert (row.attrs["data-check-id"], row.attrs["data-outcomes"]) == ("api", "50")
    strip = [e.attrs["data-outcome"] for e in elements(html, "data-outcome")]
    # The newest 50 (i = 10..59), oldest first: the newest is the strip's right end.
    assert strip == ["failed" if i % 3 == 0 else "passed" for i in range(10, 60)]
    assert len(elements(html, tag="polyline")) == 1
    # The pass rate counts the whole history (40 of 60), not only what the strip shows.
    assert "67%" in text_of(html)
    assert '<td class="num">60</td>' in html


def test_flaky_checks_are_ranked_by_flip_rate(tmp_path: Path) -> None:
    runtime = MemoryRuntime()
    patterns = {
        "steady": "pppppppp",
        "broken": "ffffffff",
        "flapping": "pfpfpfpf",
        "sometimes": "ppppffpp",
    }
    for i in range(8):
        record_run(
            runtime,
            NOW - 1000 + i,
            [
                (check, "passed" if outcomes[i] == "p" else "failed", 0.0, 0.1, 1)
                for check, outcomes in patterns.items()
            ],
        )
    html = render(page(runtime, tmp_path))
    ranked = [e.attrs["data-check-id"] for e in elements(html, "data-flaky")]
    assert ranked == ["flapping", "sometimes"]  # 7 of 7 flips, then 2 of 7; none for the rest
    assert "7 of 7" in html
    assert "2 of 7" in html


def test_leases_escalations_and_agents(tmp_path: Path) -> None:
    runtime = MemoryRuntime()
    runtime.acquire_leases("codex-1", ["src/api/**"], ttl=1800, reason="rework", now=NOW - 60)
    runtime.acquire_leases("claude-2", ["docs/"], ttl=60, exclusive=False, now=NOW - 300)
    build_database(tmp_path / ".maf" / "runtime.db", source="transcription")
    lease_file(tmp_path / ".maf" / "runtime.db", "src/db.py", "maf-agent", NOW + 600)
    snapshot = {"id": "ladder", "version": "1", "config": LADDER}
    climbing, _ = runtime.open_escalation(
        path_id="ladder",
        dedup_key="check:api:failed",
        check_id="api",
        failure_class="failed",
        path_snapshot=snapshot,
        next_action_at=NOW - 900,
        details={"summary": "api failed"},
        now=NOW - 1800,
    )
    runtime.record_delivery(
        DeliveryRecord(climbing.id, 1, "mailbox", "on-call", 1, "delivered", None, {}, NOW - 1800)
    )
    runtime.claim_escalation(
        climbing.id,
        expect_level=1,
        expect_next_action_at=NOW - 900,
        level=2,
        next_action_at=NOW + 900,
        state="escalated",
        now=NOW - 900,
    )
    runtime.record_delivery(
        DeliveryRecord(climbing.id, 2, "webhook", "lead", 1, "failed", "refused", {}, NOW - 900)
    )
    acked, _ = runtime.open_escalation(
        path_id="ladder",
        dedup_key="check:db:failed",
        check_id="db",
        failure_class="failed",
        path_snapshot=snapshot,
        next_action_at=NOW + 60,
        details={},
        now=NOW - 100,
    )
    runtime.transition_escalation(
        acked.id, state="acknowledged", by="lead-dev", from_states=("triggered",), now=NOW - 50
    )
    resolved, _ = runtime.open_escalation(
        path_id="ladder",
        dedup_key="check:old:failed",
        check_id="old",
        failure_class="failed",
        path_snapshot=snapshot,
        next_action_at=None,
        details={},
        now=NOW - 100,
    )
    runtime.transition_escalation(
        resolved.id, state="resolved", by="x", from_states=("triggered",), now=NOW - 40
    )
    runtime.heartbeat("codex-1", at=NOW - 30, agent_type="worker", capabilities=["python"])
    runtime.heartbeat("boss", at=NOW - 5, agent_type="coordinator")

    html = render(page(runtime, tmp_path))

    leases = elements(html, "data-lease")
    # Active only (claude-2's expired), the runtime's and the original MAF's.
    assert [e.attrs["data-holder"] for e in leases] == ["maf-agent", "codex-1"]
    text = text_of(html)
    assert "original MAF leases (.maf/runtime.db)" in text
    assert "lease store (memory)" in text
    assert "rework" in text
    # Open escalations only, newest first, each with its ladder.
    cards = elements(html, "data-escalation")
    assert [(e.attrs["data-state"], e.attrs["data-level"]) for e in cards] == [
        ("acknowledged", "1"),
        ("escalated", "2"),
    ]
    steps = [
        (e.attrs["data-step"], e.attrs["data-step-state"]) for e in elements(html, "data-step")
    ]
    assert steps == [
        *[("1", "current"), ("2", "pending"), ("3", "pending")],
        *[("1", "reached"), ("2", "current"), ("3", "pending")],
    ]
    assert [e.attrs["data-delivery"] for e in elements(html, "data-delivery")] == [
        "delivered",
        "failed",
    ]
    assert "webhook &rarr; <code>lead</code>" in html
    assert "refused" in text
    assert [e.attrs["data-acknowledged-by"] for e in elements(html, "data-acknowledged-by")] == [
        "lead-dev"
    ]
    # Agents, the latest heartbeat first.
    assert [e.attrs["data-agent"] for e in elements(html, "data-agent")] == ["boss", "codex-1"]
    assert "coordinator" in text
    assert "python" in text


def test_since_and_agent_narrow_the_history_and_the_timeline(tmp_path: Path) -> None:
    runtime = MemoryRuntime()
    record_run(runtime, NOW - 7200, [("old", "passed", 0.0, 0.1, 1)], agent="codex-1")
    record_run(runtime, NOW - 600, [("mine", "failed", 0.0, 0.1, 1)], agent="codex-1")
    record_run(runtime, NOW - 60, [("theirs", "passed", 0.0, 0.1, 1)], agent="claude-2")
    runtime.acquire_leases("claude-2", ["a/"], ttl=600, now=NOW - 1)
    runtime.acquire_leases("codex-1", ["b/"], ttl=600, now=NOW - 1)

    narrowed = page(runtime, tmp_path, since=NOW - 3600, agent="codex-1")

    assert narrowed.run is not None
    assert narrowed.run.agent_id == "codex-1"
    assert [b.check_id for b in narrowed.timeline.bars] == ["mine"]
    assert [h.config_id for h in narrowed.histories] == ["mine"]
    assert [lease.pattern for lease in narrowed.leases] == ["b/"]
    everything = page(runtime, tmp_path)
    assert [b.check_id for b in everything.timeline.bars] == ["theirs"]
    assert [h.config_id for h in everything.histories] == ["mine", "old", "theirs"]


def test_stored_strings_are_text_not_markup(tmp_path: Path) -> None:
    runtime = MemoryRuntime()
    hostile = "<script>alert(1)</script>"
    quote = '" onmouseover="alert(2)'
    record_run(runtime, NOW - 60, [(hostile, "failed", 0.0, 0.2, 1), (quote, "passed", 0, 1, 1)])
    runtime.open_escalation(
        path_id="p<b>",
        dedup_key="k",
        check_id=hostile,
        failure_class="failed",
        path_snapshot={
            "id": "p",
            "config": {"escalation_steps": [{"level": 1, "target": hostile}]},
        },
        next_action_at=None,
        details={"summary": "<img src=x onerror=alert(3)>"},
        now=NOW - 10,
    )
    html = render(page(runtime, tmp_path))
    assert hostile not in html
    assert "<img src=x" not in html
    assert quote not in html
    assert len(elements(html, tag="script")) == 1  # the page's own
    assert {e.attrs["data-check-id"] for e in bars(html)} == {hostile, quote}
    assert not [e for e in elements(html) if any(a.startswith("on") for a in e.attrs)]
    text = text_of(html)
    assert hostile in text
    assert "<img src=x onerror=alert(3)>" in text
    assert "p<b>" in text


def test_the_page_needs_no_network_and_runs_only_its_own_script(tmp_path: Path) -> None:
    runtime = MemoryRuntime()
    record_run(runtime, NOW - 60, [("api", "passed", 0.0, 0.2, 1)])
    html = render(page(runtime, tmp_path))
    [policy] = [e for e in elements(html, tag="meta") if e.attrs.get("http-equiv")]
    assert policy.attrs["content"] == content_security_policy()
    assert "default-src 'none'" in policy.attrs["content"]
    assert script_hash() in policy.attrs["content"]
    assert f"<script>{SCRIPT}</script>" in html
    linked = [e.attrs[a] for e in elements(html) for a in ("src", "href") if a in e.attrs]
    assert all(link.startswith("#") for link in linked), linked
    assert "http://" not in html
    assert "https://" not in html
    assert "@import" not in html


def test_an_empty_store_still_makes_a_page(tmp_path: Path) -> None:
    html = render(page(MemoryRuntime(), tmp_path))
    assert bars(html) == []
    text = text_of(html)
    for empty in (
        "No session recorded.",
        "No checks ran.",
        "No executions recorded.",
        "No active lease.",
        "No open escalation.",
        "No agent has sent a heartbeat.",
    ):
        assert empty in text


def test_what_cannot_be_read_is_a_note_on_the_page(tmp_path: Path) -> None:
    (tmp_path / ".maf").mkdir()
    (tmp_path / ".maf" / "reservations.db").write_bytes(b"not a database at all, no")
    runtime = MemoryRuntime()
    record_run(runtime, NOW - 60, [("api", "passed", 0.0, 0.2, 1)])
    data = page(runtime, tmp_path)
    [note] = data.notes
    assert note.startswith("the original MAF's leases could not be read: original MAF database")
    html = render(data)
    assert len(elements(html, "data-notes")) == 1
    assert len(bars(html)) == 1


def test_write_page_creates_directories_and_replaces_atomically(tmp_path: Path) -> None:
    target = tmp_path / "out" / "deep" / "report.html"
    data = page(MemoryRuntime(), tmp_path)
    write_page(target, data)
    write_page(target, data)
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]


@pytest.mark.parametrize("span", [0.0, 0.0004, 3.0, 250.0])
def test_every_bar_stays_on_the_axis(tmp_path: Path, span: float) -> None:
    runtime = MemoryRuntime()
    record_run(runtime, NOW, [("a", "passed", 0.0, span, 1), ("b", "timeout", span, 0.0, 2)])
    for bar in bars(render(page(runtime, tmp_path))):
        left, width = map(float, re.findall(r"[\d.]+", bar.attrs["style"]))
        assert left >= 0
        assert left + width <= 100.0005
        assert width >= 0.4

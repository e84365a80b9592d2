"""Regenerate ``docs/report-page.png``, the README's picture of the report page.

    .venv/bin/python docs/make_screenshot.py [--html PATH] [--png PATH]

Builds a demo SQLite store with the runtime's own API (three weeks of gate runs by three
agents: six checks, one of them flaky, the latest run with a failed check; leases; two open
escalations, one acknowledged; heartbeats), writes the page as ``maf-preflight report``
would, and has headless Chromium (Debian's ``chromium``) take the screenshot. Times are fixed
relative to now, and random choices seeded, so two runs draw the same page.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_maf_preflight.runtime.interface import RuntimeState
from pytest_maf_preflight.runtime.records import (
    DeliveryRecord,
    ExecutionRecord,
    SessionBundle,
    SessionRecord,
    new_id,
)

DOCS = Path(__file__).resolve().parent
WIDTH = 1280

#: (id, type, severity, typical seconds, chance of failing)
CHECKS = (
    ("api-health", "api", "critical", 0.42, 0.05),
    ("db-migrations", "database", "critical", 0.9, 0.3),
    ("disk-space", "file_system", "warning", 0.01, 0.0),
    ("docker-daemon", "command", "critical", 1.6, 0.02),
    ("lock-validation", "reservation_check/lock_validation", "critical", 0.08, 0.1),
    ("python-version", "python", "critical", 0.03, 0.0),
)
AGENTS = ("codex-1", "claude-2", "reviewer")
SESSIONS = 60
LADDER = {
    "trigger_conditions": [{"type": "check_failure", "severity": "critical"}],
    "escalation_steps": [
        {"level": 1, "action": "notify", "target": "on-call", "timeout_minutes": 15},
        {"level": 2, "action": "escalate", "target": "team-lead", "timeout_minutes": 30},
        {"level": 3, "action": "escalate", "target": "incident-room"},
    ],
    "targets": {
        "on-call": {"channel": "mailbox"},
        "team-lead": {"channel": "agent_mail", "url": "${ENV:AGENT_MAIL_URL}"},
        "incident-room": {"channel": "webhook", "url": "${ENV:INCIDENT_WEBHOOK}"},
    },
}


def session_bundle(
    rng: random.Random, agent: str, started: float, *, failing: tuple[str, ...] | None = None
) -> SessionBundle:
    """One gate run: every check at once, each taking about its typical time; ``failing``
    chooses the checks that fail (else chance does)."""
    session_id = new_id()
    executions = []
    blocking: list[str] = []
    warnings: list[str] = []
    for check_id, test_type, severity, typical, chance in CHECKS:
        took = typical * rng.uniform(0.7, 1.5)
        attempts = 1
        fails = check_id in failing if failing is not None else rng.random() < chance
        status = "failed" if fails else "passed"
        if check_id == "db-migrations" and (fails or failing is not None):
            attempts = 3 if fails else 2  # retried; in the latest run it passed the second time
            took *= attempts
        if status != "passed":
            (blocking if severity == "critical" else warnings).append(check_id)
        start = started + rng.uniform(0.0, 0.03)
        executions.append(
            ExecutionRecord(
                id=new_id(),
                session_id=session_id,
                config_id=check_id,
                config_version="1.0.0",
                agent_id=agent,
                kind="check",
                status=status,  # type: ignore[arg-type]
                started_at=start,
                completed_at=start + took,
                duration=took,
                attempts=attempts,
                result={"test_type": test_type, "severity": severity},
                error_message=None if status == "passed" else "GET /health: 503 after 3 attempts",
            )
        )
    end = max(e.completed_at for e in executions)
    return SessionBundle(
        session=SessionRecord(
            id=session_id,
            agent_id=agent,
            environment="ci",
            started_at=started,
            completed_at=end,
            status="closed" if blocking else "open",
            exit_code=10 if blocking else 0,
            runtime_mode="sqlite",
            hostname="runner-3",
            details={"blocking": [f"{c} (failed)" for c in blocking], "warnings": warnings},
        ),
        executions=tuple(executions),
    )


def build_demo_store(runtime: RuntimeState, now: float) -> None:
    rng = random.Random(16)  # noqa: S311 - a demo, drawn the same each time
    for i in range(SESSIONS):
        started = now - (SESSIONS - i) * 3 * 3600 - rng.uniform(0, 600)
        runtime.record_session(session_bundle(rng, AGENTS[i % len(AGENTS)], started))
    runtime.record_session(
        session_bundle(rng, "codex-1", now - 95, failing=("api-health", "disk-space"))
    )
    for agent, patterns, ttl, reason in (
        ("codex-1", ["src/api/**"], 1800, "rate limiter rework"),
        ("claude-2", ["migrations/0042_*.py", "src/db/models.py"], 5400, "schema change"),
        ("reviewer", ["docs/"], 600, ""),
    ):
        runtime.acquire_leases(
            agent, patterns, ttl=ttl, reason=reason, exclusive=agent != "reviewer"
        )
    _escalations(runtime, now)
    for agent, kind, capabilities, ago in (
        ("codex-1", "worker", ["python", "api"], 90),
        ("claude-2", "worker", ["python", "sql"], 1300),
        ("reviewer", "verifier", ["review"], 4 * 3600),
        ("coordinator", "coordinator", [], 40),
    ):
        runtime.heartbeat(agent, at=now - ago, agent_type=kind, capabilities=capabilities)


def _escalations(runtime: RuntimeState, now: float) -> None:
    snapshot = {"id": "on-call-ladder", "version": "2.1.0", "config": LADDER}
    climbing, _ = runtime.open_escalation(
        path_id="on-call-ladder",
        dedup_key="check:api-health:failed",
        check_id="api-health",
        failure_class="failed",
        path_snapshot=snapshot,
        next_action_at=now - 40 * 60 + 15 * 60,
        details={"summary": "api-health failed: GET /health answered 503", "agent_id": "codex-1"},
        now=now - 40 * 60,
    )
    runtime.record_delivery(
        DeliveryRecord(climbing.id, 1, "mailbox", "on-call", 1, "delivered", None, {}, now - 2400)
    )
    runtime.claim_escalation(
        climbing.id,
        expect_level=1,
        expect_next_action_at=climbing.next_action_at,
        level=2,
        next_action_at=now + 5 * 60,
        state="escalated",
        now=now - 25 * 60,
    )
    for attempt, status, error in ((1, "failed", "connection refused"), (2, "delivered", None)):
        runtime.record_delivery(
            DeliveryRecord(
                climbing.id, 2, "agent_mail", "team-lead", attempt, status, error, {}, now - 1500
            )
        )
    acked, _ = runtime.open_escalation(
        path_id="on-call-ladder",
        dedup_key="check:db-migrations:failed",
        check_id="db-migrations",
        failure_class="failed",
        path_snapshot=snapshot,
        next_action_at=now + 600,
        details={"summary": "db-migrations failed 3 times in a row", "agent_id": "claude-2"},
        now=now - 3 * 3600,
    )
    runtime.record_delivery(
        DeliveryRecord(acked.id, 1, "mailbox", "on-call", 1, "delivered", None, {}, now - 10790)
    )
    runtime.transition_escalation(
        acked.id,
        state="acknowledged",
        by="claude-2",
        from_states=("triggered", "escalated"),
        now=now - 2 * 3600,
    )


def write_demo_page(html: Path, store_dir: Path) -> None:
    from pytest_maf_preflight.report_page.gather import page_from_runtime
    from pytest_maf_preflight.report_page.render import write_page
    from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

    now = time.time()
    with SqliteRuntime(store_dir / "runtime.db") as runtime:
        build_demo_store(runtime, now)
        page = page_from_runtime(
            runtime,
            store="the sqlite runtime (shared by the worktrees of /home/me/shop)",
            scope="all agents",
            since=None,
            agent_id=None,
            rootdir=store_dir,
            now=now,
        )
    write_page(html, page)


def screenshot(html: Path, png: Path, height: int) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium is not installed: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={WIDTH},{height}",
                f"--screenshot={png}",
                html.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, help="Keep the page here too")
    parser.add_argument("--png", type=Path, default=DOCS / "report-page.png")
    parser.add_argument("--height", type=int, default=2330, help="Window height in pixels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        html = args.html.resolve() if args.html else Path(tmp) / "report.html"
        write_demo_page(html, Path(tmp))
        screenshot(html, args.png.resolve(), args.height)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()

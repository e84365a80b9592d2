"""The report page (issue 16): writing it from a large store, and what a run's page adds.

- ``report``: ``maf-preflight report --html`` (its handler, in this process) from a SQLite store
  of 10,000 recorded sessions (five checks each, three agents, leases, open escalations,
  heartbeats), built once with the runtime API. Target: under 2 s. Beside it, in the same run:
  reading every execution into Python, what a page that aggregated in Python would start from.
- ``run_page``: a gate of 10 checks recorded in a store that already holds 1,000 sessions of
  them; its page (the timeline, each check's last 50 runs, leases, escalations, agents, written
  to a file) timed beside the run's record step (bundle and one transaction), interleaved.
  Target: under 20 ms added. The same for a 100-check gate, shown without a target.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from timing import interleave, median_ms

CHECKS = 5
SESSIONS = 10_000
AGENTS = ("codex-1", "claude-2", "reviewer")


def _bundle(rng: random.Random, agent: str, started: float, checks: list[str]) -> Any:
    from pytest_maf_preflight.runtime.records import (
        ExecutionRecord,
        SessionBundle,
        SessionRecord,
        new_id,
    )

    session_id = new_id()
    runs = []
    for i, check_id in enumerate(checks):
        status = "failed" if rng.random() < 0.05 * (i % 3) else "passed"
        took = 0.05 * (i + 1) * rng.uniform(0.8, 1.3)
        runs.append(
            ExecutionRecord(
                id=new_id(),
                session_id=session_id,
                config_id=check_id,
                config_version="1.0.0",
                agent_id=agent,
                kind="check",
                status=status,  # type: ignore[arg-type]
                started_at=started,
                completed_at=started + took,
                duration=took,
                attempts=1,
                result={"test_type": "command", "severity": "critical", "observed": "ok"},
                error_message=None if status == "passed" else "exit status 1",
            )
        )
    return SessionBundle(
        session=SessionRecord(
            id=session_id,
            agent_id=agent,
            environment="ci",
            started_at=started,
            completed_at=started + 1,
            status="open",
            exit_code=0,
            runtime_mode="sqlite",
        ),
        executions=tuple(runs),
    )


def build_store(runtime: Any, sessions: int, checks: list[str], now: float) -> None:
    """``sessions`` gate runs a minute apart, then live state: leases, escalations, agents."""
    rng = random.Random(16)
    for i in range(sessions):
        started = now - (sessions - i) * 60
        runtime.record_session(_bundle(rng, AGENTS[i % len(AGENTS)], started, checks))
    for n, agent in enumerate(AGENTS):
        runtime.acquire_leases(agent, [f"src/part{n}/**"], ttl=3600)
        runtime.heartbeat(agent)
    for check_id in checks[:2]:
        runtime.open_escalation(
            path_id="on-call",
            dedup_key=f"check:{check_id}:failed",
            check_id=check_id,
            failure_class="failed",
            path_snapshot={"id": "on-call", "config": {"escalation_steps": []}},
            next_action_at=now + 600,
            details={"summary": f"{check_id} failed"},
        )


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def bench_report(runs: int) -> dict[str, Any]:
    from pytest_maf_preflight.cli.main import main
    from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

    checks = [f"check-{i}" for i in range(CHECKS)]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        db = directory / "runtime.db"
        start = time.perf_counter()
        with SqliteRuntime(db) as runtime:
            build_store(runtime, SESSIONS, checks, time.time())
        built = time.perf_counter() - start
        page = directory / "report.html"
        reader = SqliteRuntime(db)

        def report() -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                assert main(["report", "--html", str(page)]) == 0

        def every_execution() -> None:
            assert len(reader.executions()) == SESSIONS * CHECKS

        cwd = Path.cwd()
        os.chdir(directory)  # the rootdir, where the page also looks for original MAF stores
        try:
            with _environment(MAF_DB_PATH=str(db), MAF_RUNTIME_MODE="sqlite"):
                samples = interleave({"report": report, "every_execution": every_execution}, runs)
        finally:
            os.chdir(cwd)
            reader.close()
        size = page.stat().st_size
    return {
        "sessions": SESSIONS,
        "executions": SESSIONS * CHECKS,
        "store_build_s": built,
        "report_ms": median_ms(samples["report"]),
        "every_execution_ms": median_ms(samples["every_execution"]),
        "page_bytes": size,
    }


def _results(count: int, rng: random.Random) -> list[Any]:
    from pytest_maf_preflight.checks.base import CheckResult, CheckStatus

    now = time.time()
    out = []
    for i in range(count):
        took = rng.uniform(0.001, 0.05)
        out.append(
            CheckResult(
                check_id=f"check-{i:03d}",
                name=f"check {i}",
                test_type="environment",
                severity="critical",
                status=CheckStatus.PASSED if i % 7 else CheckStatus.FAILED,
                observed="ok",
                attempts=1,
                duration=took,
                started_at=now,
                completed_at=now + took,
                config_version="1.0.0",
            )
        )
    return out


def page_step(runtime: Any, results: list[Any], directory: Path) -> None:
    """What ``RunPage`` does after recording: read the runtime's sections for the run's checks,
    put the run's timeline beside them, write the file."""
    from pytest_maf_preflight.report_page.gather import page_of, read_sections
    from pytest_maf_preflight.report_page.model import RunHeader
    from pytest_maf_preflight.report_page.render import write_page
    from pytest_maf_preflight.report_page.run import run_timeline

    sections = read_sections(
        runtime,
        store="the sqlite runtime",
        since=None,
        agent_id=None,
        rootdir=directory,
        now=time.time(),
        config_ids=[r.check_id for r in results],
        original_maf=False,  # as for a run without reservation checks
    )
    data = page_of(
        sections,
        generated_at=time.time(),
        scope="this run's checks",
        run=RunHeader("This run", "bench", "ci", time.time(), "closed", 10),
        timeline=run_timeline(results, lambda r: True),
    )
    write_page(directory / "page.html", data)


def cold_page(db: Path, count: int) -> float:
    """The page step in a fresh process that has imported what a gate run imports, its own
    imports included: milliseconds."""
    import pytest_maf_preflight.gate.controller  # noqa: F401 - loaded by every gate run
    from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

    results = _results(count, random.Random(count))
    with SqliteRuntime(db) as runtime:
        start = time.perf_counter()
        page_step(runtime, results, db.parent)
        return (time.perf_counter() - start) * 1000


def bench_run_page(runs: int, count: int, earlier: int, cold_runs: int = 0) -> dict[str, Any]:
    """The page step of a ``count``-check run beside its record step, in a store holding
    ``earlier`` sessions of the same checks; with ``cold_runs``, also the page step in that
    many fresh processes."""
    from pytest_maf_preflight.gate.recording import build_bundle
    from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

    rng = random.Random(count)
    results = _results(count, rng)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        runtime = SqliteRuntime(directory / "runtime.db")
        build_store(runtime, earlier, [r.check_id for r in results], time.time())

        def record() -> None:
            runtime.record_session(
                build_bundle(
                    agent_id="bench",
                    environment="ci",
                    runtime_mode="sqlite",
                    started_at=time.time(),
                    gate_open=False,
                    exit_code=10,
                    results=results,
                    smoke=(),
                    loaded=(),
                    details={},
                )
            )

        def page() -> None:
            page_step(runtime, results, directory)

        def record_and_page() -> None:
            record()
            page()

        samples = interleave(
            {"record": record, "record_and_page": record_and_page, "page": page}, runs
        )
        runtime.close()
        cold = [
            float(
                subprocess.run(
                    [sys.executable, __file__, "--cold", str(directory / "runtime.db"), str(count)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(cold_runs)
        ]
    record_ms = median_ms(samples["record"])
    both_ms = median_ms(samples["record_and_page"])
    return {
        "checks": count,
        "earlier_sessions": earlier,
        "record_ms": record_ms,
        "record_and_page_ms": both_ms,
        "page_ms": median_ms(samples["page"]),
        "page_adds_ms": both_ms - record_ms,
        "page_p90_ms": statistics.quantiles(samples["page"], n=10)[-1] * 1000,
        "cold_page_ms": statistics.median(cold) if cold else None,
        "cold_runs": cold_runs,
    }


def bench(quick: bool) -> dict[str, Any]:
    runs = 3 if quick else 7
    page_runs = 11 if quick else 41
    return {
        "report": bench_report(runs),
        "run_page": bench_run_page(page_runs, 10, 1_000, cold_runs=5 if quick else 15),
        "run_page_100": bench_run_page(page_runs, 100, 200),
        "runs": runs,
        "page_runs": page_runs,
    }


def report(figures: dict[str, Any]) -> list[str]:
    """The figures as lines for ``run.py``."""
    rep = figures["report"]
    lines = [
        f"Issue 16 report page: maf-preflight report --html from {rep['sessions']:,} sessions "
        f"({rep['executions']:,} executions) in SQLite, median of {figures['runs']} runs",
        f"  report written:                  {rep['report_ms']:8.0f} ms  (target < 2000 ms; "
        f"{rep['page_bytes'] / 1024:.0f} KiB)",
        f"  every execution read (baseline): {rep['every_execution_ms']:8.0f} ms",
        f"  (the store, built once with the runtime API: {rep['store_build_s']:.1f} s)",
    ]
    for name in ("run_page", "run_page_100"):
        run = figures[name]
        target = "  (target < 20 ms)" if name == "run_page" else ""
        lines += [
            f"  a {run['checks']}-check run's page, {run['earlier_sessions']:,} earlier sessions"
            f" in the store, median of {figures['page_runs']} interleaved runs:",
            f"    record step {run['record_ms']:.1f} ms, with the page "
            f"{run['record_and_page_ms']:.1f} ms: the page adds {run['page_adds_ms']:.1f} ms"
            f"{target}",
            f"    the page step alone {run['page_ms']:.1f} ms (p90 {run['page_p90_ms']:.1f} ms)",
        ]
        if run["cold_page_ms"] is not None:
            lines.append(
                f"    in a fresh process, its imports included: {run['cold_page_ms']:.1f} ms "
                f"(median of {run['cold_runs']})"
            )
    return lines


if __name__ == "__main__":
    import json

    if sys.argv[1:2] == ["--cold"]:
        print(cold_page(Path(sys.argv[2]), int(sys.argv[3])))
        raise SystemExit(0)
    figures = bench("--quick" in sys.argv)
    print(json.dumps(figures, indent=2))
    print("\n".join(report(figures)))

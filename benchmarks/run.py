"""Benchmarks for SPEC S10, each reported beside a baseline measured in the same run.

Run with one command from the repository root:

    .venv/bin/python benchmarks/run.py            # all benchmarks
    .venv/bin/python benchmarks/run.py --quick    # fewer repetitions (CI smoke)
    .venv/bin/python benchmarks/run.py --only active_gate   # one section (repeatable)

The whole-process figures of the active gate (issue 14) and the idle cost are in
``active_gate.py``; the runtime store figures put PostgreSQL beside SQLite
(``runtime_stores.py``); without psycopg or a server they say why PostgreSQL was skipped.

Machines here are noisy: every figure is a median over interleaved repetitions, and targets
are judged on ratios or on the median, never on a single timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

import active_gate  # noqa: E402 - beside this script, which Python puts on sys.path
import escalation_ticks  # noqa: E402 - likewise
import per_test_cost  # noqa: E402 - likewise
import report_page  # noqa: E402 - likewise
import reservations  # noqa: E402 - likewise
import runtime_stores  # noqa: E402 - likewise
import store_location  # noqa: E402 - likewise
from slow_server import slow_server  # noqa: E402 - likewise
from timing import interleave, median_ms  # noqa: E402 - likewise


def _local_configs(directory: Path, count: int) -> None:
    """``count`` configs cycling through environment, file_system and python checks."""
    (directory / "data.json").write_text('{"agent": "bench"}')
    configs = []
    for i in range(count):
        kind = ("environment", "file_system", "python")[i % 3]
        definitions: dict[str, dict[str, object]] = {
            "environment": {"required": ["PATH", "HOME"], "patterns": {"PATH": ".+"}},
            "file_system": {
                "paths": [
                    {"path": str(directory), "kind": "dir", "access": "r"},
                    {"path": str(directory / "data.json"), "kind": "file", "parse": True},
                ]
            },
            "python": {"python": ">=3.10", "packages": {"pytest": ">=8", "pydantic": ">=2"}},
        }
        definition = definitions[kind]
        configs.append(
            {
                "id": f"check-{i:03d}",
                "name": f"check {i}",
                "config_type": "smoke_test",
                "config": {"test_type": kind, "test_definition": definition},
            }
        )
    (directory / "configs.json").write_text(json.dumps({"configs": configs}))


def _local_gate(directory: Path, count: int, runs: int) -> tuple[Any, Any, Any, list[float]]:
    """Configs written, loaded (timed) and planned: (planned checks, context, loaded, times)."""
    from pytest_maf_preflight.checks.base import CheckContext
    from pytest_maf_preflight.checks.builtin import builtin_registry
    from pytest_maf_preflight.checks.runner import PlannedCheck
    from pytest_maf_preflight.config.loader import ConfigLoader
    from pytest_maf_preflight.config.models import SmokeTestBody

    _local_configs(directory, count)
    registry = builtin_registry()
    load_samples = []
    for _ in range(runs):
        start = time.perf_counter()
        loaded = ConfigLoader(registry, "development").load_files([directory / "configs.json"])
        load_samples.append(time.perf_counter() - start)
    planned = []
    for item in loaded:
        assert isinstance(item.body, SmokeTestBody)
        check_type = registry.get(item.body.test_type)
        assert check_type is not None
        planned.append(
            PlannedCheck(
                item.id,
                item.config.name,
                "critical",
                check_type,
                item.definition,
                30.0,
                0,
                0.0,
                config_version="1.0.0",
            )
        )
    ctx = CheckContext(
        rootdir=directory, environ=dict(os.environ), environment="development", agent_id="bench"
    )
    return planned, ctx, loaded, load_samples


def bench_local_gate(runs: int, count: int = 100) -> dict[str, float]:
    """Gate time of ``count`` local checks, beside the same checks run inline one by one."""
    from pytest_maf_preflight.checks.runner import run_checks

    with tempfile.TemporaryDirectory() as tmp:
        planned, ctx, _, load_samples = _local_gate(Path(tmp), count, runs)

        def gate() -> None:
            results = run_checks(planned, ctx, max_concurrency=50)
            assert all(r.passed for r in results), [r for r in results if not r.passed][:1]

        def sequential() -> None:
            for check in planned:
                assert check.check_type.run is not None
                assert check.check_type.run(check.definition, ctx).passed

        samples = interleave({"gate": gate, "inline_sequential": sequential}, runs)
    gate_ms = median_ms(samples["gate"])
    inline_ms = median_ms(samples["inline_sequential"])
    return {
        "checks": count,
        "gate_ms": gate_ms,
        "inline_sequential_ms": inline_ms,
        "gate_over_inline": gate_ms / inline_ms,
        "config_load_ms": median_ms(load_samples),
    }


def bench_recording(runs: int, count: int = 10_000) -> dict[str, float]:
    """Execution rows written per second for one session of ``count`` executions (SQLite), and
    a 100-check gate with its recording (bundle, snapshots, messages, one transaction) beside
    the same gate without it."""
    from pytest_maf_preflight.checks.runner import run_checks
    from pytest_maf_preflight.gate.recording import build_bundle
    from pytest_maf_preflight.runtime.records import (
        ExecutionRecord,
        SessionBundle,
        SessionRecord,
        new_id,
    )
    from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

    def big_bundle() -> SessionBundle:
        session = SessionRecord(
            id=new_id(),
            agent_id="bench",
            environment="development",
            started_at=time.time(),
            completed_at=time.time(),
            status="open",
            exit_code=0,
            runtime_mode="sqlite",
        )
        executions = tuple(
            ExecutionRecord(
                id=new_id(),
                session_id=session.id,
                config_id=f"check-{i % 100}",
                config_version="1.0.0",
                agent_id="bench",
                kind="check",
                status="passed",
                started_at=time.time(),
                completed_at=time.time(),
                duration=0.001,
                attempts=1,
                result={"observed": "ok", "i": i},
            )
            for i in range(count)
        )
        return SessionBundle(session=session, executions=executions)

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        runtime = SqliteRuntime(directory / "runtime.db")
        write_samples = []
        for item in [big_bundle() for _ in range(max(3, runs // 4))]:
            start = time.perf_counter()
            runtime.record_session(item)
            write_samples.append(time.perf_counter() - start)
        planned, ctx, loaded, _ = _local_gate(directory, 100, 1)

        def gate() -> list[Any]:
            return run_checks(planned, ctx, max_concurrency=50)

        def gate_and_record() -> None:
            results = gate()
            runtime.record_session(
                build_bundle(
                    agent_id="bench",
                    environment="development",
                    runtime_mode="sqlite",
                    started_at=time.time(),
                    gate_open=True,
                    exit_code=0,
                    results=results,
                    smoke=(),
                    loaded=loaded,
                    details={},
                )
            )

        def gate_messages_and_record() -> None:
            # As the plugin runs it: PREFLIGHT_CHECK/RESULT written while the gate runs.
            from pytest_maf_preflight.gate.messaging import GateMessages

            messages = GateMessages(runtime, agent_id="bench", session_id=new_id())
            results = run_checks(
                planned,
                ctx,
                max_concurrency=50,
                on_result=lambda _: messages.poll(),
                on_start=messages.started,
            )
            messages.finished(results)
            bundle = build_bundle(
                agent_id="bench",
                environment="development",
                runtime_mode="sqlite",
                started_at=time.time(),
                gate_open=True,
                exit_code=0,
                results=results,
                smoke=(),
                loaded=loaded,
                details={},
                session_id=messages.session_id,
                execution_ids=messages.execution_ids,
                conflicts=messages.conflicts,
                messages=(),
            )
            runtime.record_session(messages.carry(bundle, runtime))

        samples = interleave(
            {
                "gate": gate,
                "gate_and_record": gate_and_record,
                "gate_messages_and_record": gate_messages_and_record,
            },
            runs,
        )
        runtime.close()
    write_s = statistics.median(write_samples)
    gate_ms = median_ms(samples["gate"])
    recorded_ms = median_ms(samples["gate_and_record"])
    messages_ms = median_ms(samples["gate_messages_and_record"])
    return {
        "executions": count,
        "rows_per_second": count / write_s,
        "write_ms": write_s * 1000,
        "gate_ms": gate_ms,
        "gate_and_record_ms": recorded_ms,
        "record_ratio": recorded_ms / gate_ms,
        "gate_messages_and_record_ms": messages_ms,
        "messages_over_record": messages_ms / recorded_ms,
    }


def bench_api_gate(runs: int, count: int = 50, delay: float = 0.2) -> dict[str, float]:
    """``count`` api checks against a local server that answers each request after ``delay``
    seconds: the gate (all at once, max_concurrency 50) beside the same checks one after
    another and beside one check alone. The sequential baseline takes ``count * delay`` seconds,
    so it runs once; the gate and the single check take the median of a few repetitions."""
    from pytest_maf_preflight.checks import api
    from pytest_maf_preflight.checks.base import CheckContext
    from pytest_maf_preflight.checks.runner import PlannedCheck, run_checks

    with slow_server(delay) as base:
        planned = [
            PlannedCheck(
                f"api-{i}",
                f"api {i}",
                "critical",
                api.CHECK_TYPE,
                api.ApiDefinition.model_validate(
                    {"endpoint": f"/health/{i}", "json": {"status": "ok"}}
                ),
                10.0,
                0,
                0.0,
            )
            for i in range(count)
        ]
        ctx = CheckContext(
            rootdir=ROOT,
            environ=dict(os.environ),
            environment="development",
            agent_id="bench",
            base_url=base,
        )

        def timed(checks: list[Any], concurrency: int) -> float:
            start = time.perf_counter()
            results = run_checks(checks, ctx, max_concurrency=concurrency)
            elapsed = time.perf_counter() - start
            assert all(r.passed for r in results), [r.observed for r in results if not r.passed]
            return elapsed

        reps = 2 if runs <= 5 else 7
        timed(planned[:1], 1)  # warm-up
        one = [timed(planned[:1], 1) for _ in range(reps)]
        gate = [timed(planned, 50) for _ in range(reps)]
        sequential = timed(planned, 1)
    gate_ms, one_ms, seq_ms = median_ms(gate), median_ms(one), sequential * 1000
    return {
        "checks": count,
        "delay_ms": delay * 1000,
        "gate_ms": gate_ms,
        "one_check_ms": one_ms,
        "sequential_ms": seq_ms,
        "gate_over_one": gate_ms / one_ms,
        "sequential_over_gate": seq_ms / gate_ms,
    }


def report_local_gate(local: dict[str, float]) -> list[str]:
    return [
        f"S10 local checks: gate time of {local['checks']} environment/file/python checks",
        f"  gate (concurrent runner):     {local['gate_ms']:8.2f} ms  (target < 50 ms)",
        f"  inline, one by one (baseline): {local['inline_sequential_ms']:7.2f} ms",
        f"  ratio gate/inline: {local['gate_over_inline']:.2f}",
        f"  loading and validating the {local['checks']} configs: "
        f"{local['config_load_ms']:.1f} ms (not part of gate time)",
    ]


def report_recording(rec: dict[str, float]) -> list[str]:
    return [
        f"S10 recording: one session of {rec['executions']:,} executions in SQLite",
        f"  {rec['rows_per_second']:,.0f} rows/s ({rec['write_ms']:.0f} ms)"
        "  (target >= 20,000 rows/s)",
        f"  100-check gate with recording: {rec['gate_and_record_ms']:.2f} ms, without: "
        f"{rec['gate_ms']:.2f} ms, ratio {rec['record_ratio']:.2f}",
        f"  ... with protocol messages written as the gate runs: "
        f"{rec['gate_messages_and_record_ms']:.2f} ms, ratio to recording alone "
        f"{rec['messages_over_record']:.2f}",
    ]


def report_api_gate(net: dict[str, float]) -> list[str]:
    return [
        f"S2 api gate: {net['checks']:.0f} api checks, server answers each after "
        f"{net['delay_ms']:.0f} ms",
        f"  gate (max_concurrency 50):    {net['gate_ms']:8.1f} ms",
        f"  one check alone:              {net['one_check_ms']:8.1f} ms",
        f"  one after another (baseline): {net['sequential_ms']:8.1f} ms",
        f"  gate/one check: {net['gate_over_one']:.2f} (target <= 1.5); "
        f"sequential/gate: {net['sequential_over_gate']:.1f} (target >= 25)",
    ]


def report_leases(leases: dict[str, dict[str, float]]) -> list[str]:
    many, small = leases["many"], leases["small"]
    return [
        f"S3 leases: {many['leases']:,.0f} leases (half globs) against {many['paths']:,.0f} "
        "changed paths",
        f"  index (built each run):       {many['index_ms']:8.1f} ms  (target < 1000 ms; "
        f"first run, caches empty: {many['index_cold_ms']:.0f} ms)",
        f"  all pairs (baseline, {many['naive_slice_paths']:.0f} paths, scaled): "
        f"{many['naive_scaled_ms']:8.0f} ms; ratio {many['naive_scaled_over_index']:.0f}",
        f"S3 leases: {small['paths']:.0f} paths against {small['leases']:.0f} leases",
        f"  index (built each run):       {small['index_ms']:8.3f} ms  (target < 0.5 ms)",
        f"  all pairs (baseline):         {small['naive_ms']:8.3f} ms; ratio "
        f"{small['naive_over_index']:.1f}",
    ]


#: Each section: how to measure it (given --quick and the repetitions it implies) and how to
#: print its figures. Run in this order; ``--only`` picks some.
SECTIONS: dict[str, tuple[Callable[[bool, int], Any], Callable[[Any], list[str]]]] = {
    "active_gate": (lambda quick, _: active_gate.bench(quick), active_gate.report),
    "local_gate": (lambda _, runs: bench_local_gate(runs), report_local_gate),
    "recording": (lambda _, runs: bench_recording(runs), report_recording),
    "api_gate": (lambda _, runs: bench_api_gate(runs), report_api_gate),
    "leases": (
        lambda quick, _: {
            "many": reservations.bench_many(quick),
            "small": reservations.bench_small(quick),
        },
        report_leases,
    ),
    "runtime_stores": (lambda quick, _: runtime_stores.bench(quick), runtime_stores.report),
    "store_location": (lambda quick, _: store_location.bench(quick), store_location.report),
    "per_test_cost": (lambda quick, _: per_test_cost.bench(quick), per_test_cost.report),
    "escalation_ticks": (lambda quick, _: escalation_ticks.bench(quick), escalation_ticks.report),
    "report_page": (lambda quick, _: report_page.bench(quick), report_page.report),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fewer repetitions")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(SECTIONS),
        metavar="SECTION",
        help=f"Run only this section (repeatable): {', '.join(SECTIONS)}",
    )
    args = parser.parse_args(argv)
    runs = 5 if args.quick else 41
    chosen = [name for name in SECTIONS if not args.only or name in args.only]
    figures = {name: SECTIONS[name][0](args.quick, runs) for name in chosen}
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    for name in chosen:
        for line in SECTIONS[name][1](figures[name]):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

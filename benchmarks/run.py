"""Benchmarks for SPEC S10, each reported beside a baseline measured in the same run.

Run with one command from the repository root:

    .venv/bin/python benchmarks/run.py            # all benchmarks
    .venv/bin/python benchmarks/run.py --quick    # fewer repetitions (CI smoke)

The runtime store figures put PostgreSQL beside SQLite (``runtime_stores.py``); without psycopg
or a server they say why PostgreSQL was skipped.

Machines here are noisy: every figure is a median over interleaved repetitions, and targets
are judged on ratios or on the median, never on a single timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

import per_test_cost  # noqa: E402 - beside this script, which Python puts on sys.path
import report_page  # noqa: E402 - likewise
import reservations  # noqa: E402 - likewise
import runtime_stores  # noqa: E402 - likewise
import store_location  # noqa: E402 - likewise
from timing import interleave, median_ms  # noqa: E402 - likewise


def bench_idle_cost(runs: int) -> dict[str, float]:
    """A one-test pytest run with the plugin installed but off, against ``-p no:maf_preflight``.

    Runs alternate between the two variants so drift (thermal, other load) hits both alike.
    Other installed plugins are left out of both (autoload off, this plugin named with ``-p``):
    one of them alone (hypothesis) takes over a second to import here, and its noise would
    swamp the difference being measured.
    """
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "test_one.py").write_text("def test_one():\n    assert True\n")
        (project / "pytest.ini").write_text("[pytest]\n")
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_one.py"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAF_")}
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"

        def pytest_run(*extra: str) -> Callable[[], None]:
            def run() -> None:
                subprocess.run(
                    [*base, *extra], cwd=project, env=env, capture_output=True, check=True
                )

            return run

        # The module, not the entry-point name: looking an entry point up scans every installed
        # distribution, a cost autoloading pays in both variants alike.
        samples = interleave(
            {
                "plugin_off": pytest_run("-p", "pytest_maf_preflight.plugin"),
                "plugin_disabled": pytest_run("-p", "no:maf_preflight"),
            },
            runs,
        )
    off = median_ms(samples["plugin_off"])
    disabled = median_ms(samples["plugin_disabled"])
    # Start-up noise only ever adds time, so the fastest quarter of each variant is the
    # steadiest comparison; the median ratio is shown beside it.
    off_q = statistics.quantiles(samples["plugin_off"], n=4)[0]
    disabled_q = statistics.quantiles(samples["plugin_disabled"], n=4)[0]
    return {
        "plugin_off_ms": off,
        "plugin_disabled_ms": disabled,
        "ratio": off / disabled,
        "ratio_fastest_quarter": off_q / disabled_q,
    }


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
    import http.server
    import threading

    from pytest_maf_preflight.checks import api
    from pytest_maf_preflight.checks.base import CheckContext
    from pytest_maf_preflight.checks.runner import PlannedCheck, run_checks

    class Slow(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            time.sleep(delay)
            body = b'{"status": "ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128  # all checks connect at once

    httpd = Server(("127.0.0.1", 0), Slow)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
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
    finally:
        httpd.shutdown()
        httpd.server_close()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fewer repetitions")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON")
    args = parser.parse_args(argv)
    runs = 5 if args.quick else 41
    figures = {
        "idle_cost": bench_idle_cost(runs),
        "local_gate": bench_local_gate(runs),
        "recording": bench_recording(runs),
        "api_gate": bench_api_gate(runs),
        "leases_many": reservations.bench_many(args.quick),
        "leases_small": reservations.bench_small(args.quick),
        "runtime_stores": runtime_stores.bench(args.quick),
        "store_location": store_location.bench(args.quick),
        "per_test_cost": per_test_cost.bench(args.quick),
        "report_page": report_page.bench(args.quick),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    idle = figures["idle_cost"]
    local = figures["local_gate"]
    print(f"S10 idle cost (one-test pytest run, {runs} interleaved runs of each variant)")
    print(f"  plugin installed, --maf-preflight off: {idle['plugin_off_ms']:8.1f} ms")
    print(f"  -p no:maf_preflight (baseline):        {idle['plugin_disabled_ms']:8.1f} ms")
    print(
        f"  ratio of the fastest quarters: {idle['ratio_fastest_quarter']:.3f}  "
        f"(target <= 1.05); of the medians: {idle['ratio']:.3f}"
    )
    print(f"S10 local checks: gate time of {local['checks']} environment/file/python checks")
    print(f"  gate (concurrent runner):     {local['gate_ms']:8.2f} ms  (target < 50 ms)")
    print(f"  inline, one by one (baseline): {local['inline_sequential_ms']:7.2f} ms")
    print(f"  ratio gate/inline: {local['gate_over_inline']:.2f}")
    print(
        f"  loading and validating the {local['checks']} configs: "
        f"{local['config_load_ms']:.1f} ms (not part of gate time)"
    )
    rec = figures["recording"]
    print(f"S10 recording: one session of {rec['executions']:,} executions in SQLite")
    print(
        f"  {rec['rows_per_second']:,.0f} rows/s ({rec['write_ms']:.0f} ms)"
        "  (target >= 20,000 rows/s)"
    )
    print(
        f"  100-check gate with recording: {rec['gate_and_record_ms']:.2f} ms, without: "
        f"{rec['gate_ms']:.2f} ms, ratio {rec['record_ratio']:.2f}"
    )
    print(
        f"  ... with protocol messages written as the gate runs: "
        f"{rec['gate_messages_and_record_ms']:.2f} ms, ratio to recording alone "
        f"{rec['messages_over_record']:.2f}"
    )
    net = figures["api_gate"]
    print(
        f"S2 api gate: {net['checks']:.0f} api checks, server answers each after "
        f"{net['delay_ms']:.0f} ms"
    )
    print(f"  gate (max_concurrency 50):    {net['gate_ms']:8.1f} ms")
    print(f"  one check alone:              {net['one_check_ms']:8.1f} ms")
    print(f"  one after another (baseline): {net['sequential_ms']:8.1f} ms")
    print(
        f"  gate/one check: {net['gate_over_one']:.2f} (target <= 1.5); "
        f"sequential/gate: {net['sequential_over_gate']:.1f} (target >= 25)"
    )
    many = figures["leases_many"]
    print(
        f"S3 leases: {many['leases']:,.0f} leases (half globs) against {many['paths']:,.0f} "
        "changed paths"
    )
    print(
        f"  index (built each run):       {many['index_ms']:8.1f} ms  (target < 1000 ms; "
        f"first run, caches empty: {many['index_cold_ms']:.0f} ms)"
    )
    print(
        f"  all pairs (baseline, {many['naive_slice_paths']:.0f} paths, scaled): "
        f"{many['naive_scaled_ms']:8.0f} ms; ratio {many['naive_scaled_over_index']:.0f}"
    )
    small = figures["leases_small"]
    print(f"S3 leases: {small['paths']:.0f} paths against {small['leases']:.0f} leases")
    print(f"  index (built each run):       {small['index_ms']:8.3f} ms  (target < 0.5 ms)")
    print(
        f"  all pairs (baseline):         {small['naive_ms']:8.3f} ms; ratio "
        f"{small['naive_over_index']:.1f}"
    )
    for line in runtime_stores.report(figures["runtime_stores"]):
        print(line)
    for line in store_location.report(figures["store_location"]):
        print(line)
    for line in per_test_cost.report(figures["per_test_cost"]):
        print(line)
    for line in report_page.report(figures["report_page"]):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

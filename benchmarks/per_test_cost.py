"""What the active gate costs each test (issue 17): the difference of differences.

Four pytest runs, interleaved: the plugin idle and the gate active (``--maf-preflight``, one
environment check, a SQLite store in a temporary directory), each over one test and over
``count`` trivial parametrized tests. (active - idle) at one test is the gate's fixed cost
(imports, loading configs, running the check, recording); (active - idle) at ``count`` tests is
that plus what the plugin's per-test hooks add. Their difference over ``count - 1`` tests is
the cost per test. Target: at most 10 microseconds per test.

Two figures for each clock (wall-clock time, and the CPU time, user + system, of the pytest
process): the median over rounds of each round's difference of differences (the four runs of a
round are interleaved, so drift hits them alike), and, beside it, the same difference taken
between the fastest quarters of each variant's runs. On a shared machine CPU time is far
steadier than wall-clock time (others stretch a run's wall clock by seconds, more than the
milliseconds measured here), and the paired rounds steadier than quarters taken apart: the
target is judged on the CPU-time median of the rounds.

What remains is mostly not the plugin's hooks (with nothing to do, a test calls only the
gate's report hook, which returns at once) but the garbage collector: the active gate's
imports leave a larger heap, and the full collections that 5,000 tests trigger take longer.
Plugin autoload is off, so no other plugin's hooks are measured; the plugin is loaded by
module, as in ``active_gate``.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from timing import interleave, median_ms

TARGET_US = 10.0


def _project(directory: Path, count: int) -> None:
    (directory / "pytest.ini").write_text("[pytest]\n")
    (directory / "test_one.py").write_text("def test_one():\n    pass\n")
    (directory / "test_many.py").write_text(
        "import pytest\n\n\n"
        f"@pytest.mark.parametrize('i', range({count}))\n"
        "def test_many(i):\n    pass\n"
    )
    configs = directory / ".maf" / "preflight-configs"
    configs.mkdir(parents=True)
    (configs / "environment.json").write_text(
        json.dumps(
            {
                "configs": [
                    {
                        "id": "path-set",
                        "name": "PATH is set",
                        "config_type": "smoke_test",
                        "config": {
                            "test_type": "environment",
                            "test_definition": {"required": ["PATH"]},
                        },
                    }
                ]
            }
        )
    )


UNFROZEN = ("-o", "maf_gc_freeze=false")


def bench(quick: bool) -> dict[str, Any]:
    count = 1_000 if quick else 5_000
    runs = 4 if quick else 16
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        _project(project, count)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAF_")}
        env.update(
            PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
            MAF_DB_PATH=str(project / "runtime.db"),
            MAF_AGENT_MAIL_ROOT=str(project / "agent-mail"),
            MAF_AGENT_ID="bench",
        )
        base = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "pytest_maf_preflight.plugin",
        ]

        cpu: dict[str, list[float]] = {}

        def pytest_run(name: str, test_file: str, *extra: str) -> Callable[[], None]:
            def run() -> None:
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                subprocess.run(
                    [*base, *extra, test_file],
                    cwd=project,
                    env=env,
                    capture_output=True,
                    check=True,
                )
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu.setdefault(name, []).append(
                    after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                )

            return run

        wall = interleave(
            {
                "idle_one": pytest_run("idle_one", "test_one.py"),
                "active_one": pytest_run("active_one", "test_one.py", "--maf-preflight"),
                "idle_many": pytest_run("idle_many", "test_many.py"),
                "active_many": pytest_run("active_many", "test_many.py", "--maf-preflight"),
                # The same gate without its gc.freeze(): what the freeze saves, shown beside it.
                "unfrozen_one": pytest_run(
                    "unfrozen_one", "test_one.py", "--maf-preflight", *UNFROZEN
                ),
                "unfrozen_many": pytest_run(
                    "unfrozen_many", "test_many.py", "--maf-preflight", *UNFROZEN
                ),
            },
            runs,
        )
    figures: dict[str, Any] = {"tests": count, "runs": runs}
    for clock, samples in (("wall", wall), ("cpu", {k: v[1:] for k, v in cpu.items()})):
        # (cpu holds the warm-up run too: dropped above, as interleave drops it.)
        fixed = [a - i for a, i in zip(samples["active_one"], samples["idle_one"], strict=True)]
        total = [a - i for a, i in zip(samples["active_many"], samples["idle_many"], strict=True)]
        per_test = [(t - f) / (count - 1) * 1e6 for t, f in zip(total, fixed, strict=True)]
        unfrozen = [
            ((am - im) - (ao - io)) / (count - 1) * 1e6
            for am, im, ao, io in zip(
                samples["unfrozen_many"],
                samples["idle_many"],
                samples["unfrozen_one"],
                samples["idle_one"],
                strict=True,
            )
        ]
        fast = {name: statistics.quantiles(values, n=4)[0] for name, values in samples.items()}
        figures[clock] = {name: median_ms(values) for name, values in samples.items()}
        figures[clock].update(
            fixed_ms=statistics.median(fixed) * 1000,
            total_ms=statistics.median(total) * 1000,
            per_test_us=statistics.median(per_test),
            unfrozen_per_test_us=statistics.median(unfrozen),
            per_test_fastest_us=(
                (fast["active_many"] - fast["idle_many"]) - (fast["active_one"] - fast["idle_one"])
            )
            / (count - 1)
            * 1e6,
        )
    return figures


def report(figures: dict[str, Any]) -> list[str]:
    count = figures["tests"]
    lines = [
        f"Per-test cost of the active gate (issue 17): {count:,} trivial tests against "
        f"one, {figures['runs']} interleaved rounds (medians)"
    ]
    for clock, label in (("cpu", "CPU time"), ("wall", "wall clock")):
        f = figures[clock]
        lines += [
            f"  {label}: idle {f['idle_one']:.0f} ms at 1 test, {f['idle_many']:.0f} ms at "
            f"{count:,}; active {f['active_one']:.0f} ms, {f['active_many']:.0f} ms",
            f"    active - idle: {f['fixed_ms']:.1f} ms at 1 test (fixed cost), "
            f"{f['total_ms']:.1f} ms at {count:,}",
            f"    per test: {f['per_test_us']:.1f} us, median of the rounds"
            + (f" (target <= {TARGET_US:g} us)" if clock == "cpu" else "")
            + f"; between the fastest quarters {f['per_test_fastest_us']:.1f} us",
            f"    with maf_gc_freeze = false: {f['unfrozen_per_test_us']:.1f} us per test",
        ]
    return lines


if __name__ == "__main__":
    print("\n".join(report(bench("--quick" in sys.argv))))

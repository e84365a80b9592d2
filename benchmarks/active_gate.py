"""What an active gate costs a whole pytest run (issue 14), each target beside its baseline.

Every figure is a real pytest process (``python -m pytest`` from the project's directory), timed
from start to exit and interleaved with its baseline: the same project with the plugin idle
(loaded, ``--maf-preflight`` not given). Peak memory is each child's own ``ru_maxrss``, read
with ``os.wait4`` (``RUSAGE_CHILDREN`` keeps the maximum over every child ever waited for).

The projects are git repositories in a temporary directory, so the default runtime chain
records into the repository's shared SQLite store (under ``.git``) as in a user's checkout,
and nothing is written into this one. Runs are alike but for the flag under test: plugin
autoload off and this plugin loaded by module (``-p pytest_maf_preflight.plugin``), so the
other plugins of this environment (xdist, rerunfailures, hypothesis) add neither time nor noise;
the cache provider on, as users run pytest; no ``MAF_*``, ``PYTEST_ADDOPTS`` or
``PYTEST_PLUGINS`` variables from the caller. Every variant runs once before timing (bytecode,
the store's schema, any cache the gate keeps).

1. One ``environment`` check and one trivial test: ``pytest --maf-preflight`` at most the idle
   run plus 100 ms; the idle run at most 1.05 times ``-p no:maf_preflight`` (SPEC S10's idle
   cost, measured in the same rounds). Beside them, the gate with the config changed before
   each run: what a run pays when nothing it read before can be reused.
2. Fifty ``api`` checks against a server in this process that answers each after 200 ms: the
   whole run at most 0.45 s, about 1.6 times one check plus pytest's start-up; beside the same
   project idle and one api check's whole run.
3. Peak memory of target 1's active run: at most 15 MB above the idle run.
4. The example project (a copy, committed to a new repository): ``pytest --maf-preflight``
   against ``pytest``, reported.

Targets 1 and 2 are shown from the medians and, beside them, from the fastest quarter of each
variant: on a shared machine, contention only ever adds time, and it comes and goes within
minutes, so the fastest runs of interleaved variants are the steadiest comparison (as for the
idle cost).
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slow_server import slow_server
from timing import interleave, median_ms

ROOT = Path(__file__).resolve().parent.parent
# The module, not the entry-point name: looking an entry point up scans every installed
# distribution, which ``-p no:maf_preflight`` (the idle cost's baseline) does not.
PLUGIN = ("-p", "pytest_maf_preflight.plugin")
GATE = "--maf-preflight"
TARGET_FIXED_MS = 100.0
TARGET_IDLE_RATIO = 1.05
TARGET_API_S = 0.45
TARGET_MEMORY_MB = 15.0
API_CHECKS = 50
API_DELAY_S = 0.2


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MAF_")
        and k not in {"PYTEST_ADDOPTS", "PYTEST_PLUGINS"}
        # Installed packages have their bytecode; a machine that sets this (this one does)
        # would recompile every module of every run, pytest's included, and measure that.
        and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return env


def _repository(directory: Path) -> None:
    """``directory`` made a git repository with its files committed, as a user's checkout."""
    (directory / ".gitignore").write_text("__pycache__/\n.agent-mail/\n")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "commit.gpgsign=false", "commit", "-q", "-m", "base"],
    ):
        subprocess.run([*git, *args], cwd=directory, check=True, capture_output=True)


def _configs(directory: Path, configs: list[dict[str, Any]]) -> Path:
    path = directory / ".maf" / "preflight-configs" / "checks.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"configs": configs}))
    return path


def _environment_check(name: str = "PATH is set") -> dict[str, Any]:
    return {
        "id": "path-set",
        "name": name,
        "config_type": "smoke_test",
        "config": {"test_type": "environment", "test_definition": {"required": ["PATH"]}},
    }


def _api_check(i: int) -> dict[str, Any]:
    return {
        "id": f"api-{i:02d}",
        "name": f"api {i}",
        "config_type": "smoke_test",
        "config": {
            "test_type": "api",
            "test_definition": {"endpoint": f"/health/{i}", "json": {"status": "ok"}},
        },
    }


def _project(directory: Path, configs: list[dict[str, Any]], ini: str = "") -> Path:
    """A one-test project gated by ``configs``, committed; the config file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text(f"[pytest]\n{ini}")
    (directory / "test_one.py").write_text("def test_one():\n    pass\n")
    path = _configs(directory, configs)
    _repository(directory)
    return path


class Runs:
    """pytest processes run in one project, timed by ``interleave``; each one's resource use
    (CPU time, peak memory) kept by variant, the warm-up run left out as ``interleave`` does."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.cpu: dict[str, list[float]] = {}
        self.max_rss_kib: dict[str, list[int]] = {}

    def variant(
        self,
        name: str,
        cwd: Path,
        *args: str,
        before: Callable[[], None] | None = None,
        exit_code: int = 0,
    ) -> Callable[[], None]:
        argv = [sys.executable, "-m", "pytest", "-q", *PLUGIN, *args]

        def run() -> None:
            if before is not None:
                before()
            with tempfile.TemporaryFile() as out:
                # Not communicate() or wait(): they reap the child without its rusage.
                child = subprocess.Popen(
                    argv, cwd=cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT
                )
                _, status, usage = os.wait4(child.pid, 0)
                child.returncode = os.waitstatus_to_exitcode(status)
                if child.returncode != exit_code:
                    out.seek(0)
                    output = out.read().decode(errors="replace")[-4000:]
                    raise RuntimeError(
                        f"{shlex.join(argv)} in {cwd} exited {child.returncode}:\n{output}"
                    )
            self.cpu.setdefault(name, []).append(usage.ru_utime + usage.ru_stime)
            self.max_rss_kib.setdefault(name, []).append(usage.ru_maxrss)

        return run

    def cpu_ms(self, name: str) -> float:
        return median_ms(self.cpu[name][1:])

    def max_rss_mb(self, name: str) -> float:
        """Median peak memory in MB (10^6 bytes; Linux gives ``ru_maxrss`` in KiB)."""
        return statistics.median(self.max_rss_kib[name][1:]) * 1024 / 1e6


def bench_fixed(runs: int) -> dict[str, float]:
    """Targets 1 and 3 and SPEC S10's idle cost, in the same interleaved rounds."""
    with tempfile.TemporaryDirectory() as tmp:
        project, changing = Path(tmp) / "project", Path(tmp) / "changing"
        _project(project, [_environment_check()])
        _project(changing, [_environment_check()])
        counter = itertools.count()

        def change_config() -> None:
            _configs(changing, [_environment_check(f"PATH is set ({next(counter)})")])

        pytest = Runs(_env())
        samples = interleave(
            {
                "active": pytest.variant("active", project, GATE),
                "idle": pytest.variant("idle", project),
                "disabled": pytest.variant("disabled", project, "-p", "no:maf_preflight"),
                "active_changed": pytest.variant(
                    "active_changed", changing, GATE, before=change_config
                ),
            },
            runs,
        )
    medians = {name: median_ms(values) for name, values in samples.items()}
    # Start-up noise only ever adds time, so for the idle cost (a few ms) the fastest quarter
    # of each variant is the steadiest comparison; the ratio of the medians is shown beside it.
    quarter = {name: statistics.quantiles(values, n=4)[0] for name, values in samples.items()}
    return {
        "runs": runs,
        "active_ms": medians["active"],
        "idle_ms": medians["idle"],
        "disabled_ms": medians["disabled"],
        "active_changed_ms": medians["active_changed"],
        "active_over_idle": medians["active"] / medians["idle"],
        "active_minus_idle_ms": medians["active"] - medians["idle"],
        "changed_minus_idle_ms": medians["active_changed"] - medians["idle"],
        "idle_over_disabled": medians["idle"] / medians["disabled"],
        "idle_over_disabled_fastest_quarter": quarter["idle"] / quarter["disabled"],
        "active_minus_idle_fastest_quarter_ms": (quarter["active"] - quarter["idle"]) * 1000,
        "active_cpu_ms": pytest.cpu_ms("active"),
        "idle_cpu_ms": pytest.cpu_ms("idle"),
        "active_max_rss_mb": pytest.max_rss_mb("active"),
        "idle_max_rss_mb": pytest.max_rss_mb("idle"),
        "disabled_max_rss_mb": pytest.max_rss_mb("disabled"),
    }


def bench_api(runs: int) -> dict[str, float]:
    """Target 2: fifty slow ``api`` checks, whole runs, beside the idle run and one check."""
    with tempfile.TemporaryDirectory() as tmp, slow_server(API_DELAY_S) as base_url:
        ini = f"maf_base_url = {base_url}\nmaf_max_concurrency = {API_CHECKS}\n"
        fifty, one = Path(tmp) / "fifty", Path(tmp) / "one"
        _project(fifty, [_api_check(i) for i in range(API_CHECKS)], ini)
        _project(one, [_api_check(0)], ini)
        pytest = Runs(_env())
        samples = interleave(
            {
                "fifty": pytest.variant("fifty", fifty, GATE),
                "one": pytest.variant("one", one, GATE),
                "idle": pytest.variant("idle", fifty),
            },
            runs,
        )
    fifty_ms, one_ms, idle_ms = (median_ms(samples[n]) for n in ("fifty", "one", "idle"))
    # As for the idle cost: contention on a shared machine only adds time.
    fifty_q, idle_q = (statistics.quantiles(samples[n], n=4)[0] * 1000 for n in ("fifty", "idle"))
    return {
        "runs": runs,
        "checks": API_CHECKS,
        "delay_ms": API_DELAY_S * 1000,
        "fifty_ms": fifty_ms,
        "one_ms": one_ms,
        "idle_ms": idle_ms,
        "fifty_over_idle": fifty_ms / idle_ms,
        "fifty_over_one": fifty_ms / one_ms,
        # The "about 1.6 times a single check plus pytest start-up".
        "checks_over_delay": (fifty_ms - idle_ms) / (API_DELAY_S * 1000),
        "fifty_fastest_quarter_ms": fifty_q,
        "idle_fastest_quarter_ms": idle_q,
        "checks_over_delay_fastest_quarter": (fifty_q - idle_q) / (API_DELAY_S * 1000),
    }


def bench_example(runs: int) -> dict[str, float]:
    """Target 4: the example project, copied and committed to a new repository (run in place
    it would record into this repository's store)."""
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "example_project"
        shutil.copytree(
            ROOT / "example_project",
            project,
            ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", ".agent-mail"),
        )
        _repository(project)
        pytest = Runs(_env())
        samples = interleave(
            {
                "active": pytest.variant("active", project, GATE),
                # One of its tests reads the gate's results, and fails without the gate.
                "idle": pytest.variant("idle", project, exit_code=1),
            },
            runs,
        )
    active_ms, idle_ms = median_ms(samples["active"]), median_ms(samples["idle"])
    return {
        "runs": runs,
        "active_ms": active_ms,
        "idle_ms": idle_ms,
        "active_minus_idle_ms": active_ms - idle_ms,
        "active_over_idle": active_ms / idle_ms,
        "active_max_rss_mb": pytest.max_rss_mb("active"),
        "idle_max_rss_mb": pytest.max_rss_mb("idle"),
    }


def bench(quick: bool) -> dict[str, Any]:
    return {
        "fixed": bench_fixed(5 if quick else 41),
        "api": bench_api(3 if quick else 15),
        "example": bench_example(3 if quick else 15),
    }


def report(figures: dict[str, Any]) -> list[str]:
    fixed, api, example = figures["fixed"], figures["api"], figures["example"]
    memory = fixed["active_max_rss_mb"] - fixed["idle_max_rss_mb"]
    return [
        "Issue 14, whole pytest processes: plugin autoload off, the plugin loaded with -p, "
        "cache provider on;",
        "  each project a git repository in a temporary directory (SQLite store in .git), "
        "no MAF_* variables",
        f"S10 idle cost (one-test pytest run, {fixed['runs']} interleaved runs of each variant)",
        f"  plugin installed, --maf-preflight off: {fixed['idle_ms']:8.1f} ms",
        f"  -p no:maf_preflight (baseline):        {fixed['disabled_ms']:8.1f} ms",
        f"  ratio of the fastest quarters: {fixed['idle_over_disabled_fastest_quarter']:.3f}  "
        f"(target <= {TARGET_IDLE_RATIO}); of the medians: {fixed['idle_over_disabled']:.3f}",
        "Issue 14 target 1: one environment check, one trivial test, SQLite recording on, "
        f"{fixed['runs']} runs",
        f"  pytest --maf-preflight:          {fixed['active_ms']:8.1f} ms",
        f"  pytest, plugin idle (baseline):  {fixed['idle_ms']:8.1f} ms",
        f"  difference {fixed['active_minus_idle_ms']:+.1f} ms (target <= "
        f"+{TARGET_FIXED_MS:.0f} ms); ratio {fixed['active_over_idle']:.2f}; fastest quarters "
        f"{fixed['active_minus_idle_fastest_quarter_ms']:+.1f} ms",
        f"  CPU time (user + system): active {fixed['active_cpu_ms']:.1f} ms, idle "
        f"{fixed['idle_cpu_ms']:.1f} ms, {fixed['active_cpu_ms'] - fixed['idle_cpu_ms']:+.1f} ms",
        f"  config changed before each run: {fixed['active_changed_ms']:.1f} ms, "
        f"{fixed['changed_minus_idle_ms']:+.1f} ms over idle",
        f"Issue 14 target 2: {api['checks']} api checks, the server answers each after "
        f"{api['delay_ms']:.0f} ms, max concurrency {api['checks']}, {api['runs']} runs",
        f"  whole run, {api['checks']} checks:          {api['fifty_ms']:8.1f} ms  "
        f"(target <= {TARGET_API_S * 1000:.0f} ms)",
        f"  whole run, one check:           {api['one_ms']:8.1f} ms",
        f"  same project idle (baseline):   {api['idle_ms']:8.1f} ms",
        f"  ratios: to idle {api['fifty_over_idle']:.2f}, to one check "
        f"{api['fifty_over_one']:.2f}; (run - idle) / {api['delay_ms']:.0f} ms: "
        f"{api['checks_over_delay']:.2f} (issue: about 1.6)",
        f"  fastest quarters: {api['fifty_fastest_quarter_ms']:.1f} ms "
        f"against {api['idle_fastest_quarter_ms']:.1f} ms idle; (run - idle) / "
        f"{api['delay_ms']:.0f} ms: {api['checks_over_delay_fastest_quarter']:.2f}",
        "Issue 14 target 3: peak memory (max RSS) of target 1's runs, medians",
        f"  active {fixed['active_max_rss_mb']:.1f} MB, idle (baseline) "
        f"{fixed['idle_max_rss_mb']:.1f} MB: {memory:+.1f} MB (target <= "
        f"+{TARGET_MEMORY_MB:.0f} MB)",
        f"  ratio {fixed['active_max_rss_mb'] / fixed['idle_max_rss_mb']:.2f}; "
        f"-p no:maf_preflight {fixed['disabled_max_rss_mb']:.1f} MB",
        "Issue 14 target 4: the example project (a committed copy), "
        f"{example['runs']} interleaved runs",
        f"  pytest --maf-preflight:          {example['active_ms']:8.1f} ms",
        f"  pytest, plugin idle (baseline):  {example['idle_ms']:8.1f} ms  (exit 1: a test "
        "reads the gate's results)",
        f"  difference {example['active_minus_idle_ms']:+.1f} ms; ratio "
        f"{example['active_over_idle']:.2f}; peak memory {example['active_max_rss_mb']:.1f} MB "
        f"against {example['idle_max_rss_mb']:.1f} MB",
    ]


if __name__ == "__main__":
    start = time.perf_counter()
    print("\n".join(report(bench("--quick" in sys.argv))))
    print(f"({time.perf_counter() - start:.0f} s)")

"""Run real projects' own test suites with and without the plugin, and compare every outcome.

    .venv/bin/python compat/run.py                      # every project, every variant
    .venv/bin/python compat/run.py packaging attrs      # some of them
    .venv/bin/python compat/run.py --quick more-itertools  # what CI runs: no -n 2 variants,
                                                           # the slowest tests left out

For each project (``projects.py``: pinned versions of published source distributions) this
downloads the sdist, checks its sha256, unpacks it, makes a venv of its own under the work
directory (default ``compat/.work/``, reused while the pins and this repository's
``pyproject.toml`` stay the same) with the project, its test requirements and this plugin
(editable, so the code under test is always the working tree's), then runs the project's test
suite once per variant:

- ``disabled``: ``-p no:maf_preflight``, the baseline every other variant is compared with;
- ``idle``: the plugin installed and autoloaded, the gate off, as every user's run is;
- ``gate``: ``--maf-preflight`` with ``configs/open.yaml`` (two checks that pass, one
  ``warning`` check that fails): every test must end as in the baseline, with the same exit code;
- ``gate -n 2``: the same under pytest-xdist (left out by ``--quick``);
- ``closed``: a failing critical check (``configs/closed.yaml``): exit 10, every test skipped
  by the gate (and ``closed -n 2``, left out by ``--quick``).

Outcomes are compared per test from ``--junitxml`` (the gate's own check items left out), and
the order of the tests too where it is deterministic (without xdist). Every difference is
printed, with each variant's wall time against the baseline's. Exit status: 0 when every
variant behaved, 1 when any did not, 2 when a project could not be set up.

The runs are isolated from the calling environment: ``PYTEST_*`` variables (autoload off,
addopts, extra plugins), ``MAF_*`` variables (``MAF_PREFLIGHT`` would turn the gate on) and
``PYTHONPATH`` are removed, so the plugin is autoloaded as users get it and only the plugins
each venv holds are present; ``-p no:randomly`` and ``-p no:cacheprovider`` keep the order and
the runs independent of each other, Hypothesis gets a fixed seed, and the gate's runtime store
lives in the work directory (``MAF_DB_PATH``), not in the repository's own.

Standard library only.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# Run as a script, this file has only compat/ on sys.path; its modules are imported as the
# package they are (compat/__init__.py), from the checkout's top.
sys.path.insert(0, str(REPO))
from compat.outcomes import (  # noqa: E402 - after the path is set
    Difference,
    JUnitError,
    RunOutcomes,
    closed_gate_problems,
    differences,
    order_difference,
    read_junit,
)
from compat.projects import PROJECTS, Project, by_name  # noqa: E402 - likewise

#: The exit code of a session whose gate closed (``MafExitCode.GATE_CLOSED``).
GATE_CLOSED = 10
#: The checks ``configs/open.yaml`` defines and what each finds: a gated run must show each as
#: an item, and every item must pass (a failing ``warning`` check only warns).
OPEN_CHECKS = {
    "compat-environment": "passed",
    "compat-python": "passed",
    "compat-warning": "failed",
}
INSTALL_TIMEOUT = 900.0


class SetupError(Exception):
    """A project that could not be downloaded, unpacked or installed."""


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    args: tuple[str, ...]
    closed: bool = False
    xdist: bool = False


def _gate(config: str) -> tuple[str, ...]:
    return ("--maf-preflight", f"--maf-config={HERE / 'configs' / config}")


BASELINE = Variant("disabled", ("-p", "no:maf_preflight"))
VARIANTS = (
    BASELINE,
    Variant("idle", ()),
    Variant("gate", _gate("open.yaml")),
    Variant("gate -n 2", (*_gate("open.yaml"), "-n", "2"), xdist=True),
    Variant("closed", _gate("closed.yaml"), closed=True),
    Variant("closed -n 2", (*_gate("closed.yaml"), "-n", "2"), closed=True, xdist=True),
)


@dataclasses.dataclass(frozen=True)
class Run:
    variant: Variant
    exit_code: int | None  # None: killed at the timeout
    seconds: float
    outcomes: RunOutcomes | None
    log: Path
    error: str = ""


# -- setting up -------------------------------------------------------------------------------


def _run_step(
    argv: list[str], what: str, timeout: float = INSTALL_TIMEOUT, cwd: Path | None = None
) -> None:
    try:
        done = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise SetupError(f"{what}: still running after {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise SetupError(f"{what} failed (exit {done.returncode}):\n{tail}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download(project: Project, downloads: Path) -> Path:
    """The project's sdist, downloaded once and checked against its pinned sha256."""
    target = downloads / f"{project.name}-{project.version}.tar.gz"
    if target.is_file() and _sha256(target) == project.sha256:
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        _run_step(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                tmp,
                project.pin,
            ],
            f"downloading {project.pin}",
        )
        files = list(Path(tmp).iterdir())
        if len(files) != 1 or not files[0].name.endswith(".tar.gz"):
            raise SetupError(
                f"downloading {project.pin}: expected one .tar.gz, got {[f.name for f in files]}"
            )
        digest = _sha256(files[0])
        if digest != project.sha256:
            raise SetupError(f"{files[0].name}: sha256 {digest}, pinned {project.sha256}")
        files[0].replace(target)
    return target


def unpack(sdist: Path, destination: Path) -> Path:
    """A fresh copy of the sdist's tree at ``destination`` (tests leave files behind)."""
    shutil.rmtree(destination, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=destination.parent) as tmp, tarfile.open(sdist) as archive:
        # The "data" filter refuses absolute paths, links out of the tree and devices.
        archive.extractall(tmp, filter="data")
        tops = list(Path(tmp).iterdir())
        if len(tops) != 1 or not tops[0].is_dir():
            raise SetupError(f"{sdist.name}: expected one top-level directory")
        tops[0].replace(destination)
    return destination


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def prepare_venv(project: Project, source: Path, home: Path) -> Path:
    """The project's venv (made again when what it should hold changed); its python."""
    venv = home / "venv"
    stamp_path = venv / "compat-stamp.json"
    stamp = json.dumps(
        {
            "python": sys.version,
            "project": project.pin,
            "sha256": project.sha256,
            "requirements": project.requirements,
            "plugin": _sha256(REPO / "pyproject.toml"),
        },
        sort_keys=True,
    )
    python = _venv_python(venv)
    if stamp_path.is_file() and stamp_path.read_text() == stamp and python.is_file():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    print(f"   making {venv} ...", flush=True)
    _run_step([sys.executable, "-m", "venv", str(venv)], f"creating {venv}")
    # The pins bind every install below: nothing may move the project off its version.
    constraints = home / "constraints.txt"
    constraints.write_text("\n".join((project.pin, *project.requirements)) + "\n")
    pip = [
        str(python),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "-c",
        str(constraints),
    ]
    _run_step(
        [*pip, str(source), *project.requirements],
        f"installing {project.pin} and its test requirements",
    )
    _run_step([*pip, "-e", str(REPO)], "installing pytest-maf-preflight")
    stamp_path.write_text(stamp)  # last: a venv left half-made is made again
    return python


def pytest_plugins(python: Path) -> list[str]:
    """The pytest plugins the venv autoloads (entry points in group ``pytest11``)."""
    code = (
        "import importlib.metadata as m; "
        "print(' '.join(sorted(e.name for e in m.entry_points(group='pytest11'))))"
    )
    done = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.split()


# -- running ----------------------------------------------------------------------------------


def run_environment(home: Path) -> dict[str, str]:
    """The calling environment without what would change the runs (see the module doc)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "MAF_"))
        and key not in ("PYTHONPATH", "VIRTUAL_ENV", "NODE_ENV", "AGENT_NAME")
    }
    env["PYTHONHASHSEED"] = "0"
    env["MAF_DB_PATH"] = str(home / "runtime" / "runtime.db")
    env["MAF_AGENT_MAIL_ROOT"] = str(home / "runtime" / "agent-mail")
    return env


def run_variant(
    project: Project,
    variant: Variant,
    python: Path,
    source: Path,
    home: Path,
    deselect: tuple[str, ...],
) -> Run:
    results = home / "results"
    results.mkdir(parents=True, exist_ok=True)
    slug = variant.name.replace(" ", "")
    junit, log = results / f"{slug}.xml", results / f"{slug}.log"
    junit.unlink(missing_ok=True)
    argv = [
        str(python),
        "-m",
        "pytest",
        "-c",
        project.config_file,
        *project.test_paths,
        "-q",
        "-p",
        "no:randomly",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        *project.pytest_args,
        *(f"--deselect={test}" for test in deselect),
        *variant.args,
    ]
    started = time.perf_counter()
    with log.open("w") as out:
        # A group of its own, so a run killed at its timeout takes its xdist workers along.
        process = subprocess.Popen(
            argv,
            cwd=source,
            env=run_environment(home),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            exit_code: int | None = process.wait(timeout=project.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            exit_code = None
    seconds = time.perf_counter() - started
    if exit_code is None:
        return Run(
            variant, None, seconds, None, log, f"killed after {project.timeout:.0f} s (see {log})"
        )
    try:
        return Run(variant, exit_code, seconds, read_junit(junit), log)
    except JUnitError as exc:
        return Run(variant, exit_code, seconds, None, log, f"{exc} (see {log})")


# -- judging ----------------------------------------------------------------------------------


def problems_of(run: Run, baseline: Run) -> list[str]:
    """Everything about one variant's run that differs from what it must be."""
    if run.error:
        return [run.error]
    assert run.outcomes is not None
    assert baseline.outcomes is not None
    if run.variant.closed:
        found = (
            []
            if run.exit_code == GATE_CLOSED
            else [f"exit {run.exit_code}, expected {GATE_CLOSED} (gate closed)"]
        )
        return found + closed_gate_problems(baseline.outcomes, run.outcomes)
    found = (
        []
        if run.exit_code == baseline.exit_code
        else [f"exit {run.exit_code}, expected {baseline.exit_code} as in {BASELINE.name}"]
    )
    diffs: list[Difference] = differences(baseline.outcomes, run.outcomes)
    found += [diff.describe() for diff in diffs]
    if not run.variant.xdist:
        moved = order_difference(baseline.outcomes, run.outcomes)
        found += [moved] if moved else []
    if "--maf-preflight" in run.variant.args:
        found += _open_gate_check_problems(run.outcomes)
    return found


def _open_gate_check_problems(outcomes: RunOutcomes) -> list[str]:
    missing = OPEN_CHECKS.keys() - outcomes.checks.keys()
    if missing:
        return [f"check items missing (is the plugin autoloaded?): {sorted(missing)}"]
    found = []
    for check, status in OPEN_CHECKS.items():
        item = outcomes.checks[check]
        if item.status != status:
            found.append(f"check {check}: {item.status}, expected {status}")
        if item.outcome.kind != "passed":
            message = f" ({item.outcome.message})" if item.outcome.message else ""
            found.append(
                f"check item {check}: {item.outcome.kind}{message}, expected passed: "
                "a check that leaves the gate open must not fail its item"
            )
    return found


def _summary(outcomes: RunOutcomes) -> str:
    counts = Counter(outcome.kind for outcome in outcomes.tests.values())
    return ", ".join(f"{n} {kind}" for kind, n in counts.most_common())


def _checks(outcomes: RunOutcomes) -> str:
    return ", ".join(
        f"{check} {item.status}"
        + ("" if item.outcome.kind == "passed" else f" (item {item.outcome.kind})")
        for check, item in outcomes.checks.items()
    )


def _hint(run: Run) -> str:
    """Why a gated run may differ: the warning check's own item did not pass."""
    if run.outcomes is None or run.variant.closed:
        return ""
    warning = run.outcomes.checks.get("compat-warning")
    if warning is None or warning.outcome.kind == "passed":
        return ""
    outcome = warning.outcome
    return (
        f"   note: the warning check's item ended {outcome.kind}"
        f"{f' ({outcome.message})' if outcome.message else ''}; a failing warning check"
        " must not fail a test or the run (do the project's filterwarnings reach it?)"
    )


def report(project: Project, runs: list[Run]) -> int:
    """Prints the table and every difference; the number of problems found."""
    baseline = runs[0]
    if baseline.outcomes is None or baseline.exit_code is None:
        print(f"   {BASELINE.name}: {baseline.error}")
        return 1
    if baseline.exit_code not in (0, 1) or not baseline.outcomes.tests:
        # Nothing ran (usage or internal error, nothing collected): there is nothing to compare.
        print(
            f"   {BASELINE.name}: exit {baseline.exit_code}, "
            f"{len(baseline.outcomes.tests)} tests: the suite itself does not run here "
            f"(see {baseline.log})"
        )
        return 1
    print(f"   {'variant':<12} {'exit':>4} {'time':>8} {'ratio':>6}  result")
    total = 0
    for run in runs:
        ratio = run.seconds / baseline.seconds
        problems = [] if run is baseline else problems_of(run, baseline)
        if run is baseline:
            result = f"baseline: {_summary(baseline.outcomes)}"
        elif problems:
            result = f"{len(problems)} difference(s)"
        elif run.variant.closed:
            result = f"gate closed, all {len(baseline.outcomes.tests)} tests skipped"
        else:
            result = "same outcomes"
        if run.outcomes is not None and run.outcomes.checks:
            result += f"; checks: {_checks(run.outcomes)}"
        exit_text = "-" if run.exit_code is None else str(run.exit_code)
        print(
            f"   {run.variant.name:<12} {exit_text:>4} {run.seconds:>7.1f}s {ratio:>6.2f}  {result}"
        )
        for problem in problems:
            print(f"      {run.variant.name}: {problem}")
        if problems and _hint(run):
            print(_hint(run))
        total += len(problems)
    return total


def check_project(
    project: Project, work: Path, variants: tuple[Variant, ...], deselect: tuple[str, ...]
) -> int:
    home = work / f"{project.name}-{project.version}"
    home.mkdir(parents=True, exist_ok=True)
    sdist = download(project, work / "downloads")
    source = unpack(sdist, home / "source")
    python = prepare_venv(project, source, home)
    plugins = pytest_plugins(python)
    if "maf_preflight" not in plugins:
        raise SetupError(f"{python}: pytest-maf-preflight is not registered as a pytest plugin")
    print(f"   pytest plugins autoloaded: {' '.join(plugins)}", flush=True)
    runs = []
    for variant in variants:
        runs.append(run_variant(project, variant, python, source, home, deselect))
        if runs[0].outcomes is None or runs[0].exit_code not in (0, 1):
            break  # nothing to compare with
    return report(project, runs)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run real projects' test suites with and without pytest-maf-preflight "
        "and compare the outcomes of every test"
    )
    # No ``choices``: argparse refuses an empty list against them (its default here).
    parser.add_argument(
        "projects",
        nargs="*",
        metavar="PROJECT",
        help=f"Projects to run (default: all of {', '.join(p.name for p in PROJECTS)})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="Leave out the -n 2 variants and the few slowest tests"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=HERE / ".work",
        help="Where downloads, venvs and results are kept (default: compat/.work)",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.projects if by_name(name) is None]
    if unknown:
        parser.error(
            f"unknown project(s) {', '.join(unknown)}; choose from "
            f"{', '.join(p.name for p in PROJECTS)}"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [p for p in PROJECTS if not args.projects or p.name in args.projects]
    variants = tuple(v for v in VARIANTS if not (args.quick and v.xdist))
    work: Path = args.work_dir.resolve()
    failed_setup, differing = [], []
    for project in chosen:
        print(f"== {project.pin}", flush=True)
        try:
            deselect = project.slow_tests if args.quick else ()
            if check_project(project, work, variants, deselect):
                differing.append(project.name)
        except SetupError as exc:
            print(f"   cannot set up {project.pin}: {exc}")
            failed_setup.append(project.name)
    print()
    if failed_setup:
        print(f"compat: could not set up {', '.join(failed_setup)}")
    if differing:
        print(f"compat: outcomes differ in {', '.join(differing)}")
    if not failed_setup and not differing:
        print(f"compat: every variant behaved in {', '.join(p.name for p in chosen)}")
    return 2 if failed_setup else 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())

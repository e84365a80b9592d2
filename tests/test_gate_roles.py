"""Each part of the gate is a plugin only in the process where it has a job (issue 13).

The controller (load, run, decide, record) and the report live where the session is decided:
a run without xdist, or xdist's controller; an xdist worker has the worker part (the
controller's results, the smoke barrier) and the collection part, nothing else.
"""

from __future__ import annotations

import json

import pytest

from helpers_configs import PASSING_CHECK, WriteConfig

#: Written by the pytester project's conftest: the plugins of ours registered in each process.
PROBE = """
import json

def pytest_sessionfinish(session):
    ours = sorted(name for name, _ in session.config.pluginmanager.list_name_plugin()
                  if name and name.startswith("maf_preflight"))
    process = getattr(session.config, "workerinput", {}).get("workerid", "main")
    with open(f"plugins-{process}.json", "w") as handle:
        json.dump(ours, handle)
"""

CONTROLLER = [
    "maf_preflight",
    "maf_preflight_collection",
    "maf_preflight_gate",
    "maf_preflight_report",
]


@pytest.fixture
def project(pytester: pytest.Pytester, write_config: WriteConfig) -> pytest.Pytester:
    pytester.makeconftest(PROBE)
    pytester.makeini("[pytest]\n")
    write_config("checks.yaml", PASSING_CHECK)
    pytester.makepyfile(
        test_app="import pytest\n\n@pytest.mark.parametrize('n', range(4))\n"
        "def test_app(n):\n    pass\n"
    )
    return pytester


def plugins(pytester: pytest.Pytester, process: str) -> list[str]:
    names: list[str] = json.loads((pytester.path / f"plugins-{process}.json").read_text())
    return names


def test_without_xdist_one_process_has_the_controller_and_the_report(
    project: pytest.Pytester,
) -> None:
    result = project.runpytest("-p", "maf_preflight", "--maf-preflight")
    result.assert_outcomes(passed=5)
    assert plugins(project, "main") == CONTROLLER


def test_under_xdist_workers_have_only_the_workers_part(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    result = project.runpytest_subprocess(
        "-p", "maf_preflight", "-p", "xdist", "-n", "2", "--maf-preflight", timeout=120
    )
    result.assert_outcomes(passed=5)
    assert plugins(project, "main") == sorted([*CONTROLLER, "maf_preflight_xdist"])
    for worker in ("gw0", "gw1"):
        assert plugins(project, worker) == [
            "maf_preflight",
            "maf_preflight_collection",
            "maf_preflight_gate_worker",
        ]


def test_the_gate_off_registers_none_of_it(project: pytest.Pytester) -> None:
    result = project.runpytest("-p", "maf_preflight")
    result.assert_outcomes(passed=4)
    assert plugins(project, "main") == ["maf_preflight"]

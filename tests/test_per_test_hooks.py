"""The plugin's hooks around each test exist only where some test needs them (issue 17).

A test with nothing for the plugin to do (the gate open, or off, and no maf_smoke, maf_requires
or maf_reserve anywhere in the session) must cost it no hook call: these tests read which
plugins implement the per-test hooks at the end of real pytest runs, and check that the tests
that do need them still get what the README promises.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

WriteConfig = Callable[[str, str], Path]

#: Written by the pytester project's conftest: the plugins (of ours) implementing each
#: per-test hook as the session ends, one file per process (xdist workers included).
PROBE = """
import json

HOOKS = ("pytest_runtest_setup", "pytest_runtest_call", "pytest_runtest_teardown",
         "pytest_runtest_makereport")

def pytest_sessionfinish(session):
    impls = [i for name in HOOKS for i in getattr(session.config.hook, name).get_hookimpls()]
    ours = sorted({i.plugin_name for i in impls if i.plugin_name.startswith("maf_preflight")})
    process = getattr(session.config, "workerinput", {}).get("workerid", "main")
    with open(f"hooks-{process}.json", "w") as handle:
        json.dump(ours, handle)
"""

#: Adds maf_requires at collection, the way a project's conftest can mark tests.
MARK_AT_COLLECTION = """
import pytest

def pytest_collection_modifyitems(items):
    for item in items:
        if item.name == "test_needs_slow":
            item.add_marker(pytest.mark.maf_requires("slow"))
"""

PLAIN = """\
import pytest

@pytest.mark.parametrize("i", range(3))
def test_plain(i):
    pass
"""


def check(check_id: str, argv: list[str], severity: str = "critical") -> str:
    return json.dumps(
        {
            "id": check_id,
            "name": check_id,
            "config_type": "smoke_test",
            "severity": severity,
            "config": {
                "test_type": "command",
                "timeout_seconds": 10,
                "test_definition": {"argv": argv},
            },
        }
    )


def ours(pytester: pytest.Pytester, process: str = "main") -> list[str]:
    called: list[str] = json.loads((pytester.path / f"hooks-{process}.json").read_text())
    return called


@pytest.fixture
def project(pytester: pytest.Pytester, write_config: WriteConfig) -> pytest.Pytester:
    pytester.makeconftest(PROBE)
    pytester.makeini("[pytest]\n")
    write_config("tools.json", check("tools", ["true"]))
    return pytester


@pytest.mark.parametrize("gate", [("--maf-preflight",), ()], ids=["gate-open", "gate-off"])
def test_plain_tests_have_no_per_test_hooks(
    project: pytest.Pytester, gate: tuple[str, ...]
) -> None:
    project.makepyfile(test_plain=PLAIN)
    result = project.runpytest("-p", "maf_preflight", *gate)
    result.assert_outcomes(passed=3 + len(gate))  # the check item, with the gate on
    assert ours(project) == []


def test_plain_tests_on_xdist_workers_have_no_per_test_hooks(project: pytest.Pytester) -> None:
    project.makepyfile(test_plain=PLAIN)
    result = project.runpytest_subprocess(
        "-p", "maf_preflight", "-p", "xdist", "-n", "2", "--maf-preflight", timeout=120
    )
    result.assert_outcomes(passed=4)
    assert ours(project, "gw0") == ours(project, "gw1") == []


def test_a_smoke_test_brings_the_gates_hooks(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_plain=PLAIN + "\n\n@pytest.mark.maf_smoke\ndef test_smoke():\n    assert False\n"
    )
    result = project.runpytest("-p", "maf_preflight", "--maf-preflight", "-rs")
    assert ours(project) == ["maf_preflight_gate_items"]
    result.assert_outcomes(passed=1, failed=1, skipped=3)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]3[]] test_plain.py:3: maf-preflight gate closed by: "
            "test_plain.py::test_smoke (maf_smoke failed)"
        ]
    )
    assert result.ret == 10


def test_a_closed_gate_brings_the_gates_hooks(
    project: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("db.json", check("db", ["false"]))
    project.makepyfile(test_plain=PLAIN)
    result = project.runpytest("-p", "maf_preflight", "--maf-preflight", "-rs")
    assert ours(project) == ["maf_preflight_gate_items"]
    result.assert_outcomes(passed=1, failed=1, skipped=3)
    result.stdout.fnmatch_lines(
        ["SKIPPED [[]3[]] test_plain.py:3: maf-preflight gate closed by: db (failed)"]
    )


def test_maf_requires_added_at_collection_brings_the_gates_hooks(
    project: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("slow.json", check("slow", ["false"], severity="warning"))
    (project.path / "conftest.py").write_text(PROBE + MARK_AT_COLLECTION)
    project.makepyfile(test_plain=PLAIN + "\n\ndef test_needs_slow():\n    pass\n")
    # In a subprocess: this process's warning filters would make the warning check an error.
    result = project.runpytest_subprocess("-p", "maf_preflight", "--maf-preflight", "-rs")
    assert ours(project) == ["maf_preflight_gate_items"]
    result.assert_outcomes(passed=5, skipped=1, warnings=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED [[]1[]] test_plain.py*: maf_requires: check(s) did not pass: slow (failed)"]
    )
    assert result.ret == 0


def test_markers_without_the_gate_bring_only_their_own_hooks(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_marked=PLAIN
        + """

@pytest.mark.maf_requires("tools")
def test_needs_tools():
    pass

@pytest.mark.maf_reserve("src/app.py", ttl=60)
def test_reserves():
    pass
"""
    )
    result = project.runpytest(
        "-p", "maf_preflight", "--maf-agent-id=agent-a", "--maf-runtime=memory", "-rs"
    )
    assert ours(project) == ["maf_preflight_requires", "maf_preflight_reserve"]
    result.assert_outcomes(passed=4, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] test_marked.py:8: maf_requires(tools) needs the "
            "preflight gate (--maf-preflight)"
        ]
    )

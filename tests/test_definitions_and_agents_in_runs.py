"""Smoke test definitions and the agent's seed fields from real pytest runs: one definition per
content (under xdist too, where the controller never sees the items), executions naming the
definition they ran, and the agent's type, capabilities and status from settings and from
``maf_agent.heartbeat``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from helpers_configs import PASSING_CHECK, WriteConfig
from pytest_maf_preflight.runtime.records import AgentRecord
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

QUIET = ("-W", "ignore::pytest.PytestWarning")
SMOKE = textwrap.dedent("""
    import pytest

    @pytest.mark.maf_smoke
    @pytest.mark.maf_requires({requires})
    def test_smoke():
        pass

    def test_ordinary():
        pass
""")


@pytest.fixture
def project(
    pytester: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    write_config("check.yaml", PASSING_CHECK)
    monkeypatch.setenv("MAF_DB_PATH", str(pytester.path / ".maf" / "runtime.db"))
    for name in ("MAF_AGENT_TYPE", "MAF_AGENT_CAPABILITIES", "MAF_RUNTIME_MODE"):
        monkeypatch.delenv(name, raising=False)
    return pytester


def store(pytester: pytest.Pytester) -> SqliteRuntime:
    return SqliteRuntime(pytester.path / ".maf" / "runtime.db")


def test_a_changed_smoke_test_is_a_new_definition_its_executions_name(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_app=SMOKE.format(requires='"has-path"'))
    for _ in range(2):
        assert project.runpytest("-p", "maf_preflight", "--maf-preflight", *QUIET).ret == 0
    project.makepyfile(test_app=SMOKE.format(requires='"has-path", "has-path"'))
    assert project.runpytest("-p", "maf_preflight", "--maf-preflight", *QUIET).ret == 0
    with store(project) as runtime:
        newer, older = runtime.smoke_tests("test_app.py::test_smoke")
        runs = runtime.executions(config_id="test_app.py::test_smoke")
    assert newer.content_hash != older.content_hash
    requires = [m for m in newer.document["markers"] if m["name"] == "maf_requires"]
    assert requires == [{"name": "maf_requires", "args": ["has-path", "has-path"], "kwargs": {}}]
    # Newest first: the last run ran the changed test, the two before it the first version.
    assert [r.config_version for r in runs] == [newer.version, older.version, older.version]


def test_under_xdist_the_workers_definition_reaches_the_controller(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_app=SMOKE.format(requires='"has-path"'))
    result = project.runpytest_subprocess(
        "-p", "maf_preflight", "--maf-preflight", *QUIET, "-p", "xdist", "-n", "2"
    )
    assert result.ret == 0, result.stdout.str()
    with store(project) as runtime:
        [definition] = runtime.smoke_tests()
        [run] = runtime.executions(config_id="test_app.py::test_smoke")
    assert (definition.nodeid, definition.file) == ("test_app.py::test_smoke", "test_app.py")
    assert {m["name"] for m in definition.document["markers"]} == {"maf_smoke", "maf_requires"}
    assert run.config_version == definition.version


AGENT_TEST = textwrap.dedent("""
    def test_agent(maf_agent):
        assert maf_agent.agent_type == "{kind}"
        assert maf_agent.capabilities == {capabilities!r}
        maf_agent.heartbeat(status="maintenance", note="upgrading")
""")


@pytest.mark.parametrize(
    ("ini", "env", "kind", "capabilities"),
    [
        (
            "maf_agent_type = coordinator\nmaf_agent_capabilities = plan, review, plan\n",
            {},
            "coordinator",
            ("plan", "review"),
        ),
        (
            "maf_agent_type = coordinator\nmaf_agent_capabilities = plan\n",
            {"MAF_AGENT_TYPE": "verifier", "MAF_AGENT_CAPABILITIES": "python"},
            "verifier",
            ("python",),
        ),
        ("", {}, "worker", ()),
    ],
)
def test_maf_agent_heartbeats_carry_type_capabilities_and_status(
    project: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    ini: str,
    env: dict[str, str],
    kind: str,
    capabilities: tuple[str, ...],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    project.makeini(f"[pytest]\nmaf_agent_id = a-1\n{ini}")
    project.makepyfile(test_agent=AGENT_TEST.format(kind=kind, capabilities=capabilities))
    result = project.runpytest("-p", "maf_preflight", "--maf-runtime=sqlite")
    result.assert_outcomes(passed=1)
    with store(project) as runtime:
        [agent] = runtime.agents()
    assert agent == AgentRecord(
        "a-1",
        agent.last_heartbeat,
        {"note": "upgrading"},
        agent_type=kind,
        capabilities=capabilities,
        status="maintenance",
    )


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "MAF_AGENT_TYPE",
            "boss",
            "ERROR: MAF_AGENT_TYPE environment variable: agent type must "
            "be one of coordinator, worker, verifier, escalation_manager*",
        ),
        (
            "MAF_AGENT_CAPABILITIES",
            "ok," + "x" * 101,
            "ERROR: MAF_AGENT_CAPABILITIES environment variable: a capability must be*",
        ),
    ],
)
def test_bad_agent_settings_are_one_line_usage_errors(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    project.makepyfile(test_app="def test_x():\n    pass\n")
    result = project.runpytest("-p", "maf_preflight", "--maf-preflight")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert "Traceback" not in result.stderr.str()


def test_a_bad_status_is_refused_before_any_store_is_opened(tmp_path: Path) -> None:
    from pytest_maf_preflight.agent import MafAgent
    from pytest_maf_preflight.runtime.factory import resolve_runtime_settings

    settings = resolve_runtime_settings(tmp_path, {"MAF_RUNTIME_MODE": "sqlite"}, None, "")
    agent = MafAgent("a-1", "dev", runtime_settings=settings)
    with pytest.raises(ValueError, match="agent status must be one of"):
        agent.heartbeat(status="asleep")
    assert not (tmp_path / ".maf" / "runtime.db").exists()

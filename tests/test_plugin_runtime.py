"""The gate records every execution in the runtime, once, and falls back when it must (S5)."""

from __future__ import annotations

import json
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

from helpers_configs import WriteConfig

CHECKS = """\
configs:
  - id: has-path
    name: PATH is set
    config_type: smoke_test
    config:
      test_type: environment
      test_definition: {required: [PATH]}
  - id: needs-var
    name: A variable nobody set
    config_type: smoke_test
    severity: warning
    config:
      test_type: environment
      test_definition: {required: [MAF_TEST_SURELY_UNSET]}
"""
TESTS = textwrap.dedent("""
    import pytest

    @pytest.mark.maf_smoke
    def test_smoke():
        pass

    @pytest.mark.parametrize("n", range(4))
    def test_ordinary(n):
        pass
""")


@pytest.fixture
def project(pytester: pytest.Pytester, write_config: WriteConfig) -> pytest.Pytester:
    write_config("checks.yaml", CHECKS)
    pytester.makepyfile(test_app=TESTS)
    return pytester


# The warning check fails by design; the outer suite's filterwarnings=error must not turn its
# MafCheckWarning into a failed item in these in-process runs.
QUIET = ("-W", "ignore::pytest.PytestWarning")


def gate(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest("-p", "maf_preflight", "--maf-preflight", *QUIET, *args)


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_a_session_and_every_execution_land_in_sqlite(project: pytest.Pytester) -> None:
    result = gate(project, "--maf-agent-id=a-1")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "maf-preflight: agent a-1, environment development, "
            "runtime sqlite (rootdir .maf, not a git repository), "
            "2 checks*",
            "*recorded 3 execution(s) in sqlite*runtime.db*",
        ]
    )
    db = project.path / ".maf" / "runtime.db"
    sessions = rows(db, "select agent_id, status, exit_code from preflight_sessions")
    assert sessions == [("a-1", "open", 0)]
    executions = sorted(rows(db, "select config_id, kind, status from preflight_executions"))
    assert executions == [
        ("has-path", "check", "passed"),
        ("needs-var", "check", "failed"),
        ("test_app.py::test_smoke", "smoke", "passed"),
    ]
    # a PREFLIGHT_CHECK per check and a PREFLIGHT_RESULT per execution (the smoke test's
    # too), correlated with the session; snapshots; heartbeat
    messages = rows(db, "select type, correlation_id from messages order by created_at, id")
    session_id = rows(db, "select id from preflight_sessions")[0][0]
    assert sorted(messages) == sorted(
        [("PREFLIGHT_CHECK", session_id)] * 2 + [("PREFLIGHT_RESULT", session_id)] * 3
    )
    assert [m[0] for m in messages][-1] == "PREFLIGHT_RESULT"
    assert sorted(rows(db, "select config_id from preflight_configs")) == [
        ("has-path",),
        ("needs-var",),
    ]
    assert rows(db, "select id from agents") == [("a-1",)]


def test_records_go_where_the_environment_says(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    db = tmp_path / "elsewhere" / "rt.db"
    monkeypatch.setenv("MAF_DB_PATH", str(db))
    gate(project)
    assert rows(db, "select count(*) from preflight_executions") == [(3,)]
    assert not (project.path / ".maf" / "runtime.db").exists()


def test_a_corrupt_database_falls_back_to_json_and_sync_restores(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = project.path / ".maf" / "runtime.db"
    db.write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(project.path / "mail"))
    result = gate(project)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*runtime json*",
            "maf-preflight: WARNING runtime sqlite: *runtime.db*",
            "*recorded 3 execution(s) in json*",
        ]
    )
    lines = (project.path / "mail" / "runtime" / "executions.jsonl").read_text().splitlines()
    assert len(lines) == 3
    db.unlink()
    monkeypatch.chdir(project.path)
    sync = project.run(sys.executable, "-m", "pytest_maf_preflight.cli", "runtime", "sync")
    assert sync.ret == 0
    assert rows(db, "select count(*) from preflight_executions") == [(3,)]
    again = project.run(sys.executable, "-m", "pytest_maf_preflight.cli", "runtime", "sync")
    assert again.ret == 0
    assert rows(db, "select count(*) from preflight_executions") == [(3,)]


def test_the_chain_is_chosen_by_option_and_environment(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAF_RUNTIME_MODE", "memory")
    result = gate(project)
    result.stdout.fnmatch_lines(["*runtime memory*", "*recorded 3 execution(s) in memory*"])
    assert not (project.path / ".maf" / "runtime.db").exists()
    result = gate(project, "--maf-runtime=json")
    result.stdout.fnmatch_lines(["*runtime json*"])
    bad = gate(project, "--maf-runtime=mongo")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--maf-runtime: unknown runtime mode 'mongo'*"])


def test_under_xdist_the_controller_records_once(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess(
        "-p", "maf_preflight", "--maf-preflight", *QUIET, "-p", "xdist", "-n", "2"
    )
    assert result.ret == 0
    db = project.path / ".maf" / "runtime.db"
    assert rows(db, "select count(*) from preflight_sessions") == [(1,)]
    assert rows(db, "select count(*) from preflight_executions") == [(3,)]


def test_secrets_are_not_recorded(
    pytester: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVICE_TOKEN", "tok-very-secret-123")
    write_config(
        "leak.yaml",
        textwrap.dedent("""\
        id: leaky
        name: prints a secret
        config_type: smoke_test
        metadata: {note: "pasted by mistake: tok-very-secret-123"}
        config:
          test_type: command
          test_definition:
            argv: [sh, -c, 'echo "token=$SERVICE_TOKEN"; exit 3']
    """),
    )
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    gate(pytester)
    db = pytester.path / ".maf" / "runtime.db"
    dump = ""
    for table in ("preflight_executions", "messages", "preflight_configs", "preflight_sessions"):
        dump += json.dumps(rows(db, f"select * from {table}"))
    assert "tok-very-secret-123" not in dump
    assert "***" in dump


def test_the_maf_runtime_fixture_is_temporary_unless_asked(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_rt=textwrap.dedent("""
        import pytest

        def test_temporary(maf_runtime, tmp_path):
            assert maf_runtime.mode == "sqlite"
            assert str(tmp_path) in maf_runtime.info().location

        @pytest.mark.maf_runtime("configured")
        def test_configured(maf_runtime, pytestconfig):
            assert str(pytestconfig.rootpath / ".maf") in maf_runtime.info().location
    """)
    )
    result = project.runpytest("-p", "maf_preflight", "test_rt.py")
    result.assert_outcomes(passed=2)


def test_maf_agent_heartbeats_into_the_configured_runtime(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_hb="""
        def test_beat(maf_agent):
            assert maf_agent.heartbeat(pid=42) > 0
    """
    )
    result = project.runpytest("-p", "maf_preflight", "--maf-agent-id=hb-agent", "test_hb.py")
    result.assert_outcomes(passed=1)
    db = project.path / ".maf" / "runtime.db"
    [(agent, details)] = rows(db, "select id, details from agents")
    assert agent == "hb-agent"
    assert json.loads(str(details)) == {"pid": 42}


def test_a_json_runtime_with_unreadable_logs_hands_over(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAF_RUNTIME_MODE", "json,memory")
    log = project.path / ".agent-mail" / "runtime" / "executions.jsonl"
    log.parent.mkdir(parents=True)
    log.mkdir()  # a directory where the log should be: every read and append fails
    result = gate(project)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*WARNING runtime json:*Is a directory*executions.jsonl*",
            "*recorded 3 execution(s) in memory only*",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_broken_json_line_is_reported_in_the_run(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAF_RUNTIME_MODE", "json")
    log = project.path / ".agent-mail" / "runtime" / "executions.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text('{"kind":"execution","v":1,"bundle":"x","rec\n')
    result = gate(project)
    result.stdout.fnmatch_lines(
        [
            "*runtime json: skipped executions.jsonl line 1: not valid JSON*",
            "*recorded 3 execution(s) in json*",
        ]
    )


def test_a_config_error_session_is_recorded(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("bad.yaml", "id: x\nname: x\nconfig_type: smoke_test\nconfig: {}\n")
    result = gate(pytester)
    assert result.ret == 11
    db = pytester.path / ".maf" / "runtime.db"
    assert rows(db, "select status, exit_code from preflight_sessions") == [("config_error", 11)]
    assert rows(db, "select count(*) from preflight_executions") == [(0,)]


def test_smoke_failures_are_recorded_with_their_cause(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("checks.yaml", CHECKS)
    pytester.makepyfile(
        test_app=textwrap.dedent("""
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture could not start")

        @pytest.mark.maf_smoke
        def test_asserts():
            assert 1 + 1 == 3

        @pytest.mark.maf_smoke
        def test_setup_fails(broken):
            pass
    """)
    )
    result = gate(pytester)
    assert result.ret == 10
    db = pytester.path / ".maf" / "runtime.db"
    smoke = dict(
        (str(c), (s, m))
        for c, s, m in rows(
            db,
            "select config_id, status, error_message from preflight_executions "
            "where kind = 'smoke'",
        )
    )
    assert smoke["test_app.py::test_asserts"][0] == "failed"
    assert "assert (1 + 1) == 3" in str(smoke["test_app.py::test_asserts"][1])
    assert smoke["test_app.py::test_setup_fails"] == (
        "error",
        "setup: RuntimeError: fixture could not start",
    )
    assert rows(db, "select status, exit_code from preflight_sessions") == [("closed", 10)]

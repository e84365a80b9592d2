"""Protocol messages produced by real gate runs, and ``maf-preflight messages list|follow|ack``
(SPEC S6; issue 12, item 5): real SQLite and JSON stores, a real git repository for a real
reservation conflict, the follower as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from helpers_git import LOCK_VALIDATION, commit_base
from pytest_maf_preflight.cli.main import main
from pytest_maf_preflight.cli.message_commands import EXIT_REFUSED
from pytest_maf_preflight.runtime.interface import RuntimeState
from pytest_maf_preflight.runtime.records import Message

QUIET = ("-W", "ignore::pytest.PytestWarning")
CLI = [sys.executable, "-m", "pytest_maf_preflight.cli"]

#: Three checks; ``sees-itself`` passes only if its own PREFLIGHT_CHECK is in the store while it
#: runs (it asks ``maf-preflight messages list`` in a process of its own).
CHECKS = textwrap.dedent(f"""\
    configs:
      - id: has-path
        name: PATH is set
        config_type: smoke_test
        config:
          test_type: environment
          test_definition: {{required: [PATH]}}
      - id: needs-var
        name: A variable nobody set
        config_type: smoke_test
        severity: warning
        config:
          test_type: environment
          test_definition: {{required: [MAF_TEST_SURELY_UNSET]}}
      - id: sees-itself
        name: The start of this check is already a message
        config_type: smoke_test
        config:
          test_type: command
          timeout_seconds: 60
          test_definition:
            argv: {json.dumps([*CLI, "messages", "list", "--type", "PREFLIGHT_CHECK"])}
            stdout_contains: "sees-itself (command) started"
    """)
CHECK_IDS = ("has-path", "needs-var", "sees-itself")


def open_store(mode: str, root: Path) -> RuntimeState:
    if mode == "sqlite":
        from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

        return SqliteRuntime(root / "store" / "runtime.db")
    from pytest_maf_preflight.runtime.jsonl import JsonRuntime

    return JsonRuntime(root / "mail")


@pytest.fixture(params=["sqlite", "json"])
def mode(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store every process of the test uses (gate, CLI, followers), named by environment
    variables, so the test does not depend on where the default store lives."""
    monkeypatch.setenv("MAF_RUNTIME_MODE", request.param)
    monkeypatch.setenv("MAF_DB_PATH", str(tmp_path / "store" / "runtime.db"))
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(tmp_path / "mail"))
    return str(request.param)


def gate(pytester: pytest.Pytester, *args: str, agent: str = "agent-a") -> pytest.RunResult:
    return pytester.runpytest(
        "-p", "maf_preflight", "--maf-preflight", f"--maf-agent-id={agent}", *QUIET, *args
    )


def cli(*args: str) -> tuple[int, str, str]:
    """``maf-preflight`` in this process: (exit code, stdout, stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


# --- the gate produces them --------------------------------------------------------------------


def test_each_check_starts_and_ends_as_messages_with_one_execution_id(
    pytester: pytest.Pytester, write_config: Any, mode: str, tmp_path: Path
) -> None:
    write_config("checks.yaml", CHECKS)
    pytester.makepyfile(test_app="def test_one():\n    pass\n")
    result = gate(pytester)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["PASSED*sees-itself*"])  # its start was stored as it ran

    with open_store(mode, tmp_path) as store:
        [session] = store.sessions()
        messages = store.messages()
        executions = {e.config_id: e for e in store.executions(session_id=session.id)}
    assert {m.correlation_id for m in messages} == {session.id}
    from pytest_maf_preflight.protocol.messages import from_record

    assert [from_record(m).type for m in messages] == [m.type for m in messages]  # all valid
    order = [(m.type, m.payload["config_id"]) for m in messages]
    assert sorted(order) == sorted(
        [
            *(("PREFLIGHT_CHECK", c) for c in CHECK_IDS),
            *(("PREFLIGHT_RESULT", c) for c in CHECK_IDS),
        ]
    )
    for check_id in CHECK_IDS:
        start = order.index(("PREFLIGHT_CHECK", check_id))
        end = order.index(("PREFLIGHT_RESULT", check_id))
        assert start < end
        # The execution id both carry is the one the execution row was recorded under.
        assert (
            messages[start].payload["execution_id"]
            == messages[end].payload["execution_id"]
            == executions[check_id].id
        )
        assert messages[start].created_at <= messages[end].created_at
    by_id = {m.payload["config_id"]: m.payload for m in messages if m.type == "PREFLIGHT_RESULT"}
    assert (by_id["has-path"]["status"], by_id["needs-var"]["status"]) == ("passed", "failed")
    started = next(
        m for m in messages if m.type == "PREFLIGHT_CHECK" and m.payload["config_id"] == "needs-var"
    )
    assert started.payload["check_type"] == "environment"
    assert started.payload["context"]["severity"] == "warning"

    # The CLI lists them, one line each, filtered by type.
    code, out, _ = cli("messages", "list", "--type", "PREFLIGHT_RESULT")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 3
    assert all("PREFLIGHT_RESULT" in line and " agent-a " in line for line in lines)
    assert any("needs-var failed in " in line for line in lines)
    code, out, _ = cli(
        "messages", "list", "--json", "--type", "PREFLIGHT_CHECK", "--agent", "agent-a"
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert sorted(r["payload"]["config_id"] for r in rows) == sorted(CHECK_IDS)
    assert {r["type"] for r in rows} == {"PREFLIGHT_CHECK"}
    assert {r["status"] for r in rows} == {"queued"}
    assert cli("messages", "list", "--agent", "someone-else")[1] == ""


def test_a_reservation_conflict_is_a_message(
    pytester: pytest.Pytester, write_config: Any, mode: str, tmp_path: Path, git_identity: Path
) -> None:
    root = pytester.path
    pytester.makepyfile(test_app="def test_one():\n    pass\n")
    commit_base(root, {".gitignore": ".maf/\n__pycache__/\n", "src/x.py": "x = 1\n"})
    write_config("leases.yaml", LOCK_VALIDATION)
    (root / "src" / "x.py").write_text("x = 2\n")
    with open_store(mode, tmp_path) as store:
        grant = store.acquire_leases("agent-b", ["src/**"], ttl=600, reason="refactor")
        assert grant.ok

    result = gate(pytester)
    assert result.ret == 10, result.stdout.str()

    with open_store(mode, tmp_path) as store:
        messages = store.messages()
        [row] = store.reservation_conflicts()
        [execution] = store.executions(config_id="no-foreign-leases")
    types = [m.type for m in messages]
    assert types == ["PREFLIGHT_CHECK", "PREFLIGHT_RESULT", "RESERVATION_CONFLICT"]
    conflict = messages[2].payload
    assert (
        conflict["conflict_type"],
        conflict["holder_agent"],
        conflict["path_pattern"],
        conflict["paths"],
        conflict["severity"],
    ) == ("foreign_lease", "agent-b", "src/**", ["src/x.py"], "critical")
    assert conflict["conflict_id"] == row.id
    assert conflict["execution_id"] == execution.id == messages[0].payload["execution_id"]
    assert conflict["config_id"] == "no-foreign-leases"
    assert messages[2].agent_id == "agent-a"
    assert conflict["expires_at"] == pytest.approx(grant.granted[0].expires_at)

    code, out, _ = cli("messages", "list", "--type", "RESERVATION_CONFLICT")
    assert code == 0
    assert "foreign_lease (critical) on src/x.py held by agent-b (src/**)" in out


# --- ack ---------------------------------------------------------------------------------------


def queue_of(mode: str, root: Path, *ids: str) -> None:
    with open_store(mode, root) as store:
        store.enqueue_many(
            Message(
                id=i,
                type="PREFLIGHT_CHECK",
                agent_id="agent-x",
                payload={"config_id": f"c-{i}", "execution_id": f"e-{i}", "check_type": "http"},
                created_at=1000.0 + n,
            )
            for n, i in enumerate(ids)
        )


def test_ack_by_unique_prefix_and_one_line_refusals(mode: str, tmp_path: Path) -> None:
    queue_of(mode, tmp_path, "abc123", "abd456", "xyz789")
    code, out, err = cli("messages", "ack", "abc")
    assert (code, err) == (0, "")
    assert out == "message abc123 (PREFLIGHT_CHECK from agent-x) acknowledged\n"
    with open_store(mode, tmp_path) as store:
        assert {m.id: m.status for m in store.messages()} == {
            "abc123": "acked",
            "abd456": "queued",
            "xyz789": "queued",
        }

    code, out, err = cli("messages", "ack", "abc123")
    assert (code, out) == (
        0,
        "message abc123 (PREFLIGHT_CHECK from agent-x) was already acknowledged\n",
    )
    code, out, err = cli("messages", "ack", "ab")
    assert (code, out) == (2, "")
    assert err.startswith("maf-preflight: error: message ID 'ab' is ambiguous: it starts 2 ids")
    code, out, err = cli("messages", "ack", "nope")
    assert (code, out) == (EXIT_REFUSED, "")
    assert err == (
        "maf-preflight: error: no message with id 'nope' in the "
        f"{mode} runtime ('maf-preflight messages list --limit 0' shows every one)\n"
    )
    code, out, err = cli("messages", "ack", "xyz", "--json")
    assert code == 0
    done = json.loads(out)
    assert (done["message"]["id"], done["message"]["status"], done["already_acked"]) == (
        "xyz789",
        "acked",
        False,
    )
    # The listing shows the status, and filters on it.
    code, out, _ = cli("messages", "list", "--status", "acked", "--json")
    assert sorted(json.loads(line)["id"] for line in out.splitlines()) == ["abc123", "xyz789"]


def test_list_arguments_are_checked(mode: str) -> None:
    code, _, err = cli("messages", "list", "--since", "yesterday")
    assert code == 2
    assert err.startswith("maf-preflight: error: --since: 'yesterday' is neither a duration")
    code, _, err = cli("messages", "list", "--agent", "../x")
    assert code == 2
    assert "--agent: '../x' is not a valid agent name" in err
    code, _, err = cli("messages", "follow", "--interval", "0")
    assert code == 2
    assert "--interval must be more than 0" in err


# --- follow, as a coordinator would run it -------------------------------------------------------


@pytest.fixture
def follower(mode: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [*CLI, "messages", "follow", "--interval", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def read_line(stream: IO[str], timeout: float = 30.0) -> str:
    """One line from a pipe, or fail after ``timeout`` seconds (never hang the suite)."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            pytest.fail(f"no line within {timeout} s")
    return stream.readline()


def test_follow_prints_what_another_process_enqueues_and_stops_cleanly_on_ctrl_c(
    follower: subprocess.Popen[str], mode: str, tmp_path: Path
) -> None:
    queue_of(mode, tmp_path, "old-one")  # there before the follower: not shown
    assert follower.stderr is not None
    assert follower.stdout is not None
    assert read_line(follower.stderr).startswith(f"following messages in the {mode} runtime")
    enqueue = (
        "import sys\n"
        "from pytest_maf_preflight.runtime.factory import open_chain, "
        "resolve_runtime_settings\n"
        "from pathlib import Path\nimport os\n"
        "opened = open_chain(resolve_runtime_settings(Path.cwd(), os.environ, None))\n"
        "opened.runtime.enqueue({'type': 'PREFLIGHT_CHECK', 'agentId': 'agent-001', "
        "'configId': 'api-health-check', 'executionId': 'exec-123', "
        "'checkType': 'smoke_test'})\n"
        "opened.runtime.close()\n"
    )
    subprocess.run([sys.executable, "-c", enqueue], check=True, env=dict(os.environ))
    line = read_line(follower.stdout)
    assert " PREFLIGHT_CHECK " in line
    assert "agent-001" in line
    assert "api-health-check (smoke_test) started, execution exec-123" in line
    follower.send_signal(signal.SIGINT)
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 0
    assert "Traceback" not in err
    assert "old-one" not in out

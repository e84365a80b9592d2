"""No dead tables (issue 12, item 6): after real gate runs, every table of a real SQLite store
holds rows, and the CLI reads the new ones back (``agents``, ``runtime info``, ``runtime sync``).

One git repository, one real pytest run through ``pytester`` with: a failing check on an
escalation path (an escalation, a mailbox delivery), a reservation check meeting another
agent's lease (a conflict; the lease store's counter), a ``maf_smoke`` test holding a lease of
its own (``maf_reserve``), and the agent's type and capabilities from the environment.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest

from helpers_cli import cli
from helpers_git import APP_FILES, LOCK_VALIDATION, commit_base
from pytest_maf_preflight.runtime.jsonl import JsonRuntime
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

QUIET = ("-W", "ignore::pytest.PytestWarning")

CHECK = """\
id: needs-var
name: A variable nobody sets
config_type: smoke_test
escalation_path: on-call
config:
  test_type: environment
  test_definition: {required: [MAF_TEST_EVERY_TABLE_VAR]}
"""
PATH = """\
id: on-call
name: Tell the on-call agent
config_type: escalation_path
config:
  trigger_conditions:
    - {condition: preflight_failure, operator: gte, threshold: 1}
  escalation_steps:
    - {level: 1, action: notify, target: on-call-agent, timeout_minutes: 5}
  targets:
    on-call-agent: {channel: mailbox}
"""
TESTS = textwrap.dedent("""
    import pytest

    @pytest.mark.maf_smoke
    @pytest.mark.maf_reserve(["docs/**"], ttl=120, reason="smoke")
    def test_smoke():
        pass

    def test_ordinary():
        pass
""")

#: Tables a gate run does not fill, and what does.
FILLED_BY_OTHER_ACTIONS: dict[str, str] = {
    "waivers": "maf-preflight waive, escalations approve (tests/test_waivers.py)",
    "escalation_decisions": "maf-preflight escalations approve|reject (tests/test_cli_waivers.py)",
    "silences": "maf-preflight silence add (tests/test_cli_waivers.py)",
}


@pytest.fixture
def repo(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, git_identity: Path) -> Path:
    root = pytester.path
    pytester.makepyfile(test_app=TESTS)
    configs = ".maf/preflight-configs/"
    commit_base(
        root,
        {
            **APP_FILES,
            ".gitignore": ".maf/\nmail/\n__pycache__/\n",
            configs + "check.yaml": CHECK,
            configs + "path.yaml": PATH,
            configs + "leases.yaml": LOCK_VALIDATION,
        },
    )
    (root / "src" / "app" / "x.py").write_text("x = 2\n")  # under agent-b's lease below
    monkeypatch.setenv("MAF_DB_PATH", str(root / ".maf" / "runtime.db"))
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(root / "mail"))
    monkeypatch.setenv("MAF_AGENT_TYPE", "verifier")
    monkeypatch.setenv("MAF_AGENT_CAPABILITIES", "python, review,python")
    monkeypatch.delenv("MAF_TEST_EVERY_TABLE_VAR", raising=False)
    return root


def gate(pytester: pytest.Pytester) -> pytest.RunResult:
    return pytester.runpytest(
        "-p",
        "maf_preflight",
        "--maf-preflight",
        "--maf-agent-id=agent-a",
        "--maf-runtime=sqlite",
        *QUIET,
    )


def table_rows(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        # Names from the database's own catalogue, quoted: no value of ours reaches the SQL.
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def rows(db: Path, sql: str) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql)]


def test_a_gate_run_fills_every_table_and_the_cli_reads_the_new_ones(
    pytester: pytest.Pytester, repo: Path
) -> None:
    db = repo / ".maf" / "runtime.db"
    with SqliteRuntime(db) as runtime:
        assert runtime.acquire_leases("agent-b", ["src/**"], ttl=600).ok
    result = gate(pytester)
    assert result.ret == 10, result.stdout.str()
    result.stdout.fnmatch_lines(["*escalation opened: * on-call:needs-var:failed*"])

    counts = table_rows(db)
    empty = sorted(n for n, c in counts.items() if not c and n not in FILLED_BY_OTHER_ACTIONS)
    assert empty == [], f"tables nothing wrote: {empty} (all: {counts})"
    assert {"smoke_tests", "escalation_paths", "agents"} <= set(counts)

    # The smoke test's definition, and its execution naming it.
    [smoke] = rows(db, "SELECT * FROM smoke_tests")
    assert (smoke["nodeid"], smoke["file"]) == ("test_app.py::test_smoke", "test_app.py")
    markers = json.loads(smoke["document"])["markers"]
    assert {
        "name": "maf_reserve",
        "args": [["docs/**"]],
        "kwargs": {"reason": "smoke", "ttl": 120},
    } in markers
    assert any(m["name"] == "maf_smoke" for m in markers)
    [run] = rows(db, "SELECT * FROM preflight_executions WHERE kind = 'smoke'")
    assert (run["config_id"], run["config_version"]) == (smoke["nodeid"], smoke["version"])
    assert smoke["content_hash"].startswith(smoke["version"])

    # The escalation path in force, as the escalation opened on it keeps it.
    [path] = rows(db, "SELECT * FROM escalation_paths")
    [escalation] = rows(db, "SELECT * FROM escalation_tracking")
    assert path["id"] == escalation["path_id"] == "on-call"
    assert json.loads(path["document"]) == json.loads(escalation["path_snapshot"])

    # The agent as the seed lists agents: type and capabilities from the environment.
    [agent] = rows(db, "SELECT * FROM agents WHERE id = 'agent-a'")
    assert (agent["type"], json.loads(agent["capabilities"]), agent["status"]) == (
        "verifier",
        ["python", "review"],
        "active",
    )

    # A second run with the same definitions stores no second copy of them.
    assert gate(pytester).ret == 10
    again = table_rows(db)
    assert (again["smoke_tests"], again["escalation_paths"]) == (1, 1)
    assert again["preflight_executions"] > counts["preflight_executions"]

    env = {"MAF_DB_PATH": str(db), "MAF_AGENT_MAIL_ROOT": str(repo / "mail")}
    listed = cli(repo, "agents", "--mode", "sqlite", "--json", **env)
    assert listed.returncode == 0, listed.stderr
    by_id = {a["id"]: a for a in json.loads(listed.stdout)["agents"]}
    assert (by_id["agent-a"]["agent_type"], by_id["agent-a"]["capabilities"]) == (
        "verifier",
        ["python", "review"],
    )
    text = cli(repo, "agents", "--mode", "sqlite", **env)
    assert text.returncode == 0, text.stderr
    [line] = [x for x in text.stdout.splitlines() if x.startswith("agent-a ")]
    assert "verifier" in line
    assert line.endswith("capabilities: python, review")

    info = cli(repo, "runtime", "info", "--mode", "sqlite", "--json", **env)
    assert info.returncode == 0, info.stderr
    shown = json.loads(info.stdout)["counts"]
    assert (shown["smoke_tests"], shown["escalation_paths"]) == (1, 1)

    synced = cli(repo, "runtime", "sync", "--from", "sqlite", "--to", "json", "--json", **env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    report = json.loads(synced.stdout)
    assert (report["copied"]["smoke_tests"], report["copied"]["escalation_paths"]) == (1, 1)
    with SqliteRuntime(db) as source, JsonRuntime(repo / "mail") as target:
        assert target.smoke_tests() == source.smoke_tests()
        assert target.escalation_paths() == source.escalation_paths()
        assert target.agents() == source.agents()

"""``maf-preflight reservations list|acquire|renew|release`` against a real SQLite lease store."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from helpers_cli import run_main
from pytest_maf_preflight.cli.reservation_commands import EXIT_REFUSED
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAF_RUNTIME_MODE", "sqlite")
    return tmp_path


def store(root: Path) -> SqliteRuntime:
    return SqliteRuntime(root / ".maf" / "runtime.db")


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _err = run_main(capsys, *argv, "--json")
    return code, json.loads(out)


def test_acquire_grants_and_list_shows_the_leases(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(
        capsys,
        "reservations",
        "acquire",
        "src/*.py",
        "docs/",
        "--agent",
        "agent-b",
        "--ttl",
        "600",
        "--reason",
        "refactor",
    )
    assert code == 0, err
    with store(project) as runtime:
        held = {lease.path_pattern: lease for lease in runtime.leases()}
    assert set(held) == {"src/*.py", "docs/"}
    for lease in held.values():
        assert lease.agent_id == "agent-b"
        assert lease.exclusive
        assert lease.reason == "refactor"
        assert f"lease {lease.id}, fencing token {lease.fencing_token}" in out

    code, out, _ = run_main(capsys, "reservations", "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["PATTERN", "AGENT", "KIND", "EXPIRES", "TOKEN", "ID"]
    by_pattern = {row.split()[0]: row.split() for row in rows}
    assert by_pattern["docs/"][1:3] == ["agent-b", "exclusive"]
    assert by_pattern["docs/"][3] == "in"
    assert by_pattern["docs/"][4] in ("10m00s", "9m59s")
    assert by_pattern["docs/"][-1] == held["docs/"].id
    assert by_pattern["src/*.py"][-2] == str(held["src/*.py"].fencing_token)

    code, data = run_json(capsys, "reservations", "list")
    assert data["mode"] == "sqlite"
    assert {lease["id"] for lease in data["leases"]} == {lease.id for lease in held.values()}
    assert all(lease["active"] for lease in data["leases"])


def test_a_conflicting_acquire_exits_4_naming_each_blocking_lease(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run_main(
            capsys, "reservations", "acquire", "src/*.py", "--agent", "agent-b", "--ttl", "600"
        )[0]
        == 0
    )
    with store(project) as runtime:
        (held,) = runtime.leases()
    # ``src/a*`` overlaps ``src/*.py`` (src/a.py); ``/notes.txt`` alone would be free.
    code, out, err = run_main(
        capsys,
        "reservations",
        "acquire",
        "/notes.txt",
        "src/a*",
        "--agent",
        "agent-a",
        "--ttl",
        "60",
    )
    assert code == EXIT_REFUSED == 4
    assert out.splitlines() == [line for line in out.splitlines() if line.startswith("blocked")]
    assert len(out.splitlines()) == 1
    assert "'src/*.py' held by agent 'agent-b' (exclusive lease " + held.id in out
    assert "expires " in out
    assert re.search(r", (in 10m00s|in 9m5\ds)\)$", out.strip())
    assert err.count("\n") == 1
    assert "not granted to 'agent-a'" in err
    assert "Traceback" not in err
    with store(project) as runtime:  # all or nothing: /notes.txt was not leased either
        assert [lease.agent_id for lease in runtime.leases()] == ["agent-b"]

    code, data = run_json(
        capsys, "reservations", "acquire", "src/a*", "--agent", "agent-a", "--ttl", "60"
    )
    assert code == 4
    assert data["granted"] is False
    assert data["leases"] == []
    assert [(c["id"], c["agent_id"], c["path_pattern"]) for c in data["conflicts"]] == [
        (held.id, "agent-b", "src/*.py")
    ]


def test_shared_leases_coexist_and_block_an_exclusive_one(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for agent in ("reader-1", "reader-2"):
        code, data = run_json(
            capsys, "reservations", "acquire", "data/", "--agent", agent, "--ttl", "60", "--shared"
        )
        assert code == 0
        assert data["granted"]
        assert not data["leases"][0]["exclusive"]
    code, out, _ = run_main(
        capsys, "reservations", "acquire", "data/x.csv", "--agent", "writer", "--ttl", "60"
    )
    assert code == 4
    assert "reader-1" in out
    assert "reader-2" in out
    assert "shared lease" in out
    code, out, _ = run_main(capsys, "reservations", "list", "--agent", "reader-2")
    rows = out.splitlines()[1:]
    assert [row.split()[1:3] for row in rows] == [["reader-2", "shared"]]


def test_the_agent_comes_from_the_option_then_maf_agent_id_then_agent_name(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_main(capsys, "reservations", "acquire", "a.txt", "--ttl", "60")
    assert code == 2
    assert err == (
        "maf-preflight: error: no agent: give --agent NAME or set MAF_AGENT_ID (or AGENT_NAME)\n"
    )
    monkeypatch.setenv("AGENT_NAME", "from-agent-name")
    assert run_json(capsys, "reservations", "acquire", "a.txt", "--ttl", "60")[1]["agent"] == (
        "from-agent-name"
    )
    monkeypatch.setenv("MAF_AGENT_ID", "from-maf-agent-id")
    assert run_json(capsys, "reservations", "acquire", "b.txt", "--ttl", "60")[1]["agent"] == (
        "from-maf-agent-id"
    )
    assert (
        run_json(
            capsys, "reservations", "acquire", "c.txt", "--ttl", "60", "--agent", "from-option"
        )[1]["agent"]
        == "from-option"
    )
    monkeypatch.setenv("MAF_AGENT_ID", "../evil")
    code, _, err = run_main(capsys, "reservations", "acquire", "d.txt", "--ttl", "60")
    assert code == 2
    assert "MAF_AGENT_ID environment variable: '../evil' is not a valid agent name" in err


@pytest.mark.parametrize(
    ("argv", "env", "source"),
    [
        (["acquire", "a.txt", "--ttl", "60", "--agent", "anonymous"], {}, "--agent"),
        # Named on purpose, anonymous is still nobody: it does not fall through to the variable.
        (
            ["acquire", "a.txt", "--ttl", "60", "--agent", "anonymous"],
            {"MAF_AGENT_ID": "codex-1"},
            "--agent",
        ),
        (
            ["acquire", "a.txt", "--ttl", "60"],
            {"MAF_AGENT_ID": "anonymous"},
            "MAF_AGENT_ID environment variable",
        ),
        (
            ["acquire", "a.txt", "--ttl", "60", "--shared"],
            {"AGENT_NAME": "anonymous"},
            "AGENT_NAME environment variable",
        ),
        (["renew", "some-id", "--ttl", "60", "--agent", "anonymous"], {}, "--agent"),
        (["release", "some-id", "--agent", "anonymous"], {}, "--agent"),
    ],
)
def test_anonymous_holds_no_leases_as_the_gate_treats_it_as_no_agent(
    project: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    env: dict[str, str],
    source: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, out, err = run_main(capsys, "reservations", *argv)
    assert code == 2
    assert out == ""
    assert err == (
        f"maf-preflight: error: {source}: 'anonymous' names no agent (it is the id "
        "of a run without one, which holds no leases); give this agent's own name\n"
    )
    with store(project) as runtime:
        assert runtime.leases(active_only=False) == []
    # Listing is only a filter: asking for anonymous leases (granted before) is fine.
    assert run_main(capsys, "reservations", "list", "--agent", "anonymous")[0] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["acquire", "!x", "--agent", "a", "--ttl", "60"], "invalid lease pattern '!x'"),
        (["acquire", "x", "--agent", "a", "--ttl", "0"], "--ttl must be a positive number"),
        (["acquire", "x", "--agent", "a", "--ttl", "nan"], "--ttl must be a positive number"),
        (["acquire", "x", "--agent", "a", "--ttl", "soon"], "invalid float value: 'soon'"),
        (["acquire", "x", "--agent", "a"], "the following arguments are required: --ttl"),
        (["renew", "some-id", "--agent", "a", "--ttl", "-1"], "--ttl must be a positive number"),
        (["release", "--agent", "a"], "give the LEASE_ID to release, or --stale"),
        (["release", "some-id", "--stale"], "give LEASE_ID or --stale, not both"),
        (
            ["release", "some-id", "--agent", "a", "--idle-agent-seconds", "5"],
            "--idle-agent-seconds only applies with --stale",
        ),
        (
            ["release", "--stale", "--idle-agent-seconds", "-5"],
            "--idle-agent-seconds must be at least 0",
        ),
        (["list", "--mode", "carrier-pigeon"], "carrier-pigeon"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run_main(capsys, "reservations", *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert message in err
    assert "Traceback" not in err
    with store(project) as runtime:
        assert runtime.leases(active_only=False) == []


def test_the_memory_runtime_is_refused_for_writes(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAF_RUNTIME_MODE", "memory")
    code, _, err = run_main(capsys, "reservations", "acquire", "x", "--agent", "a", "--ttl", "60")
    assert code == 2
    assert "the runtime is memory, where a lease ends with this command" in err
    # A broken SQLite path falling back to memory says why.
    (project / "db-is-a-dir").mkdir()
    monkeypatch.setenv("MAF_RUNTIME_MODE", "sqlite,memory")
    monkeypatch.setenv("MAF_DB_PATH", str(project / "db-is-a-dir"))
    code, _, err = run_main(capsys, "reservations", "acquire", "x", "--agent", "a", "--ttl", "60")
    assert code == 2
    assert "the runtime fell back to memory (sqlite: " in err
    # A fallback to a store that persists is refused too: other agents do not look there.
    monkeypatch.setenv("MAF_RUNTIME_MODE", "sqlite,json")
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(project / "mail"))
    code, _, err = run_main(capsys, "reservations", "acquire", "x", "--agent", "a", "--ttl", "60")
    assert code == 2
    assert "the runtime fell back to json (sqlite: " in err
    code, out, _ = run_main(capsys, "reservations", "list", "--all", "--mode", "json")
    assert (code, "no leases (json)" in out or "no active leases (json)" in out) == (0, True), out
    monkeypatch.setenv("MAF_RUNTIME_MODE", "sqlite,memory")
    code, out, _ = run_main(capsys, "reservations", "list")  # reading is harmless
    assert code == 0
    assert "note: sqlite: " in out
    assert "no active leases (memory)" in out


def test_renew_extends_with_a_new_token_for_the_owner_only(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = run_json(
        capsys, "reservations", "acquire", "src/", "--agent", "agent-b", "--ttl", "60"
    )
    (lease,) = data["leases"]
    code, data = run_json(
        capsys, "reservations", "renew", lease["id"], "--agent", "agent-b", "--ttl", "600"
    )
    assert code == 0
    renewed = data["lease"]
    assert renewed["fencing_token"] > lease["fencing_token"]
    assert renewed["expires_at"] >= lease["expires_at"] + 600

    code, out, err = run_main(
        capsys, "reservations", "renew", lease["id"], "--agent", "agent-a", "--ttl", "600"
    )
    assert code == 4
    assert out == ""
    assert err == (
        f"maf-preflight: error: lease {lease['id']} is held by agent 'agent-b', not 'agent-a'\n"
    )
    code, _, err = run_main(
        capsys, "reservations", "renew", "no-such-lease", "--agent", "agent-b", "--ttl", "600"
    )
    assert code == 4
    assert err == "maf-preflight: error: no lease 'no-such-lease'\n"
    code, out, _ = run_main(
        capsys, "reservations", "renew", lease["id"], "--agent", "agent-b", "--ttl", "5"
    )
    assert code == 0
    assert f"renewed lease {lease['id']} on 'src/': fencing token" in out


def test_release_by_the_owner_then_list_all_shows_it_released(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, data = run_json(
        capsys, "reservations", "acquire", "src/", "--agent", "agent-b", "--ttl", "600"
    )
    lease_id = data["leases"][0]["id"]
    code, _, err = run_main(capsys, "reservations", "release", lease_id, "--agent", "agent-a")
    assert code == 4
    assert "is held by agent 'agent-b'" in err
    code, out, _ = run_main(capsys, "reservations", "release", lease_id, "--agent", "agent-b")
    assert code == 0
    assert out == f"released lease {lease_id} on 'src/' (agent-b)\n"
    assert run_main(capsys, "reservations", "release", lease_id, "--agent", "agent-b")[0] == 0
    code, out, _ = run_main(capsys, "reservations", "list")
    assert out == "no active leases (sqlite)\n"
    code, out, _ = run_main(capsys, "reservations", "list", "--all")
    (row,) = out.splitlines()[1:]
    assert row.split()[:4] == ["src/", "agent-b", "exclusive", "released"]
    # Released, so another agent may take it now.
    assert (
        run_main(
            capsys, "reservations", "acquire", "src/x.py", "--agent", "agent-a", "--ttl", "60"
        )[0]
        == 0
    )
    code, out, err = run_main(capsys, "reservations", "release", "nope", "--agent", "agent-b")
    assert code == 4
    assert err == "maf-preflight: error: no lease 'nope'\n"


def test_release_stale_forces_expired_and_idle_agents_leases_out(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    with store(project) as runtime:
        expired = runtime.acquire_leases("gone", ["a/old.txt"], ttl=10, now=now - 100).granted[0]
        idle = runtime.acquire_leases("sleepy", ["b/idle.txt"], ttl=3600, now=now - 5).granted[0]
        runtime.heartbeat("sleepy", at=now - 1000)
        live = runtime.acquire_leases("busy", ["c/live.txt"], ttl=3600, now=now - 5).granted[0]
        runtime.heartbeat("busy", at=now)

    code, out, _ = run_main(capsys, "reservations", "release", "--stale")
    assert code == 0
    assert out.splitlines() == [
        f"released 'a/old.txt' (gone, lease {expired.id}, expired "
        + out.split("expired ", 1)[1].split(")")[0]
        + ")",
        "released 1 stale lease (sqlite)",
    ]
    code, data = run_json(
        capsys, "reservations", "release", "--stale", "--idle-agent-seconds", "300"
    )
    assert code == 0
    assert [lease["id"] for lease in data["released"]] == [idle.id]
    with store(project) as runtime:
        assert [lease.id for lease in runtime.leases()] == [live.id]
        assert all(
            lease.released_at is not None
            for lease in runtime.leases(active_only=False)
            if lease.id != live.id
        )


def test_the_module_runs_as_a_program_and_help_documents_the_exit_codes(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAF_")}
    env["MAF_RUNTIME_MODE"] = "sqlite"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest_maf_preflight.cli", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert cli("reservations", "acquire", "x/", "--agent", "b", "--ttl", "60").returncode == 0
    blocked = cli("reservations", "acquire", "x/y", "--agent", "a", "--ttl", "60")
    assert blocked.returncode == 4
    assert "blocked by: 'x/' held by agent 'b'" in blocked.stdout
    top = cli("--help").stdout
    assert "reservations" in top
    assert "guard" in top
    assert "  4  refused: reservations (another agent" in top
    assert "exit 4" in cli("reservations", "acquire", "--help").stdout.lower()

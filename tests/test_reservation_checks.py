"""``reservation_check`` configs under the gate (S3): real git repositories, the real SQLite
lease store, a real mcp_agent_mail database, real lock files, real pytest runs."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from conftest import EXAMPLES
from helpers_configs import write_config_in
from helpers_git import APP_FILES, LOCK_VALIDATION, commit_base, git, shared_db, shared_store

QUIET = ("-W", "ignore::pytest.PytestWarning")
TESTS = textwrap.dedent("""
    def test_ordinary():
        pass
""")


@pytest.fixture
def repo(pytester: pytest.Pytester, git_identity: Path) -> Path:
    """The pytester project as a git repository on ``main`` with one commit."""
    pytester.makepyfile(test_app=TESTS)
    return commit_base(pytester.path, {**APP_FILES, ".gitignore": ".maf/\n__pycache__/\n"})


def gate(pytester: pytest.Pytester, *args: str, agent: str = "agent-a") -> pytest.RunResult:
    return pytester.runpytest(
        "-p",
        "maf_preflight",
        "--maf-preflight",
        f"--maf-agent-id={agent}",
        "--maf-runtime=sqlite",
        *QUIET,
        *args,
    )


def conflicts(root: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(shared_db(root)) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM reservation_conflicts ORDER BY path").fetchall()


# --- our own lease store -----------------------------------------------------------------


def test_a_change_under_another_agents_lease_closes_the_gate(
    pytester: pytest.Pytester, repo: Path
) -> None:
    write_config_in(repo, "leases.yaml", LOCK_VALIDATION)
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    with shared_store(repo) as runtime:
        grant = runtime.acquire_leases("agent-b", ["src/**"], ttl=600, reason="refactor")
        assert grant.ok
    result = gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        [
            "*1 conflict (1 changed file(s) from git*against 1 active lease(s) in the sqlite lease "
            "store):*",
            "*src/app/x.py: reserved by agent-b (exclusive lease * on 'src/**', expires *",
        ]
    )
    [row] = conflicts(repo)
    assert (
        row["conflict_type"],
        row["holder_agent_id"],
        row["path"],
        row["path_pattern"],
        row["status"],
        row["override"],
    ) == ("foreign_lease", "agent-b", "src/app/x.py", "src/**", "open", 0)
    assert row["lease_id"] == grant.granted[0].id
    assert row["expires_at"] == pytest.approx(grant.granted[0].expires_at)

    # The holder itself passes, and once the lease is released so does everyone.
    assert gate(pytester, agent="agent-b").ret == 0
    with shared_store(repo) as runtime:
        runtime.release_lease(grant.granted[0].id, "agent-b")
    assert gate(pytester).ret == 0


def test_unchanged_reserved_files_and_shared_on_shared_do_not_conflict(
    pytester: pytest.Pytester, repo: Path
) -> None:
    write_config_in(repo, "leases.yaml", LOCK_VALIDATION)
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-b", ["docs/**"], ttl=600).ok
        assert runtime.acquire_leases("agent-b", ["src/app/*.py"], ttl=600, exclusive=False).ok
        assert runtime.acquire_leases("agent-a", ["src/app/x.py"], ttl=600, exclusive=False).ok
    result = gate(pytester)
    assert result.ret == 0, result.stdout.str()


def test_another_agents_shared_lease_blocks_a_writer_without_a_lease(
    pytester: pytest.Pytester, repo: Path
) -> None:
    """A shared lease says "keep this stable while I read it": a change by an agent holding
    no lease of its own is a write, which counts as exclusive."""
    write_config_in(repo, "leases.yaml", LOCK_VALIDATION)
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    with shared_store(repo) as runtime:
        grant = runtime.acquire_leases("agent-b", ["src/app/"], ttl=600, exclusive=False)
        assert grant.ok
    result = gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        ["*src/app/x.py: reserved by agent-b (shared lease * on 'src/app/', expires *"]
    )
    [row] = conflicts(repo)
    assert (row["conflict_type"], row["holder_agent_id"], row["path"], row["lease_id"]) == (
        "foreign_lease",
        "agent-b",
        "src/app/x.py",
        grant.granted[0].id,
    )
    # Reading beside the reader is fine: a shared lease of its own makes the change shared.
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-a", ["src/app/x.py"], ttl=600, exclusive=False).ok
    assert gate(pytester).ret == 0


def test_override_passes_loudly_and_is_recorded(
    pytester: pytest.Pytester, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config_in(repo, "leases.yaml", LOCK_VALIDATION)
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-b", ["src/app/x.py"], ttl=600).ok
    monkeypatch.setenv("MAF_RESERVATION_OVERRIDE", "1")
    result = gate(pytester)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*RESERVATION OVERRIDE no-foreign-leases: 1 conflict(s) let "
            "through by MAF_RESERVATION_OVERRIDE=1*"
        ]
    )
    [row] = conflicts(repo)
    assert (row["status"], row["override"], row["holder_agent_id"]) == ("overridden", 1, "agent-b")


def test_the_override_warning_is_a_real_warning(
    pytester: pytest.Pytester, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config_in(repo, "leases.yaml", LOCK_VALIDATION)
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-b", ["src/app/x.py"], ttl=600).ok
    monkeypatch.setenv("MAF_RESERVATION_OVERRIDE", "1")
    result = pytester.runpytest(
        "-p",
        "maf_preflight",
        "--maf-preflight",
        "--maf-agent-id=a",
        "--maf-runtime=sqlite",
        "-W",
        "default",
    )
    result.stdout.fnmatch_lines(["*MafReservationOverride: preflight check 'no-foreign-leases'*"])


@pytest.mark.parametrize(
    ("filters", "outcomes", "code"),
    [
        ("error", {"passed": 2, "warnings": 1}, 0),
        (
            "error\n    error::pytest_maf_preflight.warning_types.MafReservationOverride",
            {"passed": 1, "failed": 1},
            1,
        ),
    ],
    ids=["generic-error", "named-error"],
)
def test_the_override_warning_under_the_projects_filters(
    pytester: pytest.Pytester,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    filters: str,
    outcomes: dict[str, int],
    code: int,
) -> None:
    """A project's generic ``filterwarnings = error`` leaves the overridden check passing; a
    filter naming MafReservationOverride makes its item fail, as the user asked."""
    write_config_in(repo, "leases.yaml", LOCK_VALIDATION)
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-b", ["src/app/x.py"], ttl=600).ok
    monkeypatch.setenv("MAF_RESERVATION_OVERRIDE", "1")
    pytester.makeini(f"[pytest]\nfilterwarnings =\n    {filters}\n")
    result = pytester.runpytest_subprocess(
        "-p", "maf_preflight", "--maf-preflight", "--maf-agent-id=agent-a", "--maf-runtime=sqlite"
    )
    result.stdout.fnmatch_lines(
        [
            "*MafReservationOverride: preflight check 'no-foreign-leases'*"
            if code == 0
            else "*RESERVATION OVERRIDE no-foreign-leases*"
        ]
    )
    result.assert_outcomes(**outcomes)
    assert result.ret == code


def test_strict_mode_wants_the_agents_own_lease(pytester: pytest.Pytester, repo: Path) -> None:
    write_config_in(
        repo,
        "leases.yaml",
        LOCK_VALIDATION.replace("base_ref: main}", "base_ref: main, mode: strict}"),
    )
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    result = gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines(["*src/app/x.py: not covered by a lease of agent-a (strict mode)*"])
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-a", ["src/"], ttl=600).ok
    assert gate(pytester).ret == 0


def test_an_expired_lease_does_not_count(pytester: pytest.Pytester, repo: Path) -> None:
    write_config_in(repo, "leases.yaml", LOCK_VALIDATION)
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-b", ["src/**"], ttl=5, now=time.time() - 60).ok
    assert gate(pytester).ret == 0


def test_renames_and_deletions_count_as_changes(pytester: pytest.Pytester, repo: Path) -> None:
    write_config_in(repo, "leases.yaml", LOCK_VALIDATION)
    git(repo, "mv", "docs/guide.md", "docs/manual.md")
    git(repo, "rm", "-q", "src/app/x.py")
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-b", ["docs/guide.md", "src/app/x.py"], ttl=60).ok
    result = gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        ["*docs/guide.md: reserved by agent-b*", "*src/app/x.py: reserved by agent-b*"]
    )


def test_the_original_file_lock_check_runs(pytester: pytest.Pytester, repo: Path) -> None:
    """``exclusiveWriteAccess`` wants an exclusive lease of one's own on each changed file;
    ``lockTimeoutMinutes`` reports stale lock files."""
    configs = repo / ".maf" / "preflight-configs"
    configs.mkdir(parents=True)
    shutil.copy(EXAMPLES / "original-format" / "file-lock-check.json", configs)
    # The original names an escalation path that is not part of this project.
    path = repo / ".maf" / "preflight-configs" / "file-lock-check.json"
    document = json.loads(path.read_text())
    del document["config"]["escalationPath"]
    path.write_text(json.dumps(document))
    assert gate(pytester).ret == 0  # nothing changed, no lock files

    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    with shared_store(repo) as runtime:
        shared = runtime.acquire_leases("agent-a", ["src/app/x.py"], ttl=600, exclusive=False)
    result = gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines(["*src/app/x.py: agent-a holds only a shared lease on it*"])
    with shared_store(repo) as runtime:
        runtime.release_lease(shared.granted[0].id, "agent-a")
        assert runtime.acquire_leases("agent-a", ["src/app/x.py"], ttl=600).ok
    assert gate(pytester).ret == 0

    # A SoftFileLock-style file naming a process that has exited is stale.
    child = subprocess.Popen(["true"])
    child.wait()
    (repo / "build.lock").write_text(f"{child.pid}\n")
    result = gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines([f"*build.lock: stale lock file: *{child.pid}*"])


def test_an_error_inside_the_check_fails_closed(pytester: pytest.Pytester, repo: Path) -> None:
    write_config_in(
        repo, "leases.yaml", LOCK_VALIDATION.replace("base_ref: main", "base_ref: no-such-ref")
    )
    result = gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        ["*observed: ChangeDetectionError: base ref 'no-such-ref'*", "ERROR*no-foreign-leases*"]
    )


def test_a_memory_fallback_cannot_vouch_for_reservations(
    pytester: pytest.Pytester, repo: Path
) -> None:
    write_config_in(repo, "leases.yaml", LOCK_VALIDATION)
    shared_db(repo).parent.mkdir(parents=True)
    shared_db(repo).write_bytes(b"garbage, not a database" * 100)
    result = pytester.runpytest(
        "-p",
        "maf_preflight",
        "--maf-preflight",
        "--maf-agent-id=a",
        "--maf-runtime=sqlite,memory",
        *QUIET,
    )
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        ["*the lease store fell back to memory, where other agents' leases are not*"]
    )


def test_a_fallback_to_the_json_store_cannot_vouch_either(
    pytester: pytest.Pytester, repo: Path
) -> None:
    """Other agents' leases are in the SQLite store this run could not open."""
    write_config_in(repo, "leases.yaml", LOCK_VALIDATION)
    shared_db(repo).parent.mkdir(parents=True)
    shared_db(repo).write_bytes(b"garbage, not a database" * 100)
    result = pytester.runpytest(
        "-p",
        "maf_preflight",
        "--maf-preflight",
        "--maf-agent-id=a",
        "--maf-runtime=sqlite,json",
        *QUIET,
    )
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        ["*the lease store fell back to json, where other agents' leases are not*"]
    )


def test_reservation_checks_need_an_agent_id(pytester: pytest.Pytester, repo: Path) -> None:
    write_config_in(repo, "leases.yaml", LOCK_VALIDATION)
    result = pytester.runpytest(
        "-p", "maf_preflight", "--maf-preflight", "--maf-runtime=sqlite", *QUIET
    )
    assert result.ret == 10
    result.stdout.fnmatch_lines(["*no agent id is set (it is 'anonymous', the default)*"])


def test_an_empty_list_of_files_is_a_config_error(pytester: pytest.Pytester, repo: Path) -> None:
    write_config_in(
        repo,
        "leases.yaml",
        LOCK_VALIDATION.replace("{changed_files: git, base_ref: main}", "{changed_files: list}"),
    )
    result = gate(pytester)
    assert result.ret == 11
    assert "changed_files 'list' needs the files to check" in result.stderr.str()


# --- mcp_agent_mail reservations -----------------------------------------------------------

AGENT_MAIL_SCHEMA = """
CREATE TABLE projects (id INTEGER PRIMARY KEY, slug TEXT, human_key TEXT, created_at TEXT);
CREATE TABLE agents (id INTEGER PRIMARY KEY, project_id INTEGER, name TEXT);
CREATE TABLE file_reservations (id INTEGER PRIMARY KEY, project_id INTEGER, agent_id INTEGER,
    path_pattern TEXT, exclusive INTEGER, reason TEXT, created_ts TEXT, expires_ts TEXT,
    released_ts TEXT);
"""


def agent_mail_db(
    path: Path, project: str, rows: list[tuple[str, str, bool, float, float | None]]
) -> None:
    """rows: (agent, pattern, exclusive, expires epoch, released epoch or None)."""

    def naive(at: float | None) -> str | None:
        if at is None:
            return None
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))

    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.executescript(AGENT_MAIL_SCHEMA)
        conn.execute("INSERT INTO projects VALUES (1, 'my-project', ?, '2026-01-01')", (project,))
        for number, (agent, pattern, exclusive, expires, released) in enumerate(rows, 1):
            conn.execute("INSERT INTO agents VALUES (?, 1, ?)", (number, agent))
            conn.execute(
                "INSERT INTO file_reservations VALUES (?, 1, ?, ?, ?, '', ?, ?, ?)",
                (
                    number,
                    number,
                    pattern,
                    int(exclusive),
                    naive(time.time() - 60),
                    naive(expires),
                    naive(released),
                ),
            )
    conn.close()


def test_the_shipped_example_honours_agent_mail_reservations(
    pytester: pytest.Pytester, repo: Path
) -> None:
    """``no-foreign-leases.yaml`` unchanged: its database lives under ``~``, its project is
    ``/srv/repos/my-project``. The server's fnmatch ``*`` crosses ``/``, so ``src/*.py``
    covers ``src/app/x.py`` there, though not under gitignore rules."""
    configs = repo / ".maf" / "preflight-configs"
    configs.mkdir(parents=True)
    shutil.copy(EXAMPLES / "preflight-configs" / "no-foreign-leases.yaml", configs)
    shutil.copy(EXAMPLES / "preflight-configs" / "default-escalation.yaml", configs)
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    database = Path(os.environ["HOME"]) / ".mcp_agent_mail" / "storage.sqlite3"
    now = time.time()
    agent_mail_db(
        database,
        "/srv/repos/my-project",
        [
            ("BlueLake", "src/*.py", True, now + 3600, None),
            ("GreenCastle", "src/**", True, now + 3600, now - 30),  # released
            ("RedStone", "src/app/**", True, now - 30, None),  # expired
        ],
    )
    before = database.read_bytes()
    result = gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        [
            "*against 0 active lease(s) in the sqlite lease store and 1 mcp_agent_mail "
            "reservation(s) from its database (*storage.sqlite3, project my-project)):*",
            "*src/app/x.py: reserved by BlueLake (exclusive agent_mail:database reservation*"
            "on 'src/*.py'*",
        ]
    )
    assert "GreenCastle" not in result.stdout.str()
    assert "RedStone" not in result.stdout.str()
    assert database.read_bytes() == before
    [row] = conflicts(repo)
    assert (row["holder_agent_id"], row["path_pattern"]) == ("BlueLake", "src/*.py")


def test_a_missing_agent_mail_database_fails_closed(pytester: pytest.Pytester, repo: Path) -> None:
    configs = repo / ".maf" / "preflight-configs"
    configs.mkdir(parents=True)
    shutil.copy(EXAMPLES / "preflight-configs" / "no-foreign-leases.yaml", configs)
    shutil.copy(EXAMPLES / "preflight-configs" / "default-escalation.yaml", configs)
    result = gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines(["ERROR*no-foreign-leases*"])
    assert "storage.sqlite3" in result.stdout.str()


# --- concurrent_access, file_exists, permissions -------------------------------------------


def test_concurrent_access_reports_files_changed_by_two_agents(
    pytester: pytest.Pytester, repo: Path
) -> None:
    write_config_in(repo, "leases.yaml", LOCK_VALIDATION)
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    # agent-b's gate run records the files it changed.
    assert gate(pytester, agent="agent-b").ret == 0
    (repo / ".maf" / "preflight-configs" / "leases.yaml").unlink()
    write_config_in(
        repo,
        "concurrent.yaml",
        """\
id: concurrent
name: No two agents on the same files
config_type: reservation_check
config:
  check_type: concurrent_access
  parameters: {changed_files: git}
""",
    )
    result = gate(pytester)  # agent-a changed the same file (the same tree, here)
    assert result.ret == 10
    result.stdout.fnmatch_lines(["*src/app/x.py: changed by 2 agents: agent-a, agent-b*"])
    git(repo, "checkout", "-q", "--", "src/app/x.py")
    assert gate(pytester).ret == 0


READERS = """\
id: readers
name: Few readers at once
config_type: reservation_check
config:
  check_type: concurrent_access
  parameters: {max_concurrent_readers: LIMIT}
"""


def test_max_concurrent_readers_counts_agents_on_overlapping_shared_leases(
    pytester: pytest.Pytester, repo: Path
) -> None:
    """Three different pattern strings that overlap are three readers of each of them."""
    write_config_in(repo, "readers.yaml", READERS.replace("LIMIT", "1"))
    with shared_store(repo) as runtime:
        for agent, pattern in (
            ("agent-b", "docs/**"),
            ("agent-c", "docs/*.md"),
            ("agent-d", "docs/x.md"),
            ("agent-e", "src/**"),
        ):
            assert runtime.acquire_leases(agent, [pattern], ttl=600, exclusive=False).ok
    result = gate(pytester)
    assert result.ret == 10
    readers = "3 agents hold shared reservations overlapping it (agent-b, agent-c, agent-d)"
    result.stdout.fnmatch_lines(
        [
            "*3 conflicts (4 active lease(s) in the sqlite lease store*",
            f"*docs/[*][*]: {readers}; at most 1 allowed*",
            f"*docs/[*].md: {readers}; at most 1 allowed*",
            f"*docs/x.md: {readers}; at most 1 allowed*",
        ]
    )
    result.stdout.no_fnmatch_line("*src/[*][*]: *")  # one reader only
    assert {(row["conflict_type"], row["path"]) for row in conflicts(repo)} == {
        ("too_many_readers", "docs/**"),
        ("too_many_readers", "docs/*.md"),
        ("too_many_readers", "docs/x.md"),
    }

    write_config_in(repo, "readers.yaml", READERS.replace("LIMIT", "3"))
    assert gate(pytester).ret == 0, "three readers are within a limit of three"
    # A fourth agent reading only docs/x.md is a fourth reader of every docs lease.
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-f", ["docs/x.md"], ttl=600, exclusive=False).ok
    result = gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        [
            "*docs/[*].md: 4 agents hold shared reservations overlapping "
            "it (agent-b, agent-c, agent-d, agent-f); at most 3 allowed*"
        ]
    )


def test_concurrent_access_reports_leases_that_overlap_agent_mail_reservations(
    pytester: pytest.Pytester, repo: Path
) -> None:
    database = repo.parent / "agent-mail.sqlite3"
    agent_mail_db(database, str(repo), [("BlueLake", "docs/*", True, time.time() + 600, None)])
    write_config_in(
        repo,
        "concurrent.yaml",
        f"""\
id: concurrent
name: No two agents on the same files
config_type: reservation_check
config:
  check_type: concurrent_access
  parameters:
    agent_mail: {{database: {database}}}
""",
    )
    assert gate(pytester).ret == 0
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-b", ["docs/guide.md"], ttl=600, exclusive=False).ok
    result = gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        [
            "*agent-b (shared lease * on 'docs/guide.md'*overlaps BlueLake "
            "(exclusive agent_mail:database reservation*"
        ]
    )


def test_file_exists_and_permissions_look_at_held_paths(
    pytester: pytest.Pytester, repo: Path
) -> None:
    write_config_in(
        repo,
        "held.yaml",
        """\
configs:
  - id: reserved-paths-exist
    name: Reserved paths exist
    config_type: reservation_check
    config: {check_type: file_exists}
  - id: reserved-paths-writable
    name: Reserved paths are writable
    config_type: reservation_check
    config: {check_type: permissions}
""",
    )
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-a", ["src/app/x.py", "src/app/*.py"], ttl=600).ok
    result = gate(pytester)
    assert result.ret == 0, result.stdout.str()
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-a", ["src/app/missing.py"], ttl=600).ok
    result = gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines(["*src/app/missing.py: reserved but does not exist*"])
    result.stdout.fnmatch_lines(["PASSED*reserved-paths-writable*"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anything")
def test_permissions_reports_a_read_only_held_file(pytester: pytest.Pytester, repo: Path) -> None:
    write_config_in(
        repo,
        "held.yaml",
        """\
id: writable
name: Reserved paths are writable
config_type: reservation_check
config: {check_type: permissions}
""",
    )
    target = repo / "src" / "app" / "x.py"
    target.chmod(0o444)
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-a", ["src/app/x.py"], ttl=600).ok
    result = gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines(["*src/app/x.py: agent-a cannot write it*"])


# --- the marker and the fixture ------------------------------------------------------------


def test_maf_reserve_holds_a_lease_while_the_test_runs(
    pytester: pytest.Pytester, repo: Path
) -> None:
    pytester.makepyfile(
        test_reserve="""
        import pytest
        from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

        def active(agent):
            with SqliteRuntime(".git/maf-preflight/runtime.db") as runtime:
                return [l.path_pattern for l in runtime.leases() if l.agent_id == agent]

        @pytest.mark.maf_reserve("src/app/x.py", ttl=120)
        def test_holds():
            assert active("agent-a") == ["src/app/x.py"]

        def test_released_afterwards():
            assert active("agent-a") == []

        @pytest.mark.maf_reserve(["docs/**"])
        def test_blocked():
            raise AssertionError("must not run")
    """
    )
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-b", ["docs/guide.md"], ttl=600).ok
    result = pytester.runpytest(
        "-p",
        "maf_preflight",
        "--maf-agent-id=agent-a",
        "--maf-runtime=sqlite",
        "test_reserve.py",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*maf_reserve: cannot reserve 'docs/**': 'docs/guide.md' held "
            "by agent-b (exclusive, until *"
        ]
    )


def test_maf_reservations_fixture(pytester: pytest.Pytester, repo: Path) -> None:
    pytester.makepyfile(
        test_fixture="""
        import pytest
        from pytest_maf_preflight.reservations.holding import ReservationConflictError

        def test_acquire_renew_release(maf_reservations):
            with maf_reservations.acquire("src/**", ttl=60, reason="edit") as (lease,):
                assert lease.agent_id == "agent-a" and lease.reason == "edit"
                renewed = maf_reservations.renew(lease, ttl=600)
                assert renewed.fencing_token > lease.fencing_token
                assert renewed.expires_at >= lease.expires_at + 599
                with pytest.raises(ReservationConflictError, match="held by agent-b"):
                    maf_reservations.grant("docs/guide.md")
            assert maf_reservations.held() == []

        def test_left_held_is_released(maf_reservations):
            maf_reservations.grant("src/app/x.py")

        def test_nothing_left(maf_reservations):
            with maf_reservations.acquire("src/app/x.py", ttl=5) as (lease,):
                maf_reservations.release(lease)
            assert maf_reservations.held() == []
    """
    )
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-b", ["/docs/"], ttl=600).ok
    result = pytester.runpytest(
        "-p", "maf_preflight", "--maf-agent-id=agent-a", "--maf-runtime=sqlite", "test_fixture.py"
    )
    result.assert_outcomes(passed=3)
    with shared_store(repo) as runtime:
        assert [lease.agent_id for lease in runtime.leases()] == ["agent-b"]

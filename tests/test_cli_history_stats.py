"""``maf-preflight history stats``: per-check numbers from a real SQLite store (and the same from
PostgreSQL), as a table and as JSON; ``history`` without ``stats`` still lists executions."""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from helpers_cli import cli, run_main
from helpers_runtime_procs import POSTGRES_URL, own_schema
from pytest_maf_preflight.runtime.interface import RuntimeState
from pytest_maf_preflight.runtime.records import (
    ExecutionRecord,
    SessionBundle,
    SessionRecord,
    new_id,
)
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

HOUR = 3600.0
DAY = 24 * HOUR
#: (seconds ago, agent, {check: (status, duration)}): ``api`` passes, fails and passes twice;
#: ``db`` passes, then times out.
HISTORY: list[tuple[float, str, dict[str, tuple[str, float]]]] = [
    (3 * DAY, "codex-1", {"api": ("passed", 0.2), "db": ("passed", 2.0)}),
    (2 * DAY, "codex-2", {"api": ("failed", 0.4)}),
    (HOUR, "codex-1", {"api": ("passed", 0.3), "db": ("timeout", 12.0)}),
    (600.0, "codex-2", {"api": ("passed", 0.25)}),
]
KEYS = [
    "config_id",
    "runs",
    "passed",
    "failed",
    "timeouts",
    "errors",
    "pass_rate",
    "flips",
    "flip_rate",
    "p50_duration",
    "p95_duration",
    "last_status",
    "last_started_at",
]


def bundle(ago: float, agent: str, checks: dict[str, tuple[str, float]]) -> SessionBundle:
    started = time.time() - ago
    session = SessionRecord(
        id=new_id(),
        agent_id=agent,
        environment="development",
        started_at=started,
        completed_at=started + 1,
        status="open",
        exit_code=0,
        runtime_mode="sqlite",
    )
    runs = tuple(
        ExecutionRecord(
            id=new_id(),
            session_id=session.id,
            config_id=config_id,
            config_version="1.0.0",
            agent_id=agent,
            kind="check",
            status=status,  # type: ignore[arg-type]
            started_at=started + i,
            completed_at=started + i + duration,
            duration=duration,
            attempts=1,
        )
        for i, (config_id, (status, duration)) in enumerate(checks.items())
    )
    return SessionBundle(session=session, executions=runs)


def record_history(runtime: RuntimeState) -> None:
    with runtime:
        for ago, agent, checks in HISTORY:
            runtime.record_session(bundle(ago, agent, checks))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAF_RUNTIME_MODE", "sqlite")
    record_history(SqliteRuntime(tmp_path / ".maf" / "runtime.db"))
    return tmp_path


def stats_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run_main(capsys, "history", "stats", *argv, "--json")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def test_the_table_has_one_aligned_line_per_check(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(capsys, "history", "stats")
    assert (code, err) == (0, "")
    # api: 0.2 0.25 0.3 0.4 s, passing 1 0 1 1 (two flips in three steps); db: 2 and 12 s.
    assert out.splitlines() == [
        "2 checks, 6 runs (sqlite, all recorded, every agent)",
        "check  runs  pass rate  flip rate       p50       p95  last",
        "api       4      75.0%      66.7%  275.0 ms  385.0 ms  passed",
        "db        2      50.0%     100.0%    7.00 s   11.50 s  timeout",
    ]


def test_since_and_agent_narrow_the_history(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recent = stats_json(capsys, "--since", "2h")
    assert [(c["config_id"], c["runs"], c["flips"]) for c in recent["checks"]] == [
        ("api", 2, 0),
        ("db", 1, 0),
    ]
    assert recent["since"] == pytest.approx(time.time() - 2 * HOUR, abs=60)
    codex_2 = stats_json(capsys, "--agent", "codex-2")
    assert codex_2["agent"] == "codex-2"
    assert [(c["config_id"], c["runs"], c["passed"], c["flips"]) for c in codex_2["checks"]] == [
        ("api", 2, 1, 1)
    ]
    code, out, _ = run_main(capsys, "history", "stats", "--since", "30m", "--agent", "codex-1")
    assert code == 0
    assert out.startswith("no executions recorded (sqlite, since ")
    assert out.rstrip().endswith(" UTC, agent codex-1)")


def test_json_keys_are_stable(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = stats_json(capsys)
    assert list(data) == ["mode", "skipped", "since", "agent", "checks"]
    assert (data["mode"], data["since"], data["agent"]) == ("sqlite", None, None)
    assert [list(c) for c in data["checks"]] == [KEYS, KEYS]
    api = data["checks"][0]
    assert (api["pass_rate"], api["p50_duration"], api["p95_duration"]) == pytest.approx(
        (0.75, 0.275, 0.385)
    )


def test_history_without_stats_still_lists_executions(project: Path) -> None:
    listed = cli(project, "history", "--config", "db", "--json", MAF_RUNTIME_MODE="sqlite")
    assert listed.returncode == 0, listed.stderr
    assert [e["status"] for e in json.loads(listed.stdout)["executions"]] == ["timeout", "passed"]
    stats = cli(project, "history", "stats", "--json", MAF_RUNTIME_MODE="sqlite")
    assert stats.returncode == 0, stats.stderr
    assert [c["config_id"] for c in json.loads(stats.stdout)["checks"]] == ["api", "db"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--since", "last week"), "--since: 'last week' is neither a duration"),
        (("--agent", "not a name!"), "--agent: 'not a name!' is not a valid agent name"),
    ],
)
def test_bad_arguments_are_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, out, err = run_main(capsys, "history", "stats", *argv)
    assert (code, out) == (2, "")
    assert err.startswith(f"maf-preflight: error: {message}")
    assert len(err.splitlines()) == 1


def test_postgres_gives_the_numbers_sqlite_gives(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_maf_preflight.runtime.postgres import PostgresRuntime

    with own_schema() as schema:
        record_history(PostgresRuntime(POSTGRES_URL, schema=schema))
        parts = urllib.parse.urlsplit(POSTGRES_URL)
        query = [*urllib.parse.parse_qsl(parts.query), ("options", f"-csearch_path={schema}")]
        url = parts._replace(query=urllib.parse.urlencode(query)).geturl()
        in_postgres = stats_json(capsys, "--mode", "postgres", "--db-url", url)
    in_sqlite = stats_json(capsys)
    assert in_postgres["mode"] == "postgres"

    def numbers(data: dict[str, Any]) -> list[list[Any]]:
        # The two stores hold different start times (recorded a moment apart).
        return [[v for k, v in c.items() if k != "last_started_at"] for c in data["checks"]]

    # The same arithmetic on the same durations: equal to the last bit.
    assert numbers(in_postgres) == numbers(in_sqlite)

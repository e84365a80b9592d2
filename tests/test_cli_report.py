"""``maf-preflight report --html PATH [--since] [--agent]``: the report page of a real store, in
SQLite, JSON or PostgreSQL, located as the other runtime commands locate it (issue 16)."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers_browser import elements, text_of
from helpers_cli import cli, run_main
from helpers_report_page import record_run
from helpers_runtime_procs import POSTGRES_URL, own_schema
from pytest_maf_preflight.runtime.interface import RuntimeState
from pytest_maf_preflight.runtime.jsonl import JsonRuntime
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

HOUR = 3600.0


def record_history(runtime: RuntimeState) -> None:
    """``api`` three times (two agents), ``db`` once long ago; a lease and a heartbeat."""
    now = time.time()
    with runtime:
        record_run(runtime, now - 30 * HOUR, [("db", "passed", 0.0, 2.0, 1)], agent="codex-2")
        record_run(runtime, now - 2 * HOUR, [("api", "failed", 0.0, 0.4, 2)], agent="codex-1")
        record_run(
            runtime,
            now - 60,
            [("api", "passed", 0.0, 0.3, 1), ("disk", "passed", 0.1, 0.01, 1)],
            agent="codex-2",
        )
        runtime.acquire_leases("codex-1", ["src/**"], ttl=600, reason="refactor")
        runtime.heartbeat("codex-2", agent_type="worker")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAF_RUNTIME_MODE", "sqlite")
    record_history(SqliteRuntime(tmp_path / ".maf" / "runtime.db"))
    return tmp_path


def written(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def checks_on_the_timeline(html: str) -> list[str]:
    return sorted(e.attrs["data-check-id"] for e in elements(html, "data-bar"))


def histories(html: str) -> dict[str, str]:
    return {
        e.attrs["data-check-id"]: e.attrs["data-outcomes"] for e in elements(html, "data-history")
    }


def test_the_page_of_the_shared_store(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "report", "--html", "out/report.html")
    assert (code, err) == (0, "")
    [line] = out.splitlines()
    assert line.startswith("wrote out/report.html: latest session ")
    assert line.endswith("(codex-2, gate open), 2 check(s) on its timeline, history of 3 check(s)")
    html = written(project / "out" / "report.html")
    assert checks_on_the_timeline(html) == ["api", "disk"]  # the latest session's
    assert histories(html) == {"api": "2", "db": "1", "disk": "1"}
    assert [e.attrs["data-holder"] for e in elements(html, "data-lease")] == ["codex-1"]
    assert [e.attrs["data-agent"] for e in elements(html, "data-agent")] == ["codex-2"]
    assert "the sqlite runtime (" in text_of(html)


def test_since_and_agent(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "report", "--html", "a.html", "--agent", "codex-1")
    assert (code, err) == (0, "")
    html = written(project / "a.html")
    assert checks_on_the_timeline(html) == ["api"]  # codex-1's latest session
    assert histories(html) == {"api": "1"}
    assert "history of agent codex-1." in text_of(html)
    code, _, err = run_main(capsys, "report", "--html", "s.html", "--since", "1d")
    assert (code, err) == (0, "")
    html = written(project / "s.html")
    assert histories(html) == {"api": "2", "disk": "1"}  # db ran 30 hours ago
    assert "history of all agents, since 1d." in text_of(html)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--since", "yesterday"), "--since: 'yesterday' is neither a duration"),
        (("--agent", "no such name!"), "--agent: 'no such name!' is not a valid agent name"),
    ],
)
def test_bad_arguments_are_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, out, err = run_main(capsys, "report", "--html", "r.html", *argv)
    assert (code, out) == (2, "")
    assert err.startswith(f"maf-preflight: error: {message}")
    assert not (project / "r.html").exists()


def test_a_page_that_cannot_be_written_is_a_usage_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "taken").write_text("a file")
    code, out, err = run_main(capsys, "report", "--html", "taken/r.html")
    assert (code, out) == (2, "")
    assert err.startswith("maf-preflight: error: cannot write taken/r.html: ")


def test_the_json_mode_in_a_child_process(tmp_path: Path) -> None:
    record_history(JsonRuntime(tmp_path / "mail"))
    result = cli(
        tmp_path,
        "report",
        "--html",
        "r.html",
        "--mode",
        "json",
        MAF_AGENT_MAIL_ROOT=str(tmp_path / "mail"),
    )
    assert (result.returncode, result.stderr) == (0, "")
    html = written(tmp_path / "r.html")
    assert checks_on_the_timeline(html) == ["api", "disk"]
    assert histories(html) == {"api": "2", "db": "1", "disk": "1"}


@pytest.fixture
def pg_url() -> Iterator[str]:
    from pytest_maf_preflight.runtime.postgres import PostgresRuntime

    with own_schema() as schema:
        record_history(PostgresRuntime(POSTGRES_URL, schema=schema))
        parts = urllib.parse.urlsplit(POSTGRES_URL)
        query = [*urllib.parse.parse_qsl(parts.query), ("options", f"-csearch_path={schema}")]
        yield parts._replace(query=urllib.parse.urlencode(query)).geturl()


def test_the_postgres_mode(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(
        capsys,
        "report",
        "--html",
        "r.html",
        "--mode",
        "postgres",
        "--db-url",
        pg_url,
        "--since",
        "1d",
    )
    assert (code, err) == (0, "")
    html = written(tmp_path / "r.html")
    assert checks_on_the_timeline(html) == ["api", "disk"]
    assert histories(html) == {"api": "2", "disk": "1"}
    assert "the postgres runtime (" in text_of(html)

"""Waivers in the gate (issue 15): a failing check an active waiver covers no longer closes the
gate, and says so (WAIVED, who, until when) in the terminal, the JSON report, JUnit XML and the
records. Real pytest runs through ``pytester``, a real SQLite store, the real CLI.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers_cli import cli
from helpers_configs import WriteConfig, write_config_in
from helpers_git import APP_FILES, LOCK_VALIDATION, commit_base, shared_db, shared_store
from pytest_maf_preflight.runtime.records import WaiverRecord, new_id
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

QUIET = ("-W", "ignore::pytest.PytestWarning")
HOUR = 3600.0


def env_check(check_id: str, variable: str, **top: str) -> str:
    """A check that fails until ``variable`` is set."""
    extra = "".join(f"{k}: {v}\n" for k, v in top.items())
    return (
        f"id: {check_id}\nname: {variable} is set\nconfig_type: smoke_test\n{extra}"
        f"config:\n  test_type: environment\n  test_definition: {{required: [{variable}]}}\n"
    )


@pytest.fixture
def project(
    pytester: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Two checks, ``needs-a`` and ``needs-b``, each failing until its variable is set, and an
    ordinary test; the SQLite store at ``MAF_DB_PATH``."""
    write_config("a.yaml", env_check("needs-a", "MAF_TEST_WAIVE_A"))
    write_config("b.yaml", env_check("needs-b", "MAF_TEST_WAIVE_B"))
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    monkeypatch.delenv("MAF_TEST_WAIVE_A", raising=False)
    monkeypatch.setenv("MAF_TEST_WAIVE_B", "set")
    monkeypatch.setenv("MAF_DB_PATH", str(pytester.path / "runtime.db"))
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(pytester.path / "mail"))
    return pytester.path


@pytest.fixture
def store(project: Path) -> Iterator[SqliteRuntime]:
    with SqliteRuntime(project / "runtime.db") as runtime:
        yield runtime


def waiver(check_id: str, *, start: float, end: float, **changes: Any) -> WaiverRecord:
    return WaiverRecord(
        id=new_id(),
        check_id=check_id,
        granted_by="lead",
        reason="the API is down for the migration",
        granted_at=start,
        expires_at=end,
        **changes,
    )


def gate(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        "-p", "maf_preflight", "--maf-preflight", "--maf-agent-id=agent-a", *QUIET, *args
    )


def properties(xml: Path, name: str) -> dict[str, str]:
    [case] = [c for c in ET.parse(xml).getroot().iter("testcase") if c.get("name") == name]
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


def test_a_waived_failure_opens_the_gate_and_is_reported_everywhere(
    pytester: pytest.Pytester, project: Path, store: SqliteRuntime
) -> None:
    assert gate(pytester).ret == 10  # without the waiver
    now = time.time()
    granted = waiver("needs-a", start=now - 60, end=now + HOUR)
    store.add_waiver(granted)

    result = gate(pytester, "--maf-report=gate.json", "--junitxml=junit.xml", "-rx")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=2, xfailed=1)
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(granted.expires_at))
    result.stdout.fnmatch_lines(
        [
            "*= maf-preflight =*",
            "WAIVED (failed)  needs-a*",
            f"* waived by lead until {until} (waiver {granted.id[:12]}): the API is down*",
            "PASSED           needs-b*",
            f"gate open; waived: needs-a (failed, waived by lead until {until})",
        ]
    )
    result.stdout.fnmatch_lines([f"XFAIL *needs-a* - WAIVED: waived by lead until {until}*"])

    report = json.loads((project / "gate.json").read_text())
    assert report["gate"]["open"] is True
    assert report["gate"]["blocking"] == []
    assert report["gate"]["waived"] == [f"needs-a (failed, waived by lead until {until})"]
    checks = {c["check_id"]: c for c in report["checks"]}
    assert checks["needs-a"]["status"] == "failed"
    assert checks["needs-a"]["waiver"]["id"] == granted.id
    assert checks["needs-a"]["waiver"]["granted_by"] == "lead"
    assert checks["needs-b"]["waiver"] is None
    assert report["exit_code"] == 0

    props = properties(project / "junit.xml", "needs-a")
    assert props["maf_check_status"] == "failed"
    assert (props["maf_check_waived"], props["maf_waived_by"]) == ("true", "lead")
    assert (props["maf_waiver_id"], props["maf_waived_until"]) == (granted.id, until)
    assert "maf_check_waived" not in properties(project / "junit.xml", "needs-b")

    # The records keep the check's real status, and say which waiver let it through.
    [latest] = store.sessions(limit=1)
    assert latest.status == "open"
    assert latest.details["waived"] == [
        {"check_id": "needs-a", "status": "failed", "waiver_id": granted.id}
    ]
    [execution] = store.executions(config_id="needs-a", session_id=latest.id)
    assert execution.status == "failed"
    assert execution.result["waiver"]["id"] == granted.id
    [other] = store.executions(config_id="needs-b", session_id=latest.id)
    assert "waiver" not in other.result


def test_quiet_output_counts_the_waived_check(
    pytester: pytest.Pytester, store: SqliteRuntime
) -> None:
    now = time.time()
    store.add_waiver(waiver("needs-a", start=now - 1, end=now + HOUR))
    result = gate(pytester, "-q")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["maf-preflight: gate open (2 checks: 1 passed, 1 waived); waived: needs-a (failed, *)"]
    )


@pytest.mark.parametrize(
    "state", ["expired", "revoked", "not yet granted"], ids=lambda s: s.replace(" ", "-")
)
def test_a_waiver_that_is_not_active_waives_nothing(
    pytester: pytest.Pytester, store: SqliteRuntime, state: str
) -> None:
    now = time.time()
    if state == "expired":
        store.add_waiver(waiver("needs-a", start=now - 2 * HOUR, end=now - HOUR))
    elif state == "not yet granted":
        store.add_waiver(waiver("needs-a", start=now + HOUR, end=now + 2 * HOUR))
    else:
        active = waiver("needs-a", start=now - 60, end=now + HOUR)
        store.add_waiver(active)
        assert gate(pytester).ret == 0
        store.revoke_waiver(active.id, "security-lead")
    result = gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        ["FAILED * needs-a*", "gate CLOSED (exit code 10): needs-a (failed)"]
    )
    assert "WAIVED" not in result.stdout.str()


def test_a_waiver_covers_one_check_and_never_another(
    pytester: pytest.Pytester, store: SqliteRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAF_TEST_WAIVE_B")  # both fail now
    now = time.time()
    store.add_waiver(waiver("needs-a", start=now - 60, end=now + HOUR))
    result = gate(pytester, "--maf-report=gate.json")
    assert result.ret == 10
    result.assert_outcomes(failed=1, xfailed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["WAIVED (failed)  needs-a*", "*", "FAILED * needs-b*", "gate CLOSED *: needs-b (failed)"]
    )
    report = json.loads((pytester.path / "gate.json").read_text())
    assert report["gate"]["blocking"] == ["needs-b (failed)"]
    assert [w.split(" ")[0] for w in report["gate"]["waived"]] == ["needs-a"]


def test_the_waiver_holds_under_xdist(pytester: pytest.Pytester, store: SqliteRuntime) -> None:
    """The mark travels with the result to the workers, which run the check items."""
    now = time.time()
    store.add_waiver(waiver("needs-a", start=now - 60, end=now + HOUR))
    result = gate(pytester, "-p", "xdist", "-n", "2")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=2, xfailed=1)


# --- the CLI grants what the gate honours ----------------------------------------------------

ON_CALL = """\
id: on-call
name: Lead decides
config_type: escalation_path
config:
  trigger_conditions:
    - {condition: preflight_failure, operator: gte, threshold: 1}
  escalation_steps:
    - {level: 1, action: notify, target: lead, timeout_minutes: 30}
  targets:
    lead: {channel: mailbox}
  permissions:
    approve: [lead]
"""


def test_waive_from_the_cli_opens_the_gate_and_permissions_decide_who_may(
    pytester: pytest.Pytester, project: Path, write_config: WriteConfig
) -> None:
    write_config("a.yaml", env_check("needs-a", "MAF_TEST_WAIVE_A", escalation_path="on-call"))
    write_config("path.yaml", ON_CALL)
    env = {"MAF_DB_PATH": str(project / "runtime.db"), "MAF_RUNTIME_MODE": "sqlite"}
    refused = cli(
        project, "waive", "needs-a", "--for", "2h", "--reason", "x", "--agent", "ci", **env
    )
    assert refused.returncode == 4
    assert refused.stderr.splitlines() == [
        "maf-preflight: error: not waived: agent 'ci' may not approve escalations of path "
        "'on-call' (permissions.approve: lead)"
    ]
    assert gate(pytester).ret == 10

    granted = cli(
        project,
        "waive",
        "needs-a",
        "--for",
        "2h",
        "--reason",
        "known outage",
        **env,
        MAF_AGENT_ID="lead",
    )
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout.startswith("waived check 'needs-a' for 2h: waiver ")
    assert "by lead until " in granted.stdout
    result = gate(pytester)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["WAIVED (failed)  needs-a*", "* waived by lead until *"])

    listed = cli(project, "waivers", "list", "--json", **env)
    [shown] = json.loads(listed.stdout)["waivers"]
    assert (shown["check_id"], shown["granted_by"], shown["state"]) == ("needs-a", "lead", "active")
    assert shown["expires_at"] - shown["granted_at"] == pytest.approx(2 * HOUR)
    revoked = cli(project, "waivers", "revoke", shown["id"][:8], "--agent", "lead", **env)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith(f"revoked waiver {shown['id']} of check 'needs-a' by lead")
    assert gate(pytester).ret == 10
    assert "active" not in cli(project, "waivers", "list", "--all", **env).stdout.split()


# --- reservation checks: the waiver covers the conflicts named when it was granted -------------


@pytest.fixture
def repo(pytester: pytest.Pytester, git_identity: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    monkeypatch.delenv("MAF_DB_PATH", raising=False)
    monkeypatch.delenv("MAF_RESERVATION_OVERRIDE", raising=False)
    root = commit_base(pytester.path, {**APP_FILES, ".gitignore": ".maf/\n__pycache__/\n"})
    write_config_in(root, "leases.yaml", LOCK_VALIDATION)
    return root


def sqlite_gate(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return gate(pytester, "--maf-runtime=sqlite", *args)


def test_a_reservation_waiver_covers_only_the_conflicts_it_was_granted_for(
    pytester: pytest.Pytester, repo: Path
) -> None:
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    with shared_store(repo) as runtime:
        held = runtime.acquire_leases("agent-b", ["src/**"], ttl=HOUR).granted[0]
    assert sqlite_gate(pytester).ret == 10  # the conflict is recorded with its lease

    granted = cli(
        repo,
        "waive",
        "no-foreign-leases",
        "--for",
        "1h",
        "--reason",
        "agreed with agent-b",
        "--agent",
        "lead",
    )
    assert granted.returncode == 0, granted.stderr
    assert f"covers only: leases {held.id[:12]}; paths src/app/x.py" in granted.stdout
    result = sqlite_gate(pytester)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["WAIVED (failed)  no-foreign-leases*"])

    # Another agent's lease on another changed file: a new conflict, which closes the gate.
    (repo / "docs" / "guide.md").write_text("# changed\n")
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-c", ["docs/**"], ttl=HOUR).ok
    result = sqlite_gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines(["*docs/guide.md: reserved by agent-c*"])
    assert "WAIVED" not in result.stdout.str()

    # The waived run's conflict was recorded as waived, naming the waiver.
    with SqliteRuntime(shared_db(repo)) as runtime:
        [waived] = runtime.waivers()
        rows = runtime.reservation_conflicts()
    assert {(c.status, c.details.get("waiver_id")) for c in rows} == {
        ("open", None),
        ("waived", waived.id),
    }


def test_a_new_path_under_the_same_lease_is_a_new_conflict(
    pytester: pytest.Pytester, repo: Path
) -> None:
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-b", ["src/**", "docs/**"], ttl=HOUR).ok
    assert sqlite_gate(pytester).ret == 10
    args = ("--for", "1h", "--reason", "ok", "--agent", "lead")
    assert cli(repo, "waive", "no-foreign-leases", *args).returncode == 0
    assert sqlite_gate(pytester).ret == 0
    (repo / "docs" / "guide.md").write_text("# changed\n")
    result = sqlite_gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines(["*docs/guide.md: reserved by agent-b*"])


def test_a_reservation_check_without_a_recorded_conflict_cannot_be_waived(
    pytester: pytest.Pytester, repo: Path
) -> None:
    assert sqlite_gate(pytester).ret == 0  # nothing changed: no conflict
    done = cli(repo, "waive", "no-foreign-leases", "--for", "1h", "--reason", "x", "--agent", "l")
    assert done.returncode == 4
    [line] = done.stderr.splitlines()
    assert "is a reservation check and its latest recorded run found no conflict" in line


def test_the_override_is_recorded_as_an_unapproved_override(
    pytester: pytest.Pytester, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    with shared_store(repo) as runtime:
        assert runtime.acquire_leases("agent-b", ["src/**"], ttl=HOUR).ok
    monkeypatch.setenv("MAF_RESERVATION_OVERRIDE", "1")
    result = sqlite_gate(pytester)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*RESERVATION OVERRIDE no-foreign-leases: 1 conflict(s) let through by "
            "MAF_RESERVATION_OVERRIDE=1 (recorded as an unapproved override)"
        ]
    )
    with SqliteRuntime(shared_db(repo)) as runtime:
        [session] = runtime.sessions()
        [execution] = runtime.executions(config_id="no-foreign-leases")
        assert runtime.waivers() == []  # an override is no waiver: it holds for this run only
    assert session.details["unapproved_overrides"] == [
        {
            "check_id": "no-foreign-leases",
            "agent_id": "agent-a",
            "conflicts": 1,
            "approved": False,
            "by": "MAF_RESERVATION_OVERRIDE=1",
        }
    ]
    assert execution.result["override"] == {"approved": False, "by": "MAF_RESERVATION_OVERRIDE=1"}

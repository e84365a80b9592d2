"""Escalations from gate runs (S4): real pytest runs, a real SQLite runtime, real mailboxes,
a real webhook server on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest

from conftest import EXAMPLES
from helpers_configs import ESCALATING_CHECK, WriteConfig
from helpers_http import HttpServer, Response, StartHttpServer
from pytest_maf_preflight.runtime.records import EscalationRecord
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

QUIET = ("-W", "ignore::pytest.PytestWarning")

PATH = """\
id: on-call
name: Tell the on-call agent, then the lead
config_type: escalation_path
config:
  trigger_conditions:
    - {condition: preflight_failure, operator: gte, threshold: 2}
  escalation_steps:
    - {level: 1, action: notify, target: on-call-agent, timeout_minutes: 0.5}
    - {level: 2, action: escalate, target: lead, timeout_minutes: 1}
  targets:
    on-call-agent: {channel: mailbox}
"""


@pytest.fixture
def project(
    pytester: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    write_config("check.yaml", ESCALATING_CHECK)
    write_config("path.yaml", PATH)
    pytester.makepyfile(test_app="def test_ordinary():\n    pass\n")
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(pytester.path / "mail"))
    return pytester


def gate(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        "-p",
        "maf_preflight",
        "--maf-preflight",
        "--maf-agent-id=agent-a",
        "--maf-runtime=sqlite",
        *QUIET,
        *args,
    )


def inbox(pytester: pytest.Pytester, target: str) -> list[dict[str, object]]:
    folder = pytester.path / "mail" / "mailboxes" / target / "inbox"
    return (
        [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
        if (folder.is_dir())
        else []
    )


def escalations(pytester: pytest.Pytester) -> list[EscalationRecord]:
    with SqliteRuntime(pytester.path / ".maf" / "runtime.db") as runtime:
        return list(runtime.escalations())


def test_a_failure_streak_opens_repeats_and_a_pass_resolves(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert gate(project).ret == 10  # one failure: below the threshold of 2
    assert escalations(project) == []
    result = gate(project)
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        [
            "*escalation opened: * on-call:needs-var:failed at level 1*",
            "*delivery mailbox -> on-call-agent (level 1, attempt 1): delivered*",
        ]
    )
    [message] = inbox(project, "on-call-agent")
    assert message["type"] == "ESCALATION_REQUEST"
    assert (message["level"], message["dedup_key"]) == (1, "on-call:needs-var:failed")
    assert "needs-var" in str(message["summary"])

    result = gate(project)  # the same failure again: an occurrence, not a new escalation
    result.stdout.fnmatch_lines(["*escalation repeated: * (2 occurrences)*"])
    assert len(inbox(project, "on-call-agent")) == 1
    [escalation] = escalations(project)
    assert (escalation.state, escalation.occurrences) == ("triggered", 2)

    monkeypatch.setenv("MAF_TEST_ESCALATION_VAR", "set")
    result = gate(project)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*escalation resolved: * on-call:needs-var:failed*"])
    notices = inbox(project, "on-call-agent")
    assert [m["type"] for m in notices] == ["ESCALATION_REQUEST", "ESCALATION_RESPONSE"]
    assert notices[1]["action"] == "resolve"
    [escalation] = escalations(project)
    assert (escalation.state, escalation.resolved_by) == ("resolved", "agent-a")


def test_a_pass_resolves_an_escalation_whose_path_is_gone(
    project: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without any escalation path left, the gate still asks the store for open escalations
    (cheaply): the one its check opened earlier is resolved when the check passes again."""
    gate(project)
    gate(project)
    [escalation] = escalations(project)
    assert escalation.state == "triggered"
    (project.path / ".maf" / "preflight-configs" / "path.yaml").unlink()
    write_config("check.yaml", ESCALATING_CHECK.replace("escalation_path: on-call\n", ""))
    monkeypatch.setenv("MAF_TEST_ESCALATION_VAR", "set")

    result = gate(project)

    assert result.ret == 0
    result.stdout.fnmatch_lines(["*escalation resolved: * on-call:needs-var:failed*"])
    [escalation] = escalations(project)
    assert escalation.state == "resolved"
    notices = inbox(project, "on-call-agent")  # the path's snapshot still says where
    assert [m["type"] for m in notices] == ["ESCALATION_REQUEST", "ESCALATION_RESPONSE"]


def test_no_escalate_turns_it_all_off(project: pytest.Pytester) -> None:
    gate(project, "--maf-no-escalate")
    result = gate(project, "--maf-no-escalate")
    result.stdout.fnmatch_lines(["*escalations: off for this run (--maf-no-escalate)*"])
    assert escalations(project) == []
    assert inbox(project, "on-call-agent") == []


def test_the_default_escalation_path_from_ini(
    project: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("check.yaml", ESCALATING_CHECK.replace("escalation_path: on-call\n", ""))
    project.makeini("[pytest]\nmaf_default_escalation = on-call\n")
    gate(project)
    gate(project)
    assert [e.dedup_key for e in escalations(project)] == ["on-call:needs-var:failed"]


@pytest.fixture
def webhook(http_server: StartHttpServer) -> HttpServer:
    return http_server({"/hook": Response(202)})


def test_the_shipped_paths_load_and_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, webhook: HttpServer
) -> None:
    """default-escalation.yaml and the original critical-system-escalation.json, unchanged: a
    reservation conflict opens one at once; the system being down opens the other."""
    configs = pytester.path / ".maf" / "preflight-configs"
    configs.mkdir(parents=True)
    shutil.copy(EXAMPLES / "preflight-configs" / "default-escalation.yaml", configs)
    shutil.copy(EXAMPLES / "original-format" / "critical-system-escalation.json", configs)
    (configs / "down.yaml").write_text(
        textwrap.dedent("""\
        id: down
        name: Fails
        config_type: smoke_test
        escalation_path: critical-system-escalation
        config:
          test_type: environment
          test_definition: {required: [MAF_TEST_ESCALATION_VAR]}
    """)
    )
    pytester.makepyfile(test_app="def test_ordinary():\n    pass\n")
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(pytester.path / "mail"))
    monkeypatch.setenv("LEAD_WEBHOOK_URL", webhook.url("/hook"))
    result = pytester.runpytest(
        "-p",
        "maf_preflight",
        "--maf-preflight",
        "--maf-agent-id=agent-a",
        "--maf-runtime=sqlite",
        *QUIET,
    )
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        ["*escalation opened: * critical-system-escalation:*:system_down at level 1*"]
    )
    assert [m["level"] for m in inbox(pytester, "on-call-engineer")] == [1]
    assert webhook.requests == []  # the webhook target (lead) is level 2 of default-escalation


def test_maf_escalate_raises_one_and_the_policy_applies(
    pytester: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = "  permissions:\n    escalate_to: {agent-a: [on-call-agent]}\n"
    write_config("path.yaml", PATH + policy)
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(pytester.path / "mail"))
    pytester.makepyfile(
        test_esc="""
        import pytest
        from pytest_maf_preflight.escalation.errors import EscalationError

        def test_raise(maf_escalate):
            first = maf_escalate("on-call", "the nightly data is stale", severity="warning")
            again = maf_escalate("on-call", "the nightly data is stale", severity="warning")
            assert (first.id, first.level, again.occurrences) == (again.id, 1, 2)
            assert first.failure_class == "manual"

        def test_unknown_path(maf_escalate):
            with pytest.raises(EscalationError, match="no escalation path 'nope'"):
                maf_escalate("nope", "x")
    """
    )
    result = pytester.runpytest(
        "-p", "maf_preflight", "--maf-agent-id=agent-a", "--maf-runtime=sqlite", "test_esc.py"
    )
    result.assert_outcomes(passed=2)
    [message] = inbox(pytester, "on-call-agent")
    assert (message["severity"], message["summary"]) == ("warning", "the nightly data is stale")

    pytester.makepyfile(
        test_refused="""
        import pytest
        from pytest_maf_preflight.escalation.errors import EscalationError

        def test_refused(maf_escalate):
            with pytest.raises(EscalationError) as refusal:
                maf_escalate("on-call", "x")
            assert "permissions.escalate_to" in str(refusal.value)
            assert "'agent-b'" in str(refusal.value)
    """
    )
    result = pytester.runpytest(
        "-p", "maf_preflight", "--maf-agent-id=agent-b", "--maf-runtime=sqlite", "test_refused.py"
    )
    result.assert_outcomes(passed=1)


def test_a_missing_escalation_path_is_a_config_error(
    project: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config(
        "check.yaml",
        ESCALATING_CHECK.replace("escalation_path: on-call", "escalation_path: oncall"),
    )
    result = gate(project)
    assert result.ret == 11
    result.stderr.fnmatch_lines(
        [
            "*check.yaml:1: escalation_path: names escalation path "
            "'oncall', which is not an active escalation_path config "
            "(known: on-call)*"
        ]
    )


def test_escalations_need_a_store_that_remembers(project: pytest.Pytester) -> None:
    for _ in range(2):
        result = project.runpytest(
            "-p",
            "maf_preflight",
            "--maf-preflight",
            "--maf-agent-id=agent-a",
            "--maf-runtime=memory",
            *QUIET,
        )
    result.stdout.fnmatch_lines(
        [
            "*escalations: not run, the runtime is memory (they need the "
            "store that holds the open escalations)*"
        ]
    )
    assert inbox(project, "on-call-agent") == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  max_escalation_level: 0\n", "config.max_escalation_level: expected at least 1, got 0"),
        ("  max_escalation_level: 1\n", None),
        (
            "  targets:\n    lead: {channel: webhook, url: 'https://ops:hunter2@hooks.example/x'}\n",
            "the url carries a password; put it in an environment variable",
        ),
    ],
)
def test_escalation_paths_that_could_never_work_are_config_errors(
    project: pytest.Pytester, write_config: WriteConfig, extra: str, message: str | None
) -> None:
    body = PATH.replace("  targets:\n    on-call-agent: {channel: mailbox}\n", "")
    write_config("path.yaml", body + extra)
    result = gate(project)
    if message is None:
        assert result.ret == 10  # valid: only the check fails
        return
    assert result.ret == 11
    assert message in result.stderr.str()
    assert "hunter2" not in result.stderr.str() + result.stdout.str()


def test_a_maximum_below_every_step_is_refused(
    project: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config(
        "path.yaml",
        PATH.replace("level: 1,", "level: 3,").replace("level: 2,", "level: 4,")
        + "  max_escalation_level: 2\n",
    )
    result = gate(project)
    assert result.ret == 11
    assert "max_escalation_level 2 is below every step's level" in result.stderr.str()


def test_what_tests_raise_is_in_the_summary(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAF_TEST_ESCALATION_VAR", "set")  # the gate opens; the test runs
    project.makepyfile(
        test_esc="""
        def test_raise(maf_escalate):
            maf_escalate("on-call", "the nightly data is stale")
    """
    )
    result = gate(project, "test_esc.py")
    result.stdout.fnmatch_lines(["*escalation opened: * on-call:*:manual at level 1*"])

"""The command channel with real child processes: the message JSON on stdin, exit status,
timeout (the whole process group is killed), secrets kept out of the records."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from pathlib import Path

from helpers_escalation import NOW, clock, notice
from pytest_maf_preflight.config.models import EscalationTarget
from pytest_maf_preflight.escalation.channels import NoticeKind, deliver
from pytest_maf_preflight.runtime.records import DeliveryRecord

SAVE_STDIN = (
    "import json, os, sys, pathlib; pathlib.Path(sys.argv[1]).write_text(json.dumps("
    "{'stdin': sys.stdin.read(), 'id': os.environ['MAF_ESCALATION_ID'], "
    "'level': os.environ['MAF_ESCALATION_LEVEL'], "
    "'kind': os.environ['MAF_ESCALATION_KIND']})); print('queued')"
)


def run(
    argv: list[str] | None,
    *,
    environ: dict[str, str] | None = None,
    timeout: float | None = None,
    kind: NoticeKind = "request",
) -> DeliveryRecord:
    target = EscalationTarget(channel="command", argv=argv, timeout_seconds=timeout)
    [record] = deliver(
        notice(kind=kind), target, mail_root=Path("/nonexistent"), environ=environ or {}, now=clock
    )
    return record


def test_the_message_reaches_the_command_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "received.json"
    sent = notice()
    [record] = deliver(
        sent,
        EscalationTarget(channel="command", argv=[sys.executable, "-c", SAVE_STDIN, str(out)]),
        mail_root=tmp_path / "mail",
        environ={},
        now=clock,
    )
    received = json.loads(out.read_text())
    assert json.loads(received["stdin"]) == sent.message
    assert (received["id"], received["level"], received["kind"]) == ("e5c41a7e", "1", "request")
    assert (record.channel, record.status, record.attempt, record.error) == (
        "command",
        "delivered",
        1,
        None,
    )
    assert record.attempted_at == NOW
    assert record.response["returncode"] == 0
    assert record.response["stdout"] == "queued"
    assert not (tmp_path / "mail").exists()


def test_a_non_zero_exit_fails_with_what_the_command_said() -> None:
    record = run(
        [sys.executable, "-c", "import sys; sys.stderr.write('pager down\\n'); sys.exit(3)"]
    )
    assert record.status == "failed"
    assert record.error == f"{sys.executable!r} exited with status 3: pager down"
    assert record.response["returncode"] == 3


def test_a_command_past_its_timeout_is_killed_with_its_children() -> None:
    # The grandchild inherits the pipes; only killing the process group lets us stop waiting.
    script = (
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
        "'import time; time.sleep(60)']); time.sleep(60)"
    )
    record = run([sys.executable, "-c", script], timeout=0.5)
    assert record.status == "failed"
    assert record.error == f"{sys.executable!r} did not exit within 0.5s (killed)"


def test_a_notifier_that_left_a_background_job_is_delivered_and_the_job_kept(
    tmp_path: Path,
) -> None:
    # The job inherits stdout: the delivery is decided on the notifier's exit, not held until
    # the timeout by the job's open pipe; the job itself is the notifier's business.
    pidfile = tmp_path / "job.pid"
    script = (
        "import subprocess, sys; job = subprocess.Popen([sys.executable, '-c', "
        "'import time; time.sleep(30)']); "
        f"open({str(pidfile)!r}, 'w').write(str(job.pid)); print('handed over')"
    )
    record = run([sys.executable, "-c", script], timeout=10)
    pid = int(pidfile.read_text())
    try:
        assert (record.status, record.error) == ("delivered", None)
        assert record.response["stdout"] == "handed over"
        os.kill(pid, 0)  # still running
    finally:
        os.kill(pid, signal.SIGKILL)


def test_a_program_that_does_not_exist_is_a_failed_record(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-notifier")
    record = run([missing])
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.startswith(f"cannot run {missing!r}")


def test_no_argv_is_a_failed_record() -> None:
    record = run(None)
    assert (record.status, record.error) == ("failed", "the command target has no argv")


def test_no_shell_is_involved(tmp_path: Path) -> None:
    out = tmp_path / "argv.json"
    record = run(
        [
            sys.executable,
            "-c",
            "import json, sys, pathlib; "
            "pathlib.Path(sys.argv[1]).write_text(json.dumps(sys.argv[2:]))",
            str(out),
            "$HOME",
            "a;b",
            "`x`",
        ]
    )
    assert record.status == "delivered"
    assert json.loads(out.read_text()) == ["$HOME", "a;b", "`x`"]


def test_secrets_the_command_prints_are_not_recorded() -> None:
    secret = "pd-routing-key-0123456789"
    record = run(
        [
            sys.executable,
            "-c",
            "import os, sys; print(os.environ['PAGER_API_KEY']); "
            "sys.stderr.write('bad key ' + os.environ['PAGER_API_KEY']); sys.exit(1)",
        ],
        environ={"PAGER_API_KEY": secret},
    )
    assert record.status == "failed"
    assert record.error == f"{sys.executable!r} exited with status 1: bad key ***"
    assert secret not in json.dumps(dataclasses.asdict(record))

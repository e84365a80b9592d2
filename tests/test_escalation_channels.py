"""Escalation notices and the mailbox channel: real files under tmp_path, a real child process
for a write cut short by the file-size limit."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers_escalation import NOW, clock, escalation, inbox_files, notice
from pytest_maf_preflight.config.models import EscalationTarget
from pytest_maf_preflight.escalation.channels import (
    build_message,
    deliver,
    mailbox_dir,
)
from pytest_maf_preflight.escalation.channels.mailbox import OutsideMailboxTree
from pytest_maf_preflight.protocol.messages import (
    EscalationRequest,
    EscalationResponse,
    parse_message,
)

# --- build_message ----------------------------------------------------------------------------


def test_request_message_is_a_valid_escalation_request() -> None:
    record = escalation(details={"summary": "s", "api_token": "tok-123456", "agent_id": "x"})
    data = build_message(
        "request",
        record,
        level=2,
        target="lead",
        severity="warning",
        summary="db down",
        agent_id="BlueLake",
    )
    parsed = parse_message(data)
    assert isinstance(parsed, EscalationRequest)
    assert (parsed.escalation_id, parsed.path_id, parsed.level, parsed.target) == (
        "e5c41a7e",
        "default-escalation",
        2,
        "lead",
    )
    assert (parsed.severity, parsed.summary, parsed.dedup_key) == (
        "warning",
        "db down",
        "default-escalation:db-check:failed",
    )
    assert (parsed.agent_id, parsed.correlation_id) == ("BlueLake", "e5c41a7e")
    assert parsed.details["check_id"] == "db-check"
    assert parsed.details["occurrences"] == 3
    # The escalation's own details travel along, with secret-looking values hidden.
    assert parsed.details["context"]["api_token"] == "***"
    assert "tok-123456" not in json.dumps(data)


def test_resolution_message_is_a_resolve_response() -> None:
    data = build_message(
        "resolution",
        escalation(),
        level=1,
        target="lead",
        severity="critical",
        summary="db-check passes again",
        agent_id="BlueLake",
        note="db-check passed",
    )
    parsed = parse_message(data)
    assert isinstance(parsed, EscalationResponse)
    assert (parsed.escalation_id, parsed.action, parsed.responder, parsed.note) == (
        "e5c41a7e",
        "resolve",
        "BlueLake",
        "db-check passed",
    )


def test_request_with_an_unknown_severity_is_refused() -> None:
    with pytest.raises(ValueError, match="severity 'fatal'"):
        build_message(
            "request",
            escalation(),
            level=1,
            target="lead",
            severity="fatal",
            summary="x",
            agent_id="BlueLake",
        )


# --- mailbox ----------------------------------------------------------------------------------


def test_mailbox_is_the_default_channel(tmp_path: Path) -> None:
    sent = notice()
    records = deliver(sent, None, mail_root=tmp_path, environ={}, now=clock)
    [record] = records
    [path] = inbox_files(tmp_path)
    assert (record.channel, record.status, record.attempt, record.error) == (
        "mailbox",
        "delivered",
        1,
        None,
    )
    assert (record.escalation_id, record.level, record.target, record.attempted_at) == (
        "e5c41a7e",
        1,
        "on-call-agent",
        NOW,
    )
    assert record.response == {"path": str(path)}
    assert path.name.endswith(f"-{sent.message['id']}.json")
    assert json.loads(path.read_text()) == sent.message
    assert isinstance(parse_message(json.loads(path.read_text())), EscalationRequest)


def test_mailbox_target_uses_the_same_channel(tmp_path: Path) -> None:
    [record] = deliver(
        notice(), EscalationTarget(channel="mailbox"), mail_root=tmp_path, environ={}, now=clock
    )
    assert record.status == "delivered"
    assert len(inbox_files(tmp_path)) == 1


def test_messages_are_listed_in_the_order_they_were_sent(tmp_path: Path) -> None:
    first, second = notice(), notice(kind="resolution")
    deliver(first, None, mail_root=tmp_path, environ={})
    deliver(second, None, mail_root=tmp_path, environ={})
    names = [json.loads(path.read_text())["id"] for path in inbox_files(tmp_path)]
    assert names == [first.message["id"], second.message["id"]]


@pytest.mark.parametrize("name", ["../x", "a/b", "", "/etc", "..", ".hidden", "a\\b", "x" * 129])
def test_target_names_that_could_leave_the_mailbox_tree_are_refused(
    tmp_path: Path, name: str
) -> None:
    root = tmp_path / "mail"
    with pytest.raises(ValueError, match="invalid escalation target name"):
        mailbox_dir(root, name)
    for target in (None, EscalationTarget(channel="webhook", url="http://127.0.0.1:9/")):
        with pytest.raises(ValueError, match="invalid escalation target name"):
            deliver(dataclasses.replace(notice(), target=name), target, mail_root=root, environ={})
    assert not root.exists()


def test_an_inbox_symlinked_out_of_the_tree_is_not_written(tmp_path: Path) -> None:
    root, outside = tmp_path / "mail", tmp_path / "outside"
    outside.mkdir()
    (root / "mailboxes" / "on-call-agent").mkdir(parents=True)
    (root / "mailboxes" / "on-call-agent" / "inbox").symlink_to(outside)
    with pytest.raises(OutsideMailboxTree, match="outside the mailbox tree"):
        mailbox_dir(root, "on-call-agent")
    [record] = deliver(notice(), None, mail_root=root, environ={}, now=clock)
    assert record.status == "failed"
    assert record.error is not None
    assert "outside the mailbox tree" in record.error
    assert list(outside.iterdir()) == []


def test_a_mailbox_symlinked_out_of_the_tree_gets_no_directories(tmp_path: Path) -> None:
    root, outside = tmp_path / "mail", tmp_path / "outside"
    outside.mkdir()
    (root / "mailboxes").mkdir(parents=True)
    (root / "mailboxes" / "lead").symlink_to(outside)
    [record] = deliver(notice(target="lead"), None, mail_root=root, environ={}, now=clock)
    assert record.status == "failed"
    assert list(outside.iterdir()) == []  # no inbox created over there either


def test_a_mailboxes_directory_symlinked_out_of_the_tree_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "mail", tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "mailboxes").symlink_to(outside)
    with pytest.raises(OutsideMailboxTree, match="outside the mailbox tree"):
        mailbox_dir(root, "lead")
    [record] = deliver(notice(target="lead"), None, mail_root=root, environ={}, now=clock)
    assert record.status == "failed"
    assert record.error is not None
    assert "outside the mailbox tree" in record.error
    assert list(outside.iterdir()) == []  # neither a mailbox nor a message over there


def test_a_symlink_inside_the_tree_is_followed(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    (root / "mailboxes" / "real").mkdir(parents=True)
    (root / "mailboxes" / "alias").symlink_to(root / "mailboxes" / "real")
    [record] = deliver(notice(target="alias"), None, mail_root=root, environ={}, now=clock)
    assert record.status == "delivered"
    assert len(list((root / "mailboxes" / "real" / "inbox").iterdir())) == 1


def test_an_unusable_inbox_is_a_failed_record_not_an_exception(tmp_path: Path) -> None:
    inbox = tmp_path / "mailboxes" / "on-call-agent" / "inbox"
    inbox.parent.mkdir(parents=True)
    inbox.write_text("a file where the inbox directory should be")
    [record] = deliver(notice(), None, mail_root=tmp_path, environ={}, now=clock)
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.startswith("cannot write to the mailbox of 'on-call-agent': ")
    assert inbox.read_text() == "a file where the inbox directory should be"


_CUT_SHORT = textwrap.dedent("""
    import json, resource, signal, sys
    from pathlib import Path
    sys.path[:0] = [sys.argv[2]]
    from helpers_escalation import notice
    from pytest_maf_preflight.escalation.channels import deliver
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    [record] = deliver(notice(summary="x" * 100_000), None, mail_root=Path(sys.argv[1]),
                       environ={})
    print(json.dumps({"status": record.status, "error": record.error}))
""")


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_a_write_cut_short_leaves_no_partial_message(tmp_path: Path) -> None:
    """The file-size limit stops the write after 4 KiB of a 100 KB message; a reader of the
    inbox must see no message at all, not a truncated one (and no temporary file)."""
    inbox = tmp_path / "mailboxes" / "on-call-agent" / "inbox"
    inbox.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-c", _CUT_SHORT, str(tmp_path), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "failed"
    assert "File too large" in outcome["error"]
    assert list(inbox.iterdir()) == []

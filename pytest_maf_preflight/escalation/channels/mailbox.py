"""The ``mailbox`` channel: the message as a JSON file in the target's inbox,
``<mail_root>/mailboxes/<target>/inbox/<timestamp>-<message id>.json``.

The target name becomes a directory name, so it must be a plain name (``NAME_PATTERN``), and
the inbox must resolve inside the mailbox tree (``<mail_root>/mailboxes``): a symlinked
``mailboxes``, mailbox or inbox that leads elsewhere is refused, before any directory is
created and again just before writing. Files are written with ``write_atomic``, so a reader
polling the inbox never sees half a message.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ...atomic import write_atomic
from ...names import NAME_PATTERN, NAME_RULE
from ...runtime.records import DeliveryRecord, new_id
from .notice import Notice, attempt_record

MAILBOXES = "mailboxes"
INBOX = "inbox"
#: File names stay well below every file system's limit.
MAX_NAME = 128


class OutsideMailboxTree(ValueError):
    """The inbox of a valid target name resolves outside the mailbox tree (a symlink)."""


def check_target_name(target: str) -> None:
    """``ValueError`` unless ``target`` can name a mailbox directory."""
    if (
        not isinstance(target, str)
        or len(target) > MAX_NAME
        or not re.fullmatch(NAME_PATTERN, target)
    ):
        raise ValueError(
            f"invalid escalation target name {target!r}: use {NAME_RULE}, "
            f"at most {MAX_NAME} characters"
        )


def mailbox_dir(mail_root: Path, target: str) -> Path:
    """The inbox of ``target`` under ``mail_root``; it need not exist yet.

    ``ValueError`` for a name that is not a plain name; ``OutsideMailboxTree`` (a
    ``ValueError``) when an existing symlink on the way leads out of the mailbox tree.
    """
    check_target_name(target)
    # ``mailboxes`` itself is not resolved: when it is a symlink, resolving it would move the
    # tree to wherever it points and everything below would count as inside.
    root = mail_root.resolve() / MAILBOXES
    inbox = root / target / INBOX
    resolved = inbox.resolve()
    if not resolved.is_relative_to(root):
        raise OutsideMailboxTree(
            f"the inbox of {target!r} resolves to {resolved}, outside the mailbox tree {root}"
        )
    return inbox


def write_message(mail_root: Path, target: str, message: Mapping[str, Any]) -> Path:
    """Write ``message`` into the inbox of ``target``; the path written.

    Raises ``ValueError`` (bad name, outside the tree) or ``OSError``.
    """
    inbox = mailbox_dir(mail_root, target)
    inbox.mkdir(parents=True, exist_ok=True)
    inbox = mailbox_dir(mail_root, target)  # a symlink planted while the tree was created
    path = inbox / _file_name(message)
    write_atomic(path, (json.dumps(message, indent=2, sort_keys=True) + "\n").encode())
    return path


def _file_name(message: Mapping[str, Any]) -> str:
    timestamp = message.get("timestamp")
    if not isinstance(timestamp, (int, float)) or isinstance(timestamp, bool):
        timestamp = datetime.datetime.now(datetime.timezone.utc).timestamp()
    when = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    message_id = message.get("id")
    if (
        not isinstance(message_id, str)
        or not re.fullmatch(NAME_PATTERN, message_id)
        or len(message_id) > MAX_NAME
    ):
        message_id = new_id()
    # The timestamp first, so a directory listing is in the order the messages were sent.
    return f"{when:%Y%m%dT%H%M%S%fZ}-{message_id}.json"


def deliver_mailbox(
    notice: Notice,
    mail_root: Path,
    *,
    now: Callable[[], float],
    attempt: int = 1,
    status: str = "delivered",
    note: str | None = None,
) -> DeliveryRecord:
    """One attempt; ``status``/``note`` let the agent_mail fallback say what it is."""
    try:
        path = write_message(mail_root, notice.target, notice.message)
    except (OSError, ValueError) as exc:
        error = f"cannot write to the mailbox of {notice.target!r}: {exc}"
        return attempt_record(
            notice,
            channel="mailbox",
            attempt=attempt,
            status="failed",
            now=now,
            error=f"{note}; {error}" if note else error,
        )
    return attempt_record(
        notice,
        channel="mailbox",
        attempt=attempt,
        status=status,
        now=now,
        error=note,
        response={"path": str(path)},
    )

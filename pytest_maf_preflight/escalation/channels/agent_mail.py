"""The ``agent_mail`` channel: mcp_agent_mail's ``send_message`` tool over MCP HTTP JSON-RPC.

The arguments are the server's own (``send_message(project_key, sender_name, to, subject,
body_md, cc, bcc, attachment_paths, convert_images, importance, ack_required, thread_id)`` in
mcp_agent_mail's ``app.py``): the recipient is the target's name, the sender the target's
``sender`` or the sending agent, ``thread_id`` the escalation's dedup key so every notice of
one escalation lands in one thread. A request is ``urgent`` (critical) or ``high`` (warning)
and asks for an acknowledgement; a resolution notice is ``normal`` and asks for none. The
``url`` may contain ``${ENV:NAME}``; ``token_env`` names the variable holding the bearer token.
A target without ``project`` sends to the default project: the rootdir, or from a linked git
worktree the main checkout (``agent_mail.projects.default_project_key``).

When the message cannot be sent (the server does not answer, refuses it, or the target lacks
what it needs), the attempt is recorded as failed and the message goes to the target's
mailbox instead, recorded with status ``fallback`` and why.

A delivered request records the server's message id and the project, so the engine can read
its receipt later (:func:`pending_acknowledgements`): mcp_agent_mail lists, per recipient, the
messages that asked for an acknowledgement and have none yet (``resource://views/ack-required/
{agent}``, the same in its Python and Rust servers); a message sent there that has left that
list was acknowledged (``acknowledge_message``).
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ...agent_mail.mcp import McpError, McpSession
from ...agent_mail.projects import default_project_key
from ...config.models import EscalationTarget
from ...redaction import redact_mapping, redact_text, redact_url
from ...runtime.records import DeliveryRecord
from .mailbox import deliver_mailbox
from .notice import Notice, attempt_record, environ_secrets, expand_env

TOOL = "send_message"
ACK_VIEW = "resource://views/ack-required/{agent}?project={project}&limit={limit}"
#: The most pending messages asked for; a view cut at it cannot tell which were acknowledged.
ACK_VIEW_LIMIT = 500
DEFAULT_TIMEOUT = 10.0
_SUBJECT_MAX = 200
_SHOWN_RESULT = 500
_GATEWAY = re.compile(r"[\w/]+: HTTP 50[234] ")


NO_ANSWER = "the agent_mail server did not answer"
REFUSED = "the agent_mail server refused the message"
UNUSABLE = "the agent_mail target cannot be used"


class _Unsent(Exception):
    """The message was not sent; ``why`` is one of the reasons above."""

    def __init__(self, detail: str, why: str) -> None:
        super().__init__(detail)
        self.why = why


def send_message_arguments(
    notice: Notice, target: EscalationTarget, *, project_default: str
) -> dict[str, Any]:
    """The ``send_message`` arguments for ``notice``; ``ValueError`` without a project.

    ``project_default`` (the rootdir) stands for its repository: in a linked worktree it becomes
    the same place in the main checkout, the project the reservation checks read."""
    project = target.project or _shared_project(project_default)
    if not project:
        raise ValueError("no project: set project on the target (or run from a project rootdir)")
    resolution = notice.kind == "resolution"
    return {
        "project_key": project,
        "sender_name": target.sender or notice.agent_id,
        "to": [notice.target],
        "subject": _subject(notice),
        "body_md": _body(notice),
        "importance": "normal"
        if resolution
        else ("urgent" if notice.severity == "critical" else "high"),
        "ack_required": not resolution,
        "thread_id": notice.escalation.dedup_key,
    }


def _shared_project(project_default: str) -> str:
    if not os.path.isabs(project_default):
        return project_default
    # A GitDirError is a ValueError: the message is then not sent, rather than sent elsewhere.
    return default_project_key(Path(project_default))


def _subject(notice: Notice) -> str:
    escalation = notice.escalation
    head = (
        "[resolved]" if notice.kind == "resolution" else f"[{notice.severity}] level {notice.level}"
    )
    subject = f"{head} {escalation.path_id}: {notice.summary}"
    return subject if len(subject) <= _SUBJECT_MAX else subject[: _SUBJECT_MAX - 3] + "..."


def _body(notice: Notice) -> str:
    escalation = notice.escalation
    lines = [
        f"**{'Resolved' if notice.kind == 'resolution' else 'Escalation'}**: {notice.summary}",
        "",
        f"- escalation: `{escalation.id}` (path `{escalation.path_id}`, level {notice.level})",
        f"- check: `{escalation.check_id or '-'}`, failure: {escalation.failure_class or '-'}, "
        f"occurrences: {escalation.occurrences}",
        f"- severity: {notice.severity}, from: {notice.agent_id}",
        "",
        "```json",
        json.dumps(notice.message, indent=2, sort_keys=True),
        "```",
    ]
    return "\n".join(lines)


def deliver_agent_mail(
    notice: Notice,
    target: EscalationTarget,
    *,
    mail_root: Path,
    environ: Mapping[str, str],
    now: Callable[[], float],
    project_default: str,
) -> list[DeliveryRecord]:
    secrets = environ_secrets(environ)
    try:
        response = _send(notice, target, environ, project_default, secrets)
    except _Unsent as exc:
        detail = redact_text(str(exc), secrets)
        failed = attempt_record(
            notice, channel="agent_mail", attempt=1, status="failed", now=now, error=detail
        )
        fallback = deliver_mailbox(
            notice,
            mail_root,
            now=now,
            attempt=2,
            status="fallback",
            note=f"{exc.why} ({detail}); delivered to the mailbox instead",
        )
        return [failed, fallback]
    return [
        attempt_record(
            notice, channel="agent_mail", attempt=1, status="delivered", now=now, response=response
        )
    ]


def _send(
    notice: Notice,
    target: EscalationTarget,
    environ: Mapping[str, str],
    project_default: str,
    secrets: list[str],
) -> dict[str, Any]:
    url, token = _endpoint(target, environ, secrets)
    location = redact_url(url, secrets)
    try:
        arguments = send_message_arguments(notice, target, project_default=project_default)
    except ValueError as exc:
        raise _Unsent(str(exc), UNUSABLE) from None
    try:
        with McpSession(
            url, token=token, timeout=target.timeout_seconds or DEFAULT_TIMEOUT
        ) as session:
            result = session.call_tool(TOOL, arguments)
    except McpError as exc:
        raise _Unsent(str(exc), _reason(exc)) from None
    shown = result.get("structuredContent", result.get("content"))
    text = json.dumps(redact_mapping(shown, secrets))
    response = {
        "url": location,
        "tool": TOOL,
        "thread_id": arguments["thread_id"],
        "project": arguments["project_key"],
        "result": text[:_SHOWN_RESULT],
    }
    message_id = _message_id(result.get("structuredContent"), notice.target)
    if message_id is not None:
        response["message_id"] = message_id
    return response


def _endpoint(
    target: EscalationTarget, environ: Mapping[str, str], secrets: list[str]
) -> tuple[str, str | None]:
    """The target's url (``${ENV:...}`` expanded) and bearer token; ``_Unsent`` without them.

    ``secrets`` grows with the values put into the url and the token, so that the caller's
    redaction of an error covers them too."""
    if not target.url:
        raise _Unsent("the target has no url", UNUSABLE)
    try:
        url, used = expand_env(target.url, environ)
    except KeyError as exc:
        raise _Unsent(
            f"environment variable {exc.args[0]!r} is not set (the url refers to "
            f"${{ENV:{exc.args[0]}}})",
            UNUSABLE,
        ) from None
    secrets += used
    token = None
    if target.token_env:
        token = environ.get(target.token_env)
        if not token:
            raise _Unsent(
                f"token_env names {target.token_env!r}, which is not set in the environment",
                UNUSABLE,
            )
        secrets.append(token)
    return url, token


def _message_id(result: object, recipient: str) -> str | None:
    """The id the server gave the message to ``recipient``: mcp_agent_mail answers
    ``{"deliveries": [{"payload": {"id", "to", ...}}, ...]}`` (older servers: the payload)."""
    if not isinstance(result, Mapping):
        return None
    deliveries = result.get("deliveries")
    payloads = (
        [d.get("payload") for d in deliveries if isinstance(d, Mapping)]
        if isinstance(deliveries, list)
        else [result]
    )
    found = [p for p in payloads if isinstance(p, Mapping) and _an_id(p.get("id"))]
    addressed = [p for p in found if recipient in (p.get("to") or ())]
    chosen = addressed or found
    return str(chosen[0]["id"]) if chosen else None


def _an_id(value: object) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and bool(value)
    )


class ReceiptsUnread(Exception):
    """The acknowledgements could not be read; one line naming the server, secrets redacted."""


def pending_acknowledgements(
    target: EscalationTarget, *, recipient: str, project: str, environ: Mapping[str, str]
) -> frozenset[str] | None:
    """The ids of the messages to ``recipient`` in ``project`` that asked for an
    acknowledgement and have none yet (the server's ack-required view of that agent).

    ``None`` when the view is cut at ``ACK_VIEW_LIMIT``: which of the messages left out were
    acknowledged cannot be told then. ``ReceiptsUnread`` when the server cannot be asked or
    its answer is not such a list."""
    secrets = environ_secrets(environ)
    quote = urllib.parse.quote
    uri = ACK_VIEW.format(
        agent=quote(recipient, safe=""), project=quote(project, safe=""), limit=ACK_VIEW_LIMIT
    )
    try:
        url, token = _endpoint(target, environ, secrets)
    except _Unsent as exc:
        raise ReceiptsUnread(redact_text(str(exc), secrets)) from None
    try:
        with McpSession(
            url, token=token, timeout=target.timeout_seconds or DEFAULT_TIMEOUT
        ) as session:
            messages = _view_messages(session.read_resource(uri))
    except McpError as exc:
        raise ReceiptsUnread(redact_text(str(exc), secrets)) from None
    except ValueError as exc:
        where = redact_url(url, secrets)
        raise ReceiptsUnread(redact_text(f"{where}: {uri}: {exc}", secrets)) from None
    if len(messages) >= ACK_VIEW_LIMIT:
        return None
    return frozenset(str(m["id"]) for m in messages if _an_id(m.get("id")))


def _view_messages(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    contents = result.get("contents")
    if not isinstance(contents, list) or not contents:
        raise ValueError("the answer has no contents")
    first = contents[0]
    text = first.get("text") if isinstance(first, Mapping) else None
    if not isinstance(text, str):
        raise ValueError("the answer's content has no text")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"the content is not JSON: {text[:80]!r}") from None
    messages = data.get("messages") if isinstance(data, Mapping) else None
    if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
        raise ValueError("expected an object with a list of messages")
    return messages


def _reason(exc: McpError) -> str:
    # A gateway's 502/503/504 stands in for a server that is down.
    if exc.detail.startswith(("cannot reach", "no answer")) or _GATEWAY.match(exc.detail):
        return NO_ANSWER
    if exc.detail.startswith(("not an http", "no time left")):
        return UNUSABLE
    return REFUSED

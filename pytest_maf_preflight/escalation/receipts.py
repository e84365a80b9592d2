"""Read receipts (SPEC S4): a request the ``agent_mail`` channel delivered and its recipient
acknowledged on the mcp_agent_mail server acknowledges the escalation.

Each tick looks at the climbing escalations of the paths with an ``agent_mail`` target (the
paths loaded, and those the runtime recorded: a tick from cron loads none) and at their
``agent_mail`` deliveries since they were last acknowledged (a receipt for a message sent
before an acknowledgement that ran out does not count again). The server is asked once per
recipient and project: which of the messages to it still wait for an acknowledgement
(``channels.agent_mail.pending_acknowledgements``); ours that are no longer among them were
acknowledged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ..config.models import EscalationPathBody, EscalationTarget
from ..runtime.records import CLIMBING_STATES, EscalationRecord
from .channels.agent_mail import ReceiptsUnread, pending_acknowledgements

if TYPE_CHECKING:
    from ..runtime.interface import RuntimeState

CHANNEL = "agent_mail"


@dataclasses.dataclass(frozen=True)
class Receipt:
    """``target`` acknowledged ``message_id``, a request of ``escalation``."""

    escalation: EscalationRecord
    target: str
    message_id: str


@dataclasses.dataclass(frozen=True)
class _Ask:
    """One question to a server: which messages to ``recipient`` in ``project`` wait.
    ``target`` is the target's config as JSON (a model holding lists is no dict key)."""

    recipient: str
    project: str
    target: str


def read_receipts(
    runtime: RuntimeState,
    loaded: Mapping[str, EscalationPathBody],
    *,
    environ: Mapping[str, str],
) -> tuple[list[Receipt], list[str]]:
    """The receipts found, the first per escalation, and notes on what could not be read."""
    waiting: dict[_Ask, list[tuple[EscalationRecord, str]]] = {}
    configs: dict[str, EscalationTarget] = {}
    for escalation in _candidates(runtime, loaded):
        targets = _agent_mail_targets(escalation)
        since = escalation.acknowledged_at
        for delivery in runtime.deliveries(escalation.id):
            message_id = delivery.response.get("message_id")
            project = delivery.response.get("project")
            target = targets.get(delivery.target)
            if (
                delivery.channel != CHANNEL
                or delivery.status != "delivered"
                or target is None
                or not isinstance(message_id, str)
                or not isinstance(project, str)
                or (since is not None and delivery.attempted_at < since)
            ):
                continue
            ask = _Ask(delivery.target, project, target.model_dump_json())
            configs[ask.target] = target
            waiting.setdefault(ask, []).append((escalation, message_id))
    found: dict[str, Receipt] = {}
    notes: list[str] = []
    for ask, sent in waiting.items():
        try:
            pending = pending_acknowledgements(
                configs[ask.target], recipient=ask.recipient, project=ask.project, environ=environ
            )
        except ReceiptsUnread as exc:
            notes.append(f"read receipts of {ask.recipient!r} not read: {exc}")
            continue
        if pending is None:
            notes.append(
                f"read receipts of {ask.recipient!r} not read: more messages wait for its "
                "acknowledgement than the server lists at once"
            )
            continue
        for escalation, message_id in sent:
            if message_id not in pending and escalation.id not in found:
                found[escalation.id] = Receipt(escalation, ask.recipient, message_id)
    return list(found.values()), notes


def _candidates(
    runtime: RuntimeState, loaded: Mapping[str, EscalationPathBody]
) -> Iterable[EscalationRecord]:
    """The climbing escalations of every path that has (or had) an ``agent_mail`` target.
    Asked path by path: a tick must not read every open escalation to find the few."""
    path_ids = {path_id for path_id, body in loaded.items() if _mails(body.targets.values())}
    for definition in runtime.escalation_paths():
        config = definition.document.get("config")
        targets = config.get("targets") if isinstance(config, Mapping) else None
        if isinstance(targets, Mapping) and any(
            isinstance(t, Mapping) and t.get("channel") == CHANNEL for t in targets.values()
        ):
            path_ids.add(definition.path_id)
    for path_id in sorted(path_ids):
        yield from runtime.escalations(states=CLIMBING_STATES, path_id=path_id)


def _mails(targets: Iterable[EscalationTarget]) -> bool:
    return any(t.channel == CHANNEL for t in targets)


def _agent_mail_targets(escalation: EscalationRecord) -> dict[str, EscalationTarget]:
    """The escalation's own ``agent_mail`` targets, from its snapshot ({} if unreadable: its
    tick reports that)."""
    config = escalation.path_snapshot.get("config")
    try:
        body = EscalationPathBody.model_validate(config)
    except ValueError:
        return {}
    return {name: t for name, t in body.targets.items() if t.channel == CHANNEL}

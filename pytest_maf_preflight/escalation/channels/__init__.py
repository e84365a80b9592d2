"""Delivering an escalation notice to one target, by the target's channel.

- ``mailbox`` (the default, and the fallback of ``agent_mail``): ``mailbox``.
- ``webhook``: ``webhook``. ``command``: ``command``. ``agent_mail``: ``agent_mail``; each
  imported when a target first uses it.
- any other name: a channel a plugin adds (``..plugin_channels``).

``deliver`` returns one ``DeliveryRecord`` per attempt and never raises for delivery trouble:
the records say what failed. Only a target name that cannot be a mailbox name is an error
(``ValueError``), whatever the channel, since every channel may end in a mailbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ...config.models import EscalationTarget
from ...runtime.records import DeliveryRecord
from ..plugin_channels import PluginChannels
from .mailbox import check_target_name, deliver_mailbox, mailbox_dir
from .notice import Notice, NoticeKind, build_message

__all__ = ["Notice", "NoticeKind", "build_message", "deliver", "mailbox_dir"]


def deliver(
    notice: Notice,
    target: EscalationTarget | None,
    *,
    mail_root: Path,
    environ: Mapping[str, str],
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.time,
    project_default: str = "",
    plugins: PluginChannels | None = None,
) -> list[DeliveryRecord]:
    """Deliver ``notice`` to ``notice.target`` through ``target``'s channel (``None``: the
    mailbox). ``project_default`` is the agent_mail project when the target names none;
    ``plugins`` delivers the channels that are not built in (default: the entry points)."""
    check_target_name(notice.target)
    channel = target.channel if target is not None else "mailbox"
    if target is None or channel == "mailbox":
        return [deliver_mailbox(notice, mail_root, now=now)]
    # The other channels are imported when a target uses them: HTTP, processes and the MCP
    # client are not needed by an engine that only writes to mailboxes (or delivers nothing).
    if channel == "webhook":
        from .webhook import deliver_webhook

        return deliver_webhook(notice, target, environ=environ, sleep=sleep, now=now)
    if channel == "command":
        from .command import deliver_command

        return [deliver_command(notice, target, environ=environ, now=now)]
    if channel == "agent_mail":
        from .agent_mail import deliver_agent_mail

        return deliver_agent_mail(
            notice,
            target,
            mail_root=mail_root,
            environ=environ,
            now=now,
            project_default=project_default,
        )
    found = plugins if plugins is not None else PluginChannels()
    return [found.deliver(channel, notice, target, environ=environ, now=now)]

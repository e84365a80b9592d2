"""Escalation channels that plugins add (SPEC S8), beside the built-in ones.

A package adds a channel through the entry-point group ``maf_preflight.channels``: the entry
point's name is the channel's name, its object a callable
``deliver(notice, target, environ) -> ChannelResult``::

    [project.entry-points."maf_preflight.channels"]
    slack = "my_package.slack:deliver"

That reaches the gate and ``maf-preflight escalations tick`` alike (a tick has no pytest plugin
manager). In a gate run, a pytest plugin or conftest may deliver instead through the hooks
``pytest_maf_preflight_escalation_channels`` (the names, so configs naming them validate) and
``pytest_maf_preflight_deliver_escalation`` (the delivery); the hook is asked first.

Listing entry points reads every installed distribution's metadata, so it happens only when a
target names a channel that is not built in; an entry point's module is imported only when its
channel delivers. A channel that cannot be loaded, raises, or returns something other than a
``ChannelResult`` gives a failed delivery record, never a failed tick.

This module imports only the standard library at top level: a plugin imports ``ChannelResult``
from here without pulling in the built-in channels.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from ..config.models import EscalationTarget
    from ..runtime.records import DeliveryRecord
    from .channels.notice import Notice

__all__ = [
    "BUILTIN_CHANNELS",
    "ENTRY_POINT_GROUP",
    "ChannelResult",
    "PluginChannels",
    "entry_point_channels",
]

BUILTIN_CHANNELS = ("mailbox", "webhook", "command", "agent_mail")
ENTRY_POINT_GROUP = "maf_preflight.channels"


@dataclasses.dataclass(frozen=True)
class ChannelResult:
    """What a plugin's channel says about one delivery attempt.

    ``response`` is kept in the delivery record (secrets redacted), for example the id a
    service gave the message; ``error`` says why it was not delivered.
    """

    delivered: bool
    error: str | None = None
    response: Mapping[str, Any] = dataclasses.field(default_factory=dict)


#: ``pytest_maf_preflight_deliver_escalation`` bound to a pytest config: called with the
#: keywords ``channel``, ``notice``, ``target`` and ``environ``; None when no plugin delivers it.
HookDeliver = Callable[..., "ChannelResult | None"]


def entry_point_channels() -> dict[str, EntryPoint]:
    """The channels installed packages declare, by name (the first of a name wins)."""
    from importlib.metadata import entry_points

    found: dict[str, EntryPoint] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry)
    return found


@dataclasses.dataclass
class PluginChannels:
    """Where the channels that are not built in come from: the gate's hook (``hook``, which
    delivers ``hook_names``) and the entry points (looked up once, when first needed)."""

    hook: HookDeliver | None = None
    hook_names: frozenset[str] = frozenset()
    _entry_points: dict[str, EntryPoint] | None = dataclasses.field(default=None, repr=False)

    def names(self) -> set[str]:
        """Every channel name a target may use: built in, from the hook, from entry points."""
        return {*BUILTIN_CHANNELS, *self.hook_names, *self._entries()}

    def _entries(self) -> dict[str, EntryPoint]:
        if self._entry_points is None:
            self._entry_points = entry_point_channels()
        return self._entry_points

    def deliver(
        self,
        channel: str,
        notice: Notice,
        target: EscalationTarget,
        *,
        environ: Mapping[str, str],
        now: Callable[[], float] = time.time,
    ) -> DeliveryRecord:
        """One attempt through the plugin channel ``channel``, recorded whatever happens."""
        from ..redaction import redact_mapping, redact_text
        from .channels.notice import attempt_record, environ_secrets

        secrets = environ_secrets(environ)
        try:
            result = self._call(channel, notice, target, environ)
        except Exception as exc:  # a plugin's bug is a failed delivery, never a failed tick
            result = ChannelResult(False, f"channel {channel!r} raised {type(exc).__name__}: {exc}")
        if not isinstance(result, ChannelResult):
            result = ChannelResult(
                False,
                f"channel {channel!r} returned {type(result).__name__}, not a ChannelResult",
            )
        error = None
        if not result.delivered:
            error = redact_text(_one_line(result.error or "not delivered"), secrets)
        return attempt_record(
            notice,
            channel=channel,
            attempt=1,
            status="delivered" if result.delivered else "failed",
            now=now,
            error=error,
            response=redact_mapping(dict(result.response), secrets),
        )

    def _call(
        self, channel: str, notice: Notice, target: EscalationTarget, environ: Mapping[str, str]
    ) -> object:
        if self.hook is not None:
            answer = self.hook(channel=channel, notice=notice, target=target, environ=environ)
            if answer is not None:
                return answer
        entry = self._entries().get(channel)
        if entry is None:
            return ChannelResult(False, unknown_channel(channel, self.names()))
        try:
            deliver = entry.load()
        except Exception as exc:
            return ChannelResult(
                False,
                f"cannot load channel {channel!r} ({entry.value}): {type(exc).__name__}: {exc}",
            )
        return deliver(notice, target, environ)


def unknown_channel(channel: str, known: Iterable[str]) -> str:
    """The message for a channel nobody delivers, naming those that exist."""
    return (
        f"unknown channel {channel!r} (known: {', '.join(sorted(known))}); a plugin adds one "
        f"through the entry-point group {ENTRY_POINT_GROUP!r} or the "
        "pytest_maf_preflight_deliver_escalation hook"
    )


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())

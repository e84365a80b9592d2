"""The runtime a gated session records in (controller only).

Opened at session start as the first mode of the chain that starts; when the mode in use
cannot record the session at its end, the session goes to the next mode of the chain. Each
such fallback is noted for the summary and kept for a ``MafRuntimeFallback`` warning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..runtime.errors import RuntimeStateError, RuntimeUnavailable
from ..runtime.factory import OpenedRuntime, open_chain
from ..runtime.records import SessionBundle
from ..settings import Settings
from .state import GateNotes

if TYPE_CHECKING:
    from ..runtime.interface import RuntimeState


class GateStore:
    def __init__(self, settings: Settings, notes: GateNotes) -> None:
        self.settings = settings
        self.notes = notes
        #: The runtime in use; None before it opened, or when no mode could start.
        self.opened: OpenedRuntime | None = None
        self._fallbacks: list[str] = []

    def open(self) -> None:
        try:
            self.opened = open_chain(self.settings.runtime)
        except RuntimeUnavailable as exc:
            self._fell_back(f"nothing will be recorded: {exc}")
            return
        self.notes.runtime_mode = self.opened.mode
        for note in self.opened.skipped:
            self._fell_back(f"runtime {note}; using the next mode")
        from ..runtime.checkout_store import old_store_notice

        # In the header only, next to where the store is: once a run, until imported.
        self.notes.store_notice = old_store_notice(self.settings.runtime, self.settings.rootdir)

    def _fell_back(self, note: str) -> None:
        self.notes.runtime.append(note)
        self._fallbacks.append(note)

    def take_fallbacks(self) -> list[str]:
        """The fallbacks since the last call: each is warned about once."""
        taken, self._fallbacks = self._fallbacks, []
        return taken

    def record(
        self,
        bundle: SessionBundle,
        carry: Callable[[SessionBundle, RuntimeState], SessionBundle] | None = None,
    ) -> tuple[OpenedRuntime, SessionBundle] | None:
        """Write the session's bundle once; a mode that fails now hands over to the next.

        ``carry`` adds what the runtime it is written to does not hold yet (the messages
        written while the gate ran). Returns the runtime that holds it and the bundle as
        written, or None when no mode could.
        """
        opened = self.opened
        if opened is None:
            return None
        while True:
            # The session says which mode holds it, also after a fallback.
            bundle = dataclasses.replace(
                bundle, session=dataclasses.replace(bundle.session, runtime_mode=opened.mode)
            )
            if carry is not None:
                bundle = carry(bundle, opened.runtime)
            try:
                opened.runtime.record_session(bundle)
            except (RuntimeStateError, OSError) as exc:
                opened.runtime.close()
                self._fell_back(f"runtime {opened.mode} could not record: {exc}")
                try:
                    opened = open_chain(self.settings.runtime, opened.remaining)
                except RuntimeUnavailable as unavailable:
                    self._fell_back(f"the session was not recorded: {unavailable}")
                    self.opened = None
                    return None
                for note in opened.skipped:
                    self._fell_back(f"runtime {note}; using the next mode")
                self.opened = opened
                continue
            return opened, bundle

    def after_record(self, opened: OpenedRuntime, count: int) -> None:
        """The agent's heartbeat, and what the runtime has to say, once the session is in."""
        settings = self.settings
        try:
            opened.runtime.heartbeat(
                settings.agent_id,
                details={"environment": settings.environment},
                agent_type=settings.agent_type,
                capabilities=settings.agent_capabilities,
            )
            info = opened.runtime.info()
        except (RuntimeStateError, OSError) as exc:  # the session itself is recorded
            self.notes.runtime.append(
                f"recorded {count} execution(s) in {opened.mode}; then: {exc}"
            )
            return
        self.notes.runtime.extend(f"runtime {opened.mode}: {note}" for note in info.notes)
        if opened.mode == "memory":
            self.notes.runtime.append(
                f"recorded {count} execution(s) in memory only: they are lost when pytest exits"
            )
        else:
            self.notes.runtime.append(
                f"recorded {count} execution(s) in {opened.mode} ({info.location})"
            )

    def close(self) -> None:
        if self.opened is not None:
            self.opened.runtime.close()

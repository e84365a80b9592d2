"""The ``command`` channel: run the target's ``argv`` (no shell) with the message JSON on stdin.

Exit status 0 is delivered. The command runs in its own process group, so on timeout the whole
group is killed and nothing it started keeps the pipes (and us) waiting. It sees the
environment the delivery was given, plus ``MAF_ESCALATION_ID``, ``MAF_ESCALATION_LEVEL`` and
``MAF_ESCALATION_KIND``. Output kept in records is short and has secrets removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Callable, Mapping

from ...config.models import EscalationTarget
from ...redaction import redact_text
from ...runtime.records import DeliveryRecord
from .notice import Notice, attempt_record, environ_secrets

DEFAULT_TIMEOUT = 30.0
_SHOWN_OUTPUT = 500
#: After a kill, how long to wait for the pipes to close before giving up on them.
_REAP_SECONDS = 5.0


def deliver_command(notice: Notice, target: EscalationTarget, *, environ: Mapping[str, str],
                    now: Callable[[], float]) -> DeliveryRecord:
    def record(status: str, error: str | None = None,
               response: dict[str, object] | None = None) -> DeliveryRecord:
        return attempt_record(notice, channel="command", attempt=1, status=status, now=now,
                              error=error, response=response)

    if not target.argv:
        return record("failed", "the command target has no argv")
    argv = list(target.argv)
    secrets = environ_secrets(environ)
    timeout = target.timeout_seconds or DEFAULT_TIMEOUT
    env = {**environ, "MAF_ESCALATION_ID": notice.escalation.id,
           "MAF_ESCALATION_LEVEL": str(notice.level), "MAF_ESCALATION_KIND": notice.kind}
    stdin = json.dumps(notice.message).encode()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, start_new_session=True)
    except OSError as exc:
        return record("failed", redact_text(f"cannot run {argv[0]!r}: {exc.strerror or exc}",
                                            secrets))
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return record("failed", f"{argv[0]!r} did not exit within {timeout:g}s (killed)",
                      {"argv0": argv[0]})
    response: dict[str, object] = {
        "argv0": argv[0], "returncode": proc.returncode,
        "stdout": _tail(out, secrets), "stderr": _tail(err, secrets)}
    if proc.returncode == 0:
        return record("delivered", None, response)
    said = _tail(err, secrets) or _tail(out, secrets)
    return record("failed", f"{argv[0]!r} exited with status {proc.returncode}"
                  + (f": {said}" if said else ""), response)


def _tail(data: bytes | None, secrets: list[str]) -> str:
    text = (data or b"").decode("utf-8", "replace").strip()
    return redact_text(text[-_SHOWN_OUTPUT:], secrets)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    killpg = getattr(os, "killpg", None)
    with contextlib.suppress(OSError):
        if killpg is not None:
            killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=_REAP_SECONDS)
    if proc.poll() is None:  # pragma: no cover - only when the kill itself failed
        proc.kill()
        proc.wait()

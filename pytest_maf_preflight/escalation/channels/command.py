"""The ``command`` channel: run the target's ``argv`` (no shell) with the message JSON on stdin.

Exit status 0 is delivered. The command runs in its own process group, so on timeout the whole
group is killed. Its exit decides: output is read for a short grace after it, so nothing it left
in the background keeps the pipes (and us) waiting; what it left running is not killed. It sees the
environment the delivery was given, plus ``MAF_ESCALATION_ID``, ``MAF_ESCALATION_LEVEL`` and
``MAF_ESCALATION_KIND``. Output kept in records is short and has secrets removed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

from ...config.models import EscalationTarget
from ...processes.run import Output, ProcessTimeout, run_process
from ...redaction import redact_text
from ...runtime.records import DeliveryRecord
from .notice import Notice, attempt_record, environ_secrets

DEFAULT_TIMEOUT = 30.0
_SHOWN_OUTPUT = 500


def deliver_command(
    notice: Notice,
    target: EscalationTarget,
    *,
    environ: Mapping[str, str],
    now: Callable[[], float],
) -> DeliveryRecord:
    def record(
        status: str, error: str | None = None, response: dict[str, object] | None = None
    ) -> DeliveryRecord:
        return attempt_record(
            notice,
            channel="command",
            attempt=1,
            status=status,
            now=now,
            error=error,
            response=response,
        )

    if not target.argv:
        return record("failed", "the command target has no argv")
    argv = list(target.argv)
    secrets = environ_secrets(environ)
    timeout = target.timeout_seconds or DEFAULT_TIMEOUT
    env = {
        **environ,
        "MAF_ESCALATION_ID": notice.escalation.id,
        "MAF_ESCALATION_LEVEL": str(notice.level),
        "MAF_ESCALATION_KIND": notice.kind,
    }
    stdin = json.dumps(notice.message).encode()
    try:
        # A notifier may hand the message to a background job of its own: leave it running.
        proc = run_process(
            argv,
            deadline=time.monotonic() + timeout,
            env=env,
            stdin=stdin,
            keep=_SHOWN_OUTPUT,
            kill_on_exit=False,
        )
    except ProcessTimeout:
        return record(
            "failed", f"{argv[0]!r} did not exit within {timeout:g}s (killed)", {"argv0": argv[0]}
        )
    except OSError as exc:
        return record(
            "failed", redact_text(f"cannot run {argv[0]!r}: {exc.strerror or exc}", secrets)
        )
    out, err = proc.stdout, proc.stderr
    response: dict[str, object] = {
        "argv0": argv[0],
        "returncode": proc.returncode,
        "stdout": _tail(out, secrets),
        "stderr": _tail(err, secrets),
    }
    if proc.returncode == 0:
        return record("delivered", None, response)
    said = _tail(err, secrets) or _tail(out, secrets)
    return record(
        "failed",
        f"{argv[0]!r} exited with status {proc.returncode}" + (f": {said}" if said else ""),
        response,
    )


def _tail(output: Output, secrets: list[str]) -> str:
    # The end: what a failing notifier says last is what explains it.
    text = (output.head + output.tail)[-_SHOWN_OUTPUT:].decode("utf-8", "replace").strip()
    return redact_text(text[-_SHOWN_OUTPUT:], secrets)

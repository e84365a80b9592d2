"""The ``webhook`` channel: POST a PagerDuty-Events-v2-like JSON event to the target's URL.

The event: ``summary``, ``severity``, ``source`` (the sending agent), ``dedup_key``,
``event_action`` (``trigger`` for a request, ``resolve`` for a resolution) and
``custom_details`` (the escalation and the protocol message).

- ``url`` may contain ``${ENV:NAME}``; a variable that is not set fails the delivery before
  anything is sent. ``token_env`` names a variable holding a bearer token; a URL's
  ``user:password`` becomes Basic auth.
- 2xx is delivered. 429 and 5xx are retried with exponential backoff (``BACKOFF_BASE`` * 2^n,
  or the server's ``Retry-After`` when it gives seconds), ``RETRIES`` times; any other status,
  a redirect (not followed, so credentials stay where they were sent), a refused connection or
  a timeout fails at once. Each attempt, reading the answer included, ends within the target's
  ``timeout_seconds``; requests go through ``http_transport`` (and so through the proxy the
  environment names).
- One record per attempt. Records show the URL without its secrets and never the token or
  the values the URL was expanded with.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ... import http_transport
from ...config.models import EscalationTarget
from ...redaction import redact_text, redact_url
from ...runtime.records import DeliveryRecord
from .notice import Notice, attempt_record, environ_secrets, expand_env

DEFAULT_TIMEOUT = 10.0
RETRIES = 3
BACKOFF_BASE = 0.5
#: A server asking for a longer pause than this is waited on for this long only.
MAX_RETRY_AFTER = 60.0
_SHOWN_BODY = 500
_USER_AGENT = "pytest-maf-preflight"


class _Refused(Exception):
    """The delivery cannot be attempted (a missing variable, a URL that is not http(s))."""


def event(notice: Notice) -> dict[str, Any]:
    """The JSON body posted for ``notice``."""
    escalation = notice.escalation
    return {
        "summary": notice.summary,
        "severity": notice.severity,
        "source": notice.agent_id,
        "dedup_key": escalation.dedup_key,
        "event_action": "resolve" if notice.kind == "resolution" else "trigger",
        "custom_details": {
            "escalation_id": escalation.id,
            "path_id": escalation.path_id,
            "level": notice.level,
            "target": notice.target,
            "check_id": escalation.check_id,
            "failure_class": escalation.failure_class,
            "occurrences": escalation.occurrences,
            "message": notice.message,
        },
    }


def deliver_webhook(
    notice: Notice,
    target: EscalationTarget,
    *,
    environ: Mapping[str, str],
    sleep: Callable[[float], None],
    now: Callable[[], float],
) -> list[DeliveryRecord]:
    secrets = environ_secrets(environ)
    try:
        url, headers, more = _prepare(target, environ)
    except _Refused as exc:
        return [
            attempt_record(
                notice,
                channel="webhook",
                attempt=1,
                status="failed",
                now=now,
                error=redact_text(str(exc), secrets),
            )
        ]
    secrets += more
    location = redact_url(url, secrets)
    body = json.dumps(event(notice)).encode()
    timeout = target.timeout_seconds or DEFAULT_TIMEOUT
    records: list[DeliveryRecord] = []
    for attempt in range(1, RETRIES + 2):
        status, error, response, pause = _post(url, headers, body, timeout, secrets)
        response = {"url": location, **response}
        records.append(
            attempt_record(
                notice,
                channel="webhook",
                attempt=attempt,
                status=status,
                now=now,
                error=error,
                response=response,
            )
        )
        if pause is None or attempt > RETRIES:
            break
        sleep(pause if pause >= 0 else BACKOFF_BASE * 2 ** (attempt - 1))
    return records


def _prepare(
    target: EscalationTarget, environ: Mapping[str, str]
) -> tuple[str, dict[str, str], list[str]]:
    if not target.url:
        raise _Refused("the webhook target has no url")
    try:
        url, used = expand_env(target.url, environ)
    except KeyError as exc:
        raise _Refused(
            f"environment variable {exc.args[0]!r} is not set (the webhook url "
            f"refers to ${{ENV:{exc.args[0]}}})"
        ) from None
    try:
        http_transport.endpoint(url)
    except http_transport.UnsupportedUrl:
        raise _Refused(f"the webhook url {redact_url(url, used)!r} is not an http(s) URL") from None
    headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
    token = None
    if target.token_env:
        token = environ.get(target.token_env)
        if not token:
            raise _Refused(
                f"token_env names {target.token_env!r}, which is not set in the environment"
            )
    auth = http_transport.authorization(url, token)
    if auth is not None:
        headers["Authorization"] = auth
        used.append(auth.split(" ", 1)[1])  # the token, or the encoded user:password
    return url, headers, used


def _post(
    url: str, headers: Mapping[str, str], body: bytes, timeout: float, secrets: list[str]
) -> tuple[str, str | None, dict[str, Any], float | None]:
    """One POST: (status, error, response, pause). ``pause`` is None when not to retry, else
    the seconds the server asked for, or -1 for the usual backoff."""
    try:
        answer = http_transport.fetch(
            "POST",
            url,
            headers=headers,
            body=body,
            deadline=http_transport.Deadline(timeout),
            limit=_SHOWN_BODY * 4,
        )
    except TimeoutError:
        return "failed", f"no answer within {timeout:g}s", {}, None
    except http_transport.FAILURES as exc:
        detail = redact_text(str(exc) or type(exc).__name__, secrets)
        return "failed", f"cannot reach the webhook: {detail}", {}, None
    text = redact_text(answer.body.decode("utf-8", "replace")[:_SHOWN_BODY], secrets)
    response = {"status": answer.status, "body": text}
    if 200 <= answer.status < 300:
        return "delivered", None, response, None
    error = f"HTTP {answer.status} {answer.reason}".rstrip()
    if answer.status == 429 or answer.status >= 500:
        pause = http_transport.retry_after(answer.header("Retry-After"), MAX_RETRY_AFTER)
        return "failed", error, response, -1.0 if pause is None else pause
    if 300 <= answer.status < 400:
        error += " (redirects are not followed; set url to the final address)"
    return "failed", error, response, None

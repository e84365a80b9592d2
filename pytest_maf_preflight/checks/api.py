"""``api`` checks: one HTTP(S) request (through ``http_transport``) with expectations on the
answer.

The request, redirects included, ends at the check's deadline (or ``timeout_ms``, whichever is
sooner): the transport gives every socket operation the time that is left, so a server that
accepts and never answers, or answers byte by byte, cannot hold the check past it. Network
trouble (refused, timed out, TLS, bad HTTP, the proxy) is a failed observation with a message
saying which; only a bug raises.
"""

from __future__ import annotations

import codecs
import datetime
import http.client
import json
import re
import socket
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from .. import http_transport, matching
from ..config.errors import PathItem, format_path
from ..config.models import compile_regex
from ..redaction import ENV_REF, REDACTED, env_references, is_secret_key
from .base import CheckContext, CheckType, Definition, Observation

_SHOWN_BODY = 500  # characters of the body kept in a report
_MAX_BODY = 10 * 1024 * 1024  # bytes read at most; expectations see this much
_MAX_REDIRECTS = 10
_DEFAULT_TIMEOUT = 30.0  # seconds, when neither timeout_ms nor a deadline bounds the request
_REDIRECTS = {301, 302, 303, 307, 308}
_SHOWN_RESPONSE_HEADERS = 20
NO_BASE_URL = "no base_url: set base_url, ini maf_base_url or MAF_PREFLIGHT_BASE_URL"


class ApiDefinition(Definition):
    # Configs spell it ``json`` (the JSON Schema knows only that), so the loader's pydantic-only
    # path must refuse ``json_values`` as the schema does.
    model_config = ConfigDict(populate_by_name=False)

    url: str | None = None
    base_url: str | None = None
    endpoint: str | None = None
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str | int | float | bool] = Field(default_factory=dict)
    json_body: Any = None
    body: str | None = None
    verify_tls: bool = True
    follow_redirects: bool = True
    expected_status: int | list[int] = 200
    expected_headers: dict[str, str] = Field(default_factory=dict)
    body_contains: str | None = None
    body_regex: str | None = Field(default=None, json_schema_extra={"format": "regex"})
    json_values: dict[str, Any] = Field(
        default_factory=dict, alias="json", description="Dotted JSON path -> expected value"
    )
    max_latency_ms: float | None = Field(default=None, gt=0)
    timeout_ms: float | None = Field(
        default=None, gt=0, description="Original format's request timeout"
    )

    @field_validator("body_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return None if value is None else compile_regex(value)

    @field_validator("json_body")
    @classmethod
    def _json_only(cls, value: Any) -> Any:
        found = _not_json(value)
        if found is not None:
            path, item = found
            raise ValueError(
                f"{format_path(('json_body', *path))} is {_what(item)}, which JSON "
                "cannot carry; write it as a string (in quotes)"
            )
        return value

    @model_validator(mode="after")
    def _one_body(self) -> ApiDefinition:
        if self.json_body is not None and self.body is not None:
            raise ValueError("set json_body or body, not both")
        return self


def _not_json(value: Any) -> tuple[tuple[PathItem, ...], Any] | None:
    """Where in ``value`` (and what) the first thing ``json.dumps`` cannot write is, or None.

    TOML and YAML read unquoted dates and times as date/time objects; failing at load says
    where, rather than every run failing at the request.
    """
    stack: list[tuple[Any, tuple[PathItem, ...]]] = [(value, ())]
    while stack:  # not recursive: the nesting depth is the document's to choose
        item, path = stack.pop()
        if isinstance(item, dict):
            stack.extend((child, (*path, str(key))) for key, child in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((child, (*path, i)) for i, child in reversed(list(enumerate(item))))
        elif not isinstance(item, (str, int, float, bool)) and item is not None:
            return path, item
    return None


def _what(item: Any) -> str:
    if isinstance(item, (datetime.date, datetime.time)):  # datetime is a date
        return f"a date/time ({item.isoformat()})"
    return f"a {type(item).__name__} value"


class _Failed(Exception):
    """A problem that ends the check as failed, with this message."""


class _MissingVariable(Exception):
    pass


def _expand(template: str, environ: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise _MissingVariable(name)
        return environ[name]

    return ENV_REF.sub(value, template)


def _target(definition: ApiDefinition, ctx: CheckContext) -> str:
    if definition.url:
        url = definition.url
    else:
        base = definition.base_url or ctx.base_url
        if not base:
            raise _Failed(NO_BASE_URL)
        endpoint = definition.endpoint or ""
        if endpoint and not endpoint.startswith("/") and not base.endswith("/"):
            endpoint = "/" + endpoint
        elif endpoint.startswith("/") and base.endswith("/"):
            endpoint = endpoint[1:]
        url = base + endpoint
    if definition.query:
        pairs = [(k, _query_value(v)) for k, v in definition.query.items()]
        url += ("&" if urllib.parse.urlsplit(url).query else "?") + urllib.parse.urlencode(pairs)
    return url


def _query_value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _expectations(definition: ApiDefinition) -> list[str]:
    codes = definition.expected_status
    codes = [codes] if isinstance(codes, int) else codes
    expected = [f"status {' or '.join(map(str, codes))}"]
    expected += [f"header {name}: {value!r}" for name, value in definition.expected_headers.items()]
    if definition.body_contains is not None:
        expected.append(f"body containing {definition.body_contains!r}")
    if definition.body_regex is not None:
        expected.append(f"body matching {definition.body_regex!r}")
    expected += [f"json {path} == {value!r}" for path, value in definition.json_values.items()]
    if definition.max_latency_ms is not None:
        expected.append(f"latency <= {definition.max_latency_ms:g} ms")
    return expected


_MISSING = object()


def json_path(document: Any, path: str) -> Any:
    """The value at a dotted path (``checks.db``, ``items.0.id``), or ``_MISSING``.

    A key that itself contains dots is found too: at each level the longest run of segments
    that names a key wins.
    """
    parts = path.split(".") if path else []
    node = document
    i = 0
    while i < len(parts):
        if isinstance(node, Mapping):
            for j in range(len(parts), i, -1):
                key = ".".join(parts[i:j])
                if key in node:
                    node, i = node[key], j
                    break
            else:
                return _MISSING
        elif isinstance(node, list):
            part = parts[i]
            if not re.fullmatch(r"-?\d+", part) or not -len(node) <= int(part) < len(node):
                return _MISSING
            node, i = node[int(part)], i + 1
        else:
            return _MISSING
    return node


def _same(expected: Any, actual: Any) -> bool:
    """JSON equality: ``True`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        return expected.keys() == actual.keys() and all(
            _same(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, (list, tuple)) and isinstance(actual, list):
        return len(expected) == len(actual) and all(map(_same, expected, actual))
    return bool(expected == actual)


def _for_another_origin(
    headers: Mapping[str, str], from_env: set[str], source: str, destination: str
) -> dict[str, str]:
    """The headers that may follow a redirect from ``source`` to another origin.

    Credentials are for the origin they were written for, not wherever it points: every
    header named like a secret (the redactor's rule) and every header filled from the
    environment stays behind. A downgrade from https to http would put even the rest, and the
    request itself, on the wire in clear text; it is refused.
    """
    if (
        urllib.parse.urlsplit(source).scheme.lower() == "https"
        and urllib.parse.urlsplit(destination).scheme.lower() != "https"
    ):
        raise _Failed(
            f"refused to follow a redirect from https to {destination!r}: a "
            "downgrade to plain http is not followed"
        )
    return {
        name: value
        for name, value in headers.items()
        if not is_secret_key(name) and name.lower() not in from_env
    }


def _network_failure(exc: BaseException, url: str, timeout: float) -> str:
    parts = urllib.parse.urlsplit(url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    if isinstance(exc, http_transport.ProxyError):
        return str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {where}"
    if isinstance(exc, TimeoutError):
        return f"timed out: no complete answer from {where} within {timeout:g} s"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed for {where}: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error with {where}: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host {parts.hostname!r}: {exc.strerror}"
    if isinstance(exc, http.client.HTTPException):
        return f"invalid HTTP answer from {where}: {type(exc).__name__} {exc}".rstrip()
    if isinstance(exc, ConnectionError):
        return f"connection to {where} failed: {exc.strerror or type(exc).__name__}"
    if isinstance(exc, OSError):
        return f"connection to {where} failed: {exc.strerror or exc}"
    return f"request to {where} failed: {exc}"


def _shown_headers(definition: ApiDefinition, sent: Mapping[str, str]) -> dict[str, str]:
    shown: dict[str, str] = {}
    for name, template in definition.headers.items():
        if is_secret_key(name):
            shown[name] = REDACTED
        else:
            shown[name] = ENV_REF.sub(REDACTED, template)
    for name, value in sent.items():
        if name not in shown:
            shown[name] = REDACTED if is_secret_key(name) else value
    return shown


def _response_headers(response: http_transport.Reply, wanted: list[str]) -> dict[str, str]:
    lowered = {w.lower() for w in wanted} | {"content-type", "content-length", "location"}
    shown: dict[str, str] = {}
    for name, value in response.headers:
        if name.lower() in lowered or len(shown) < _SHOWN_RESPONSE_HEADERS:
            shown[name] = REDACTED if is_secret_key(name) else value
    return shown


def run(definition: ApiDefinition, ctx: CheckContext) -> Observation:
    expected_list = _expectations(definition)
    expected = ", ".join(expected_list)
    try:
        url = _target(definition, ctx)
        headers = {name: _expand(value, ctx.environ) for name, value in definition.headers.items()}
    except _Failed as exc:
        return Observation(False, expected, str(exc))
    except _MissingVariable as exc:
        name = exc.args[0]
        return Observation(
            False,
            expected,
            f"environment variable {name!r} is not set (headers refer to ${{ENV:{name}}})",
        )
    body: bytes | None = None
    lowered = {name.lower() for name in headers}
    if definition.json_body is not None:
        body = json.dumps(definition.json_body).encode()
        if "content-type" not in lowered:
            headers["Content-Type"] = "application/json"
    elif definition.body is not None:
        body = definition.body.encode()
    timeout = ctx.remaining(_DEFAULT_TIMEOUT)
    if definition.timeout_ms is not None:
        timeout = min(timeout, definition.timeout_ms / 1000)
    start = time.monotonic()
    deadline = http_transport.Deadline(timeout)
    request = {
        "method": definition.method,
        "url": url,
        "headers": _shown_headers(definition, headers),
    }
    details: dict[str, Any] = {"request": request}
    method, target, sent_body, sent_headers = definition.method, url, body, dict(headers)
    from_env = {
        name.lower() for name, template in definition.headers.items() if env_references(template)
    }
    redirects: list[str] = []
    seen = {(method, target)}
    try:
        while True:
            response = http_transport.fetch(
                method,
                target,
                headers=sent_headers,
                body=sent_body,
                deadline=deadline,
                limit=_MAX_BODY,
                verify_tls=definition.verify_tls,
                environ=ctx.environ,  # the gate's copy: the proxy variables as the check sees them
            )
            location = response.header("Location")
            if (
                not definition.follow_redirects
                or response.status not in _REDIRECTS
                or location is None
            ):
                break
            if len(redirects) >= _MAX_REDIRECTS:
                raise _Failed(f"more than {_MAX_REDIRECTS} redirects (last to {location!r})")
            next_url = urllib.parse.urljoin(target, location)
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, sent_body = ("HEAD" if method == "HEAD" else "GET"), None
                sent_headers = {
                    k: v
                    for k, v in sent_headers.items()
                    if k.lower() not in ("content-type", "content-length")
                }
            if http_transport.origin(next_url) != http_transport.origin(target):
                sent_headers = _for_another_origin(sent_headers, from_env, target, next_url)
            if (method, next_url) in seen:
                redirects.append(next_url)
                details["redirects"] = redirects
                raise _Failed(f"redirect loop: {next_url!r} was already requested")
            seen.add((method, next_url))
            redirects.append(next_url)
            target = next_url
    except _Failed as exc:
        details["latency_ms"] = round((time.monotonic() - start) * 1000, 1)
        return Observation(False, expected, str(exc), details)
    except http_transport.UnsupportedUrl as exc:
        details["latency_ms"] = round((time.monotonic() - start) * 1000, 1)
        return Observation(False, expected, f"unsupported URL {target!r}: {exc}", details)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        details["latency_ms"] = round((time.monotonic() - start) * 1000, 1)
        return Observation(False, expected, _network_failure(exc, target, timeout), details)
    latency_ms = (time.monotonic() - start) * 1000
    text = response.body.decode(_charset(response), "replace")
    if redirects:
        details["redirects"] = redirects
    details.update(
        {
            "status": response.status,
            "reason": response.reason,
            "headers": _response_headers(response, list(definition.expected_headers)),
            "body": text[:_SHOWN_BODY],
            "latency_ms": round(latency_ms, 1),
        }
    )
    problems = _problems(definition, response, text, latency_ms, ctx)
    status = f"status {response.status}"
    observed = (
        f"{status}; " + "; ".join(problems) if problems else f"{status} in {latency_ms:.0f} ms"
    )
    return Observation(not problems, expected, observed, details)


def _charset(response: http_transport.Reply) -> str:
    content_type = response.header("Content-Type") or ""
    match = re.search(r"charset=\"?([\w.-]+)", content_type, re.IGNORECASE)
    if match:
        try:
            return codecs.lookup(match.group(1)).name
        except LookupError:
            pass
    return "utf-8"


def _problems(
    definition: ApiDefinition,
    response: http_transport.Reply,
    text: str,
    latency_ms: float,
    ctx: CheckContext,
) -> list[str]:
    problems: list[str] = []
    codes = definition.expected_status
    codes = [codes] if isinstance(codes, int) else codes
    if response.status not in codes:
        problems.append(f"status {response.status} is not {' or '.join(map(str, codes))}")
    for name, value in definition.expected_headers.items():
        actual = response.header(name)
        if actual is None:
            problems.append(f"header {name} is missing")
        elif actual != value:
            problems.append(f"header {name} is {actual!r}, expected {value!r}")
    if definition.body_contains is not None and definition.body_contains not in text:
        problems.append(f"body does not contain {definition.body_contains!r}")
    if definition.body_regex is not None and not matching.search(
        definition.body_regex, text, ctx.remaining(_DEFAULT_TIMEOUT)
    ):
        problems.append(f"body does not match {definition.body_regex!r}")
    if definition.json_values:
        try:
            document = json.loads(text)
        except ValueError:
            problems.append("body is not JSON (json expectations cannot be checked)")
        else:
            for path, value in definition.json_values.items():
                actual = json_path(document, path)
                if actual is _MISSING:
                    problems.append(f"json {path} is missing")
                elif not _same(value, actual):
                    problems.append(f"json {path} is {actual!r}, expected {value!r}")
    if definition.max_latency_ms is not None and latency_ms > definition.max_latency_ms:
        problems.append(f"latency {latency_ms:.0f} ms exceeds {definition.max_latency_ms:g} ms")
    return problems


CHECK_TYPE = CheckType("api", ApiDefinition, run, "HTTP(S) request with expectations", waits=True)

__all__ = ["CHECK_TYPE", "NO_BASE_URL", "ApiDefinition", "json_path", "run"]

"""Secret redaction for everything the plugin shows or stores."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

REDACTED = "***"

#: Keys whose values are secrets wherever they appear (compared case-insensitively).
_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|authorization|auth|credential|cookie"
    r"|private[_-]?key|dsn|(^|[_.-])key$)",  # ``(^|_)key$``: SSH_KEY, SIGNING_KEY, key
    re.IGNORECASE,
)
#: A ``${ENV:NAME}`` reference; group 1 is the name. Shared by everything that expands them.
ENV_REF = re.compile(r"\$\{ENV:([A-Za-z_][A-Za-z0-9_]*)\}")
#: ``scheme://user:password@``: the password is group 2. It ends at the first ``@`` (so an
#: unencoded ``/``, ``?`` or ``#`` in a password is hidden too) but never crosses whitespace or
#: quotes, so it stays inside one URL. The bounds keep the scan linear on hostile text.
_URL_PASSWORD = re.compile(
    r"(\b[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s:/?#@\"'<>]{0,256}:)([^\s@\"'<>]{1,1024})(@)"
)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret value in ``text``, and the password of every
    URL with credentials (``postgres://user:***@host/db``).

    Longest secrets first, so a secret that contains another is not half-replaced.
    """
    for secret in _ordered(secrets):
        text = text.replace(secret, REDACTED)
    if "://" not in text:  # most text has no URL at all; skip the regex
        return text
    return _URL_PASSWORD.sub(rf"\g<1>{REDACTED}\g<3>", text)


def _ordered(secrets: Iterable[str]) -> tuple[str, ...]:
    if isinstance(secrets, _Ordered):
        return secrets
    return _Ordered(sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True))


class _Ordered(tuple[str, ...]):
    """Secrets already filtered and sorted longest first, so a walk sorts them once."""


def redact_mapping(data: Any, secrets: Iterable[str] = ()) -> Any:
    """Return a copy of ``data`` with known secret values hidden, and every scalar under a
    secret-looking key hidden, however deep (``{"credentials": {"user": ..., "pw": ...}}``,
    ``{"tokens": [...]}``). Mapping keys are kept, so the shape stays readable."""
    values = _ordered(secrets)

    def walk(value: Any, hidden: bool) -> Any:
        if isinstance(value, Mapping):
            return {k: walk(v, hidden or is_secret_key(str(k))) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [walk(v, hidden) for v in value]
        if hidden and value is not None:
            return REDACTED
        if isinstance(value, str):
            return redact_text(value, values)
        return value

    return walk(data, False)


def env_references(text: str) -> list[str]:
    """Names of the environment variables a ``${ENV:NAME}`` template refers to."""
    return ENV_REF.findall(text)


def redact_url(url: str, secrets: Sequence[str] = ()) -> str:
    """The URL without its password or secret-looking query values (and without ``secrets``)."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = "&".join(
        f"{key}={REDACTED if is_secret_key(key) else value}" if sep else key
        for key, sep, value in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    cleaned = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    return redact_text(cleaned, secrets)

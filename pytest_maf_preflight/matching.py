"""Regular expressions from configs: one dialect, and matching that ends by the check's deadline.

Configs name regexes (``stdout_regex``, environment ``patterns``, an api ``body_regex``,
``pattern`` in a file_system ``json_schema``) and the text they are matched against often comes
from outside (a server's body, a command's output). Python's ``re`` backtracks without bound and
holds the GIL while it does, so one catastrophic pattern (``(a|aa)+$``) freezes every check and
the runner's deadline watch with it. These are matched with the `regex` package instead: the
same syntax as ``re`` (its compatible ``VERSION0`` mode, the default, which adds Unicode
properties such as ``\\p{L}``, atomic groups and possessive quantifiers), a timeout it checks
while it backtracks, and the GIL released while it matches (``concurrent=True``). A match that
would outlive the deadline raises :class:`~pytest_maf_preflight.checks.base.CheckTimeout`, which
the runner reports as ``timeout``.

``regex`` is imported on first use, so a session whose configs hold no regex never loads it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

#: The longest a match may take when the caller has no deadline (direct use, tests).
_NO_DEADLINE_LIMIT = 3600.0
#: A deadline already passed still gets this long, so a cheap match is not refused outright.
_MIN_TIMEOUT = 0.001


def validate(pattern: str) -> str:
    """``pattern`` if it compiles in the configs' dialect; ``ValueError`` saying why if not."""
    import regex

    try:
        regex.compile(pattern)
    except regex.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    except (OverflowError, RecursionError, MemoryError) as exc:
        raise ValueError(f"invalid regular expression: {type(exc).__name__}") from None
    return pattern


def is_regex(value: object) -> bool:
    """The JSON Schema ``regex`` format in this dialect (non-strings are not its concern)."""
    if isinstance(value, str):
        validate(value)
    return True


def _timeout(remaining: float | None) -> float:
    return _NO_DEADLINE_LIMIT if remaining is None else max(_MIN_TIMEOUT, remaining)


def _timed_out(pattern: str, remaining: float | None) -> Exception:
    from .checks.base import CheckTimeout

    return CheckTimeout(
        f"matching the regular expression {pattern!r} did not end within "
        f"{_timeout(remaining):.3g} s (the check's deadline); it may backtrack "
        "catastrophically on this text"
    )


def search(pattern: str, text: str, remaining: float | None) -> bool:
    """Whether ``pattern`` matches somewhere in ``text``, decided within ``remaining`` seconds."""
    import regex

    try:
        return regex.search(pattern, text, timeout=_timeout(remaining), concurrent=True) is not None
    except TimeoutError:
        raise _timed_out(pattern, remaining) from None


def fullmatch(pattern: str, text: str, remaining: float | None) -> bool:
    """Whether ``pattern`` matches all of ``text``, decided within ``remaining`` seconds."""
    import regex

    try:
        return (
            regex.fullmatch(pattern, text, timeout=_timeout(remaining), concurrent=True) is not None
        )
    except TimeoutError:
        raise _timed_out(pattern, remaining) from None


#: Keywords whose regexes jsonschema would match with ``re``, and whose rules these replace.
SCHEMA_REGEX_KEYWORDS = ("pattern", "patternProperties", "additionalProperties")


def refuse_unbounded_schema(schema: Any) -> None:
    """``ValueError`` for a schema whose regexes this module cannot bound.

    jsonschema decides ``unevaluatedProperties`` by matching ``patternProperties`` with ``re``
    itself, deep inside its annotation walk; rather than match those without a deadline, the
    combination is refused when the config loads.
    """
    found: set[str] = set()

    def walk(node: Any, depth: int) -> None:
        if depth > 200:  # a schema nested this deep is refused by the checker anyway
            return
        if isinstance(node, Mapping):
            found.update(k for k in ("unevaluatedProperties", "patternProperties") if k in node)
            for value in node.values():
                walk(value, depth + 1)
        elif isinstance(node, list):
            for value in node:
                walk(value, depth + 1)

    walk(schema, 0)
    if {"unevaluatedProperties", "patternProperties"} <= found:
        raise ValueError(
            "a json_schema may not combine unevaluatedProperties with "
            "patternProperties: their regexes could not be matched within the "
            "check's deadline"
        )


def schema_validator(schema: Mapping[str, Any], remaining: Any) -> Validator:
    """A Draft 2020-12 validator for ``schema`` whose regex keywords match through this module.

    ``remaining`` is a callable giving the seconds left (``CheckContext.remaining``-like, called
    with no argument) or None for no deadline.
    """
    from jsonschema import Draft202012Validator, ValidationError, validators

    def left() -> float | None:
        return None if remaining is None else remaining()

    def pattern(validator: Any, patrn: str, instance: Any, _schema: Any) -> Iterator[Any]:
        if validator.is_type(instance, "string") and not search(patrn, instance, left()):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    def pattern_properties(
        validator: Any, patterns: Mapping[str, Any], instance: Any, _schema: Any
    ) -> Iterator[Any]:
        if not validator.is_type(instance, "object"):
            return
        for patrn, subschema in patterns.items():
            for key, value in instance.items():
                if search(patrn, key, left()):
                    yield from validator.descend(value, subschema, path=key, schema_path=patrn)

    def additional_properties(
        validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
    ) -> Iterator[Any]:
        if not validator.is_type(instance, "object"):
            return
        named = schema.get("properties", {})
        patterns = list(schema.get("patternProperties", {}))
        extras = [
            key
            for key in instance
            if key not in named and not any(search(p, key, left()) for p in patterns)
        ]
        if validator.is_type(additional, "object"):
            for key in extras:
                yield from validator.descend(instance[key], additional, path=key)
        elif not additional and extras:
            shown = ", ".join(repr(key) for key in sorted(extras, key=str))
            yield ValidationError(f"additional properties are not allowed ({shown} unexpected)")

    bounded = validators.extend(
        Draft202012Validator,
        {  # type: ignore[no-untyped-call]
            "pattern": pattern,
            "patternProperties": pattern_properties,
            "additionalProperties": additional_properties,
        },
    )
    return bounded(schema)  # type: ignore[no-any-return]

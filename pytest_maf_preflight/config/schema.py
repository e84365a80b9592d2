"""The JSON Schema of config documents, generated from the pydantic models, and its enforcement.

The schema is assembled from the envelope model, one body model per ``config_type`` and one
definition model per registered ``test_type``, joined with ``if``/``then`` so that jsonschema
reports errors inside the right branch instead of "not valid under any of the given schemas".
"""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Iterator
from typing import Any

from ..checks.base import CheckRegistry
from ..names import NAME_PATTERN, NAME_RULE
from .errors import PathItem, kind
from .models import (
    BODY_MODELS,
    CONFIG_TYPES,
    ID_PATTERN,
    REFUSED_KEYS,
    SEMVER_PATTERN,
    PreflightConfig,
)

SCHEMA_ID = "https://pytest-maf-preflight.invalid/schema/preflight-config.json"
#: What the patterns of the models mean, for messages a person can act on.
_PATTERN_MEANINGS = {
    ID_PATTERN: "an id: only letters, digits, '_' and '-' (it becomes a file name)",
    SEMVER_PATTERN: "a semantic version MAJOR.MINOR.PATCH such as '1.0.0'",
    r"^[A-Za-z_][A-Za-z0-9_]*$": "an environment variable name (letters, digits, '_')",
    NAME_PATTERN: f"an environment name ({NAME_RULE})",
    r"^r?w?x?$": "an access mode made of 'r', 'w', 'x' in that order, such as 'rw'",
}
_REF = "#/$defs/{model}"


def _model_schema(model: Any, defs: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema(ref_template=_REF, by_alias=True)
    defs.update(schema.pop("$defs", {}))
    return schema


def build_schema(registry: CheckRegistry) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    envelope = _model_schema(PreflightConfig, defs)
    bodies: dict[str, dict[str, Any]] = {}
    for config_type, model in BODY_MODELS.items():
        bodies[config_type] = _model_schema(model, defs)

    smoke = bodies["smoke_test"]
    smoke["properties"]["test_type"] = {
        "type": "string",
        "enum": registry.names(),
        "title": "Test Type",
    }
    smoke["allOf"] = []
    for check_type in registry:
        name = f"{check_type.definition.__name__}"
        defs[name] = _model_schema(check_type.definition, defs)
        smoke["allOf"].append(
            {
                "if": {
                    "properties": {"test_type": {"const": check_type.name}},
                    "required": ["test_type"],
                },
                "then": {"properties": {"test_definition": {"$ref": _REF.format(model=name)}}},
            }
        )
    branches = []
    for config_type in CONFIG_TYPES:
        body_name = BODY_MODELS[config_type].__name__
        defs[body_name] = bodies[config_type]
        branches.append(
            {
                "if": {
                    "properties": {"config_type": {"const": config_type}},
                    "required": ["config_type"],
                },
                "then": {"properties": {"config": {"$ref": _REF.format(model=body_name)}}},
            }
        )
    envelope["allOf"] = branches
    envelope["title"] = "pytest-maf-preflight config"
    single = {"$ref": "#/$defs/PreflightConfig"}
    defs["PreflightConfig"] = envelope
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "pytest-maf-preflight config file",
        "description": "One config, or a list of configs under 'configs'.",
        "anyOf": [
            single,
            {
                "type": "object",
                "properties": {"configs": {"type": "array", "items": single, "minItems": 1}},
                "required": ["configs"],
                "additionalProperties": False,
            },
        ],
        "$defs": defs,
    }


class SchemaValidator:
    """Validates one config (a single entry, after migration) against the generated schema."""

    def __init__(self, registry: CheckRegistry) -> None:
        from jsonschema import Draft202012Validator, FormatChecker

        from ..matching import is_regex

        # "regex" in the configs' own dialect (see ``matching``), not ``re``'s.
        formats = FormatChecker(formats=())
        formats.checks("regex", raises=ValueError)(is_regex)
        self.schema = build_schema(registry)
        entry = {"$ref": "#/$defs/PreflightConfig", "$defs": self.schema["$defs"]}
        self._entry = Draft202012Validator(entry, format_checker=formats)
        body_defs = self.schema["$defs"]
        self._bodies = {
            config_type: Draft202012Validator(
                {"$ref": _REF.format(model=BODY_MODELS[config_type].__name__), "$defs": body_defs},
                format_checker=formats,
            )
            for config_type in CONFIG_TYPES
        }

    def errors(self, document: Any) -> list[tuple[tuple[PathItem, ...], str]]:
        return list(_explain(self._entry.iter_errors(document)))

    def body_errors(self, config_type: str, body: Any) -> list[tuple[tuple[PathItem, ...], str]]:
        return list(_explain(self._bodies[config_type].iter_errors(body)))


def _explain(errors: Iterator[Any]) -> Iterator[tuple[tuple[PathItem, ...], str]]:
    """Turn jsonschema errors into (path, message), with "did you mean" for unknown keys."""
    seen = set()
    for error in sorted(
        errors, key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path)))
    ):
        path = tuple(error.absolute_path)
        for item in _describe(error, path):
            if item not in seen:
                seen.add(item)
                yield item


def _describe(error: Any, path: tuple[PathItem, ...]) -> Iterator[tuple[tuple[PathItem, ...], str]]:
    if len(error.schema_path) >= 2 and list(error.schema_path)[-2] == "propertyNames":
        path = (*path, error.instance)  # about a key of this mapping, not a value in it
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(error.schema.get("properties", {}))
        refused = REFUSED_KEYS.get(str(error.schema.get("title")), {})
        for key in error.instance:
            if key in allowed:
                continue
            if key in refused:
                yield (*path, str(key)), refused[key]
                continue
            hint = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            message = f"unknown key {key!r}"
            message += (
                f" (did you mean {hint[0]!r}?)"
                if hint
                else (f"; expected one of: {', '.join(allowed)}" if allowed else "")
            )
            yield (*path, str(key)), message
        return
    if error.validator == "enum":
        options = ", ".join(repr(o) for o in error.validator_value)
        hint = difflib.get_close_matches(
            str(error.instance), [str(o) for o in error.validator_value], n=1
        )
        message = f"{error.instance!r} is not one of {options}"
        yield path, message + (f" (did you mean {hint[0]!r}?)" if hint else "")
        return
    if error.validator == "type":
        expected = error.validator_value
        if isinstance(expected, list):
            expected = " or ".join(expected)
        yield path, f"expected {expected}, got {_seen(error.instance)}"
        return
    bound = _BOUNDS.get(error.validator)
    if bound is not None:
        yield path, f"expected {bound} {error.validator_value}, got {_short(error.instance)}"
        return
    if error.validator in ("minItems", "minLength", "maxItems", "maxLength"):
        least = error.validator.startswith("min")
        unit = "item" if error.validator.endswith("Items") else "character"
        count = error.validator_value
        yield (
            path,
            (
                f"expected at {'least' if least else 'most'} {count} {unit}"
                f"{'s' if count != 1 else ''}, got {len(error.instance)}"
            ),
        )
        return
    if error.validator == "required":
        yield path, error.message.replace("is a required property", "is required")
        return
    if error.validator == "pattern":
        meaning = _PATTERN_MEANINGS.get(error.validator_value)
        yield (
            path,
            (
                f"{_short(error.instance)} is not {meaning}"
                if meaning
                else f"{_short(error.instance)} does not match {error.validator_value!r}"
            ),
        )
        return
    if error.validator == "format" and error.validator_value == "regex":
        yield path, f"{_short(error.instance)} is not a valid regular expression"
        return
    if error.validator in ("anyOf", "oneOf") and error.context:
        # Report the branch that got furthest (deepest error, and at equal depth one the value
        # is at least the type of), not the union as a whole.
        best = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
        yield from _describe(best, tuple(best.absolute_path))
        return
    yield path, error.message


_BOUNDS = {
    "minimum": "at least",
    "exclusiveMinimum": "more than",
    "maximum": "at most",
    "exclusiveMaximum": "less than",
}


def _seen(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (datetime.date, datetime.time)):
        # YAML and TOML read unquoted dates and times as such; a string needs quotes.
        return f"a {type(value).__name__} {value.isoformat()} (put it in quotes for a string)"
    return f"{kind(value)} {_short(value)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

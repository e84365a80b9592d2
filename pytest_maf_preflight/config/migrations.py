"""Config format versions and the explicit steps between them.

Format 1 is the original TypeScript system's camelCase documents; format 2 (current) is the
Pythonic snake_case one. A document says its format in ``schema_version``; without it, any
camelCase field name marks format 1. Each step is a pure function on the raw document, applied
before schema validation, so errors are reported against the migrated field names.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

CURRENT_FORMAT = 2

#: Fields whose values are free-form maps: their keys are data (header names, variable names,
#: package names, JSON paths) and must never be renamed.
_OPAQUE = frozenset(
    {
        "headers",
        "query",
        "metadata",
        "packages",
        "patterns",
        "json",
        "json_schema",
        "json_body",
        "env",
        "expected_headers",
        "mcpServers",
    }
)
#: Fields whose keys are names chosen by the user but whose values are structured.
_NAMED = frozenset({"environment_overrides", "targets", "escalate_to"})
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


class MigrationError(ValueError):
    """A document that no step can bring to the current format; ``path`` is where (in the
    migrated, snake_case names)."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ("schema_version",)) -> None:
        super().__init__(message)
        self.path = path


def _twice(first: str, second: str, path: tuple[str | int, ...]) -> MigrationError:
    """Two spellings of one key in one mapping: keeping either would drop the other silently."""
    return MigrationError(
        f"{first!r} and {second!r} are the same setting spelled twice; keep one", path
    )


def snake(name: str) -> str:
    return _CAMEL.sub(r"_\1", name).lower()


def _has_camel_keys(value: Any, opaque: bool = False, names: bool = False) -> bool:
    if isinstance(value, dict):
        for key, item in value.items():
            if names:
                if _has_camel_keys(item, opaque):
                    return True
                continue
            if not opaque and isinstance(key, str) and snake(key) != key:
                return True
            name = snake(key) if isinstance(key, str) else key
            if _has_camel_keys(item, opaque or name in _OPAQUE, name in _NAMED):
                return True
    elif isinstance(value, list):
        return any(_has_camel_keys(item, opaque) for item in value)
    return False


def detect_format(document: dict[str, Any]) -> int:
    declared = document.get("schema_version", document.get("schemaVersion"))
    if isinstance(declared, int) and not isinstance(declared, bool):
        return declared
    return 1 if _has_camel_keys(document) else CURRENT_FORMAT


def _rename_keys(value: Any, path: tuple[str | int, ...] = ()) -> Any:
    """snake_case every structural key; leave opaque maps and user-chosen names alone."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        spelled: dict[Any, Any] = {}
        for key, item in value.items():
            new_key = snake(key) if isinstance(key, str) else key
            if new_key in out:
                raise _twice(spelled[new_key], key, (*path, new_key))
            spelled[new_key] = key
            here = (*path, new_key)
            if new_key in _OPAQUE:
                out[new_key] = item
            elif new_key in _NAMED and isinstance(item, dict):
                out[new_key] = {name: _rename_keys(v, (*here, name)) for name, v in item.items()}
            else:
                out[new_key] = _rename_keys(item, here)
        return out
    if isinstance(value, list):
        return [_rename_keys(item, (*path, i)) for i, item in enumerate(value)]
    return value


def _spelling(document: Any, path: tuple[str | int, ...]) -> str:
    """How the original ``document`` spelled the last key of the snake_case ``path``."""
    node = document
    for part in path[:-1]:
        if isinstance(node, dict):
            node = next(
                (
                    v
                    for k, v in node.items()
                    if isinstance(k, str) and isinstance(part, str) and part in (k, snake(k))
                ),
                None,
            )
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return str(path[-1])
    if isinstance(node, dict):
        return next((k for k in node if isinstance(k, str) and snake(k) == path[-1]), str(path[-1]))
    return str(path[-1])


def _v1_body(
    body: Any,
    config_type: Any,
    doc: dict[str, Any] | None,
    original: Any,
    path: tuple[str | int, ...],
    test_type: Any = None,
) -> Any:
    """Move a body's original-only fields. ``doc`` is None for an environment override, whose
    ``test_type`` (when it has none of its own) is the base body's. ``original`` is the
    document before renaming (to name the keys as written), ``path`` where the body is."""
    if not isinstance(body, dict):
        return body
    definition = body.get("test_definition")
    test_type = body.get("test_type", test_type)
    where = (*path, "test_definition")
    if isinstance(definition, dict):
        if test_type in ("api", "performance") and "timeout" in definition:
            # The original api timeout was in milliseconds.
            if "timeout_ms" in definition:
                raise _twice(
                    "timeout", _spelling(original, (*where, "timeout_ms")), (*where, "timeout_ms")
                )
            definition["timeout_ms"] = definition.pop("timeout")
        if "connection_string" in definition:
            if "url" in definition:
                raise _twice(
                    _spelling(original, (*where, "connection_string")), "url", (*where, "url")
                )
            definition["url"] = definition.pop("connection_string")
    if config_type == "reservation_check" and "escalation_path" in body and doc is not None:
        # The original put a reservation check's path inside its body. (In an override it
        # stays, and is reported: a path cannot differ per environment here.)
        doc.setdefault("escalation_path", body.pop("escalation_path"))
    return body


def v1_to_v2(document: dict[str, Any]) -> dict[str, Any]:
    """camelCase -> snake_case, original-only fields moved to where they mean the same here."""
    doc: dict[str, Any] = _rename_keys(copy.deepcopy(document))
    config_type = doc.get("config_type")
    if "config" in doc:
        doc["config"] = _v1_body(doc["config"], config_type, doc, document, ("config",))
    base = doc.get("config")
    base_test_type = base.get("test_type") if isinstance(base, dict) else None
    overrides = doc.get("environment_overrides")
    if isinstance(overrides, dict):
        for name, body in overrides.items():
            overrides[name] = _v1_body(
                body, config_type, None, document, ("environment_overrides", name), base_test_type
            )
    doc["schema_version"] = 2
    return doc


STEPS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: v1_to_v2}


def migrate(document: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Bring a raw document to the current format; return it and the format it was in."""
    found = detect_format(document)
    if found > CURRENT_FORMAT:
        raise MigrationError(
            f"schema_version {found} is newer than this pytest-maf-preflight understands "
            f"(up to {CURRENT_FORMAT}); upgrade the plugin"
        )
    if found < 1:
        raise MigrationError(f"schema_version must be at least 1, got {found}")
    version = found
    doc = document
    while version < CURRENT_FORMAT:
        doc = STEPS[version](doc)
        version += 1
    return doc, found

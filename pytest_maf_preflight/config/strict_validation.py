"""A config validated by pydantic alone, in strict mode: how the loader accepts a valid config.

The loader's full path checks a config against the JSON Schema (which words and locates every
error) and then the pydantic models (which hold the rules a schema cannot state). For a valid
config the schema pass only costs: importing jsonschema, generating the schema of every model,
walking the document a second time. In strict mode pydantic coerces nothing (``"5"`` is no
number, ``1`` no boolean), so its types are JSON's, and the schema is generated from these very
models: what this package's models accept strictly, their schema accepts, and lax validation
gives the same models (``tests/test_config_strict_validation.py`` holds them to that).

Anything else takes the full path, which says what is wrong as it always did: a config that
fails here for any reason (strict mode also refuses ``2.0`` for an integer, which the schema and
lax mode take), and every config of a plugin's ``test_type``, whose models this package cannot
vouch for.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ValidationError

from ..checks.base import CheckRegistry, Definition
from .models import BODY_MODELS, PreflightConfig, SmokeTestBody
from .overrides import deep_merge

#: What the loader builds of a valid config: the envelope, the chosen environment's body and
#: (for a smoke test) its definition.
Validated = tuple[PreflightConfig, BaseModel, Definition | None]


class _Unvouched(Exception):
    """A part only the full path may accept: a plugin's check type, or an unknown one."""


def validate_strictly(
    registry: CheckRegistry, document: dict[str, Any], environment: str
) -> Validated | None:
    """``document`` (a migrated config) as the loader's full path would build it for
    ``environment``, or None when that path has to decide (and explain)."""
    try:
        config = _strict(PreflightConfig, document)
        chosen = _body(registry, config.config_type, config.config)
        # Every environment's body must be valid, not only the chosen one's.
        for name, override in config.environment_overrides.items():
            merged = _body(registry, config.config_type, deep_merge(config.config, override))
            if name == environment:
                chosen = merged
    except (ValidationError, _Unvouched):
        return None
    return config, *chosen


def _body(
    registry: CheckRegistry, config_type: str, raw: dict[str, Any]
) -> tuple[BaseModel, Definition | None]:
    body = _strict(BODY_MODELS[config_type], raw)
    if not isinstance(body, SmokeTestBody):
        return body, None
    check_type = registry.get(body.test_type) if registry.is_builtin(body.test_type) else None
    if check_type is None:
        raise _Unvouched(body.test_type)
    return body, _strict(check_type.definition, body.test_definition)


def _strict(model: type[Any], data: Any) -> Any:
    return model.model_validate(_members(model, data), strict=True)


def _members(model: type[BaseModel], data: Any) -> Any:
    """``data`` with the values of ``model``'s string enum fields replaced by their members:
    strict mode takes only members from Python data, where the schema (and lax mode) take
    values. A value that names no member is left for the validation to refuse."""
    if not isinstance(data, dict):
        return data
    out = data
    for name, field in model.model_fields.items():
        kind, key = field.annotation, field.alias or name
        value = data.get(key)
        if (
            isinstance(kind, type)
            and issubclass(kind, enum.Enum)
            and type(value) is str
            and value in {m.value for m in kind if isinstance(m.value, str)}
        ):
            out = {**out, key: kind(value)}
    return out

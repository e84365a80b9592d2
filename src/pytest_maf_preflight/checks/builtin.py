"""The check types that ship with the plugin."""

from __future__ import annotations

from . import command, environment, file_system, network_models, python_env
from .base import CheckRegistry, CheckType

BUILTIN_TYPES: list[CheckType] = [
    command.CHECK_TYPE,
    environment.CHECK_TYPE,
    file_system.CHECK_TYPE,
    python_env.CHECK_TYPE,
    *network_models.CHECK_TYPES,
]


def builtin_registry() -> CheckRegistry:
    return CheckRegistry(BUILTIN_TYPES)

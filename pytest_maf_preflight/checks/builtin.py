"""The check types that ship with the plugin."""

from __future__ import annotations

from . import api, command, database, environment, file_system, integration, performance, python_env
from .base import CheckRegistry, CheckType

BUILTIN_TYPES: list[CheckType] = [
    api.CHECK_TYPE,
    command.CHECK_TYPE,
    database.CHECK_TYPE,
    environment.CHECK_TYPE,
    file_system.CHECK_TYPE,
    integration.CHECK_TYPE,
    performance.CHECK_TYPE,
    python_env.CHECK_TYPE,
]


def builtin_registry() -> CheckRegistry:
    return CheckRegistry(BUILTIN_TYPES)

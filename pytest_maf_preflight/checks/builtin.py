"""The check types that ship with the plugin, by the module holding each (imported when a
config uses the type: see ``CheckRegistry``)."""

from __future__ import annotations

from .base import CheckRegistry

#: ``test_type`` -> the module whose ``CHECK_TYPE`` it is.
BUILTIN_MODULES: dict[str, str] = {
    name: f"{__package__}.{module}"
    for name, module in (
        ("api", "api"),
        ("command", "command"),
        ("database", "database"),
        ("environment", "environment"),
        ("file_system", "file_system"),
        ("integration", "integration"),
        ("performance", "performance"),
        ("python", "python_env"),
    )
}


def builtin_registry() -> CheckRegistry:
    return CheckRegistry(modules=BUILTIN_MODULES)

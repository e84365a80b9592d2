"""Checks across configs that no single config can make: integration groups that name each
other in a cycle, and so could never be decided; escalation targets whose channel nobody
delivers (which channels exist depends on what is installed, not on one config).

Used by the gate (beside its escalation path references) and by ``maf-preflight validate``, so
both refuse the same configs.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from pydantic import ValidationError

from ..checks.integration import IntegrationDefinition, cycles
from ..escalation.plugin_channels import BUILTIN_CHANNELS, unknown_channel
from .errors import ConfigError, PathItem
from .loader import LoadedConfig
from .overrides import deep_merge

#: Stands for every environment without an override of its own (they get the base body).
_BASE = ""


def integration_cycles(loaded: Sequence[LoadedConfig], environment: str) -> list[ConfigError]:
    """One error per cycle of active integration checks, at the first config on it.

    The chosen environment is looked at first, then every environment an override names, then
    the base body: like the rest of loading, a config must not fail only when another
    environment is chosen.
    """
    active = [c for c in loaded if c.config.is_active and c.config_type == "smoke_test"]
    others = sorted({env for c in active for env in c.config.environment_overrides})
    errors: list[ConfigError] = []
    seen: set[frozenset[str]] = set()
    for env in dict.fromkeys([environment, *others, _BASE]):
        groups = {
            c.id: (c, members)
            for c in active
            if (members := _members(c, env, environment)) is not None
        }
        for cycle in cycles({cid: members for cid, (_, members) in groups.items()}):
            if cycle.groups in seen:
                continue
            seen.add(cycle.groups)
            first, _ = groups[cycle.path[0]]
            where = (
                ""
                if env == environment
                else f" in environment {env!r}"
                if env
                else " in environments without an override"
            )
            path = _checks_path(first, env)
            errors.append(
                ConfigError(
                    file=str(first.file),
                    path=path,
                    line=_line(first, path),
                    message=f"integration checks name each other in a cycle{where}: "
                    f"{' -> '.join(cycle.path)}; a group can only be decided after its "
                    f"members",
                )
            )
    return errors


def unknown_channels(
    loaded: Sequence[LoadedConfig], known: Callable[[], Collection[str]]
) -> list[ConfigError]:
    """One error per escalation target whose channel is not in ``known()`` (built-in names
    and those plugins add), in the base body or any environment's override.

    ``known`` is asked only when a target names a channel that is not built in: finding the
    plugins' channels reads every installed distribution's metadata.
    """
    names: Collection[str] | None = None
    errors: list[ConfigError] = []
    for config in loaded:
        if config.config_type != "escalation_path":
            continue
        for prefix, targets in _targets(config):
            for name, target in targets.items():
                channel = target.get("channel", "mailbox") if isinstance(target, dict) else None
                if not isinstance(channel, str) or channel in BUILTIN_CHANNELS:
                    continue
                if names is None:
                    names = known()
                if channel not in names:
                    path = (*config.path, *prefix, "targets", name, "channel")
                    errors.append(
                        ConfigError(
                            file=str(config.file),
                            path=path,
                            line=_line(config, path),
                            message=unknown_channel(channel, names),
                        )
                    )
    return errors


def _targets(config: LoadedConfig) -> list[tuple[tuple[PathItem, ...], dict[str, Any]]]:
    """(where, targets) of the base body, and of each override for the targets whose channel
    it writes (a channel it does not write is the base's, checked there)."""
    base = config.config.config.get("targets")
    found: list[tuple[tuple[PathItem, ...], dict[str, Any]]] = []
    if isinstance(base, dict):
        found.append((("config",), base))
    for env, override in config.config.environment_overrides.items():
        written = override.get("targets")
        if isinstance(written, dict):
            own = {n: t for n, t in written.items() if isinstance(t, dict) and "channel" in t}
            found.append((("environment_overrides", env), own))
    return found


def _members(config: LoadedConfig, env: str, chosen: str) -> list[str] | None:
    """The ids an integration check names in ``env``; None when it is no integration there."""
    if env == chosen:
        definition = config.definition
        return definition.checks if isinstance(definition, IntegrationDefinition) else None
    override = config.config.environment_overrides.get(env) if env else None
    body: dict[str, Any] = deep_merge(config.config.config, override or {})
    if body.get("test_type") != "integration":
        return None
    try:  # the loader validated this merged body already; read it the same way
        return IntegrationDefinition.model_validate(body.get("test_definition")).checks
    except ValidationError:
        return None


def _checks_path(config: LoadedConfig, env: str) -> tuple[PathItem, ...]:
    """Where ``env``'s list of members is written: its override when it has one."""
    override = config.config.environment_overrides.get(env) if env else None
    if override and "test_definition" in override:
        return (*config.path, "environment_overrides", env, "test_definition", "checks")
    return (*config.path, "config", "test_definition", "checks")


def _line(config: LoadedConfig, path: Iterable[PathItem]) -> int | None:
    source = config.source
    located = source.line_of(tuple(path)) if source is not None else None
    return located or config.line

"""The configs, loaded and validated before the session starts (and the session recorded when
they are invalid: no check runs then)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ..checks.base import CheckRegistry
from ..checks.builtin import builtin_registry
from ..config.errors import ConfigError, ConfigLoadError
from ..config.loader import ConfigLoader, LoadedConfig, discover
from ..config.references import integration_cycles, unknown_channels
from ..exitcodes import MafExitCode
from ..runtime.errors import RuntimeStateError, RuntimeUnavailable
from ..runtime.factory import open_chain
from ..settings import Settings
from .escalating import plugin_channels
from .recording import build_bundle

_LOADED_KEY = pytest.StashKey[tuple[CheckRegistry, list[LoadedConfig]]]()


def load_configs(
    config: pytest.Config, settings: Settings
) -> tuple[CheckRegistry, list[LoadedConfig]]:
    """The check registry (with plugins' types) and every config; raises ``ConfigLoadError``."""
    registry = builtin_registry()
    config.hook.pytest_maf_preflight_register_check_types(registry=registry, config=config)
    files, errors = discover(settings.config_paths, required=settings.config_paths[1:])
    if errors:
        raise ConfigLoadError(errors)
    loader = ConfigLoader(registry, settings.environment, settings.max_config_bytes)
    loaded = loader.load_files(files)
    errors = _escalation_references(loaded, settings.default_escalation, config.inipath)
    errors += integration_cycles(loaded, settings.environment)
    errors += unknown_channels(loaded, lambda: plugin_channels(config).names())
    if errors:
        raise ConfigLoadError(errors)
    return registry, loaded


def preloaded(
    config: pytest.Config, settings: Settings
) -> tuple[CheckRegistry, list[LoadedConfig]]:
    """What ``preload`` loaded, or (when it did not run) a fresh load."""
    return config.stash.get(_LOADED_KEY, None) or load_configs(config, settings)


def _escalation_references(
    loaded: list[LoadedConfig], default: str | None, inipath: Path | None
) -> list[ConfigError]:
    """A check whose escalation path does not exist would never escalate: a config error."""
    paths = {c.id for c in loaded if c.config_type == "escalation_path" and c.config.is_active}
    errors = [
        ConfigError(
            file=str(c.file),
            line=c.line,
            path=(*c.path, "escalation_path"),
            message=f"names escalation path {c.config.escalation_path!r}, which "
            f"is not an active escalation_path config (known: "
            f"{', '.join(sorted(paths)) or 'none'})",
        )
        for c in loaded
        if c.config.is_active
        and c.config_type != "escalation_path"
        and c.config.escalation_path
        and c.config.escalation_path not in paths
    ]
    if default and default not in paths and any(c.config_type != "escalation_path" for c in loaded):
        errors.append(
            ConfigError(
                file=str(inipath or "ini"),
                path=("maf_default_escalation",),
                message=f"names escalation path {default!r}, which is not an active "
                f"escalation_path config (known: {', '.join(sorted(paths)) or 'none'})",
            )
        )
    return errors


def preload(config: pytest.Config, settings: Settings) -> str | None:
    """Load configs before the session starts; return the error report, or None when valid.

    Called from ``pytest_cmdline_main`` so that invalid configs end the run with our exit code
    and one clear message, before pytest prints a header or collects anything.
    """
    try:
        config.stash[_LOADED_KEY] = load_configs(config, settings)
    except ConfigLoadError as exc:
        return exc.format(settings.rootdir)
    except Exception as exc:  # a plugin's check type that cannot register or build a schema
        return f"cannot prepare the check types: {type(exc).__name__}: {exc}"
    return None


def record_config_error(settings: Settings, report: str) -> str | None:
    """Record a session that ended on invalid configs (no check ran); return a note or None.

    Best effort: the run ends with exit code 11 whatever happens here.
    """
    try:
        opened = open_chain(settings.runtime)
    except RuntimeUnavailable as exc:
        return f"the session was not recorded: {exc}"
    with opened.runtime as runtime:
        bundle = build_bundle(
            agent_id=settings.agent_id,
            environment=settings.environment,
            runtime_mode=opened.mode,
            started_at=time.time(),
            gate_open=False,
            exit_code=int(MafExitCode.CONFIG_ERROR),
            results=(),
            smoke=(),
            loaded=(),
            details={"config_errors": report.splitlines()[1:]},
            status="config_error",
        )
        try:
            runtime.record_session(bundle)
        except (RuntimeStateError, OSError) as exc:
            return f"the session was not recorded: {exc}"
    return None

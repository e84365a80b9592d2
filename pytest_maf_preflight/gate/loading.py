"""The configs, loaded and validated before the session starts (and the session recorded when
they are invalid: no check runs then).

The gate loads through the config cache (``config.cache``), whose entries live in pytest's
cache directory (``.pytest_cache/d/maf-preflight-configs``): a directory of the checkout that
pytest keeps out of git and empties with ``--cache-clear``. With pytest's cache off
(``-p no:cacheprovider``) every run loads in full.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..checks.base import CheckRegistry
from ..checks.builtin import builtin_registry
from ..config.errors import ConfigError, ConfigLoadError
from ..config.loader import ConfigLoader, LoadedConfig, discover
from ..config.references import integration_cycles, unknown_channels
from ..exitcodes import MafExitCode
from ..settings import Settings
from .escalating import plugin_channels
from .planning import plan_all

if TYPE_CHECKING:
    from ..checks.runner import PlannedCheck
    from ..config.cache import CacheKey, ConfigCache


@dataclasses.dataclass(frozen=True)
class Preloaded:
    """The configs of a valid set, their check types, and the checks they describe."""

    registry: CheckRegistry
    loaded: list[LoadedConfig]
    #: Every active check with its config, in config order.
    plan: list[tuple[LoadedConfig, PlannedCheck]]

    @classmethod
    def of(cls, registry: CheckRegistry, loaded: list[LoadedConfig]) -> Preloaded:
        return cls(registry, loaded, plan_all(loaded, registry.get))


#: What ``preload`` loaded (the early start and the controller read it).
PRELOADED_KEY = pytest.StashKey[Preloaded]()
#: The cache entry of a set loaded in full, written once pytest's cache is set up.
_ENTRY_KEY = pytest.StashKey[tuple["ConfigCache", "CacheKey", bytes]]()
#: The directory of the cache entries under pytest's cache directory (``Cache.mkdir``).
CACHE_DIR_NAME = "maf-preflight-configs"


def load_configs(
    config: pytest.Config, settings: Settings, *, cached: bool = False
) -> tuple[CheckRegistry, list[LoadedConfig]]:
    """The check registry (with plugins' types) and every config; raises ``ConfigLoadError``.

    With ``cached``, an unchanged set of files is rebuilt from its cache entry, and a valid set
    loaded in full leaves an entry to write (``preloaded`` writes it).
    """
    registry = builtin_registry()
    config.hook.pytest_maf_preflight_register_check_types(registry=registry, config=config)
    files, errors = discover(settings.config_paths, required=settings.config_paths[1:])
    if errors:
        raise ConfigLoadError(errors)
    loader = ConfigLoader(registry, settings.environment, settings.max_config_bytes)
    cache = _config_cache(config) if cached else None
    entry = None
    if cache is None:
        loaded = loader.load_files(files)
    else:
        loaded, entry = _load_cached(cache, loader, files, config.getoption("cacheclear", False))
    errors = _escalation_references(loaded, settings.default_escalation, config.inipath)
    errors += integration_cycles(loaded, settings.environment)
    errors += unknown_channels(loaded, lambda: plugin_channels(config).names())
    if errors:
        raise ConfigLoadError(errors)
    if entry is not None:
        config.stash[_ENTRY_KEY] = entry
    return registry, loaded


def _config_cache(config: pytest.Config) -> ConfigCache | None:
    """The cache in pytest's cache directory, found as pytest finds it (its ``Cache`` is made
    only later, in ``pytest_configure``); None when pytest's cache is off."""
    if not config.pluginmanager.has_plugin("cacheprovider"):
        return None
    from ..config.cache import ConfigCache

    try:
        raw = str(config.getini("cache_dir"))
    except ValueError:  # a pytest whose cache plugin has no such ini key: no cache then
        return None
    base = Path(os.path.expandvars(os.path.expanduser(raw)))
    return ConfigCache(config.rootpath / base / "d" / CACHE_DIR_NAME)


def _load_cached(
    cache: ConfigCache, loader: ConfigLoader, files: list[Path], cleared: bool
) -> tuple[list[LoadedConfig], tuple[ConfigCache, CacheKey, bytes] | None]:
    """The configs, from their entry when there is one (not when ``--cache-clear`` is about to
    empty the cache); else loaded in full, with the entry to write (None when not cacheable)."""
    from ..config.cache import cache_key, entry_for, read_sources

    sources = read_sources(files, loader.max_bytes)
    if sources is None:  # a file that cannot be read: the full load says which and why
        return loader.load_files(files), None
    key = cache_key(
        sources,
        environment=loader.environment,
        max_bytes=loader.max_bytes,
        registry=loader.registry,
    )
    restored = None if cleared else cache.load(key, sources, loader)
    if restored is not None:
        return restored, None
    loaded = loader.load_files(files, sources)
    entry = entry_for(key, sources, loaded, loader.registry)
    return loaded, (cache, key, entry) if entry is not None else None


def preloaded(config: pytest.Config, settings: Settings) -> Preloaded:
    """What ``preload`` loaded, or (when it did not run) a fresh load; writes the cache entry
    ``preload`` left, now that pytest's cache is set up (called at session start)."""
    found = config.stash.get(PRELOADED_KEY, None) or Preloaded.of(*load_configs(config, settings))
    _write_entry(config)
    return found


def _write_entry(config: pytest.Config) -> None:
    entry = config.stash.get(_ENTRY_KEY, None)
    pytest_cache = getattr(config, "cache", None)
    if entry is None or pytest_cache is None:
        return
    del config.stash[_ENTRY_KEY]
    cache, key, data = entry
    try:
        # pytest makes its cache directory with what keeps it out of git and backups.
        directory = pytest_cache.mkdir(CACHE_DIR_NAME)
    except (OSError, ValueError):
        return
    if os.path.normpath(directory) == os.path.normpath(cache.directory):
        cache.store(key, data)


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
        config.stash[PRELOADED_KEY] = Preloaded.of(*load_configs(config, settings, cached=True))
    except ConfigLoadError as exc:
        return exc.format(settings.rootdir)
    except Exception as exc:  # a plugin's check type that cannot register or build a schema
        return f"cannot prepare the check types: {type(exc).__name__}: {exc}"
    return None


def record_config_error(settings: Settings, report: str) -> str | None:
    """Record a session that ended on invalid configs (no check ran); return a note or None.

    Best effort: the run ends with exit code 11 whatever happens here.
    """
    # Imported only here: a valid set starts its checks before the runtime is needed.
    from ..runtime.errors import RuntimeStateError, RuntimeUnavailable
    from ..runtime.factory import open_chain
    from .recording import build_bundle

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

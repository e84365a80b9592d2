"""The project's escalation paths, for the commands that need them outside a test run:
``escalate`` (the path to raise on) and ``escalations tick`` (the paths that watch for stale
agents).

They are read as ``maf-preflight validate`` reads configs: from ``--config-dir``, else
``.maf/preflight-configs`` in the current directory (which may be missing: then there are
none), with the built-in check types, for the environment ``--env`` names; a target naming a
channel that no installed package adds is an error, as in the gate.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .common import DEFAULT_CONFIG_DIR, CliError, CliExit, display_path, environment_name

if TYPE_CHECKING:
    from ..config.loader import LoadedConfig
    from ..escalation.paths import PathRef

CONFIG_DIR_HELP = f"Config directory (default: {DEFAULT_CONFIG_DIR} in the current directory)"
ENV_HELP = "Environment whose overrides apply (default: MAF_ENV, then NODE_ENV, then 'development')"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config-dir`` and ``--env``."""
    parser.add_argument("--config-dir", type=Path, metavar="PATH", help=CONFIG_DIR_HELP)
    parser.add_argument("--env", metavar="NAME", help=ENV_HELP)


def load_configs(config_dir: Path | None, env: str | None) -> tuple[list[LoadedConfig], list[str]]:
    """Every config of the project, and the config errors (one line each; with any error, no
    config). An explicit ``config_dir`` must exist, the default one may be missing; a
    directory that cannot be read is a usage error."""
    from ..config.loader import discover

    directory = config_dir if config_dir is not None else DEFAULT_CONFIG_DIR
    environment = environment_name(env)  # a bad --env is a usage error, configs or not
    files, missing = discover([directory], required=[directory] if config_dir is not None else ())
    if missing:
        raise CliError(f"{display_path(missing[0].file)}: {missing[0].message}")
    if not files:
        return [], []
    from ..checks.builtin import builtin_registry
    from ..config.errors import ConfigLoadError
    from ..config.loader import ConfigLoader
    from ..config.references import unknown_channels
    from ..escalation.plugin_channels import PluginChannels

    try:
        configs = ConfigLoader(builtin_registry(), environment).load_files(files)
    except ConfigLoadError as exc:
        return [], [e.format(Path.cwd()) for e in exc.errors]
    errors = unknown_channels(configs, lambda: PluginChannels().names())
    if errors:
        return [], [e.format(Path.cwd()) for e in errors]
    return configs, []


def load_paths(config_dir: Path | None, env: str | None) -> tuple[dict[str, PathRef], list[str]]:
    """The active escalation paths by id, and the config errors (``load_configs``)."""
    from ..escalation.session import paths_of

    configs, errors = load_configs(config_dir, env)
    return paths_of(configs), errors


def invalid_configs(errors: Sequence[str], what: str) -> CliError:
    """Print the config errors (one line each, stderr); the error that ends the command for
    them (exit 1), saying ``what`` could not be read."""
    for line in errors:
        print(line, file=sys.stderr)
    return CliError(
        f"{what} not read: the configs are invalid "
        f"({len(errors)} error{'s' if len(errors) != 1 else ''} above)",
        CliExit.INVALID,
    )

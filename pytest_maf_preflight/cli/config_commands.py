"""Config commands: ``validate``, ``schema`` and ``config migrate`` (SPEC S1, S9).

``validate`` loads everything and reports every error, one line each. ``schema`` publishes the
JSON Schema the loader enforces. ``config migrate`` rewrites files written in an older config
format to the current one, in the same file format, after a backup, atomically, and only when
the result validates (the per-file work is in ``config_migrate``, imported when it runs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import write_atomic
from .common import (
    DEFAULT_CONFIG_DIR,
    CliError,
    CliExit,
    display_path,
    environment_name,
    print_json,
)

if TYPE_CHECKING:
    from ..config.errors import ConfigError
    from ..config.loader import ConfigLoader, LoadedConfig

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

JSON_HELP = "Print the result as one JSON object on stdout"
ENV_HELP = (
    "Environment whose overrides apply (default: MAF_ENV, then NODE_ENV, then "
    "'development'); overrides of every environment are validated"
)


def register(subparsers: Subparsers) -> None:
    validate = subparsers.add_parser(
        "validate",
        help="Load and validate configs, reporting every error",
        description="Load and validate every config in PATHS (files or directories; default "
        f"{DEFAULT_CONFIG_DIR}). Every error is printed as 'file:line: path: message'.",
    )
    validate.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help=f"Config file or directory (default: {DEFAULT_CONFIG_DIR})",
    )
    validate.add_argument("--env", metavar="NAME", help=ENV_HELP)
    validate.add_argument("--json", action="store_true", help=JSON_HELP)
    validate.set_defaults(handler=run_validate)

    schema = subparsers.add_parser(
        "schema",
        help="Print the JSON Schema of config files",
        description="Print the JSON Schema (draft 2020-12) that config files are validated "
        "against; editors can use it for completion and checking.",
    )
    schema.add_argument(
        "--output",
        "-o",
        type=Path,
        metavar="FILE",
        help="Write the schema to FILE (atomically) instead of stdout",
    )
    schema.add_argument(
        "--json", action="store_true", help="Accepted for symmetry; the schema is always JSON"
    )
    schema.set_defaults(handler=run_schema)

    config = subparsers.add_parser(
        "config", help="Manage config files", description="Manage config files."
    )
    config_sub = config.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    migrate = config_sub.add_parser(
        "migrate",
        help="Rewrite configs in an older format to the current one",
        description="Rewrite config files whose configs are in an older format (format 1: the "
        "original camelCase) to the current format, in the same file format. The "
        "original is kept as <file>.bak (or .bak.1, .bak.2, ...); a file whose "
        "migrated configs would not validate is left unchanged.",
    )
    migrate.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="Config file or directory"
    )
    migrate.add_argument(
        "--dry-run", action="store_true", help="Report what would change; write nothing"
    )
    migrate.add_argument("--env", metavar="NAME", help=ENV_HELP)
    migrate.add_argument("--json", action="store_true", help=JSON_HELP)
    migrate.set_defaults(handler=run_migrate)


# --- shared --------------------------------------------------------------------------------------


def _loader(env: str | None) -> ConfigLoader:
    from ..checks.builtin import builtin_registry
    from ..config.loader import ConfigLoader

    return ConfigLoader(builtin_registry(), environment_name(env))


def _files(paths: list[Path], explicit: bool) -> list[Path]:
    from ..config.loader import discover

    files, errors = discover(paths, required=paths if explicit else ())
    if errors:
        raise CliError(f"{display_path(errors[0].file)}: {errors[0].message}")
    return files


def _error_line(error: ConfigError) -> str:
    return error.format(Path.cwd())


# --- validate ------------------------------------------------------------------------------------


def _config_summary(config: LoadedConfig) -> dict[str, Any]:
    return {
        "id": config.id,
        "config_type": config.config_type,
        "test_type": config.test_type,
        "file": str(config.file),
        "line": config.line,
        "source_format": config.source_format,
        "severity": config.config.severity.value,
        "is_active": config.config.is_active,
    }


def run_validate(args: argparse.Namespace) -> int:
    from ..config.errors import ConfigLoadError
    from ..config.migrations import CURRENT_FORMAT
    from ..config.references import integration_cycles, unknown_channels
    from ..escalation.plugin_channels import PluginChannels

    explicit = bool(args.paths)
    files = _files(list(args.paths) if explicit else [DEFAULT_CONFIG_DIR], explicit)
    loader = _loader(args.env)
    try:
        configs = loader.load_files(files)
        # Outside pytest, the channels plugins add are their packages' entry points.
        problems = integration_cycles(configs, loader.environment)
        problems += unknown_channels(configs, lambda: PluginChannels().names())
        if problems:
            raise ConfigLoadError(problems)
    except ConfigLoadError as exc:
        if args.json:
            print_json(
                {
                    "valid": False,
                    "environment": loader.environment,
                    "files": len(files),
                    "configs": [],
                    "errors": [e.to_dict() for e in exc.errors],
                }
            )
        else:
            for error in exc.errors:
                print(_error_line(error))
            bad_files = len({e.file for e in exc.errors})
            count = len(exc.errors)
            print(
                f"invalid: {count} error{'s' if count != 1 else ''} in {bad_files} "
                f"file{'s' if bad_files != 1 else ''} ({len(files)} checked)"
            )
        return int(CliExit.INVALID)

    if args.json:
        print_json(
            {
                "valid": True,
                "environment": loader.environment,
                "files": len(files),
                "configs": [_config_summary(c) for c in configs],
                "errors": [],
            }
        )
        return int(CliExit.OK)
    print(
        f"ok: {len(configs)} config{'s' if len(configs) != 1 else ''} in {len(files)} "
        f"file{'s' if len(files) != 1 else ''} (environment: {loader.environment})"
    )
    if not files:
        where = ", ".join(display_path(p) for p in args.paths) or str(DEFAULT_CONFIG_DIR)
        print(f"note: no config files (.json, .yaml, .yml, .toml) found in {where}")
    rows = []
    for config in configs:
        kind = config.config_type + (f" ({config.test_type})" if config.test_type else "")
        where = display_path(config.file) + (f":{config.line}" if config.line else "")
        rows.append((config.id, kind, where))
    id_width = max((len(r[0]) for r in rows), default=0)
    kind_width = max((len(r[1]) for r in rows), default=0)
    for config_id, kind, where in rows:
        print(f"  {config_id:<{id_width}}  {kind:<{kind_width}}  {where}")
    old = sum(1 for c in configs if c.source_format < CURRENT_FORMAT)
    if old:
        print(
            f"note: {old} config{'s are' if old != 1 else ' is'} in an older format (loaded "
            f"through migration); 'maf-preflight config migrate' rewrites the files"
        )
    return int(CliExit.OK)


# --- schema --------------------------------------------------------------------------------------


def run_schema(args: argparse.Namespace) -> int:
    import json

    from ..checks.builtin import builtin_registry
    from ..config.schema import build_schema

    text = json.dumps(build_schema(builtin_registry()), indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return int(CliExit.OK)
    output: Path = args.output
    if output.is_dir():
        raise CliError(f"{display_path(output)}: is a directory; --output needs a file name")
    if not output.parent.is_dir():
        raise CliError(f"{display_path(output.parent)}: no such directory")
    write_atomic(output, text.encode("utf-8"))
    if not args.json:
        print(f"wrote schema to {display_path(output)}")
    return int(CliExit.OK)


# --- config migrate ------------------------------------------------------------------------------


def run_migrate(args: argparse.Namespace) -> int:
    from .config_migrate import MigrationOutcome, migrate_file, report

    files = _files(list(args.paths), explicit=True)
    loader = _loader(args.env)
    outcomes: list[MigrationOutcome] = []
    for file in files:
        outcome = migrate_file(file, loader, args.dry_run)
        outcomes.append(outcome)
        if not args.json:
            report(outcome)
    ok = all(o.status != "invalid" for o in outcomes)
    if args.json:
        print_json(
            {
                "valid": ok,
                "dry_run": args.dry_run,
                "files": [o.to_dict() for o in outcomes],
                "errors": [e.to_dict() for o in outcomes for e in o.errors],
            }
        )
    else:
        counts = {
            status: sum(1 for o in outcomes if o.status == status)
            for status in ("migrated", "would_migrate", "up_to_date", "invalid")
        }
        done = (
            f"{counts['would_migrate']} to migrate (dry run, nothing written)"
            if args.dry_run
            else f"{counts['migrated']} migrated"
        )
        print(
            f"{done}, {counts['up_to_date']} up to date, {counts['invalid']} not migrated "
            f"({len(files)} file{'s' if len(files) != 1 else ''})"
        )
    return int(CliExit.OK if ok else CliExit.INVALID)

"""``maf-preflight history`` and ``maf-preflight runtime info|sync|migrate`` (``history stats``:
:mod:`.history_stats`).

The runtime is located as the plugin locates it, from the current directory as the rootdir:
``MAF_RUNTIME_MODE``/``MAF_RUNTIME`` choose modes, ``MAF_DB_PATH`` and ``MAF_AGENT_MAIL_ROOT``
place the files (by default, in a git repository, the store every worktree shares),
``--db-url`` (else ``MAF_DB_URL``) names the ``postgres`` mode's database. The
``postgres`` mode uses the first existing schema of the connection's ``search_path``; a URL
chooses another with ``?options=-csearch_path%3Dname``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import history_stats
from .common import (
    DB_URL_HELP,
    JSON_HELP,
    CliError,
    CliExit,
    display_path,
    open_runtime,
    print_json,
    runtime_settings,
)

if TYPE_CHECKING:
    from ..runtime.factory import RuntimeSettings
    from ..runtime.interface import RuntimeState

STATUSES = ("passed", "failed", "timeout", "error", "skipped")
#: The modes ``runtime sync`` copies between (memory holds nothing to copy from or keep).
SYNC_MODES = ("json", "sqlite", "postgres")


def register(subparsers: Any) -> None:
    history = subparsers.add_parser("history", help="Recorded executions, newest first")
    history.add_argument("--config", metavar="ID", help="Only this config (or smoke test)")
    history.add_argument("--status", choices=STATUSES, help="Only this status")
    history.add_argument(
        "--limit", type=int, default=50, metavar="N", help="At most N executions (default: 50)"
    )
    history.add_argument(
        "--mode",
        metavar="MODES",
        help="Runtime modes to read (default: as MAF_RUNTIME_MODE, else sqlite,json,memory)",
    )
    history.add_argument("--db-url", metavar="URL", help=DB_URL_HELP)
    history.add_argument("--json", action="store_true", help=JSON_HELP)
    history.set_defaults(handler=run_history)
    history_stats.register(history)

    runtime = subparsers.add_parser("runtime", help="Inspect, migrate and sync the runtime")
    actions = runtime.add_subparsers(dest="runtime_command", metavar="ACTION", required=True)
    info = actions.add_parser("info", help="The active mode, where it stores, what it holds")
    info.add_argument("--mode", metavar="MODES", help="Runtime modes to try")
    info.add_argument("--db-url", metavar="URL", help=DB_URL_HELP)
    info.add_argument("--json", action="store_true", help=JSON_HELP)
    info.set_defaults(handler=run_info)
    migrate = actions.add_parser(
        "migrate", help="Create or upgrade the SQLite or PostgreSQL schema"
    )
    migrate.add_argument(
        "--mode",
        default="sqlite",
        choices=("sqlite", "postgres"),
        help="The store to migrate (default: sqlite)",
    )
    migrate.add_argument("--db-url", metavar="URL", help=DB_URL_HELP)
    migrate.add_argument("--json", action="store_true", help=JSON_HELP)
    migrate.set_defaults(handler=run_migrate)
    sync = actions.add_parser(
        "sync",
        help="Copy records from one mode into another "
        "(default: the JSON fallback into SQLite), idempotently",
    )
    sync.add_argument(
        "--from",
        dest="source",
        default="json",
        choices=SYNC_MODES,
        help="The mode to copy from (default: json)",
    )
    sync.add_argument(
        "--to",
        dest="target",
        default="sqlite",
        choices=SYNC_MODES,
        help="The mode to copy into (default: sqlite)",
    )
    sync.add_argument(
        "--from-path",
        dest="source_path",
        metavar="PATH",
        help="Where the source is, instead of where its mode stores now: a "
        "SQLite file for sqlite (e.g. a checkout's older .maf/runtime.db), the "
        "directory holding runtime/ for json",
    )
    sync.add_argument("--db-url", metavar="URL", help=DB_URL_HELP)
    sync.add_argument("--json", action="store_true", help=JSON_HELP)
    sync.set_defaults(handler=run_sync)


def _settings(args: argparse.Namespace, modes: str | None = None) -> RuntimeSettings:
    """The runtime settings (``modes`` as ``--mode`` gives them), with ``--db-url`` over
    ``MAF_DB_URL``."""
    return runtime_settings(modes, db_url=args.db_url)


def _one(mode: str, settings: RuntimeSettings) -> RuntimeState:
    from ..runtime.errors import RuntimeUnavailable
    from ..runtime.factory import open_mode

    try:
        return open_mode(mode, settings)
    except RuntimeUnavailable as exc:
        raise CliError(f"{mode}: {exc}") from None


def _local_time(epoch: float) -> str:
    # Local time, as a person reading their own history expects (reservation output is UTC).
    return datetime.datetime.fromtimestamp(epoch).isoformat(sep=" ", timespec="seconds")


def run_history(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CliError("--limit must be at least 1")
    runtime, skipped = open_runtime(args.mode, db_url=args.db_url)
    with runtime:
        rows = runtime.executions(config_id=args.config, status=args.status, limit=args.limit)
    if args.json:
        print_json(
            {
                "mode": runtime.mode,
                "skipped": skipped,
                "executions": [dataclasses.asdict(r) for r in rows],
            }
        )
        return 0
    for note in skipped:
        print(f"note: {note}")
    if not rows:
        print(f"no executions recorded ({runtime.mode})")
        return 0
    width = max(len(r.config_id) for r in rows)
    for r in rows:
        line = (
            f"{_local_time(r.started_at)}  {r.status:<8} {r.config_id:<{width}}  "
            f"{r.duration * 1000:8.1f} ms  x{r.attempts}  {r.agent_id}"
        )
        if r.error_message:
            line += f"  {r.error_message.splitlines()[0][:80]}"
        print(line)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ..runtime.checkout_store import old_store_notice

    settings = _settings(args, args.mode)
    runtime, skipped = open_runtime(args.mode, db_url=args.db_url)
    with runtime:
        info = runtime.info()
    why = settings.source_of(info.mode)
    old = old_store_notice(settings, Path.cwd())
    if args.json:
        print_json(
            {
                **dataclasses.asdict(info),
                "why": why,
                "repository": str(settings.repository) if settings.repository else None,
                "older_store": old,
                "skipped": skipped,
            }
        )
        return 0
    for note in skipped:
        print(f"note: {note}")
    print(f"mode: {info.mode}")
    print(f"location: {info.location}" + (f" ({why})" if why else ""))
    if info.schema_version is not None:
        print(f"schema version: {info.schema_version}")
    for name, count in info.counts.items():
        print(f"{name}: {count}")
    for note in info.notes:
        print(f"note: {note}")
    if old is not None:
        print(f"note: {old}")
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    # Opening a SQLite or PostgreSQL runtime applies every pending migration, each in its own
    # transaction.
    runtime = _one(args.mode, _settings(args))
    with runtime:
        info = runtime.info()
    if args.json:
        print_json({"location": info.location, "schema_version": info.schema_version})
    else:
        print(f"{info.location}: schema version {info.schema_version}")
    return 0


def _source_settings(args: argparse.Namespace, settings: RuntimeSettings) -> RuntimeSettings:
    """``settings`` with the source where ``--from-path`` says."""
    from ..runtime.checkout_store import is_our_store

    if args.source_path is None:
        return settings
    path = Path(os.path.expanduser(args.source_path)).absolute()
    if args.source == "sqlite":
        if not path.is_file():
            raise CliError(f"--from-path: {display_path(path)} is not a file")
        if not is_our_store(path):
            # Opening it would add our tables to someone else's database (the original MAF
            # keeps its own at .maf/runtime.db).
            raise CliError(
                f"--from-path: {display_path(path)} is not a maf-preflight store "
                "(no schema of ours); nothing to import"
            )
        return dataclasses.replace(settings, db_path=path)
    if args.source == "json":
        if not (path / "runtime").is_dir():
            raise CliError(
                f"--from-path: {display_path(path)} holds no JSON runtime (no runtime/ directory)"
            )
        return dataclasses.replace(settings, json_root=path)
    raise CliError(
        "--from-path names a SQLite file or a JSON runtime directory; "
        "the postgres mode is found by --db-url"
    )


def _same_store(mode: str, source: RuntimeSettings, target: RuntimeSettings) -> bool:
    if mode == "sqlite":
        return os.path.realpath(source.db_path) == os.path.realpath(target.db_path)
    if mode == "json":
        return os.path.realpath(source.json_dir) == os.path.realpath(target.json_dir)
    return True


def run_sync(args: argparse.Namespace) -> int:
    from ..runtime.sync import sync

    settings = _settings(args)
    source_settings = _source_settings(args, settings)
    if args.source == args.target and _same_store(args.source, source_settings, settings):
        raise CliError("--from and --to name the same store")
    with contextlib.ExitStack() as stack:
        # The source is closed again should the target not open.
        source = stack.enter_context(_one(args.source, source_settings))
        target = stack.enter_context(_one(args.target, settings))
        report = sync(source, target)
    if report.complete and args.source == "sqlite" and args.source_path is not None:
        _remember_import(settings, source_settings.db_path, args.target)
    if args.json:
        print_json(report.to_json())
    else:
        copied = ", ".join(f"{kind} {count}" for kind, count in report.copied.items())
        print(f"synced {report.source} -> {report.target}: copied {copied}")
        for note in report.notes:
            print(f"note: {note}")
    # Records the target still lacks are a failure the user must hear about.
    return int(CliExit.OK if report.complete else CliExit.INVALID)


def _remember_import(settings: RuntimeSettings, source: Path, target_mode: str) -> None:
    """Silence the older-store notice for ``source`` once it is in the shared store."""
    from ..runtime.checkout_store import mark_imported

    if target_mode != "sqlite" or not settings.db_shared:
        return
    try:
        mark_imported(settings.db_path.parent, source)
    except OSError as exc:  # the records are imported; only the notice keeps showing
        print(f"note: the import is done but could not be remembered: {exc}")

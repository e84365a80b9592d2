"""Choosing a runtime: a chain of modes tried in order, each failure named (SPEC S5)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import RuntimeUnavailable

if TYPE_CHECKING:  # the settings resolve the chain before any mode (and its records) loads
    from .interface import RuntimeState

KNOWN_MODES = ("sqlite", "json", "memory", "postgres")
DEFAULT_CHAIN = ("sqlite", "json", "memory")
DEFAULT_DB_PATH = ".maf/runtime.db"
DEFAULT_MAIL_ROOT = ".agent-mail"
#: The SQLite file's name in the shared store directory (``location.SHARED_DIR``).
SHARED_DB_NAME = "runtime.db"


class RuntimeConfigError(ValueError):
    """A mode chain or path that cannot be used; the message names its source."""


def parse_chain(raw: str, source: str) -> tuple[str, ...]:
    modes = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
    if not modes:
        raise RuntimeConfigError(
            f"{source}: expected runtime modes (e.g. sqlite,json,memory), got {raw!r}"
        )
    unknown = [m for m in modes if m not in KNOWN_MODES]
    if unknown:
        raise RuntimeConfigError(
            f"{source}: unknown runtime mode {unknown[0]!r}; expected "
            f"one of {', '.join(KNOWN_MODES)}"
        )
    return tuple(dict.fromkeys(modes))


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    chain: tuple[str, ...]
    chain_source: str
    db_path: Path
    #: Mailbox deliveries (and, unless ``json_root`` says otherwise, the JSON runtime) go here.
    mail_root: Path
    #: The ``postgres`` mode's libpq URL; kept out of ``repr``: it may carry a password.
    db_url: str | None = dataclasses.field(default=None, repr=False)
    db_url_source: str = ""
    #: The JSON runtime's root (its files are under ``<json_root>/runtime``); ``None``: the
    #: ``mail_root``, as before stores were shared.
    json_root: Path | None = None
    #: Why ``db_path`` and ``json_root`` are where they are, in a few words for the header.
    db_path_source: str = ""
    json_root_source: str = ""
    #: The repository whose worktrees share the store (its main checkout, see ``location``);
    #: ``None`` outside git or when explicit settings place both files.
    repository: Path | None = None
    #: The rootdir's ``.maf/runtime.db``: where each checkout kept its store before stores
    #: were shared, and where the original MAF keeps its database.
    checkout_db_path: Path | None = None
    #: Whether ``db_path`` is the store the repository's worktrees share.
    db_shared: bool = False

    @property
    def json_dir(self) -> Path:
        """The root ``JsonRuntime`` is opened with."""
        return self.json_root if self.json_root is not None else self.mail_root

    def source_of(self, mode: str) -> str:
        """Why ``mode`` stores where it does (empty for modes that store no file)."""
        return {"sqlite": self.db_path_source, "json": self.json_root_source}.get(mode, "")


def resolve_runtime_settings(
    rootdir: Path,
    environ: Mapping[str, str],
    cli: str | None = None,
    ini: str = "",
    *,
    cli_source: str = "--maf-runtime",
    db_url_cli: str | None = None,
    db_url_ini: str = "",
    db_url_cli_source: str = "--maf-db-url",
) -> RuntimeSettings:
    """``--maf-runtime`` > ``MAF_RUNTIME_MODE`` > ``MAF_RUNTIME`` > ini ``maf_runtime`` > default.

    ``MAF_DB_PATH`` and ``MAF_AGENT_MAIL_ROOT`` place the files; relative paths are taken from
    the rootdir, like every other path of the plugin. Without them, inside a git repository
    the SQLite store and the JSON runtime are the ones every worktree shares (under the common
    directory, see ``location``); outside git, ``.maf/runtime.db`` and ``.agent-mail`` of the
    rootdir. Mailbox deliveries stay under ``.agent-mail`` of the rootdir unless
    ``MAF_AGENT_MAIL_ROOT`` moves them. The ``postgres`` mode's URL:
    ``--maf-db-url`` > ``MAF_DB_URL`` > ini ``maf_db_url``.
    """
    candidates = (
        (cli, cli_source),
        (environ.get("MAF_RUNTIME_MODE"), "MAF_RUNTIME_MODE environment variable"),
        (environ.get("MAF_RUNTIME"), "MAF_RUNTIME environment variable"),
        (ini, "maf_runtime in the config file"),
    )
    for value, source in candidates:
        if value:
            chain, chain_source = parse_chain(value, source), source
            break
    else:
        chain, chain_source = DEFAULT_CHAIN, "default"
    db_url, db_url_source = None, ""
    for value, source in (
        (db_url_cli, db_url_cli_source),
        (environ.get("MAF_DB_URL"), "MAF_DB_URL environment variable"),
        (db_url_ini, "maf_db_url in the config file"),
    ):
        if value and value.strip():
            db_url, db_url_source = value.strip(), source
            break
    return dataclasses.replace(
        _store_paths(rootdir, environ),
        chain=chain,
        chain_source=chain_source,
        db_url=db_url,
        db_url_source=db_url_source,
    )


def _explicit_path(rootdir: Path, environ: Mapping[str, str], name: str) -> Path | None:
    raw = environ.get(name)
    if not raw:
        return None
    path = Path(os.path.expanduser(raw))
    return path if path.is_absolute() else rootdir / path


def _store_paths(rootdir: Path, environ: Mapping[str, str]) -> RuntimeSettings:
    """Where the SQLite store, the JSON runtime and the mailboxes are, and why."""
    db = _explicit_path(rootdir, environ, "MAF_DB_PATH")
    mail = _explicit_path(rootdir, environ, "MAF_AGENT_MAIL_ROOT")
    repository = None
    if db is None or mail is None:  # explicit settings spare the look for a repository
        from .location import LocationError, find_repository

        try:
            repository = find_repository(rootdir)
        except LocationError as exc:
            raise RuntimeConfigError(
                f"cannot tell where the shared store is: {exc} (MAF_DB_PATH and "
                "MAF_AGENT_MAIL_ROOT place the store without looking)"
            ) from None
    shared = f"shared by the worktrees of {repository.label}" if repository else ""
    checkout_db = rootdir / DEFAULT_DB_PATH
    if db is not None:
        db_source = "MAF_DB_PATH"
    elif repository is not None:
        db, db_source = repository.store_dir / SHARED_DB_NAME, shared
    else:
        db, db_source = checkout_db, "rootdir .maf, not a git repository"
    json_root: Path | None = None
    if mail is not None:
        json_source = "MAF_AGENT_MAIL_ROOT"
    elif repository is not None:
        json_root, json_source = repository.store_dir, shared
    else:
        json_source = "rootdir .agent-mail, not a git repository"
    return RuntimeSettings(
        chain=DEFAULT_CHAIN,
        chain_source="default",
        db_path=db,
        mail_root=mail if mail is not None else rootdir / DEFAULT_MAIL_ROOT,
        json_root=json_root,
        db_path_source=db_source,
        json_root_source=json_source,
        repository=repository.label if repository else None,
        checkout_db_path=checkout_db,
        db_shared=db_source == shared and repository is not None,
    )


def open_mode(mode: str, settings: RuntimeSettings) -> RuntimeState:
    """Open one mode; ``RuntimeUnavailable`` says why it cannot start here."""
    if mode == "sqlite":
        from .sqlite import SqliteRuntime

        return SqliteRuntime(settings.db_path)
    if mode == "json":
        from .jsonl import JsonRuntime

        return JsonRuntime(settings.json_dir)
    if mode == "memory":
        from .memory import MemoryRuntime

        return MemoryRuntime()
    if mode == "postgres":
        from .postgres import PostgresRuntime

        # Says first when psycopg is missing, then when no URL is set.
        return PostgresRuntime(settings.db_url or "")
    raise RuntimeConfigError(f"unknown runtime mode {mode!r}")


@dataclasses.dataclass
class OpenedRuntime:
    """The runtime that started, and why the modes before it in the chain did not."""

    runtime: RuntimeState
    skipped: list[str]
    remaining: tuple[str, ...]

    @property
    def mode(self) -> str:
        return self.runtime.mode


def open_chain(settings: RuntimeSettings, modes: Sequence[str] | None = None) -> OpenedRuntime:
    """The first mode of the chain that starts; raises ``RuntimeUnavailable`` naming them all."""
    chain = tuple(modes if modes is not None else settings.chain)
    skipped: list[str] = []
    for position, mode in enumerate(chain):
        try:
            runtime = open_mode(mode, settings)
        except RuntimeUnavailable as exc:
            skipped.append(f"{mode}: {exc}")
            continue
        return OpenedRuntime(runtime, skipped, chain[position + 1 :])
    raise RuntimeUnavailable("no runtime mode could start: " + "; ".join(skipped))

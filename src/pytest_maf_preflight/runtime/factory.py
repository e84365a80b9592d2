"""Choosing a runtime: a chain of modes tried in order, each failure named (SPEC S5)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .base import RuntimeState, RuntimeUnavailable

KNOWN_MODES = ("sqlite", "json", "memory", "postgres")
DEFAULT_CHAIN = ("sqlite", "json", "memory")
DEFAULT_DB_PATH = ".maf/runtime.db"
DEFAULT_MAIL_ROOT = ".agent-mail"


class RuntimeConfigError(ValueError):
    """A mode chain or path that cannot be used; the message names its source."""


def parse_chain(raw: str, source: str) -> tuple[str, ...]:
    modes = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
    if not modes:
        raise RuntimeConfigError(f"{source}: expected runtime modes (e.g. sqlite,json,memory), "
                                 f"got {raw!r}")
    unknown = [m for m in modes if m not in KNOWN_MODES]
    if unknown:
        raise RuntimeConfigError(f"{source}: unknown runtime mode {unknown[0]!r}; expected "
                                 f"one of {', '.join(KNOWN_MODES)}")
    return tuple(dict.fromkeys(modes))


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    chain: tuple[str, ...]
    chain_source: str
    db_path: Path
    mail_root: Path
    #: The ``postgres`` mode's libpq URL; kept out of ``repr``: it may carry a password.
    db_url: str | None = dataclasses.field(default=None, repr=False)
    db_url_source: str = ""


def resolve_runtime_settings(rootdir: Path, environ: Mapping[str, str], cli: str | None = None,
                             ini: str = "", *, cli_source: str = "--maf-runtime",
                             db_url_cli: str | None = None, db_url_ini: str = "",
                             db_url_cli_source: str = "--maf-db-url") -> RuntimeSettings:
    """``--maf-runtime`` > ``MAF_RUNTIME_MODE`` > ``MAF_RUNTIME`` > ini ``maf_runtime`` > default.

    ``MAF_DB_PATH`` and ``MAF_AGENT_MAIL_ROOT`` place the files; relative paths are taken from
    the rootdir, like every other path of the plugin. The ``postgres`` mode's URL:
    ``--maf-db-url`` > ``MAF_DB_URL`` > ini ``maf_db_url``.
    """
    candidates = ((cli, cli_source),
                  (environ.get("MAF_RUNTIME_MODE"), "MAF_RUNTIME_MODE environment variable"),
                  (environ.get("MAF_RUNTIME"), "MAF_RUNTIME environment variable"),
                  (ini, "maf_runtime in the config file"))
    for value, source in candidates:
        if value:
            chain, chain_source = parse_chain(value, source), source
            break
    else:
        chain, chain_source = DEFAULT_CHAIN, "default"
    db = Path(os.path.expanduser(environ.get("MAF_DB_PATH") or DEFAULT_DB_PATH))
    mail = Path(os.path.expanduser(environ.get("MAF_AGENT_MAIL_ROOT") or DEFAULT_MAIL_ROOT))
    db_url, db_url_source = None, ""
    for value, source in ((db_url_cli, db_url_cli_source),
                          (environ.get("MAF_DB_URL"), "MAF_DB_URL environment variable"),
                          (db_url_ini, "maf_db_url in the config file")):
        if value and value.strip():
            db_url, db_url_source = value.strip(), source
            break
    return RuntimeSettings(chain=chain, chain_source=chain_source,
                           db_path=db if db.is_absolute() else rootdir / db,
                           mail_root=mail if mail.is_absolute() else rootdir / mail,
                           db_url=db_url, db_url_source=db_url_source)


def open_mode(mode: str, settings: RuntimeSettings) -> RuntimeState:
    """Open one mode; ``RuntimeUnavailable`` says why it cannot start here."""
    if mode == "sqlite":
        from .sqlite import SqliteRuntime

        return SqliteRuntime(settings.db_path)
    if mode == "json":
        from .jsonl import JsonRuntime

        return JsonRuntime(settings.mail_root)
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
        return OpenedRuntime(runtime, skipped, chain[position + 1:])
    raise RuntimeUnavailable("no runtime mode could start: " + "; ".join(skipped))

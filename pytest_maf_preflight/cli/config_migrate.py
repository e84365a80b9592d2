"""``config migrate`` for one file: read, migrate, render in the same format, check, replace.

A file is only replaced by text that reads back as exactly the migrated data and validates in
the current format; the original is kept as a backup that never overwrites another.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import write_atomic
from ..config.documents import Document, DocumentError, read_document
from ..config.errors import ConfigError
from ..config.loader import is_config_list
from ..config.migrations import CURRENT_FORMAT
from .common import CliError, display_path, write_backup

if TYPE_CHECKING:
    from ..config.loader import ConfigLoader


@dataclasses.dataclass
class MigrationOutcome:
    """What ``config migrate`` did (or would do) with one file."""

    file: Path
    status: str  # "migrated", "would_migrate", "up_to_date" or "invalid"
    from_format: int | None = None
    configs: list[str] = dataclasses.field(default_factory=list)
    backup: Path | None = None
    errors: list[ConfigError] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "status": self.status,
            "from_format": self.from_format,
            "to_format": CURRENT_FORMAT,
            "configs": self.configs,
            "backup": str(self.backup) if self.backup else None,
            "errors": [e.to_dict() for e in self.errors],
        }


def _header_comments(text: str) -> str:
    """The comment block a YAML or TOML file starts with, kept when the file is rewritten."""
    lines: list[str] = []
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            lines.append(line)
        else:
            break
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines) + "\n" if any(line.strip() for line in lines) else ""


def _render(fmt: str, data: Any, original_text: str) -> str:
    if fmt == "json":
        import json

        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        import yaml

        body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
        return _header_comments(original_text) + body
    import tomli_w

    return _header_comments(original_text) + tomli_w.dumps(data)


def _parse(fmt: str, text: str) -> Any:
    if fmt == "json":
        import json

        return json.loads(text)
    if fmt == "yaml":
        import yaml

        return yaml.safe_load(text)
    from ..compat import tomllib

    return tomllib.loads(text)


def migrate_file(file: Path, loader: ConfigLoader, dry_run: bool) -> MigrationOutcome:
    """Migrate one file; nothing is written unless every migrated config validates."""

    def invalid(*errors: ConfigError, from_format: int | None = None) -> MigrationOutcome:
        return MigrationOutcome(file, "invalid", from_format=from_format, errors=list(errors))

    try:
        document = read_document(file, loader.max_bytes)
    except DocumentError as exc:
        return invalid(exc.error)
    loaded, errors = loader.load_document(document)
    listed = is_config_list(document.data)
    if errors:
        return invalid(*errors)
    from_format = min(c.source_format for c in loaded)
    ids = [c.id for c in loaded]
    if from_format >= CURRENT_FORMAT:
        return MigrationOutcome(file, "up_to_date", from_format=from_format, configs=ids)

    migrated = [c.document for c in loaded]
    new_data: Any = {"configs": migrated} if listed else migrated[0]
    try:
        text = _render(document.format, new_data, document.text)
    except (TypeError, ValueError) as exc:
        if document.format != "toml":
            raise
        # tomli_w refuses what TOML cannot hold (None, non-string keys, ...).
        return invalid(
            ConfigError(str(file), f"cannot write the migrated config as TOML: {exc}"),
            from_format=from_format,
        )
    # Read the new text back as the loader will, and validate it again: a file is only
    # replaced by one that loads, in the current format, with the same content.
    reparsed = _parse(document.format, text)
    if reparsed != new_data:
        return invalid(
            ConfigError(
                str(file),
                "the migrated file would not read back as written "
                "(a bug in maf-preflight; please report it); left unchanged",
            ),
            from_format=from_format,
        )
    new_document = Document(path=file, format=document.format, text=text, data=reparsed)
    new_configs, new_errors = loader.load_document(new_document)
    errors.extend(
        dataclasses.replace(error, line=None, message=f"after migration: {error.message}")
        for error in new_errors
    )
    errors.extend(
        ConfigError(
            str(file),
            f"after migration the config is still in format {config.source_format}",
            config.path,
        )
        for config in new_configs
        if config.source_format != CURRENT_FORMAT
    )
    if errors:
        return invalid(*errors, from_format=from_format)
    if dry_run:
        return MigrationOutcome(file, "would_migrate", from_format=from_format, configs=ids)

    original = file.read_bytes()
    if original.decode("utf-8-sig", errors="replace") != document.text:
        raise CliError(f"{display_path(file)}: changed while it was being migrated; run again")
    backup = write_backup(file, original)
    write_atomic(file, text.encode("utf-8"))
    return MigrationOutcome(file, "migrated", from_format=from_format, configs=ids, backup=backup)


def report(outcome: MigrationOutcome) -> None:
    where = display_path(outcome.file)
    change = f"format {outcome.from_format} -> {CURRENT_FORMAT}"
    if outcome.status == "migrated":
        backup = display_path(outcome.backup) if outcome.backup else "?"
        print(f"migrated: {where} ({change}; backup: {backup})")
    elif outcome.status == "would_migrate":
        print(f"would migrate: {where} ({change})")
    elif outcome.status == "up_to_date":
        print(f"up to date: {where}")
    else:
        for error in outcome.errors:
            print(error.format(Path.cwd()))
        count = len(outcome.errors)
        print(f"not migrated: {where} ({count} error{'s' if count != 1 else ''})")

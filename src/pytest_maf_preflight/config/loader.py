"""Finding config files, loading every config in them, and validating all of it in one pass.

Errors are collected, not raised one at a time: a user fixing configs sees every problem at
once, each located by file, line and path. Nothing is returned unless everything is valid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..checks.base import CheckRegistry, Definition
from .documents import SUFFIXES, Document, DocumentError, read_document
from .errors import ConfigError, ConfigLoadError, PathItem
from .migrations import MigrationError, migrate
from .models import BODY_MODELS, PreflightConfig, SmokeTestBody
from .overrides import deep_merge
from .schema import SchemaValidator


@dataclasses.dataclass(frozen=True)
class LoadedConfig:
    """One valid config, with its body resolved for the chosen environment."""

    config: PreflightConfig
    body: BaseModel
    definition: Definition | None
    file: Path
    path: tuple[PathItem, ...]
    line: int | None
    source_format: int
    document: dict[str, Any]

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def config_type(self) -> str:
        return self.config.config_type

    @property
    def test_type(self) -> str | None:
        return self.body.test_type if isinstance(self.body, SmokeTestBody) else None


def discover(paths: Iterable[Path], required: Sequence[Path] = ()) -> tuple[list[Path], list[ConfigError]]:
    """Config files under ``paths``: a directory gives its files (sorted, not recursive).

    A path in ``required`` that does not exist is an error; other missing paths (the default
    directory) simply hold no configs.
    """
    files: list[Path] = []
    errors: list[ConfigError] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir()
                                if p.suffix.lower() in SUFFIXES and not p.name.startswith(".")
                                and p.is_file()))
        elif path.is_file():
            files.append(path)
        elif path in required:
            errors.append(ConfigError(str(path), "no such file or directory"))
    return list(dict.fromkeys(files)), errors


class ConfigLoader:
    """Validates documents against the schema and models for one registry and environment."""

    def __init__(self, registry: CheckRegistry, environment: str,
                 max_bytes: int = 1024 * 1024) -> None:
        self.registry = registry
        self.environment = environment
        self.max_bytes = max_bytes
        self.validator = SchemaValidator(registry)

    def load_files(self, files: Iterable[Path]) -> list[LoadedConfig]:
        loaded: list[LoadedConfig] = []
        errors: list[ConfigError] = []
        for file in files:
            configs, file_errors = self.load_file(file)
            loaded.extend(configs)
            errors.extend(file_errors)
        errors.extend(_duplicates(loaded))
        if errors:
            raise ConfigLoadError(errors)
        return loaded

    def load_file(self, file: Path) -> tuple[list[LoadedConfig], list[ConfigError]]:
        try:
            document = read_document(file, self.max_bytes)
        except DocumentError as exc:
            return [], [exc.error]
        data = document.data
        if isinstance(data, dict) and "configs" in data and "id" not in data:
            entries = data["configs"]
            if not isinstance(entries, list) or not entries:
                return [], [self._error(document, ("configs",),
                                        "expected a non-empty list of configs")]
            extra = [k for k in data if k != "configs"]
            if extra:
                return [], [self._error(document, (extra[0],),
                                        f"unknown key {extra[0]!r} beside 'configs'")]
            items = [(("configs", i), entry) for i, entry in enumerate(entries)]
        else:
            items = [((), data)]
        configs: list[LoadedConfig] = []
        errors: list[ConfigError] = []
        for prefix, entry in items:
            config, entry_errors = self.load_entry(document, prefix, entry)
            errors.extend(entry_errors)
            if config is not None:
                configs.append(config)
        return configs, errors

    def _error(self, document: Document, path: tuple[PathItem, ...], message: str) -> ConfigError:
        return ConfigError(str(document.path), message, path, document.line_of(path))

    def load_entry(self, document: Document, prefix: tuple[PathItem, ...], entry: Any
                   ) -> tuple[LoadedConfig | None, list[ConfigError]]:
        if not isinstance(entry, dict):
            return None, [self._error(document, prefix, "expected a mapping with a config "
                                      f"(id, name, config_type, config), got {type(entry).__name__}")]
        if any(not isinstance(k, str) for k in entry):
            return None, [self._error(document, prefix, "keys must be strings")]
        try:
            migrated, source_format = migrate(entry)
        except MigrationError as exc:
            return None, [self._error(document, (*prefix, "schema_version"), str(exc))]

        def located(path: tuple[PathItem, ...], message: str) -> ConfigError:
            # A path in the migrated document may not exist in the original spelling; the
            # locator then falls back to the deepest part it finds.
            return self._error(document, (*prefix, *path), message)

        problems = self.validator.errors(migrated)
        if problems:
            return None, [located(path, message) for path, message in problems]
        try:
            config = PreflightConfig.model_validate(migrated)
        except ValidationError as exc:
            return None, _pydantic_errors(exc, (), located)

        body_raw = config.config
        overrides = config.environment_overrides
        errors: list[ConfigError] = []
        for env_name, override in overrides.items():
            merged = deep_merge(body_raw, override)
            for path, message in self.validator.body_errors(config.config_type, merged):
                errors.append(located(("environment_overrides", env_name, *path), message))
        if errors:
            return None, errors
        chosen = deep_merge(body_raw, overrides.get(self.environment, {}))
        body_prefix: tuple[PathItem, ...] = (
            ("environment_overrides", self.environment) if self.environment in overrides
            else ("config",))
        try:
            body = BODY_MODELS[config.config_type].model_validate(chosen)
        except ValidationError as exc:
            return None, _pydantic_errors(exc, body_prefix, located)
        definition: Definition | None = None
        if isinstance(body, SmokeTestBody):
            check_type = self.registry.get(body.test_type)
            assert check_type is not None  # the schema's enum already rejected unknown types
            try:
                definition = check_type.definition.model_validate(body.test_definition)
            except ValidationError as exc:
                return None, _pydantic_errors(exc, (*body_prefix, "test_definition"), located)
        return LoadedConfig(
            config=config, body=body, definition=definition, file=document.path, path=prefix,
            line=document.line_of(prefix) if prefix else 1, source_format=source_format,
            document=migrated,
        ), []


def _pydantic_errors(exc: ValidationError, prefix: tuple[PathItem, ...], located: Any
                     ) -> list[ConfigError]:
    out = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
        out.append(located((*prefix, *loc), message))
    return out


def _duplicates(configs: list[LoadedConfig]) -> list[ConfigError]:
    first: dict[str, LoadedConfig] = {}
    errors = []
    for config in configs:
        earlier = first.get(config.id)
        if earlier is None:
            first[config.id] = config
            continue
        where = f"{earlier.file}" + (f":{earlier.line}" if earlier.line else "")
        errors.append(ConfigError(str(config.file), f"duplicate id {config.id!r} (first defined "
                                  f"in {where})", (*config.path, "id"), config.line))
    return errors

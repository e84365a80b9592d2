"""``PreflightConfigManager``: the Python API over a directory of configs (``<id>.json``)."""

from __future__ import annotations

import builtins
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..checks.base import CheckRegistry
from ..checks.builtin import builtin_registry
from .errors import ConfigError, ConfigLoadError
from .loader import ConfigLoader, LoadedConfig, discover
from .models import ID_PATTERN

_ID = re.compile(ID_PATTERN)


class PreflightConfigManager:
    """Load, save, list, delete and validate configs.

    ``directory`` is where ``save`` writes (``<id>.json``, atomically); ``load`` and ``list``
    also see ``extra_paths``. Environment overrides apply on ``load``; saved files keep them
    separate, never merged into the base.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        environment: str = "development",
        registry: CheckRegistry | None = None,
        extra_paths: Sequence[Path] = (),
        max_bytes: int = 1024 * 1024,
    ) -> None:
        self.directory = Path(directory)
        self.environment = environment
        self.registry = registry or builtin_registry()
        self.extra_paths = tuple(extra_paths)
        self.max_bytes = max_bytes

    def _loader(self, environment: str | None) -> ConfigLoader:
        return ConfigLoader(self.registry, environment or self.environment, self.max_bytes)

    def _all(self, environment: str | None = None) -> list[LoadedConfig]:
        files, errors = discover([self.directory, *self.extra_paths], required=self.extra_paths)
        if errors:
            raise ConfigLoadError(errors)
        return self._loader(environment).load_files(files)

    def load(self, config_id: str, env: str | None = None) -> LoadedConfig:
        """The config ``config_id`` with the overrides of ``env`` (default: the manager's)."""
        for config in self._all(env):
            if config.id == config_id:
                return config
        raise KeyError(config_id)

    def list(self) -> builtins.list[str]:
        """Ids of every config the manager sees (raises ``ConfigLoadError`` if any is invalid)."""
        return [config.id for config in self._all()]

    def validate(self, raw: Any, source: str = "<config>") -> builtins.list[ConfigError]:
        """Every error in one raw config document (after migration); empty when valid.

        ``raw`` is data, not a file, so the errors carry paths but no line numbers.
        """
        from .documents import Document

        document = Document(path=Path(source), format="json", text="", data=raw)
        _, errors = self._loader(None).load_entry(document, (), raw)
        return errors

    def save(self, raw: dict[str, Any]) -> Path:
        """Validate, then write ``<directory>/<id>.json`` atomically. Raises on invalid input.

        Nothing is written when ``raw`` is invalid, or when another file in the directory
        already defines its id (that would make every later load fail).
        """
        source = str(
            self.directory / f"{raw.get('id', '?') if isinstance(raw, dict) else '?'}.json"
        )
        errors = self.validate(raw, source=source)
        if errors:
            raise ConfigLoadError(errors)
        config_id = str(raw["id"])
        if not _ID.match(config_id):  # the schema checked it; the path depends on it
            raise ValueError(f"invalid config id {config_id!r}")
        target = self.directory / f"{config_id}.json"
        try:
            text = json.dumps(raw, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        except (TypeError, ValueError) as exc:
            raise ConfigLoadError(
                [ConfigError(str(target), f"cannot be written as JSON: {exc}")]
            ) from None
        elsewhere = self._defined_elsewhere(config_id, target)
        if elsewhere is not None:
            raise ConfigLoadError(
                [
                    ConfigError(
                        str(target),
                        f"duplicate id {config_id!r}; already defined in {elsewhere}",
                        ("id",),
                    )
                ]
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomic(target, text.encode("utf-8"))
        return target

    def _defined_elsewhere(self, config_id: str, target: Path) -> str | None:
        """``file:line`` of a config with this id (in any case) in a file other than
        ``target``, or None."""
        files, _ = discover([self.directory, *self.extra_paths])
        loader = self._loader(None)
        for file in files:
            if file.resolve() == target.resolve():
                continue
            configs, _ = loader.load_file(file)  # a broken file cannot hold a loadable id
            for config in configs:
                # Ids differing only in case would be one file on some file systems.
                if config.id.casefold() == config_id.casefold():
                    line = config.id_line or config.line
                    where = f"{file}:{line}" if line else str(file)
                    return where if config.id == config_id else f"{where} (as {config.id!r})"
        return None

    def delete(self, config_id: str) -> bool:
        if not _ID.match(config_id):
            raise ValueError(f"invalid config id {config_id!r}")
        target = self.directory / f"{config_id}.json"
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        return True

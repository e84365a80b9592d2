"""Finding config files, loading every config in them, and validating all of it in one pass.

Errors are collected, not raised one at a time: a user fixing configs sees every problem at
once, each located by file, line and path. Nothing is returned unless everything is valid.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ..checks.base import CheckRegistry, Definition
from .documents import SUFFIXES, Document, DocumentError, read_document, too_deep_at
from .entries import probe
from .errors import ConfigError, ConfigLoadError, PathItem, kind
from .migrations import MigrationError, migrate
from .models import BODY_MODELS, PreflightConfig, SmokeTestBody
from .overrides import deep_merge
from .strict_validation import Validated, validate_strictly

if TYPE_CHECKING:
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
    #: The parsed file, kept to locate lines only when there is an error to report.
    source: Document | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def id_line(self) -> int | None:
        """Line of the ``id`` key (where a duplicate id is reported), or None."""
        return self.source.line_of((*self.path, "id")) if self.source is not None else None

    @property
    def config_type(self) -> str:
        return self.config.config_type

    @property
    def test_type(self) -> str | None:
        return self.body.test_type if isinstance(self.body, SmokeTestBody) else None


def discover(
    paths: Iterable[Path], required: Sequence[Path] = ()
) -> tuple[list[Path], list[ConfigError]]:
    """Config files under ``paths``: a directory gives its files (sorted, not recursive).

    A path in ``required`` that does not exist is an error; other missing paths (the default
    directory) simply hold no configs. A path that exists but cannot be used (a dangling
    symlink, a symlink loop, a FIFO, a directory that cannot be listed) is always an error:
    skipping it would open the gate with fewer checks. In a directory, every entry named like a
    config (by suffix, not hidden) that is not a subdirectory is returned, whatever it is;
    ``read_document`` then refuses, by name, what is not a readable regular file.
    """
    files: list[Path] = []
    errors: list[ConfigError] = []
    for path in paths:
        entry = probe(path)
        if entry.kind == "dir":
            listed, error = _listing(path)
            files.extend(listed)
            errors.extend(error)
        elif entry.kind == "file":
            files.append(path)
        elif entry.kind == "unusable":
            errors.append(ConfigError(str(path), entry.problem))
        elif path in required:
            errors.append(ConfigError(str(path), "no such file or directory"))
    return list(dict.fromkeys(files)), errors


def _listing(directory: Path) -> tuple[list[Path], list[ConfigError]]:
    """The config-like entries of ``directory``, or the error that it cannot be listed."""
    try:
        with os.scandir(directory) as entries:
            names = sorted(e.name for e in entries)
    except OSError as exc:
        return [], [
            ConfigError(str(directory), f"cannot list the directory: {exc.strerror or exc}")
        ]
    candidates = [
        directory / name
        for name in names
        if Path(name).suffix.lower() in SUFFIXES and not name.startswith(".")
    ]
    # Subdirectories are not walked (a place for archived configs, say); all else is read.
    return [p for p in candidates if probe(p).kind != "dir"], []


def is_config_list(data: Any) -> bool:
    """Whether a file's data holds several configs under ``configs`` rather than one."""
    return isinstance(data, dict) and "configs" in data and "id" not in data


class ConfigLoader:
    """Validates documents against the schema and models for one registry and environment."""

    def __init__(
        self, registry: CheckRegistry, environment: str, max_bytes: int = 1024 * 1024
    ) -> None:
        self.registry = registry
        self.environment = environment
        self.max_bytes = max_bytes

    @functools.cached_property
    def validator(self) -> SchemaValidator:
        # Built on first use: configs rebuilt from the cache (``restore``) never need it, and
        # building it (the JSON Schema of every model, and jsonschema) costs more than they do.
        from .schema import SchemaValidator

        return SchemaValidator(self.registry)

    def load_files(
        self, files: Iterable[Path], raws: Mapping[Path, bytes] | None = None
    ) -> list[LoadedConfig]:
        """Every config in ``files``; raises ``ConfigLoadError`` with every problem.

        ``raws``: the bytes of files already read (see ``cache``), parsed as they are, so that
        what is loaded is what those bytes say.
        """
        loaded: list[LoadedConfig] = []
        errors: list[ConfigError] = []
        for file in files:
            configs, file_errors = self.load_file(file, raws.get(file) if raws else None)
            loaded.extend(configs)
            errors.extend(file_errors)
        errors.extend(_duplicates(loaded))
        if errors:
            raise ConfigLoadError(errors)
        return loaded

    def load_file(
        self, file: Path, raw: bytes | None = None
    ) -> tuple[list[LoadedConfig], list[ConfigError]]:
        try:
            document = read_document(file, self.max_bytes, raw)
        except DocumentError as exc:
            return [], [exc.error]
        return self.load_document(document)

    def load_document(self, document: Document) -> tuple[list[LoadedConfig], list[ConfigError]]:
        """Every config in a parsed file: one, or a list under ``configs``."""
        data = document.data
        if is_config_list(data):
            entries = data["configs"]
            if not isinstance(entries, list) or not entries:
                return [], [
                    self._error(document, ("configs",), "expected a non-empty list of configs")
                ]
            extra = [k for k in data if k != "configs"]
            if extra:
                return [], [
                    self._error(document, (extra[0],), f"unknown key {extra[0]!r} beside 'configs'")
                ]
            items: list[tuple[tuple[PathItem, ...], Any]] = [
                (("configs", i), entry) for i, entry in enumerate(entries)
            ]
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

    def load_entry(
        self, document: Document, prefix: tuple[PathItem, ...], entry: Any
    ) -> tuple[LoadedConfig | None, list[ConfigError]]:
        if not isinstance(entry, dict):
            return None, [
                self._error(
                    document,
                    prefix,
                    "expected an object (a mapping) with a config (id, name, "
                    f"config_type, config), got {kind(entry, article=True)}",
                )
            ]
        too_deep = too_deep_at(entry)
        if too_deep is not None:
            return None, [
                self._error(
                    document,
                    (*prefix, *too_deep[:4]),
                    "nested too deeply (below this path); a config never needs that",
                )
            ]
        unfit = _unfit_value(entry)
        if unfit is not None:
            return None, [self._error(document, (*prefix, *unfit[0]), unfit[1])]
        try:
            migrated, source_format = migrate(entry)
        except MigrationError as exc:
            return None, [self._error(document, (*prefix, *exc.path), str(exc))]

        def located(path: tuple[PathItem, ...], message: str) -> ConfigError:
            # A path in the migrated document may not exist in the original spelling; the
            # locator then falls back to the deepest part it finds.
            return self._error(document, (*prefix, *path), message)

        # A valid config needs pydantic only; the rest (and plugins' types) get the JSON
        # Schema too, which words and locates their errors (see ``strict_validation``).
        checked = validate_strictly(self.registry, migrated, self.environment)
        if checked is None:
            checked, errors = self._validate_described(migrated, located)
            if checked is None:
                return None, errors
        config, body, definition = checked
        return LoadedConfig(
            config=config,
            body=body,
            definition=definition,
            file=document.path,
            path=prefix,
            line=document.line_of(prefix) if prefix else 1,
            source_format=source_format,
            document=migrated,
            source=document,
        ), []

    def _validate_described(
        self,
        migrated: dict[str, Any],
        located: Callable[[tuple[PathItem, ...], str], ConfigError],
    ) -> tuple[Validated | None, list[ConfigError]]:
        """``migrated`` checked against the JSON Schema, then the models: the schema's errors
        when it finds any (with "did you mean"), else pydantic's, each located."""
        problems = self.validator.errors(migrated)
        if problems:
            return None, [located(path, message) for path, message in problems]
        try:
            config = PreflightConfig.model_validate(migrated)
        except ValidationError as exc:
            return None, _pydantic_errors(exc, (), located, migrated)

        # The base body is what every environment without an override gets; each override is
        # validated merged, as fully as the base, so no environment's config fails only when
        # that environment is chosen.
        # The document's schema already covered ``config``; checking it again costs a third of
        # the load time and finds nothing.
        body, definition, errors = self.validate_body(
            config.config_type, config.config, ("config",), located, schema=False
        )
        if errors:
            return None, errors
        for env_name, override in config.environment_overrides.items():
            env_body, env_definition, env_errors = self.validate_body(
                config.config_type,
                deep_merge(config.config, override),
                ("environment_overrides", env_name),
                located,
            )
            errors.extend(env_errors)
            if env_name == self.environment:
                body, definition = env_body, env_definition
        if errors or body is None:
            return None, errors
        return (config, body, definition), []

    def restore(
        self,
        document: Document,
        path: tuple[PathItem, ...],
        line: int | None,
        source_format: int,
        migrated: dict[str, Any],
    ) -> LoadedConfig:
        """The config ``load_entry`` built from ``document`` in an earlier run (see ``cache``),
        built again by the same models: ``migrated`` is the document it validated then.

        Parsing, migrating, the JSON Schema and the bodies of the other environments are not
        done again: the cache entry's key holds everything that decided them. Raises
        ``ValueError`` (or another exception) for an entry this loader would not have written.
        """
        config = PreflightConfig.model_validate(migrated)
        override = config.environment_overrides.get(self.environment)
        raw = config.config if override is None else deep_merge(config.config, override)

        def located(where: tuple[PathItem, ...], message: str) -> ConfigError:
            return self._error(document, (*path, *where), message)

        body, definition, errors = self.validate_body(
            config.config_type, raw, ("config",), located, schema=False
        )
        if errors or body is None:
            raise ValueError(f"a cached config does not validate: {errors[:1]}")
        return LoadedConfig(
            config=config,
            body=body,
            definition=definition,
            file=document.path,
            path=path,
            line=line,
            source_format=source_format,
            document=migrated,
            source=document,
        )

    def validate_body(
        self,
        config_type: str,
        raw: dict[str, Any],
        prefix: tuple[PathItem, ...],
        located: Callable[[tuple[PathItem, ...], str], ConfigError],
        schema: bool = True,
    ) -> tuple[BaseModel | None, Definition | None, list[ConfigError]]:
        """Validate one (merged) body of ``config_type`` fully: the JSON Schema (unless
        ``schema`` is False because it was already checked), the body model and, for a smoke
        test, its ``test_definition`` model. Errors are located under ``prefix`` (``config`` or
        ``environment_overrides.<env>``); on errors the body is None.
        """
        problems = self.validator.body_errors(config_type, raw) if schema else []
        if problems:
            return None, None, [located((*prefix, *path), message) for path, message in problems]
        try:
            body = BODY_MODELS[config_type].model_validate(raw)
        except ValidationError as exc:
            return None, None, _pydantic_errors(exc, prefix, located, raw)
        if not isinstance(body, SmokeTestBody):
            return body, None, []
        check_type = self.registry.get(body.test_type)
        assert check_type is not None  # the schema's enum already rejected unknown types
        try:
            definition = check_type.definition.model_validate(body.test_definition)
        except ValidationError as exc:
            return (
                None,
                None,
                _pydantic_errors(exc, (*prefix, "test_definition"), located, body.test_definition),
            )
        return body, definition, []


def _unfit_value(value: Any) -> tuple[tuple[PathItem, ...], str] | None:
    """(path, message) of the first thing JSON cannot hold, which YAML and TOML can write:
    a key that is not a string, or NaN (which no bound such as ``gt=0`` ever rejects)."""
    stack: list[tuple[Any, tuple[PathItem, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return path, (
                        f"key {key!r} is {kind(key, article=True)}; keys must be "
                        "strings (put it in quotes)"
                    )
                stack.append((child, (*path, key)))
        elif isinstance(item, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(item))
        elif isinstance(item, float) and math.isnan(item):
            return path, "NaN is not a usable value; expected a number"
    return None


#: pydantic error types that only say "the input is not of this union member's type".
_NOT_MY_TYPE = frozenset(
    {
        "model_type",
        "model_attributes_type",
        "dict_type",
        "list_type",
        "string_type",
        "int_type",
        "float_type",
        "bool_type",
        "is_instance_of",
        "literal_error",
    }
)


def _document_loc(
    loc: tuple[Any, ...], data: Any, error_type: str
) -> tuple[tuple[PathItem, ...], tuple[PathItem, ...] | None, bool]:
    """Split pydantic's ``loc`` into the path in the document and the union it went through.

    pydantic puts the name of a union member (``PathSpec``, ``str``, ``function-after[...]``)
    into ``loc``; those are not keys of the document. Returns (path, where the first union is
    or None, whether the error is about the member itself rather than something inside it).
    """
    path: list[PathItem] = []
    union: tuple[PathItem, ...] | None = None
    at_member = False
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        in_dict = isinstance(node, dict) and part in node
        in_list = (
            isinstance(node, list)
            and isinstance(part, int)
            and not isinstance(part, bool)
            and 0 <= part < len(node)
        )
        if in_dict or in_list:
            node = node[part]
        elif isinstance(part, str) and not (last and error_type == "missing"):
            if union is None:
                union = tuple(path)
            at_member = last
            continue
        else:
            node = None
        path.append(part)
        at_member = False
    return tuple(path), union, at_member


def _pydantic_errors(
    exc: ValidationError, prefix: tuple[PathItem, ...], located: Any, data: Any
) -> list[ConfigError]:
    found = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        path, union, at_member = _document_loc(tuple(error["loc"]), data, str(error["type"]))
        found.append((path, union, at_member and error["type"] in _NOT_MY_TYPE, message))
    # A value that fits no member of a union gets one error per member; the members it is not
    # even the type of ("Input should be a valid string") only hide the useful one.
    useful_unions = {union for _, union, not_mine, _ in found if union is not None and not not_mine}
    out = []
    for path, union, not_mine, message in found:
        if not_mine and union in useful_unions:
            continue
        out.append(located((*prefix, *path), message))
    return out


def _duplicates(configs: list[LoadedConfig]) -> list[ConfigError]:
    """Ids defined twice, or twice but for case: ids become file names (``<id>.json``), and on a
    case-insensitive file system ``Dup`` and ``dup`` are one file."""
    first: dict[str, LoadedConfig] = {}
    errors = []
    for config in configs:
        earlier = first.get(config.id.casefold())
        if earlier is None:
            first[config.id.casefold()] = config
            continue
        line = earlier.id_line or earlier.line
        where = f"{earlier.file}" + (f":{line}" if line else "")
        if earlier.id == config.id:
            message = f"duplicate id {config.id!r}; first defined in {where}"
        else:
            message = (
                f"id {config.id!r} differs only in case from {earlier.id!r}, defined in "
                f"{where}; ids become file names, so they must differ in more than case"
            )
        errors.append(
            ConfigError(
                str(config.file), message, (*config.path, "id"), config.id_line or config.line
            )
        )
    return errors

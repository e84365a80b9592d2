"""``file_system`` checks: paths exist with the right kind and access, free space, parsable
files."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import CheckContext, CheckType, Definition, Observation

_ACCESS = {"r": os.R_OK, "w": os.W_OK, "x": os.X_OK}


class PathSpec(Definition):
    path: str = Field(min_length=1)
    kind: Literal["file", "dir", "any"] = "any"
    access: str = Field(
        default="",
        pattern=r"^r?w?x?$",
        description="Effective access for this user: any of r, w, x",
    )
    must_exist: bool = True
    parse: bool = Field(default=False, description="The file must parse (JSON, YAML or TOML)")
    json_schema: dict[str, Any] | None = Field(
        default=None, description="The parsed file must validate against this JSON Schema"
    )

    @field_validator("json_schema")
    @classmethod
    def _schema_valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from jsonschema import Draft202012Validator, SchemaError

            from ..matching import refuse_unbounded_schema

            try:
                Draft202012Validator.check_schema(value)
            except SchemaError as exc:
                raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
            refuse_unbounded_schema(value)
        return value


class FileSystemDefinition(Definition):
    paths: list[PathSpec | str] = Field(default_factory=list)
    min_free_mb: float | None = Field(default=None, ge=0)
    free_space_path: str = "."

    @model_validator(mode="after")
    def _checks_something(self) -> FileSystemDefinition:
        if not self.paths and self.min_free_mb is None:
            raise ValueError("nothing to check: give at least one of paths, min_free_mb")
        return self


def _writable_dir(path: Path) -> bool:
    """``os.access`` lies on read-only mounts and for root; a real write does not."""
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".maf-preflight-", delete=True):
            return True
    except OSError:
        return False


def _parse(path: Path) -> Any:
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    if suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    if suffix == ".toml":
        from ..compat import tomllib

        return tomllib.loads(text)
    return json.loads(text)


def _check_path(spec: PathSpec, ctx: CheckContext) -> list[str]:
    path = ctx.path(spec.path)
    if not path.exists():
        return [f"{spec.path}: does not exist"] if spec.must_exist else []
    problems = []
    is_dir = path.is_dir()
    if spec.kind == "file" and is_dir:
        problems.append(f"{spec.path}: is a directory, expected a file")
    elif spec.kind == "dir" and not is_dir:
        problems.append(f"{spec.path}: is not a directory")
    for letter in spec.access:
        ok = _writable_dir(path) if letter == "w" and is_dir else os.access(path, _ACCESS[letter])
        if not ok:
            word = {"r": "readable", "w": "writable", "x": "executable"}[letter]
            problems.append(f"{spec.path}: not {word} by this user")
    wants_parse = spec.parse or spec.json_schema is not None
    if wants_parse and is_dir and spec.kind != "file":  # kind "file" already said so
        problems.append(f"{spec.path}: is a directory, expected a parsable file")
    if wants_parse and not is_dir and not problems:
        try:
            data = _parse(path)
        except Exception as exc:  # any parse error is a finding, not a crash
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return [*problems, f"{spec.path}: does not parse: {first_line}"]
        if spec.json_schema is not None:
            from ..matching import schema_validator

            validator = schema_validator(spec.json_schema, lambda: ctx.remaining(3600.0))
            errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
            if errors:
                where = "/".join(str(p) for p in errors[0].absolute_path) or "(document)"
                problems.append(f"{spec.path}: {where}: {errors[0].message}")
    return problems


def run(definition: FileSystemDefinition, ctx: CheckContext) -> Observation:
    specs = [PathSpec(path=s) if isinstance(s, str) else s for s in definition.paths]
    problems: list[str] = []
    for spec in specs:
        problems.extend(_check_path(spec, ctx))
    expected = [
        ", ".join(
            f"{s.path}"
            + (f" ({s.kind})" if s.kind != "any" else "")
            + (f" [{s.access}]" if s.access else "")
            for s in specs
        )
        or "(no paths)"
    ]
    details: dict[str, Any] = {"paths": [s.path for s in specs]}
    if definition.min_free_mb is not None:
        expected.append(f"at least {definition.min_free_mb:g} MB free")
        where = ctx.path(definition.free_space_path)
        try:
            free_mb = shutil.disk_usage(where).free / (1024 * 1024)
            details["free_mb"] = round(free_mb, 1)
            if free_mb < definition.min_free_mb:
                problems.append(f"{free_mb:.0f} MB free at {definition.free_space_path}")
        except OSError as exc:
            problems.append(
                f"cannot read free space at {definition.free_space_path}: {exc.strerror}"
            )
    observed = "; ".join(problems) if problems else "all paths as expected"
    return Observation(
        passed=not problems, expected="; ".join(expected), observed=observed, details=details
    )


CHECK_TYPE = CheckType(
    "file_system",
    FileSystemDefinition,
    run,
    "Paths, kinds, effective access, free space, parsable config files",
)

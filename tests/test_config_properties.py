"""Property: whatever a config file holds, loading ends in configs or in clean errors naming it.

Documents are generated from the shipped examples (both spellings), mutated at random places
(values of every type and size, keys added, keys spelled twice, subtrees replaced), written as
JSON, YAML or TOML, sometimes cut short or replaced by random bytes. They go through the
loader's public entry point (``discover`` and ``ConfigLoader.load_files``, as ``maf-preflight
validate`` and the gate call them) and, fewer of them, through a real gate run.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import EXAMPLES
from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.compat import tomllib
from pytest_maf_preflight.config.errors import ConfigLoadError
from pytest_maf_preflight.config.loader import ConfigLoader, LoadedConfig, discover
from pytest_maf_preflight.config.migrations import snake

PathItem = str | int


def _parse(path: Path) -> Any:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".toml":
        return tomllib.loads(path.read_text())
    return yaml.safe_load(path.read_text())


SEEDS = [_parse(p) for p in sorted(EXAMPLES.rglob("*")) if p.suffix in (".json", ".yaml", ".toml")]
#: Seeds a gate run may execute quickly and without the network.
_FAST = """\
id: fast
name: A quick local check
config_type: smoke_test
config:
  test_type: command
  timeout_seconds: 0.5
  test_definition: {argv: ["true"], expected_exit_code: 0}
environment_overrides:
  production: {test_definition: {expected_exit_code: 0}}
"""
GATE_SEEDS = [
    yaml.safe_load(_FAST),
    *(s for s in SEEDS if s.get("config_type") in ("escalation_path", "reservation_check")),
]
#: Key names worth trying: real ones in both spellings, and the original format's.
KEYS = [
    "id",
    "name",
    "config_type",
    "configType",
    "config",
    "configs",
    "test_type",
    "testType",
    "test_definition",
    "testDefinition",
    "timeout_seconds",
    "timeoutSeconds",
    "timeout",
    "timeoutMs",
    "timeout_ms",
    "retry_count",
    "retryCount",
    "url",
    "connectionString",
    "environment_overrides",
    "environmentOverrides",
    "schema_version",
    "schemaVersion",
    "is_active",
    "severity",
    "argv",
    "paths",
    "escalation_path",
    "escalationPath",
    "expected_status",
    "expectedStatus",
    "patterns",
    "required",
    "check_type",
    "<<",
]

#: Integers of thousands of digits: Python refuses to read them by default.
TOO_LONG = st.integers(4290, 5000).map(lambda digits: -(10**digits))
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | TOO_LONG
    | st.sampled_from([2**64, 1e308, "${ENV:HOME}", ""])
    | st.text(max_size=12)
)
#: Small numbers only: a gate run then ends in seconds whatever the retries and timeouts.
GATE_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-2, 3)
    | st.floats(0, 0.2)
    | st.text(max_size=8)
    | TOO_LONG
)


def _values(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=8,
    )


def _nodes(value: Any, path: tuple[PathItem, ...] = ()) -> list[tuple[PathItem, ...]]:
    out = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_nodes(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.extend(_nodes(item, (*path, index)))
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _mutate(draw: st.DrawFn, doc: Any, values: st.SearchStrategy[Any]) -> Any:
    """One random change somewhere in ``doc`` (which is changed in place and returned)."""
    path = draw(st.sampled_from(_nodes(doc)))
    if not path:
        return draw(values) if draw(st.integers(0, 9)) == 0 else doc
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    action = draw(st.sampled_from(["replace", "add", "respell", "delete"]))
    if action == "replace" or not isinstance(parent, dict):
        parent[last] = draw(values)
    elif action == "add":
        parent[draw(st.sampled_from(KEYS) | st.text(max_size=8))] = draw(values)
    elif action == "respell" and isinstance(last, str):
        other = _camel(last) if snake(last) == last else snake(last)
        parent[other] = copy.deepcopy(parent[last])  # one key, two spellings
    else:
        del parent[last]
    return doc


def _serialize(doc: Any, fmt: str) -> bytes:
    # Writing an integer longer than Python converts by default needs the limit lifted (only
    # while writing: the loader under test reads with the default).
    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    if limit:
        sys.set_int_max_str_digits(0)
    try:
        return _written(doc, fmt)
    finally:
        if limit:
            sys.set_int_max_str_digits(limit)


def _written(doc: Any, fmt: str) -> bytes:
    if fmt == "toml" and isinstance(doc, dict):
        try:
            return tomli_w.dumps(doc).encode()
        except (ValueError, TypeError, RecursionError):
            pass  # TOML cannot hold it (None, NaN, ...): write JSON in a .toml file instead
    if fmt == "yaml":
        return yaml.safe_dump(doc, allow_unicode=True).encode()
    return json.dumps(doc, indent=1, ensure_ascii=False).encode()


@st.composite
def config_files(
    draw: st.DrawFn, seeds: list[Any] = SEEDS, scalars: st.SearchStrategy[Any] = SCALARS
) -> tuple[str, bytes]:
    """(file name, content) of a config file, usually almost right, sometimes garbage."""
    fmt = draw(st.sampled_from(["json", "yaml", "toml"]))
    name = f"c.{fmt}"
    if draw(st.integers(0, 9)) == 0:
        return name, draw(st.binary(max_size=200))
    doc = copy.deepcopy(draw(st.sampled_from(seeds)))
    values = _values(scalars)
    for _ in range(draw(st.integers(0, 4))):
        doc = _mutate(draw, doc, values)
    content = _serialize(doc, fmt)
    if draw(st.integers(0, 9)) == 0:  # cut short, or a random byte changed
        cut = draw(st.integers(0, len(content)))
        content = content[:cut] + draw(st.binary(max_size=2))
    return name, content


def _load(directory: Path) -> list[LoadedConfig] | ConfigLoadError:
    files, errors = discover([directory])
    assert not errors
    try:
        return ConfigLoader(builtin_registry(), "production").load_files(files)
    except ConfigLoadError as exc:
        return exc


def _assert_clean(outcome: list[LoadedConfig] | ConfigLoadError, path: Path) -> None:
    if isinstance(outcome, ConfigLoadError):
        assert outcome.errors
        for error in outcome.errors:
            assert error.file == str(path)
            text = error.format()
            assert text.startswith(f"{path}"), text
            assert "\n" not in text, text
            assert "Traceback" not in text, text
    else:
        assert all(config.file == path for config in outcome)


@settings(max_examples=300, deadline=None)
@given(config_files())
@example(("c.yaml", b"\x01"))  # found by it: a YAML reader error spanning two lines
@example(("c.json", b'{"\\n": null}'))  # found by it: a key that printed as a line break
@example(("c.toml", b"a = 1" + b"1" * 5000))  # an integer Python does not read by default
def test_any_config_file_loads_or_gives_clean_errors_naming_it(file: tuple[str, bytes]) -> None:
    name, content = file
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(content)
        _assert_clean(_load(Path(tmp)), path)


@pytest.fixture
def gate(pytester: pytest.Pytester) -> Callable[[str, bytes], tuple[int, str]]:
    directory = pytester.path / ".maf" / "preflight-configs"
    pytester.makepyfile(test_app="def test_app():\n    pass\n")

    def run(name: str, content: bytes) -> tuple[int, str]:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        (directory / name).write_bytes(content)
        result = pytester.runpytest(
            "-p", "maf_preflight", "--maf-preflight", "--maf-env=production"
        )
        return int(result.ret), result.stdout.str() + "\n" + result.stderr.str()

    return run


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(config_files(GATE_SEEDS, GATE_SCALARS))
def test_gate_run_on_any_config_file_ends_cleanly(
    gate: Callable[[str, bytes], tuple[int, str]], file: tuple[str, bytes]
) -> None:
    code, output = gate(*file)
    assert code in (0, 10, 11), output
    assert "Traceback" not in output, output
    assert "INTERNALERROR" not in output, output
    if code == 11:
        assert f".maf/preflight-configs/{file[0]}" in output, output

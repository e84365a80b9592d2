"""The loader accepts a valid config on pydantic's word alone (strict mode), without the JSON
Schema: that is safe only if whatever strict pydantic accepts, the schema and the lax models
accept too, giving the same models. Held here over mutated configs of every built-in type, and
for the cases that differ on purpose (plugins' types, aliases, enum values, ``2.0``)."""

from __future__ import annotations

import copy
import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from conftest import EXAMPLES
from pytest_maf_preflight.checks.base import CheckRegistry, CheckType, Definition
from pytest_maf_preflight.checks.builtin import BUILTIN_MODULES, builtin_registry
from pytest_maf_preflight.config.errors import ConfigLoadError
from pytest_maf_preflight.config.loader import ConfigLoader
from pytest_maf_preflight.config.migrations import MigrationError, migrate
from pytest_maf_preflight.config.models import BODY_MODELS, PreflightConfig, SmokeTestBody
from pytest_maf_preflight.config.overrides import deep_merge
from pytest_maf_preflight.config.schema import SchemaValidator
from pytest_maf_preflight.config.strict_validation import validate_strictly

REGISTRY = builtin_registry()
VALIDATOR = SchemaValidator(REGISTRY)
ENVIRONMENT = "production"

#: One config of each built-in type (and body), with an override where one makes sense.
SEED_TEXT = """\
configs:
  - id: api
    name: API answers
    config_type: smoke_test
    severity: warning
    tags: [a]
    config:
      test_type: api
      timeout_seconds: 5
      retry_count: 1
      test_definition:
        url: http://127.0.0.1:9/health
        method: GET
        headers: {X-A: b}
        query: {n: 1, f: 1.5, b: true, s: x}
        expected_status: [200, 204]
        json: {status: ok}
        body_regex: "^ok"
        max_latency_ms: 50
    environment_overrides:
      production: {test_definition: {expected_status: 200}}
  - id: cmd
    name: A command
    config_type: smoke_test
    config:
      test_type: command
      test_definition:
        argv: ["true"]
        expected_exit_code: 0
        stdout_regex: "a+"
        env: {A: b}
  - id: db
    name: A database
    config_type: smoke_test
    config:
      test_type: database
      test_definition: {url: "sqlite:///x.db", query: "select 1", expected_value: 1}
  - id: env
    name: Variables
    config_type: smoke_test
    config:
      test_type: environment
      test_definition: {required: [HOME], optional: [X], patterns: {HOME: "/.*"}}
  - id: fs
    name: Files
    config_type: smoke_test
    config:
      test_type: file_system
      test_definition:
        paths: [a.txt, {path: b.json, kind: file, access: rw, parse: true}]
        min_free_mb: 1
  - id: group
    name: A group
    config_type: smoke_test
    config:
      test_type: integration
      test_definition: {checks: [api, cmd]}
  - id: perf
    name: Fast enough
    config_type: smoke_test
    config:
      test_type: performance
      test_definition:
        request: {url: "http://127.0.0.1:9/", json: {a: 1}}
        iterations: 3
        concurrency: 2
        p95_ms: 100
        max_error_rate: 0.5
  - id: py
    name: Python
    config_type: smoke_test
    config:
      test_type: python
      test_definition: {python: ">=3.8", packages: {pytest: ">=7"}}
  - id: leases
    name: Leases
    config_type: reservation_check
    config:
      check_type: lock_validation
      parameters: {changed_files: list, files: [a.py], max_concurrent_readers: 2}
  - id: path
    name: A path
    config_type: escalation_path
    config:
      trigger_conditions: [{condition: failure_count, operator: gte, threshold: 2}]
      escalation_steps:
        - {level: 1, action: notify, target: a, timeout_minutes: 0.5}
        - {level: 2, action: escalate, target: b}
      targets: {a: {channel: webhook, url: "http://127.0.0.1:9/hook"}}
      repeat: 2
      max_escalation_level: 2
"""


def _migrated(entry: Any) -> dict[str, Any] | None:
    try:
        return migrate(entry)[0]
    except MigrationError:
        return None


def _example_entries() -> list[Any]:
    out: list[Any] = []
    for path in sorted(EXAMPLES.rglob("*")):
        if path.suffix in (".yaml", ".json"):
            data = yaml.safe_load(path.read_text())
            out.extend(data.get("configs", [data]))
    return out


SEEDS = [
    m
    for m in map(_migrated, [*yaml.safe_load(SEED_TEXT)["configs"], *_example_entries()])
    if m is not None
]

#: Values where strict pydantic, lax pydantic and the JSON Schema may part ways.
TRICKY = st.sampled_from(
    [
        "5",
        "1.5",
        "true",
        "yes",
        "",
        "critical",
        "warning",
        "CRITICAL",
        "abc\n",
        "a b",
        "GET",
        "^(",
        "${ENV:HOME}",
        0,
        1,
        -1,
        2,
        2.0,
        1.5,
        0.0,
        10**20,
        float("inf"),
        True,
        False,
        None,
        [],
        {},
        ["x"],
        [1],
        [1.0],
        [True],
        {"x": 1},
        {"x": "y"},
        datetime.date(2024, 1, 2),
        b"bytes",
        (1, 2),
    ]
).map(copy.deepcopy)  # a fresh list or dict each time: never one inside itself
KEYS = st.sampled_from(
    [
        "json",
        "json_values",
        "severity",
        "required",
        "argv",
        "url",
        "test_type",
        "test_definition",
        "expected_status",
        "timeout_seconds",
        "retry_count",
        "paths",
        "level",
        "repeat",
        "production",
        "development",
        "reuse_passed_for_seconds",
        "unknown",
    ]
)
TEST_TYPES = st.sampled_from([*BUILTIN_MODULES, "nope"])


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_nodes(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.extend(_nodes(item, (*path, index)))
    return out


def _alike(value: Any) -> st.SearchStrategy[Any]:
    """Values of the same JSON type as ``value`` (and those lax mode would take for it)."""
    if isinstance(value, bool):
        return st.sampled_from([True, False, 0, 1, "true"])
    if isinstance(value, (int, float)):
        return st.sampled_from([0, 1, 3, 2.0, 0.5, -1, 10**20, float("inf"), "5", True])
    if isinstance(value, str):
        return st.sampled_from(["x", "", "5", "a\n", "warning", "GET", "1.0.0", b"x", 5])
    if isinstance(value, list):
        return st.sampled_from([[], ["x"], [1], [[]], [{}], (1,), {"x"}]).map(copy.deepcopy)
    return st.sampled_from([{}, {"x": 1}, {"x": "y"}, [("x", 1)]]).map(copy.deepcopy)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """A migrated config of some built-in type, changed in one or two places."""
    doc: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    if draw(st.booleans()) and isinstance(doc.get("config"), dict):
        doc["environment_overrides"] = {ENVIRONMENT: {}, "development": {}}
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(_nodes(doc)[1:]))
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["alike", "alike", "replace", "add", "delete", "test_type"]))
        if action == "alike":  # often still valid: where the three might disagree
            parent[path[-1]] = draw(_alike(parent[path[-1]]))
        elif action == "replace" or not isinstance(parent, dict):
            parent[path[-1]] = draw(TRICKY)
        elif action == "add":
            parent[draw(KEYS)] = draw(TRICKY | st.dictionaries(KEYS, TRICKY, max_size=2))
        elif action == "test_type":
            parent["test_type"] = draw(TEST_TYPES)
        else:
            del parent[path[-1]]
    return doc


def _lax(document: dict[str, Any]) -> tuple[Any, Any, Any]:
    """What the loader's full path builds, each part checked against the schema first."""
    assert VALIDATOR.errors(document) == []
    config = PreflightConfig.model_validate(document)
    chosen = None
    bodies = [("", config.config)] + [
        (name, deep_merge(config.config, override))
        for name, override in config.environment_overrides.items()
    ]
    for name, raw in bodies:
        assert VALIDATOR.body_errors(config.config_type, raw) == []
        body = BODY_MODELS[config.config_type].model_validate(raw)
        definition = None
        if isinstance(body, SmokeTestBody):
            check_type = REGISTRY.get(body.test_type)
            assert check_type is not None
            definition = check_type.definition.model_validate(body.test_definition)
        if not name or name == ENVIRONMENT:
            chosen = (body, definition)
    assert chosen is not None
    return config, *chosen


def test_every_seed_takes_the_strict_path() -> None:
    # Otherwise the property below would prove little: valid configs must pass strictly.
    assert {s["config"].get("test_type") for s in SEEDS} >= {*BUILTIN_MODULES, None}
    for seed in SEEDS:
        assert validate_strictly(REGISTRY, seed, ENVIRONMENT) is not None, seed["id"]


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(documents())
@example({**SEEDS[0], "severity": "critical"})
def test_what_strict_pydantic_accepts_the_schema_and_lax_models_accept_alike(
    document: dict[str, Any],
) -> None:
    strict = validate_strictly(REGISTRY, document, ENVIRONMENT)
    if strict is not None:
        assert strict == _lax(document)


def _api(**definition: Any) -> dict[str, Any]:
    return {
        "id": "a",
        "name": "a",
        "config_type": "smoke_test",
        "config": {"test_type": "api", "test_definition": {"url": "http://x/", **definition}},
    }


@pytest.mark.parametrize(
    ("document", "strict"),
    [
        # Configs spell it ``json``; the schema refuses the field's Python name.
        (_api(json={"a": 1}), True),
        (_api(json_values={"a": 1}), False),
        # Enum fields take their values (as the schema does), not only members.
        ({**_api(), "severity": "warning"}, True),
        ({**_api(), "severity": "Warning"}, False),
        # Strict mode refuses what lax mode would coerce (and the schema refuses).
        (_api(expected_status="200"), False),
        (_api(verify_tls=1), False),
        # ... and 2.0 for an integer, which the schema and lax mode take: the full path decides.
        (_api(expected_status=200.0), False),
    ],
)
def test_the_cases_that_part_ways(document: dict[str, Any], strict: bool) -> None:
    assert (validate_strictly(REGISTRY, document, ENVIRONMENT) is not None) is strict


def test_an_integral_float_still_loads_through_the_full_path(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump(_api(expected_status=200.0)))
    [loaded] = ConfigLoader(REGISTRY, ENVIRONMENT).load_files([file])
    assert loaded.definition is not None
    assert loaded.definition.expected_status == 200  # type: ignore[attr-defined]


class Capped(Definition):
    # A rule only the schema states: pydantic takes any integer here.
    size: int = Field(json_schema_extra={"maximum": 3})


def _capped_registry() -> CheckRegistry:
    registry = builtin_registry()
    registry.register(CheckType("capped", Capped, None))
    return registry


def test_a_plugins_type_always_gets_the_schema(tmp_path: Path) -> None:
    """The package cannot vouch that a plugin's models say all their schema says."""
    document = {
        "id": "c",
        "name": "c",
        "config_type": "smoke_test",
        "config": {"test_type": "capped", "test_definition": {"size": 10}},
    }
    registry = _capped_registry()
    assert validate_strictly(registry, document, ENVIRONMENT) is None
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigLoadError) as caught:
        ConfigLoader(registry, ENVIRONMENT).load_files([file])
    assert caught.value.errors[0].message == "expected at most 3, got 10"
    assert caught.value.errors[0].path == ("config", "test_definition", "size")


def test_no_builtin_model_takes_a_name_the_schema_refuses() -> None:
    """An aliased field's Python name passes pydantic where ``populate_by_name`` is on, while
    the schema (generated by alias) refuses it: no built-in model may do that."""
    models: list[type[BaseModel]] = [PreflightConfig, *BODY_MODELS.values()]
    models += [t.definition for t in REGISTRY]
    seen: set[type[BaseModel]] = set()
    while models:
        model = models.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            if field.alias not in (None, name):
                with pytest.raises(ValueError, match="Extra inputs are not permitted"):
                    model.model_validate({name: None})
            models.extend(
                t
                for t in _types_in(field.annotation)
                if isinstance(t, type) and issubclass(t, BaseModel)
            )
    assert len(seen) > 10


def _types_in(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", ())
    return [annotation, *(t for arg in args for t in _types_in(arg))]

"""Environment overrides: deep merge for the chosen environment, never written back (S1)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.config.errors import ConfigLoadError, format_path
from pytest_maf_preflight.config.loader import ConfigLoader, LoadedConfig
from pytest_maf_preflight.config.models import SmokeTestBody
from pytest_maf_preflight.config.overrides import deep_merge

BASE: dict[str, Any] = {
    "test_type": "api",
    "timeout_seconds": 5,
    "test_definition": {
        "base_url": "http://127.0.0.1:8080",
        "endpoint": "/health",
        "headers": {"Accept": "application/json", "X-Team": "core"},
        "expected_status": [200, 204],
    },
}
OVERRIDE: dict[str, Any] = {
    "timeout_seconds": 2,
    "test_definition": {
        "base_url": "https://api.example.com",
        "headers": {"X-Team": "prod"},
        "expected_status": [200],
    },
}


def test_nested_mappings_merge_and_lists_and_scalars_replace() -> None:
    merged = deep_merge(BASE, OVERRIDE)
    assert merged == {
        "test_type": "api",
        "timeout_seconds": 2,
        "test_definition": {
            "base_url": "https://api.example.com",
            "endpoint": "/health",
            "headers": {"Accept": "application/json", "X-Team": "prod"},
            "expected_status": [200],
        },
    }


def test_merge_never_modifies_base_or_override() -> None:
    base, override = copy.deepcopy(BASE), copy.deepcopy(OVERRIDE)
    merged = deep_merge(base, override)
    assert base == BASE
    assert override == OVERRIDE
    # Nothing is shared: editing the result cannot reach either input.
    merged["test_definition"]["headers"]["Accept"] = "text/plain"
    merged["test_definition"]["expected_status"].append(500)
    assert base == BASE
    assert override == OVERRIDE


def test_a_mapping_replaces_a_scalar_and_a_scalar_replaces_a_mapping() -> None:
    assert deep_merge({"a": 1, "b": {"c": 1}}, {"a": {"x": 1}, "b": 2}) == {"a": {"x": 1}, "b": 2}


def test_empty_override_is_a_copy() -> None:
    merged = deep_merge(BASE, {})
    assert merged == BASE
    assert merged is not BASE
    assert merged["test_definition"] is not BASE["test_definition"]


DOCUMENT: dict[str, Any] = {
    "id": "api",
    "name": "API",
    "config_type": "smoke_test",
    "config": BASE,
    "environment_overrides": {
        "production": OVERRIDE,
        "staging": {"test_definition": {"endpoint": "/ready"}},
    },
}


def load(tmp_path: Path, environment: str, document: dict[str, Any] = DOCUMENT) -> LoadedConfig:
    path = tmp_path / "api.json"
    path.write_text(json.dumps(document, indent=2))
    [loaded] = ConfigLoader(builtin_registry(), environment).load_files([path])
    return loaded


@pytest.mark.parametrize(
    ("environment", "timeout", "base_url", "endpoint", "team"),
    [
        ("development", 5, "http://127.0.0.1:8080", "/health", "core"),
        ("production", 2, "https://api.example.com", "/health", "prod"),
        ("staging", 5, "http://127.0.0.1:8080", "/ready", "core"),
    ],
)
def test_loader_applies_only_the_chosen_environment(
    tmp_path: Path, environment: str, timeout: int, base_url: str, endpoint: str, team: str
) -> None:
    loaded = load(tmp_path, environment)
    assert isinstance(loaded.body, SmokeTestBody)
    assert loaded.body.timeout_seconds == timeout
    definition = loaded.definition
    assert definition is not None
    dumped = definition.model_dump()
    assert (dumped["base_url"], dumped["endpoint"], dumped["headers"]["X-Team"]) == (
        base_url,
        endpoint,
        team,
    )
    assert dumped["headers"]["Accept"] == "application/json"


def test_loading_with_overrides_leaves_the_base_config_alone(tmp_path: Path) -> None:
    before = copy.deepcopy(DOCUMENT)
    loaded = load(tmp_path, "production")
    assert before == DOCUMENT
    assert loaded.config.config == BASE
    assert loaded.config.environment_overrides["production"] == OVERRIDE
    assert loaded.document["config"] == BASE
    assert json.loads((tmp_path / "api.json").read_text()) == before


def test_every_override_is_validated_not_only_the_chosen_one(tmp_path: Path) -> None:
    document = copy.deepcopy(DOCUMENT)
    document["environment_overrides"]["staging"] = {"test_definition": {"max_latency_ms": 0}}
    with pytest.raises(ConfigLoadError) as info:
        load(tmp_path, "development", document)
    [error] = info.value.errors
    assert format_path(error.path) == (
        "environment_overrides.staging.test_definition.max_latency_ms"
    )
    assert error.message == "expected more than 0, got 0"
    assert error.line is not None
    assert '"max_latency_ms": 0' in (tmp_path / "api.json").read_text().splitlines()[error.line - 1]


def test_override_that_changes_the_test_type_is_validated_as_that_type(tmp_path: Path) -> None:
    document = copy.deepcopy(DOCUMENT)
    document["environment_overrides"] = {"ci": {"test_type": "command"}}
    with pytest.raises(ConfigLoadError) as info:
        load(tmp_path, "ci", document)
    found = {(format_path(e.path), e.message) for e in info.value.errors}
    assert ("environment_overrides.ci.test_definition", "'argv' is required") in found
    messages = dict(found)
    assert messages["environment_overrides.ci.test_definition.base_url"].startswith(
        "unknown key 'base_url'; expected one of: argv, "
    )


def test_override_for_an_unknown_environment_changes_nothing(tmp_path: Path) -> None:
    loaded = load(tmp_path, "nowhere")
    assert isinstance(loaded.body, SmokeTestBody)
    assert loaded.body.model_dump()["test_definition"] == BASE["test_definition"]


# --- every environment validated as fully as the chosen one -------------------------------------


def _python_check(overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "py",
        "name": "Python",
        "config_type": "smoke_test",
        "config": {"test_type": "python", "test_definition": {"packages": {"pytest": ">=7"}}},
        "environment_overrides": overrides,
    }


@pytest.mark.parametrize("environment", ["development", "production", "staging"])
def test_an_override_failing_model_validation_fails_in_every_environment(
    tmp_path: Path, environment: str
) -> None:
    # The JSON Schema accepts any string as a specifier; only the model knows PEP 440.
    document = _python_check(
        {"production": {"test_definition": {"packages": {"pytest": "not a spec"}}}}
    )
    with pytest.raises(ConfigLoadError) as info:
        load(tmp_path, environment, document)
    [error] = info.value.errors
    assert (
        format_path(error.path) == "environment_overrides.production.test_definition"
        ".packages.pytest"
    )
    assert error.message == "'not a spec' is not a PEP 440 version specifier (e.g. '>=3.10')"
    assert error.line is not None
    assert '"not a spec"' in (tmp_path / "api.json").read_text().splitlines()[error.line - 1]


ESCALATION = {
    "trigger_conditions": [{"condition": "preflight_failure"}],
    "escalation_steps": [{"level": 1, "action": "notify", "target": "lead"}],
}


@pytest.mark.parametrize(
    ("config_type", "body", "override", "path", "message"),
    [
        # Each of these passes the JSON Schema; only the models know.
        (
            "smoke_test",
            {"test_type": "file_system", "test_definition": {"paths": ["x.json"]}},
            {"test_definition": {"paths": [{"path": "x.json", "json_schema": {"type": "nope"}}]}},
            "environment_overrides.ci.test_definition.paths[0].json_schema",
            "not a valid JSON Schema: ",
        ),
        (
            "smoke_test",
            {"test_type": "python", "test_definition": {"python": ">=3.8"}},
            {"test_definition": {"python": "  "}},
            "environment_overrides.ci.test_definition.python",
            "expected a PEP 440 version specifier such as '>=3.10', got an empty string",
        ),
        (
            "escalation_path",
            ESCALATION,
            {
                "escalation_steps": [
                    {"level": 1, "action": "notify", "target": "lead"},
                    {"level": 1, "action": "escalate", "target": "boss"},
                ]
            },
            "environment_overrides.ci.escalation_steps",
            "escalation step levels must be unique; level 1 appears more than once",
        ),
    ],
)
def test_override_bodies_and_definitions_are_validated_by_their_models(
    tmp_path: Path,
    config_type: str,
    body: dict[str, Any],
    override: dict[str, Any],
    path: str,
    message: str,
) -> None:
    document = {
        "id": "c",
        "name": "C",
        "config_type": config_type,
        "config": body,
        "environment_overrides": {"ci": override},
    }
    with pytest.raises(ConfigLoadError) as info:
        load(tmp_path, "development", document)
    [error] = info.value.errors
    assert format_path(error.path) == path
    assert error.message.startswith(message)


def test_an_override_that_empties_a_definition_is_an_error_where_it_is(tmp_path: Path) -> None:
    document = {
        "id": "env",
        "name": "Env",
        "config_type": "smoke_test",
        "config": {"test_type": "environment", "test_definition": {"required": ["A"]}},
        "environment_overrides": {"ci": {"test_definition": {"required": []}}},
    }
    with pytest.raises(ConfigLoadError) as info:
        load(tmp_path, "development", document)
    [error] = info.value.errors
    assert format_path(error.path) == "environment_overrides.ci.test_definition"
    assert error.message.startswith("nothing to check: give at least one of required, patterns")


def test_the_base_is_validated_fully_when_the_chosen_environment_overrides_it(
    tmp_path: Path,
) -> None:
    # Every environment without an override runs the base, so it must be valid as well.
    document = _python_check({"production": {"test_definition": {"packages": {"pytest": ">=7"}}}})
    document["config"]["test_definition"]["packages"] = {"pytest": "not a spec"}
    with pytest.raises(ConfigLoadError) as info:
        load(tmp_path, "production", document)
    assert [format_path(e.path) for e in info.value.errors] == [
        "config.test_definition.packages.pytest"
    ]


def test_the_chosen_override_gives_the_body_and_definition(tmp_path: Path) -> None:
    document = _python_check(
        {"production": {"timeout_seconds": 3, "test_definition": {"python": ">=3.9"}}}
    )
    loaded = load(tmp_path, "production", document)
    assert isinstance(loaded.body, SmokeTestBody)
    assert loaded.body.timeout_seconds == 3
    assert loaded.definition is not None
    assert loaded.definition.model_dump() == {"python": ">=3.9", "packages": {"pytest": ">=7"}}


# --- environment names (they may become paths) ---------------------------------------------------


@pytest.mark.parametrize("name", ["../prod", "a/b", ".hidden", "..", "with space", ""])
def test_override_environment_names_are_restricted(tmp_path: Path, name: str) -> None:
    document = _python_check({"production": {}, name: {}})
    with pytest.raises(ConfigLoadError) as info:
        load(tmp_path, "production", document)
    [error] = info.value.errors
    assert error.path == ("environment_overrides", name)
    assert error.message == (
        f"{name!r} is not an environment name (letters, digits, '_', '-' "
        "and '.', not starting with '.')"
    )
    assert error.line is not None
    assert json.dumps(name) in (tmp_path / "api.json").read_text().splitlines()[error.line - 1]


@pytest.mark.parametrize("name", ["production", "eu-west.1", "_ci", "-x", "v1.2.3"])
def test_ordinary_environment_names_are_accepted(tmp_path: Path, name: str) -> None:
    loaded = load(tmp_path, name, _python_check({name: {"timeout_seconds": 4}}))
    assert isinstance(loaded.body, SmokeTestBody)
    assert loaded.body.timeout_seconds == 4


def test_schema_states_the_environment_name_rule() -> None:
    from pytest_maf_preflight.config.schema import build_schema
    from pytest_maf_preflight.names import NAME_PATTERN

    envelope = build_schema(builtin_registry())["$defs"]["PreflightConfig"]
    names = envelope["properties"]["environment_overrides"]["propertyNames"]
    assert names["pattern"] == NAME_PATTERN

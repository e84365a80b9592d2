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
    assert deep_merge({"a": 1, "b": {"c": 1}}, {"a": {"x": 1}, "b": 2}) == {
        "a": {"x": 1}, "b": 2}


def test_empty_override_is_a_copy() -> None:
    merged = deep_merge(BASE, {})
    assert merged == BASE
    assert merged is not BASE
    assert merged["test_definition"] is not BASE["test_definition"]


DOCUMENT = {
    "id": "api", "name": "API", "config_type": "smoke_test", "config": BASE,
    "environment_overrides": {"production": OVERRIDE,
                              "staging": {"test_definition": {"endpoint": "/ready"}}},
}


def load(tmp_path: Path, environment: str, document: dict[str, Any] = DOCUMENT
         ) -> LoadedConfig:
    path = tmp_path / "api.json"
    path.write_text(json.dumps(document, indent=2))
    [loaded] = ConfigLoader(builtin_registry(), environment).load_files([path])
    return loaded


@pytest.mark.parametrize(("environment", "timeout", "base_url", "endpoint", "team"), [
    ("development", 5, "http://127.0.0.1:8080", "/health", "core"),
    ("production", 2, "https://api.example.com", "/health", "prod"),
    ("staging", 5, "http://127.0.0.1:8080", "/ready", "core"),
])
def test_loader_applies_only_the_chosen_environment(
        tmp_path: Path, environment: str, timeout: int, base_url: str, endpoint: str,
        team: str) -> None:
    loaded = load(tmp_path, environment)
    assert isinstance(loaded.body, SmokeTestBody)
    assert loaded.body.timeout_seconds == timeout
    definition = loaded.definition
    assert definition is not None
    dumped = definition.model_dump()
    assert (dumped["base_url"], dumped["endpoint"], dumped["headers"]["X-Team"]) == (
        base_url, endpoint, team)
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
        "environment_overrides.staging.test_definition.max_latency_ms")
    assert error.message == "expected more than 0, got 0"
    assert error.line is not None
    assert '"max_latency_ms": 0' in (tmp_path / "api.json").read_text().splitlines()[
        error.line - 1]


def test_override_that_changes_the_test_type_is_validated_as_that_type(tmp_path: Path) -> None:
    document = copy.deepcopy(DOCUMENT)
    document["environment_overrides"] = {"ci": {"test_type": "command"}}
    with pytest.raises(ConfigLoadError) as info:
        load(tmp_path, "ci", document)
    found = {(format_path(e.path), e.message) for e in info.value.errors}
    assert ("environment_overrides.ci.test_definition", "'argv' is required") in found
    messages = dict(found)
    assert messages["environment_overrides.ci.test_definition.base_url"].startswith(
        "unknown key 'base_url'; expected one of: argv, ")


def test_override_for_an_unknown_environment_changes_nothing(tmp_path: Path) -> None:
    loaded = load(tmp_path, "nowhere")
    assert isinstance(loaded.body, SmokeTestBody)
    assert loaded.body.model_dump()["test_definition"] == BASE["test_definition"]

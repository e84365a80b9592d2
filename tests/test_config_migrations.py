"""Config format versions: detection, the explicit migration steps, and what is refused (S1)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import EXAMPLES
from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.config.errors import ConfigLoadError, format_path
from pytest_maf_preflight.config.loader import ConfigLoader
from pytest_maf_preflight.config.migrations import (
    CURRENT_FORMAT,
    MigrationError,
    detect_format,
    migrate,
    snake,
    v1_to_v2,
)

ORIGINAL = sorted((EXAMPLES / "original-format").glob("*.json"))
PYTHONIC_JSON = EXAMPLES / "preflight-configs" / "agent-mail-dirs.json"


def read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("configType", "config_type"),
        ("testDefinition", "test_definition"),
        ("maxEscalationLevel", "max_escalation_level"),
        ("timeoutSeconds", "timeout_seconds"),
        ("id", "id"),
        ("already_snake", "already_snake"),
    ],
)
def test_snake(name: str, expected: str) -> None:
    assert snake(name) == expected


@pytest.mark.parametrize("path", ORIGINAL, ids=lambda p: p.name)
def test_original_documents_are_format_1(path: Path) -> None:
    assert detect_format(read(path)) == 1


def test_pythonic_documents_are_the_current_format() -> None:
    assert CURRENT_FORMAT == 2
    assert detect_format(read(PYTHONIC_JSON)) == 2


def test_declared_schema_version_wins_over_spelling() -> None:
    assert detect_format({"schema_version": 1, "config_type": "smoke_test"}) == 1
    assert detect_format({"schemaVersion": 2, "configType": "smoke_test"}) == 2


def test_camelcase_inside_opaque_maps_does_not_mark_format_1() -> None:
    document = {
        "id": "x",
        "config_type": "smoke_test",
        "metadata": {"ownerTeam": "infra"},
        "config": {"test_type": "api", "test_definition": {"headers": {"X-Api-Key": "k"}}},
    }
    assert detect_format(document) == 2
    migrated, found = migrate(document)
    assert found == 2
    assert migrated is document  # nothing to do: not copied, not touched


@pytest.mark.parametrize("path", ORIGINAL, ids=lambda p: p.name)
def test_format_1_is_migrated_without_touching_the_input(path: Path) -> None:
    document = read(path)
    before = copy.deepcopy(document)
    migrated, found = migrate(document)
    assert found == 1
    assert document == before
    assert migrated["schema_version"] == CURRENT_FORMAT
    assert detect_format(migrated) == CURRENT_FORMAT
    text = json.dumps(migrated)
    for camel in (
        "configType",
        "testType",
        "testDefinition",
        "escalationSteps",
        "timeoutMinutes",
        "checkType",
        "lockTimeoutMinutes",
        "environmentOverrides",
    ):
        assert f'"{camel}"' not in text


def test_v1_to_v2_moves_original_only_fields() -> None:
    migrated = v1_to_v2(
        {
            "id": "x",
            "configType": "reservation_check",
            "config": {
                "checkType": "lock_validation",
                "escalationPath": "p",
                "parameters": {"filePath": "a.txt"},
            },
        }
    )
    assert migrated["escalation_path"] == "p"
    assert "escalation_path" not in migrated["config"]
    assert migrated["config"]["parameters"] == {"file_path": "a.txt"}
    api = v1_to_v2(
        {
            "id": "y",
            "configType": "smoke_test",
            "config": {"testType": "api", "testDefinition": {"timeout": 2500}},
            "environmentOverrides": {"prod": {"testDefinition": {"timeout": 900}}},
        }
    )
    assert api["config"]["test_definition"] == {"timeout_ms": 2500}
    assert api["environment_overrides"] == {"prod": {"test_definition": {"timeout_ms": 900}}}


def test_top_level_escalation_path_is_not_overwritten_by_the_body_one() -> None:
    migrated = v1_to_v2(
        {
            "id": "x",
            "configType": "reservation_check",
            "escalationPath": "top",
            "config": {"checkType": "lock_validation", "escalationPath": "inner"},
        }
    )
    assert migrated["escalation_path"] == "top"


def test_command_timeout_is_not_renamed() -> None:
    """Only the api (and performance) timeout was in milliseconds."""
    migrated = v1_to_v2(
        {
            "id": "x",
            "configType": "smoke_test",
            "config": {"testType": "command", "testDefinition": {"argv": ["true"], "timeout": 3}},
        }
    )
    assert migrated["config"]["test_definition"] == {"argv": ["true"], "timeout": 3}


@pytest.mark.parametrize("path", [*ORIGINAL, PYTHONIC_JSON], ids=lambda p: p.name)
def test_migrate_is_idempotent(path: Path) -> None:
    once, _ = migrate(read(path))
    snapshot = copy.deepcopy(once)
    twice, found = migrate(once)
    assert found == CURRENT_FORMAT
    assert twice == snapshot
    assert once == snapshot


@pytest.mark.parametrize("version", [3, 99])
def test_newer_format_is_a_clear_error(version: int) -> None:
    with pytest.raises(
        MigrationError,
        match=(
            rf"^schema_version {version} is newer than this pytest-maf-preflight understands "
            rf"\(up to {CURRENT_FORMAT}\); upgrade the plugin$"
        ),
    ):
        migrate({"schema_version": version, "id": "x"})


def test_format_0_is_refused() -> None:
    with pytest.raises(MigrationError, match="schema_version must be at least 1, got 0"):
        migrate({"schema_version": 0, "id": "x"})


def test_loader_reports_newer_format_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "new.yaml"
    path.write_text(
        "id: new\nname: New\nconfig_type: smoke_test\nschema_version: 3\n"
        "config: {test_type: command, test_definition: {argv: ['true']}}\n"
    )
    with pytest.raises(ConfigLoadError) as info:
        ConfigLoader(builtin_registry(), "development").load_files([path])
    [error] = info.value.errors
    assert (error.line, format_path(error.path)) == (4, "schema_version")
    assert "newer" in error.message


def test_explicit_format_1_with_snake_case_keys_loads(tmp_path: Path) -> None:
    """A document declaring format 1 still goes through the step (e.g. the api timeout)."""
    path = tmp_path / "old.json"
    path.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "id": "old",
                "name": "Old",
                "config_type": "smoke_test",
                "config": {
                    "test_type": "api",
                    "test_definition": {"endpoint": "/", "timeout": 1500},
                },
            }
        )
    )
    [loaded] = ConfigLoader(builtin_registry(), "development").load_files([path])
    assert loaded.source_format == 1
    assert loaded.definition is not None
    assert loaded.definition.model_dump()["timeout_ms"] == 1500
    assert loaded.config.schema_version == CURRENT_FORMAT


def test_original_override_of_an_api_timeout_loads_in_milliseconds(tmp_path: Path) -> None:
    path = tmp_path / "api.json"
    path.write_text(
        json.dumps(
            {
                "id": "api",
                "name": "API",
                "configType": "smoke_test",
                "config": {"testType": "api", "testDefinition": {"endpoint": "/", "timeout": 5000}},
                "environmentOverrides": {"ci": {"testDefinition": {"timeout": 20000}}},
            }
        )
    )
    for environment, expected in (("development", 5000), ("ci", 20000)):
        [loaded] = ConfigLoader(builtin_registry(), environment).load_files([path])
        assert loaded.definition is not None
        assert loaded.definition.model_dump()["timeout_ms"] == expected


def test_escalation_path_in_an_original_override_is_reported_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    path.write_text(
        json.dumps(
            {
                "id": "lock",
                "name": "Lock",
                "configType": "reservation_check",
                "config": {"checkType": "lock_validation", "escalationPath": "base-path"},
                "environmentOverrides": {"ci": {"escalationPath": "ci-path"}},
            },
            indent=2,
        )
    )
    with pytest.raises(ConfigLoadError) as info:
        ConfigLoader(builtin_registry(), "ci").load_files([path])
    [error] = info.value.errors
    assert format_path(error.path) == "environment_overrides.ci.escalation_path"
    assert error.message.startswith("unknown key 'escalation_path'")
    lines = path.read_text().splitlines()
    assert error.line == lines.index('      "escalationPath": "ci-path"') + 1


def test_original_document_without_config_says_config_is_required() -> None:
    migrated = v1_to_v2({"id": "x", "configType": "smoke_test"})
    assert "config" not in migrated

"""``PreflightConfigManager``: load, save, list, delete, validate (SPEC S1)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from conftest import EXAMPLES
from pytest_maf_preflight.atomic import write_atomic
from pytest_maf_preflight.config.errors import ConfigLoadError, format_path
from pytest_maf_preflight.config.manager import PreflightConfigManager
from pytest_maf_preflight.config.models import SmokeTestBody


def command(config_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": config_id,
        "name": f"{config_id} check",
        "config_type": "smoke_test",
        "version": "1.0.0",
        "config": {"test_type": "command", "test_definition": {"argv": ["true"]}},
        **extra,
    }


@pytest.fixture
def manager(tmp_path: Path) -> PreflightConfigManager:
    return PreflightConfigManager(tmp_path / "configs")


def test_save_then_load_round_trips(manager: PreflightConfigManager) -> None:
    raw = command(
        "tools",
        environment_overrides={
            "ci": {"timeout_seconds": 2, "test_definition": {"argv": ["false"]}}
        },
    )
    path = manager.save(raw)
    assert path == manager.directory / "tools.json"
    assert json.loads(path.read_text()) == raw
    loaded = manager.load("tools")
    assert loaded.config.name == "tools check"
    assert loaded.file == path
    in_ci = manager.load("tools", env="ci")
    assert isinstance(in_ci.body, SmokeTestBody)
    assert in_ci.body.timeout_seconds == 2
    assert in_ci.definition is not None
    assert in_ci.definition.model_dump()["argv"] == ["false"]
    # The override stays an override in the file: never merged into the base.
    assert json.loads(path.read_text())["config"]["test_definition"] == {"argv": ["true"]}


def test_manager_environment_is_the_default_for_load(tmp_path: Path) -> None:
    manager = PreflightConfigManager(tmp_path, environment="ci")
    manager.save(command("t", environment_overrides={"ci": {"retry_count": 4}}))
    body = manager.load("t").body
    assert isinstance(body, SmokeTestBody)
    assert body.retry_count == 4
    dev_body = manager.load("t", env="development").body
    assert isinstance(dev_body, SmokeTestBody)
    assert dev_body.retry_count == 0


def test_save_overwrites_atomically_and_leaves_no_temp_files(
    manager: PreflightConfigManager,
) -> None:
    manager.save(command("tools"))
    manager.save(command("tools", description="second version"))
    assert sorted(p.name for p in manager.directory.iterdir()) == ["tools.json"]
    assert manager.load("tools").config.description == "second version"


def test_save_keeps_the_mode_of_the_file_it_replaces(manager: PreflightConfigManager) -> None:
    target = manager.save(command("tools"))
    # A new file gets the usual permissions (umask), not the temp file's private 0600.
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    target.chmod(0o640)
    manager.save(command("tools", description="second version"))
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_write_atomic_replaces_and_keeps_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_atomic(target, b"one")
    target.chmod(0o600)
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_write_atomic_leaves_the_old_file_and_no_temp_file_on_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.json"
    target.write_bytes(b"old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_save_validates_first_and_writes_nothing_when_invalid(
    manager: PreflightConfigManager,
) -> None:
    manager.save(command("keep"))
    before = (manager.directory / "keep.json").read_bytes()
    bad = command("keep")
    bad["config"]["retry_count"] = -1
    with pytest.raises(ConfigLoadError) as info:
        manager.save(bad)
    [error] = info.value.errors
    assert format_path(error.path) == "config.retry_count"
    assert error.message == "expected at least 0, got -1"
    assert error.line is None  # data, not a file: there is no line to point at
    assert (manager.directory / "keep.json").read_bytes() == before
    assert sorted(p.name for p in manager.directory.iterdir()) == ["keep.json"]


@pytest.mark.parametrize("config_id", ["../escape", "a/b", "with space", ""])
def test_save_rejects_ids_that_are_not_file_names(tmp_path: Path, config_id: str) -> None:
    manager = PreflightConfigManager(tmp_path / "configs")
    with pytest.raises(ConfigLoadError) as info:
        manager.save(command(config_id))
    assert {format_path(e.path) for e in info.value.errors} == {"id"}
    assert not (tmp_path / "configs").exists()
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_an_id_another_file_already_defines(manager: PreflightConfigManager) -> None:
    manager.directory.mkdir(parents=True)
    (manager.directory / "team.yaml").write_text(
        "id: shared\nname: From YAML\nconfig_type: smoke_test\n"
        "config: {test_type: command, test_definition: {argv: ['true']}}\n"
    )
    with pytest.raises(ConfigLoadError) as info:
        manager.save(command("shared"))
    [error] = info.value.errors
    assert error.message == (
        f"duplicate id 'shared'; already defined in {manager.directory / 'team.yaml'}:1"
    )
    assert not (manager.directory / "shared.json").exists()
    assert manager.list() == ["shared"]


def test_save_rejects_values_json_cannot_hold(manager: PreflightConfigManager) -> None:
    with pytest.raises(ConfigLoadError) as info:
        manager.save(command("odd", metadata={"when": object()}))
    assert "cannot be written as JSON" in info.value.errors[0].message
    assert not manager.directory.exists() or list(manager.directory.iterdir()) == []


def test_list_and_delete(manager: PreflightConfigManager) -> None:
    assert manager.list() == []
    for config_id in ("b", "a", "c"):
        manager.save(command(config_id))
    assert sorted(manager.list()) == ["a", "b", "c"]
    assert manager.delete("b") is True
    assert sorted(manager.list()) == ["a", "c"]
    assert manager.delete("b") is False
    with pytest.raises(KeyError):
        manager.load("b")


def test_delete_refuses_an_id_that_is_a_path(
    manager: PreflightConfigManager, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.json"
    victim.write_text("{}")
    with pytest.raises(ValueError, match="invalid config id"):
        manager.delete("../victim")
    assert victim.exists()


def test_validate_returns_every_error_without_raising(manager: PreflightConfigManager) -> None:
    assert manager.validate(command("fine")) == []
    bad = command("bad id", severity="fatal")
    bad["config"]["test_definition"]["stdout_regex"] = "("
    found = {format_path(e.path): e.message for e in manager.validate(bad)}
    assert found == {
        "id": "'bad id' is not an id: only letters, digits, '_' and '-' (it becomes a file name)",
        "severity": "'fatal' is not one of 'critical', 'warning'",
        "config.test_definition.stdout_regex": "'(' is not a valid regular expression",
    }
    assert all(e.line is None for e in manager.validate(bad))


@pytest.mark.parametrize("raw", [[], "text", None, 42])
def test_validate_rejects_what_is_not_a_mapping(manager: PreflightConfigManager, raw: Any) -> None:
    [error] = manager.validate(raw)
    assert error.message.startswith("expected an object (a mapping) with a config")


def test_validate_accepts_the_original_spelling(manager: PreflightConfigManager) -> None:
    raw = json.loads((EXAMPLES / "original-format" / "api-health-check.json").read_text())
    assert manager.validate(raw) == []
    raw["config"]["retryCount"] = -1
    [error] = manager.validate(raw)
    assert format_path(error.path) == "config.retry_count"


def test_manager_sees_extra_paths_and_reports_their_errors(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "original-format", tmp_path / "original")
    manager = PreflightConfigManager(tmp_path / "configs", extra_paths=[tmp_path / "original"])
    assert sorted(manager.list()) == [
        "api-health-check",
        "critical-system-escalation",
        "file-lock-check",
    ]
    assert manager.load("file-lock-check").config.escalation_path == ("critical-system-escalation")
    (tmp_path / "original" / "broken.json").write_text("{")
    with pytest.raises(ConfigLoadError) as info:
        manager.list()
    [error] = info.value.errors
    assert error.file == str(tmp_path / "original" / "broken.json")
    missing = PreflightConfigManager(tmp_path / "configs", extra_paths=[tmp_path / "nope"])
    with pytest.raises(ConfigLoadError, match="no such file or directory"):
        missing.list()


def test_saved_camelcase_config_loads_again(manager: PreflightConfigManager) -> None:
    raw = json.loads((EXAMPLES / "original-format" / "critical-system-escalation.json").read_text())
    path = manager.save(raw)
    assert json.loads(path.read_text()) == raw  # written as given, not converted
    assert manager.load("critical-system-escalation").source_format == 1


def test_max_bytes_applies_to_files_the_manager_reads(tmp_path: Path) -> None:
    manager = PreflightConfigManager(tmp_path, max_bytes=100)
    manager.save(command("big", description="x" * 200))
    with pytest.raises(ConfigLoadError, match="config files are limited to 100 bytes"):
        manager.load("big")

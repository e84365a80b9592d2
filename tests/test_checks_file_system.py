"""``file_system`` checks against real files and directories."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pytest_maf_preflight.checks import file_system
from pytest_maf_preflight.checks.base import CheckContext, Observation
from pytest_maf_preflight.checks.file_system import FileSystemDefinition

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
ROOT_REASON = "running as root: permission bits do not restrict root, so no such path can be made"


def _run(root: Path, **definition: Any) -> Observation:
    ctx = CheckContext(rootdir=root, environ={}, environment="test", agent_id="agent-1")
    return file_system.run(FileSystemDefinition.model_validate(definition), ctx)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "app.json").write_text('{"name": "app", "port": 8080}')
    (tmp_path / "notes.txt").write_text("hello")
    return tmp_path


def test_existing_file_and_dir_with_right_kinds_pass(tree: Path) -> None:
    obs = _run(
        tree,
        paths=[
            {"path": "config", "kind": "dir"},
            {"path": "config/app.json", "kind": "file"},
            "notes.txt",
        ],
    )
    assert obs.passed, obs.observed
    assert obs.details["paths"] == ["config", "config/app.json", "notes.txt"]


def test_missing_path_fails(tree: Path) -> None:
    obs = _run(tree, paths=["config/absent.json"])
    assert not obs.passed
    assert obs.observed == "config/absent.json: does not exist"


def test_missing_path_allowed_when_must_exist_false(tree: Path) -> None:
    assert _run(tree, paths=[{"path": "absent", "must_exist": False}]).passed


def test_wrong_kind_fails_both_ways(tree: Path) -> None:
    obs = _run(
        tree, paths=[{"path": "config", "kind": "file"}, {"path": "notes.txt", "kind": "dir"}]
    )
    assert not obs.passed
    assert "config: is a directory, expected a file" in obs.observed
    assert "notes.txt: is not a directory" in obs.observed


def test_absolute_paths_are_not_joined_to_rootdir(tree: Path, tmp_path_factory: Any) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    assert _run(tree, paths=[{"path": str(elsewhere), "kind": "dir"}]).passed


def test_executable_bit(tree: Path) -> None:
    # os.access(X_OK) is false even for root when no execute bit is set.
    script = tree / "tool.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    obs = _run(tree, paths=[{"path": "tool.sh", "access": "x"}])
    assert not obs.passed
    assert obs.observed == "tool.sh: not executable by this user"
    script.chmod(0o755)
    assert _run(tree, paths=[{"path": "tool.sh", "access": "rx"}]).passed


@pytest.mark.skipif(IS_ROOT, reason=ROOT_REASON)
def test_unreadable_and_unwritable_file(tree: Path) -> None:
    locked = tree / "locked.txt"
    locked.write_text("x")
    locked.chmod(0o000)
    try:
        obs = _run(tree, paths=[{"path": "locked.txt", "access": "rw"}])
    finally:
        locked.chmod(0o644)
    assert not obs.passed
    assert "locked.txt: not readable by this user" in obs.observed
    assert "locked.txt: not writable by this user" in obs.observed


def test_readable_writable_file_and_dir_pass(tree: Path) -> None:
    assert _run(
        tree,
        paths=[
            {"path": "notes.txt", "access": "rw"},
            {"path": "config", "kind": "dir", "access": "rwx"},
        ],
    ).passed


def test_writable_dir_check_really_writes_and_cleans_up(tree: Path) -> None:
    before = set((tree / "config").iterdir())
    assert _run(tree, paths=[{"path": "config", "access": "w"}]).passed
    assert set((tree / "config").iterdir()) == before  # the probe file is gone


@pytest.mark.skipif(IS_ROOT, reason=ROOT_REASON)
def test_unwritable_dir_fails(tree: Path) -> None:
    readonly = tree / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    try:
        obs = _run(tree, paths=[{"path": "readonly", "kind": "dir", "access": "w"}])
    finally:
        readonly.chmod(0o755)
    assert not obs.passed
    assert obs.observed == "readonly: not writable by this user"


def test_dir_write_check_is_a_real_write_not_os_access(tree: Path) -> None:
    # /proc's root takes no new files, whoever asks. For root os.access(W_OK) says yes anyway,
    # so only a real write shows the truth; for other users both say no.
    proc = Path("/proc")
    if not proc.is_dir() or not (proc / "self").exists():
        pytest.skip("needs a mounted /proc (Linux)")
    obs = _run(tree, paths=[{"path": "/proc", "kind": "dir", "access": "w"}])
    assert not obs.passed
    assert obs.observed == "/proc: not writable by this user"


def test_json_parse_error_is_reported(tree: Path) -> None:
    (tree / "broken.json").write_text('{"a": 1,,}')
    obs = _run(tree, paths=[{"path": "broken.json", "parse": True}])
    assert not obs.passed
    assert obs.observed.startswith("broken.json: does not parse: ")
    assert "line 1" in obs.observed


def test_yaml_parse_error_is_reported(tree: Path) -> None:
    (tree / "broken.yaml").write_text("key: [unclosed\nother: 1\n")
    obs = _run(tree, paths=[{"path": "broken.yaml", "parse": True}])
    assert not obs.passed
    assert obs.observed.startswith("broken.yaml: does not parse: ")


def test_toml_parse_error_is_reported(tree: Path) -> None:
    (tree / "broken.toml").write_text("[section\nkey = 1\n")
    obs = _run(tree, paths=[{"path": "broken.toml", "parse": True}])
    assert not obs.passed
    assert obs.observed.startswith("broken.toml: does not parse: ")


def test_valid_json_yaml_toml_parse(tree: Path) -> None:
    (tree / "good.yml").write_text("a: 1\nb: [x, y]\n")
    (tree / "good.toml").write_text('[tool]\nname = "x"\n')
    assert _run(
        tree,
        paths=[{"path": p, "parse": True} for p in ("config/app.json", "good.yml", "good.toml")],
    ).passed


def test_parse_of_a_directory_fails(tree: Path) -> None:
    obs = _run(tree, paths=[{"path": "config", "parse": True}])
    assert not obs.passed
    assert obs.observed == "config: is a directory, expected a parsable file"


MCP_SCHEMA = {
    "type": "object",
    "required": ["mcpServers"],
    "properties": {
        "mcpServers": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["command"],
                "properties": {"command": {"type": "string"}, "args": {"type": "array"}},
            },
        }
    },
}


def test_json_schema_validation_passes(tree: Path) -> None:
    (tree / "config" / "codex.json").write_text(
        json.dumps({"mcpServers": {"files": {"command": "npx", "args": ["server"]}}})
    )
    assert _run(tree, paths=[{"path": "config/codex.json", "json_schema": MCP_SCHEMA}]).passed


def test_json_schema_failure_names_the_path(tree: Path) -> None:
    (tree / "config" / "cursor.json").write_text(
        json.dumps({"mcpServers": {"files": {"command": 42}}})
    )
    obs = _run(tree, paths=[{"path": "config/cursor.json", "json_schema": MCP_SCHEMA}])
    assert not obs.passed
    assert obs.observed.startswith("config/cursor.json: mcpServers/files/command: ")
    assert "is not of type 'string'" in obs.observed


def test_json_schema_failure_at_the_document_root(tree: Path) -> None:
    (tree / "config" / "gemini.json").write_text("{}")
    obs = _run(tree, paths=[{"path": "config/gemini.json", "json_schema": MCP_SCHEMA}])
    assert not obs.passed
    assert obs.observed == "config/gemini.json: (document): 'mcpServers' is a required property"


def test_json_schema_applies_to_yaml_files_too(tree: Path) -> None:
    (tree / "mcp.yaml").write_text("mcpServers:\n  x:\n    args: []\n")
    obs = _run(tree, paths=[{"path": "mcp.yaml", "json_schema": MCP_SCHEMA}])
    assert not obs.passed
    assert obs.observed == "mcp.yaml: mcpServers/x: 'command' is a required property"


def test_invalid_json_schema_is_rejected_at_load() -> None:
    with pytest.raises(ValidationError, match="not a valid JSON Schema"):
        FileSystemDefinition.model_validate(
            {"paths": [{"path": "x.json", "json_schema": {"type": "no-such-type"}}]}
        )


def test_bad_access_letters_are_rejected_at_load() -> None:
    with pytest.raises(ValidationError):
        FileSystemDefinition.model_validate({"paths": [{"path": "x", "access": "rq"}]})


def test_min_free_space_met(tree: Path) -> None:
    obs = _run(tree, min_free_mb=0)
    assert obs.passed
    assert isinstance(obs.details["free_mb"], float)
    assert obs.details["free_mb"] >= 0


def test_min_free_space_impossible_fails(tree: Path) -> None:
    obs = _run(tree, min_free_mb=1e15)  # a billion terabytes
    assert not obs.passed
    assert "MB free at ." in obs.observed
    assert "at least 1e+15 MB free" in obs.expected


def test_free_space_of_a_missing_path_is_a_finding(tree: Path) -> None:
    obs = _run(tree, min_free_mb=1, free_space_path="no/such/dir")
    assert not obs.passed
    assert obs.observed.startswith("cannot read free space at no/such/dir")


def test_all_problems_are_reported_together(tree: Path) -> None:
    obs = _run(tree, paths=["absent-1", {"path": "notes.txt", "kind": "dir"}, "absent-2"])
    assert obs.observed == (
        "absent-1: does not exist; notes.txt: is not a directory; absent-2: does not exist"
    )

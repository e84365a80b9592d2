"""The ``maf-preflight`` command line, run as a real process against real files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from conftest import EXAMPLES
from pytest_maf_preflight import names
from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.compat import tomllib
from pytest_maf_preflight.config.loader import ConfigLoader, LoadedConfig

CONFIGS = EXAMPLES / "preflight-configs"
ORIGINAL = EXAMPLES / "original-format"


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_maf_preflight.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("maf-preflight"), lines
    assert "error:" in lines[0]
    return lines[0]


def load(path: Path, env: str = "development") -> list[LoadedConfig]:
    return ConfigLoader(builtin_registry(), env).load_files([path])


def meaning(config: LoadedConfig) -> tuple[Any, ...]:
    """What a loaded config means, independent of how its file spelled it."""
    definition = config.definition.model_dump() if config.definition is not None else None
    return config.config.model_dump(), config.body.model_dump(), definition


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def all_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in all_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in all_keys(v)}
    return set()


# --- entry points -------------------------------------------------------------------------------


def test_help_lists_the_commands_and_exit_codes(tmp_path: Path) -> None:
    result = run("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("validate", "schema", "config"):
        assert f"    {command} " in result.stdout
    assert "2  usage or I/O error" in result.stdout


def test_console_script_is_installed_and_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "maf-preflight"
    result = subprocess.run(
        [str(script), "validate", str(CONFIGS / "agent-env.yaml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("ok: 1 config in 1 file")


def test_usage_error_is_one_line_with_exit_2(tmp_path: Path) -> None:
    line = assert_one_line_error(run("validate", "--no-such-option", cwd=tmp_path))
    assert "--no-such-option" in line
    assert_one_line_error(run(cwd=tmp_path))  # no command
    assert_one_line_error(run("config", "migrate", cwd=tmp_path))  # no paths


# --- validate -----------------------------------------------------------------------------------


def test_validate_examples(tmp_path: Path) -> None:
    result = run("validate", CONFIGS, ORIGINAL, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    files = [
        p
        for d in (CONFIGS, ORIGINAL)
        for p in d.iterdir()
        if p.suffix in (".json", ".yaml", ".toml")
    ]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok: ")
    assert f" configs in {len(files)} files" in lines[0]
    rows = {line.split()[0]: line for line in lines[1:] if line.startswith("  ")}
    assert "smoke_test (api)" in rows["api-health"]
    assert "api-health.yaml" in rows["api-health"]
    assert "toolchain.toml" in rows["python-toolchain"]
    assert "toolchain.toml" in rows["git-available"]
    assert "escalation_path" in rows["critical-system-escalation"]
    assert "reservation_check" in rows["file-lock-check"]
    # The original-format configs load, and the user hears that migrate would rewrite them.
    assert any("config migrate" in line for line in lines if line.startswith("note:"))


def test_validate_uses_the_default_directory(tmp_path: Path) -> None:
    shutil.copytree(CONFIGS, tmp_path / ".maf" / "preflight-configs")
    result = run("validate", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runtime-db" in result.stdout
    assert ".maf/preflight-configs/runtime-db.yaml" in result.stdout

    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("validate", cwd=empty)
    assert result.returncode == 0
    assert result.stdout.startswith("ok: 0 configs in 0 files")


BROKEN_YAML = """\
id: broken-check
name: A check with a typo
config_type: smoke_test
config:
  test_type: command
  test_definition: {argv: [git, --version]}
  timeout_secs: 5
"""
BROKEN_JSON = '{\n  "id": "syntax"\n  "name": "missing comma above"\n}\n'


def broken_project(tmp_path: Path) -> Path:
    project = tmp_path / "configs"
    shutil.copytree(CONFIGS, project)
    (project / "broken.yaml").write_text(BROKEN_YAML)
    (project / "syntax.json").write_text(BROKEN_JSON)
    return project


def test_validate_reports_every_error_located(tmp_path: Path) -> None:
    broken_project(tmp_path)
    result = run("validate", "configs", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("configs/broken.yaml:7: config.timeout_secs: unknown key")
        and "timeout_seconds" in line
        for line in lines
    ), lines
    assert any(
        line.startswith("configs/syntax.json:3: ") and "invalid JSON" in line for line in lines
    ), lines
    # Only the two broken files are reported; the valid examples are not.
    located = [line for line in lines if line.startswith("configs/")]
    assert {line.split(":")[0] for line in located} == {
        "configs/broken.yaml",
        "configs/syntax.json",
    }
    assert lines[-1].startswith(f"invalid: {len(located)} errors in 2 files")
    assert "Traceback" not in result.stdout + result.stderr


def test_validate_json(tmp_path: Path) -> None:
    broken_project(tmp_path)
    bad = run("validate", "configs", "--json", cwd=tmp_path)
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["valid"] is False
    assert {"file": "configs/broken.yaml", "line": 7, "path": "config.timeout_secs"} in [
        {k: e[k] for k in ("file", "line", "path")} for e in report["errors"]
    ]
    assert all(set(e) == {"file", "line", "path", "message"} for e in report["errors"])
    text = run("validate", "configs", cwd=tmp_path).stdout.splitlines()
    assert len(report["errors"]) == sum(1 for line in text if line.startswith("configs/"))

    good = run("validate", CONFIGS, "--json", "--env", "production", cwd=tmp_path)
    assert good.returncode == 0
    report = json.loads(good.stdout)
    assert report["valid"] is True
    assert report["errors"] == []
    assert report["environment"] == "production"
    by_id = {c["id"]: c for c in report["configs"]}
    assert by_id["api-health"]["config_type"] == "smoke_test"
    assert by_id["api-health"]["test_type"] == "api"
    assert Path(by_id["api-health"]["file"]).name == "api-health.yaml"
    assert by_id["git-available"]["severity"] == "warning"
    assert set(by_id) == {c.id for f in CONFIGS.iterdir() for c in load(f)}


def test_validate_missing_path_is_one_line(tmp_path: Path) -> None:
    result = run("validate", "no-such-dir", cwd=tmp_path)
    line = assert_one_line_error(result)
    assert "no-such-dir" in line
    assert result.stdout == ""


def test_unusable_paths_are_one_line_errors(tmp_path: Path) -> None:
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)  # a path nothing can be read from
    assert "loop.yaml" in assert_one_line_error(run("validate", loop, cwd=tmp_path))
    assert "loop.yaml" in assert_one_line_error(run("config", "migrate", loop, cwd=tmp_path))
    too_long = "x" * 5000  # the OS refuses the name itself
    assert_one_line_error(run("validate", too_long, cwd=tmp_path))


def test_env_name_is_checked(tmp_path: Path) -> None:
    line = assert_one_line_error(run("validate", CONFIGS, "--env", "not valid", cwd=tmp_path))
    assert "'not valid'" in line


def test_env_name_cannot_climb_out_of_a_directory(tmp_path: Path) -> None:
    line = assert_one_line_error(run("validate", CONFIGS, "--env", "..", cwd=tmp_path))
    assert line.endswith(
        "--env: '..' is not a valid environment name (letters, digits, '_', "
        "'-' and '.', not starting with '.')"
    )


@pytest.mark.parametrize(
    ("cli", "environ", "ini", "expected"),
    [
        ("cli", {"MAF_ENV": "maf", "NODE_ENV": "node"}, "ini", "cli"),
        (None, {"MAF_ENV": "maf", "NODE_ENV": "node"}, "ini", "maf"),
        ("", {"MAF_ENV": "", "NODE_ENV": "node"}, "ini", "node"),
        (None, {}, "ini", "ini"),
        (None, {}, "", "development"),
    ],
)
def test_environment_name_precedence(
    cli: str | None, environ: dict[str, str], ini: str, expected: str
) -> None:
    assert names.environment_name(cli, environ, ini) == expected


@pytest.mark.parametrize(
    ("cli", "environ", "ini", "source"),
    [
        ("a/b", {}, "", "--maf-env"),
        (None, {"MAF_ENV": ".hidden"}, "", "MAF_ENV environment variable"),
        (None, {"NODE_ENV": "x y"}, "", "NODE_ENV environment variable"),
        (None, {}, "../up", "maf_env in the config file"),
        (None, {}, "prod\n", "maf_env in the config file"),
    ],
)
def test_invalid_environment_name_names_its_source(
    cli: str | None, environ: dict[str, str], ini: str, source: str
) -> None:
    with pytest.raises(
        ValueError, match=r"^" + re.escape(source) + ": .* is not a valid environment name"
    ):
        names.environment_name(cli, environ, ini)


def test_validate_checks_overrides_of_every_environment(tmp_path: Path) -> None:
    # An override that only fails model validation (not the JSON Schema) is found whatever
    # environment is chosen, so 'validate' never says ok to a config '--env production' rejects.
    (tmp_path / "py.yaml").write_text(
        "id: py\nname: Python\nconfig_type: smoke_test\nconfig:\n  test_type: python\n"
        "  test_definition:\n    packages: {pytest: '>=7'}\nenvironment_overrides:\n"
        "  production:\n    test_definition:\n      packages: {pytest: not a spec}\n"
    )
    for env in ([], ["--env", "production"]):
        result = run("validate", "py.yaml", *env, cwd=tmp_path)
        assert result.returncode == 1, result
        assert result.stdout.splitlines()[0] == (
            "py.yaml:11: environment_overrides.production.test_definition.packages.pytest: "
            "'not a spec' is not a PEP 440 version specifier (e.g. '>=3.10')"
        )


# --- schema -------------------------------------------------------------------------------------


def test_schema_is_a_json_schema_for_the_examples(tmp_path: Path) -> None:
    result = run("schema", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    single = yaml.safe_load((CONFIGS / "api-health.yaml").read_text())
    listed = tomllib.loads((CONFIGS / "toolchain.toml").read_text())
    assert "configs" in listed
    for document in (single, listed, json.loads((CONFIGS / "agent-mail-dirs.json").read_text())):
        assert list(validator.iter_errors(document)) == []
    # ...and it is not a schema that accepts anything.
    assert not validator.is_valid({**single, "timeout_secs": 5})
    assert not validator.is_valid({"configs": [{**single, "config_type": "smoke"}]})
    assert not validator.is_valid({"configs": []})
    assert run("schema", "--json", cwd=tmp_path).stdout == result.stdout


def test_schema_output_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = run("schema", "--output", "out/schema.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / "schema.json").read_text() == run("schema", cwd=tmp_path).stdout
    assert [p.name for p in out.iterdir()] == ["schema.json"]  # no temp file left behind
    line = assert_one_line_error(run("schema", "--output", "missing/schema.json", cwd=tmp_path))
    assert "missing" in line


# --- config migrate -----------------------------------------------------------------------------


def test_migrate_original_json_example(tmp_path: Path) -> None:
    original = (ORIGINAL / "api-health-check.json").read_bytes()
    target = tmp_path / "api-health-check.json"
    target.write_bytes(original)

    result = run("config", "migrate", target.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "migrated: api-health-check.json (format 1 -> 2; backup: api-health-check.json.bak)"
        in result.stdout.splitlines()
    )
    backup = tmp_path / "api-health-check.json.bak"
    assert backup.read_bytes() == original

    text = target.read_text()
    document = json.loads(text)
    assert text == json.dumps(document, indent=2) + "\n"
    assert document["schema_version"] == 2
    assert document["config"]["test_definition"]["timeout_ms"] == 5000
    assert "timeout" not in document["config"]["test_definition"]
    assert not {"configType", "testType", "testDefinition", "environmentOverrides"} & all_keys(
        document
    )
    # The same meaning, in every environment the file names.
    before = tmp_path / "before"
    before.mkdir()
    shutil.copy(ORIGINAL / "api-health-check.json", before)
    for env in ("development", "test"):
        [old] = load(before / "api-health-check.json", env)
        [new] = load(target, env)
        assert (old.source_format, new.source_format) == (1, 2)
        assert meaning(new) == meaning(old)
    [new_test] = load(target, "test")
    assert new_test.body.model_dump()["test_definition"]["endpoint"] == "/api/test-health"

    migrated = snapshot(tmp_path)
    again = run("config", "migrate", target.name, cwd=tmp_path)
    assert again.returncode == 0
    assert "up to date: api-health-check.json" in again.stdout.splitlines()
    assert snapshot(tmp_path) == migrated


def test_migrate_never_overwrites_a_backup(tmp_path: Path) -> None:
    original = (ORIGINAL / "file-lock-check.json").read_bytes()
    target = tmp_path / "file-lock-check.json"
    target.write_bytes(original)
    (tmp_path / "file-lock-check.json.bak").write_text("an older backup")
    result = run("config", "migrate", tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "file-lock-check.json.bak").read_text() == "an older backup"
    assert (tmp_path / "file-lock-check.json.bak.1").read_bytes() == original
    [config] = load(target)
    assert config.source_format == 2
    # The original put the path inside the body; format 2 has it on the config.
    assert config.config.escalation_path == "critical-system-escalation"


CAMEL_TOML = r"""# Toolchain checks, in the original spelling.
[[configs]]
id = "git-available"
name = "git \"works\"\tand answers"
configType = "smoke_test"
severity = "warning"
isActive = true
tags = ["tools", "vcs"]

[configs.config]
testType = "command"
timeoutSeconds = 2.5
retryCount = 1

[configs.config.testDefinition]
argv = ["git", "--version"]
stdoutRegex = 'git version \d+'
expectedExitCode = 0

[[configs]]
id = "python-toolchain"
name = "Python — and packages"
configType = "smoke_test"

[configs.config]
testType = "python"

[configs.config.testDefinition]
python = ">=3.10"
packages = { pytest = ">=8", PyYAML = ">=6" }

[configs.environmentOverrides.ci.testDefinition]
python = ">=3.11"
"""


def test_migrate_toml_keeps_toml_and_meaning(tmp_path: Path) -> None:
    target = tmp_path / "toolchain.toml"
    target.write_text(CAMEL_TOML, encoding="utf-8")
    before = tmp_path / "before"
    before.mkdir()
    shutil.copy(target, before)

    result = run("config", "migrate", target.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "toolchain.toml.bak").read_text(encoding="utf-8") == CAMEL_TOML
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# Toolchain checks, in the original spelling.\n")
    document = tomllib.loads(text)
    first, second = document["configs"]
    assert first["name"] == 'git "works"\tand answers'
    assert first["config"]["test_definition"]["stdout_regex"] == r"git version \d+"
    assert first["config"]["timeout_seconds"] == 2.5
    assert first["is_active"] is True
    assert second["name"] == "Python — and packages"
    # Package names are data, not field names: never renamed.
    assert second["config"]["test_definition"]["packages"] == {"pytest": ">=8", "PyYAML": ">=6"}
    assert not {"configType", "testDefinition", "environmentOverrides"} & all_keys(document)
    for env in ("development", "ci"):
        old = load(before / "toolchain.toml", env)
        new = load(target, env)
        assert [c.source_format for c in new] == [2, 2]
        assert [meaning(c) for c in new] == [meaning(c) for c in old]
    assert "up to date" in run("config", "migrate", target.name, cwd=tmp_path).stdout


CAMEL_YAML = """\
# Who hears about failures.
id: on-call
name: "Page on-call: then the lead"
configType: escalation_path
config:
  triggerConditions:
    - {condition: preflight_failure, operator: gte, threshold: 2}
  escalationSteps:
    - {level: 1, action: notify, target: on-call-agent, timeoutMinutes: 5}
    - {level: 2, action: escalate, target: lead, timeoutMinutes: 30}
  maxEscalationLevel: 2
"""


def test_migrate_yaml_keeps_yaml_and_meaning(tmp_path: Path) -> None:
    target = tmp_path / "on-call.yaml"
    target.write_text(CAMEL_YAML)
    before = tmp_path / "before"
    before.mkdir()
    shutil.copy(target, before)

    result = run("config", "migrate", "--json", target.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is True
    [entry] = report["files"]
    assert (entry["status"], entry["from_format"], entry["to_format"]) == ("migrated", 1, 2)
    assert entry["configs"] == ["on-call"]
    assert (tmp_path / entry["backup"]).read_text() == CAMEL_YAML

    text = target.read_text()
    assert text.startswith("# Who hears about failures.\n")
    document = yaml.safe_load(text)
    assert document["config"]["escalation_steps"][1]["timeout_minutes"] == 30
    assert document["name"] == "Page on-call: then the lead"
    [old] = load(before / "on-call.yaml")
    [new] = load(target)
    assert new.source_format == 2
    assert meaning(new) == meaning(old)


def test_migrate_dry_run_writes_nothing(tmp_path: Path) -> None:
    project = tmp_path / "configs"
    shutil.copytree(ORIGINAL, project)
    before = snapshot(project)
    result = run("config", "migrate", "--dry-run", "configs", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    would = [line for line in result.stdout.splitlines() if line.startswith("would migrate: ")]
    assert len(would) == len(before)
    assert snapshot(project) == before


def test_migrate_refuses_a_result_that_would_not_validate(tmp_path: Path) -> None:
    target = tmp_path / "bad.json"
    text = (
        '{\n  "id": "bad",\n  "name": "Bad",\n  "configType": "smoke_test",\n'
        '  "config": {"testType": "apii", "testDefinition": {}}\n}\n'
    )
    target.write_text(text)
    ok = tmp_path / "ok.json"
    shutil.copy(ORIGINAL / "file-lock-check.json", ok)

    result = run("config", "migrate", tmp_path, cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("bad.json:5: config.test_type: 'apii' is not one of") for line in lines
    ), lines
    assert "not migrated: bad.json (1 error)" in lines
    assert target.read_text() == text
    assert not (tmp_path / "bad.json.bak").exists()
    # Other files are still migrated.
    assert (tmp_path / "ok.json.bak").exists()


def test_migrate_missing_path_is_one_line(tmp_path: Path) -> None:
    result = run("config", "migrate", "gone.json", cwd=tmp_path)
    assert "gone.json" in assert_one_line_error(result)
    assert list(tmp_path.iterdir()) == []


def test_internal_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_maf_preflight.cli import config_commands
    from pytest_maf_preflight.cli.main import main

    def explode(args: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(config_commands, "run_schema", explode)
    assert main(["schema"]) == 3
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("maf-preflight: error: internal error: RuntimeError: boom")

"""Loading configs: the shipped examples, both spellings, and lists under ``configs`` (SPEC S1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import EXAMPLES
from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.config.errors import ConfigLoadError, format_path
from pytest_maf_preflight.config.loader import ConfigLoader, LoadedConfig, discover
from pytest_maf_preflight.config.models import (
    EscalationPathBody,
    ReservationCheckBody,
    SmokeTestBody,
)

PYTHONIC = EXAMPLES / "preflight-configs"
ORIGINAL = EXAMPLES / "original-format"
EXAMPLE_FILES = sorted([*PYTHONIC.iterdir(), *ORIGINAL.iterdir()])


def load(*paths: Path, environment: str = "development") -> dict[str, LoadedConfig]:
    files, errors = discover(paths)
    assert not errors
    loaded = ConfigLoader(builtin_registry(), environment).load_files(files)
    return {config.id: config for config in loaded}


def test_examples_are_where_the_tests_expect_them() -> None:
    names = {p.name for p in EXAMPLE_FILES}
    assert {
        "api-health.yaml",
        "toolchain.toml",
        "agent-mail-dirs.json",
        "api-health-check.json",
        "critical-system-escalation.json",
        "file-lock-check.json",
    } <= names


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_example_loads_unchanged(path: Path, tmp_path: Path) -> None:
    """Each file loads on its own, byte for byte as shipped, in every environment it names."""
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    loader = ConfigLoader(builtin_registry(), "development")
    configs, errors = loader.load_file(copy)
    assert errors == []
    assert configs
    for config in configs:
        assert config.file == copy
        for environment in config.config.environment_overrides:
            env_configs, env_errors = ConfigLoader(builtin_registry(), environment).load_file(copy)
            assert env_errors == []
            assert {c.id for c in env_configs} == {c.id for c in configs}
    assert copy.read_bytes() == path.read_bytes()


def test_all_examples_load_together_without_duplicate_ids() -> None:
    configs = load(PYTHONIC, ORIGINAL)
    assert sorted(configs) == [
        "agent-env",
        "agent-mail-dirs",
        "api-health",
        "api-health-check",
        "critical-system-escalation",
        "default-escalation",
        "file-lock-check",
        "git-available",
        "no-foreign-leases",
        "python-toolchain",
        "runtime-db",
    ]
    assert {c.source_format for c in configs.values() if c.file.parent == ORIGINAL} == {1}
    assert {c.source_format for c in configs.values() if c.file.parent == PYTHONIC} == {2}


def test_pythonic_example_fields_keep_their_meaning() -> None:
    configs = load(PYTHONIC)
    api = configs["api-health"]
    assert isinstance(api.body, SmokeTestBody)
    assert (
        api.body.test_type,
        api.body.timeout_seconds,
        api.body.retry_count,
        api.body.retry_delay_seconds,
    ) == ("api", 5, 2, 0.5)
    assert api.config.escalation_path == "default-escalation"
    assert api.config.severity.value == "critical"
    definition = api.definition
    assert definition is not None
    assert definition.model_dump(by_alias=True)["json"] == {"status": "ok", "checks.db": "up"}
    assert configs["git-available"].config.severity.value == "warning"
    escalation = configs["default-escalation"].body
    assert isinstance(escalation, EscalationPathBody)
    assert [(s.level, s.target) for s in escalation.escalation_steps] == [
        (1, "on-call-agent"),
        (2, "lead"),
    ]
    assert escalation.targets["lead"].channel == "webhook"
    leases = configs["no-foreign-leases"].body
    assert isinstance(leases, ReservationCheckBody)
    assert leases.parameters.agent_mail is not None
    assert leases.parameters.agent_mail.project == "/srv/repos/my-project"


def test_camelcase_fields_map_to_their_pythonic_meaning() -> None:
    configs = load(ORIGINAL)
    api = configs["api-health-check"]
    assert api.config.config_type == "smoke_test"
    assert isinstance(api.body, SmokeTestBody)
    assert (api.body.test_type, api.body.timeout_seconds, api.body.retry_count) == ("api", 10, 3)
    definition = api.definition
    assert definition is not None
    dumped = definition.model_dump()
    # The original api timeout was in milliseconds.
    assert dumped["timeout_ms"] == 5000
    assert dumped["expected_status"] == 200
    assert dumped["endpoint"] == "/api/health"
    lock = configs["file-lock-check"]
    # A reservation check's escalationPath sat in its body; here it is the common field.
    assert lock.config.escalation_path == "critical-system-escalation"
    assert isinstance(lock.body, ReservationCheckBody)
    assert lock.body.parameters.lock_timeout_minutes == 30
    assert lock.body.parameters.exclusive_write_access is True
    escalation = configs["critical-system-escalation"].body
    assert isinstance(escalation, EscalationPathBody)
    assert escalation.max_escalation_level == 3
    assert escalation.timeout_minutes == 60
    assert [(s.level, s.action, s.timeout_minutes) for s in escalation.escalation_steps] == [
        (1, "notify", 5),
        (2, "escalate", 15),
        (3, "escalate", 30),
    ]
    assert [c.condition for c in escalation.trigger_conditions] == [
        "preflight_failure",
        "reservation_conflict",
        "system_down",
    ]


def test_camelcase_environment_override_applies() -> None:
    definition = load(ORIGINAL, environment="test")["api-health-check"].definition
    assert definition is not None
    assert definition.model_dump()["endpoint"] == "/api/test-health"


def test_connection_string_becomes_url(tmp_path: Path) -> None:
    (tmp_path / "db.json").write_text(
        json.dumps(
            {
                "id": "db",
                "name": "Database",
                "configType": "smoke_test",
                "config": {
                    "testType": "database",
                    "testDefinition": {
                        "connectionString": "sqlite:///app.db",
                        "query": "select 1",
                        "expectedRows": 1,
                    },
                },
            }
        )
    )
    definition = load(tmp_path)["db"].definition
    assert definition is not None
    assert definition.model_dump()["url"] == "sqlite:///app.db"
    assert definition.model_dump()["expected_rows"] == 1


def test_camelcase_keeps_user_chosen_names(tmp_path: Path) -> None:
    """Header names, variable names and package names are data, never renamed."""
    (tmp_path / "c.json").write_text(
        json.dumps(
            {
                "id": "names",
                "name": "Names",
                "configType": "smoke_test",
                "config": {
                    "testType": "api",
                    "testDefinition": {
                        "endpoint": "/",
                        "headers": {"X-Request-Id": "1", "authToken": "t"},
                        "expectedStatus": 200,
                    },
                },
            }
        )
    )
    definition = load(tmp_path)["names"].definition
    assert definition is not None
    assert definition.model_dump()["headers"] == {"X-Request-Id": "1", "authToken": "t"}


COMMAND = {"test_type": "command", "test_definition": {"argv": ["true"]}}
LIST_DOCUMENTS = {
    "many.json": json.dumps(
        {
            "configs": [
                {"id": "one", "name": "One", "config_type": "smoke_test", "config": COMMAND},
                {
                    "id": "two",
                    "name": "Two",
                    "configType": "smoke_test",
                    "config": {
                        "testType": "command",
                        "testDefinition": {"argv": ["true"]},
                        "retryCount": 2,
                    },
                },
            ]
        },
        indent=2,
    ),
    "many.yaml": """\
configs:
  - id: one
    name: One
    config_type: smoke_test
    config: {test_type: command, test_definition: {argv: ["true"]}}
  - id: two
    name: Two
    configType: smoke_test
    config: {testType: command, testDefinition: {argv: ["true"]}, retryCount: 2}
""",
    "many.toml": """\
[[configs]]
id = "one"
name = "One"
config_type = "smoke_test"
config = { test_type = "command", test_definition = { argv = ["true"] } }

[[configs]]
id = "two"
name = "Two"
configType = "smoke_test"
[configs.config]
testType = "command"
retryCount = 2
[configs.config.testDefinition]
argv = ["true"]
""",
}


@pytest.mark.parametrize("name", sorted(LIST_DOCUMENTS))
def test_a_file_may_hold_a_list_under_configs(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text(LIST_DOCUMENTS[name])
    configs = load(tmp_path)
    assert sorted(configs) == ["one", "two"]
    assert [c.path for c in configs.values()] == [("configs", 0), ("configs", 1)]
    two = configs["two"].body
    assert isinstance(two, SmokeTestBody)
    assert two.retry_count == 2
    assert configs["two"].source_format == 1
    assert configs["one"].source_format == 2
    assert configs["one"].line is not None
    assert configs["two"].line is not None
    assert configs["one"].line < configs["two"].line


@pytest.mark.parametrize("name", sorted(LIST_DOCUMENTS))
def test_errors_in_a_list_name_the_entry(tmp_path: Path, name: str) -> None:
    text = (
        LIST_DOCUMENTS[name]
        .replace("retryCount = 2", "retryCount = -2")
        .replace("retryCount: 2", "retryCount: -2")
        .replace('"retryCount": 2', '"retryCount": -2')
    )
    (tmp_path / name).write_text(text)
    files, _ = discover([tmp_path])
    with pytest.raises(ConfigLoadError) as info:
        ConfigLoader(builtin_registry(), "development").load_files(files)
    [error] = info.value.errors
    assert format_path(error.path) == "configs[1].config.retry_count"
    line = next(i for i, text_line in enumerate(text.splitlines(), 1) if "-2" in text_line)
    assert error.line == line


def test_discover_reads_config_files_only_sorted_and_not_hidden(tmp_path: Path) -> None:
    for name in ("b.yaml", "a.json", "c.toml", "d.yml", "notes.txt", ".hidden.json"):
        (tmp_path / name).write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.json").write_text("")
    files, errors = discover([tmp_path])
    assert [f.name for f in files] == ["a.json", "b.yaml", "c.toml", "d.yml"]
    assert errors == []


def test_discover_reports_a_required_path_that_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    files, errors = discover([tmp_path / "default-dir", missing], required=[missing])
    assert files == []
    assert [(e.file, e.message) for e in errors] == [(str(missing), "no such file or directory")]


def test_duplicate_ids_across_files_name_both_places(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "# first\nid: same\nname: A\nconfig_type: smoke_test\n"
        "config: {test_type: command, test_definition: "
        "{argv: ['true']}}\n"
    )
    (tmp_path / "b.json").write_text(
        json.dumps(
            {"id": "same", "name": "B", "config_type": "smoke_test", "config": COMMAND}, indent=2
        )
    )
    files, _ = discover([tmp_path])
    with pytest.raises(ConfigLoadError) as info:
        ConfigLoader(builtin_registry(), "development").load_files(files)
    [error] = info.value.errors
    assert error.format(tmp_path) == (
        "b.json:2: id: duplicate id 'same'; first defined in a.yaml:2"
    )


def test_unknown_keys_suggest_the_closest_name(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "id: typo\nname: Typos\nconfig_type: smoke_test\nseverty: warning\n"
        "config:\n  test_type: command\n  retry_cont: 1\n  test_definition:\n"
        "    argv: ['true']\n    expected_exit_cod: 0\n    zzzz: 1\n"
    )
    files, _ = discover([tmp_path])
    with pytest.raises(ConfigLoadError) as info:
        ConfigLoader(builtin_registry(), "development").load_files(files)
    messages = {format_path(e.path): (e.line, e.message) for e in info.value.errors}
    assert messages["severty"] == (4, "unknown key 'severty' (did you mean 'severity'?)")
    assert messages["config.retry_cont"] == (
        7,
        "unknown key 'retry_cont' (did you mean 'retry_count'?)",
    )
    assert messages["config.test_definition.expected_exit_cod"] == (
        10,
        "unknown key 'expected_exit_cod' (did you mean 'expected_exit_code'?)",
    )
    line, message = messages["config.test_definition.zzzz"]
    assert line == 11
    assert message.startswith("unknown key 'zzzz'; expected one of: argv, ")


def test_unknown_camelcase_key_is_found_on_its_original_line(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(
        json.dumps(
            {
                "id": "camel",
                "name": "Camel",
                "configType": "smoke_test",
                "config": {
                    "testType": "api",
                    "testDefinition": {"endpoint": "/", "expectedStatuss": 200},
                },
            },
            indent=2,
        )
    )
    files, _ = discover([tmp_path])
    with pytest.raises(ConfigLoadError) as info:
        ConfigLoader(builtin_registry(), "development").load_files(files)
    [error] = info.value.errors
    assert format_path(error.path) == "config.test_definition.expected_statuss"
    assert error.message == ("unknown key 'expected_statuss' (did you mean 'expected_status'?)")
    assert error.line == 9  # the line of "expectedStatuss" in the indented file


def test_unquoted_yaml_date_is_explained(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "id: d\nname: D\nversion: 2024-01-01\nconfig_type: smoke_test\n"
        "config: {test_type: command, test_definition: {argv: ['true']}}\n"
    )
    files, _ = discover([tmp_path])
    with pytest.raises(ConfigLoadError) as info:
        ConfigLoader(builtin_registry(), "development").load_files(files)
    assert [e.format() for e in info.value.errors] == [
        f"{tmp_path / 'c.yaml'}:3: version: expected string, got a date 2024-01-01 "
        "(put it in quotes for a string)"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{1: x}", "key 1 is an integer; keys must be strings (put it in quotes)"),
        (".nan", "NaN is not a usable value; expected a number"),
    ],
)
def test_yaml_values_json_cannot_hold_are_errors(tmp_path: Path, value: str, message: str) -> None:
    (tmp_path / "c.yaml").write_text(
        "id: y\nname: Y\nconfig_type: smoke_test\nconfig:\n  test_type: command\n"
        f"  test_definition: {{argv: ['true']}}\n  timeout_seconds: {value}\n"
    )
    files, _ = discover([tmp_path])
    with pytest.raises(ConfigLoadError) as info:
        ConfigLoader(builtin_registry(), "development").load_files(files)
    [error] = info.value.errors
    assert (error.line, format_path(error.path), error.message) == (
        7,
        "config.timeout_seconds",
        message,
    )


# --- a check must check something ---------------------------------------------------------------

NOTHING = "nothing to check: give at least one of "


@pytest.mark.parametrize(
    ("test_type", "definition", "path", "message"),
    [
        ("environment", "{}", "config.test_definition", NOTHING + "required, patterns"),
        # optional variables are only reported, so on their own they check nothing
        (
            "environment",
            "{optional: [HOME], allow_empty: true}",
            "config.test_definition",
            NOTHING + "required, patterns",
        ),
        (
            "environment",
            "{required: [], patterns: {}}",
            "config.test_definition",
            NOTHING + "required, patterns",
        ),
        (
            "file_system",
            "{free_space_path: /tmp}",
            "config.test_definition",
            NOTHING + "paths, min_free_mb",
        ),
        ("file_system", "{paths: []}", "config.test_definition", NOTHING + "paths, min_free_mb"),
        ("python", "{}", "config.test_definition", NOTHING + "python"),
        ("python", "{python: '*', packages: {}}", "config.test_definition", NOTHING + "python"),
        (
            "python",
            "{python: ''}",
            "config.test_definition.python",
            "expected at least 1 character, got 0",
        ),
        (
            "command",
            "{argv: ['true'], expected_exit_code: []}",
            "config.test_definition.expected_exit_code",
            "expected at least 1 item, got 0",
        ),
    ],
)
def test_a_definition_that_checks_nothing_is_an_error(
    tmp_path: Path, test_type: str, definition: str, path: str, message: str
) -> None:
    file = tmp_path / "empty.yaml"
    file.write_text(
        "id: empty\nname: Empty\nconfig_type: smoke_test\nconfig:\n"
        f"  test_type: {test_type}\n  test_definition: {definition}\n"
    )
    with pytest.raises(ConfigLoadError) as info:
        load(file)
    [error] = info.value.errors
    assert (format_path(error.path), error.line) == (path, 6)
    assert error.message.startswith(message)


@pytest.mark.parametrize(
    ("test_type", "definition"),
    [
        ("environment", "{required: [HOME]}"),
        ("environment", "{patterns: {HOME: '.*'}}"),
        ("file_system", "{paths: [.]}"),
        ("file_system", "{min_free_mb: 0}"),
        ("python", "{python: '>=3.8'}"),
        ("python", "{python: '*', packages: {pytest: '*'}}"),
        ("command", "{argv: ['true'], expected_exit_code: [0, 1]}"),
    ],
)
def test_a_definition_with_one_thing_to_check_is_enough(
    tmp_path: Path, test_type: str, definition: str
) -> None:
    file = tmp_path / "one.yaml"
    file.write_text(
        "id: one\nname: One\nconfig_type: smoke_test\nconfig:\n"
        f"  test_type: {test_type}\n  test_definition: {definition}\n"
    )
    assert list(load(file)) == ["one"]

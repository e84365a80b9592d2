"""Values that parse but used to crash loading, lose a setting, or be misnamed: each is now one
located config error naming the file (and the line where the format gives one)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.config.errors import ConfigError, ConfigLoadError, format_path
from pytest_maf_preflight.config.loader import ConfigLoader
from pytest_maf_preflight.config.manager import PreflightConfigManager

HUGE = "1" * 5000
LIMIT = getattr(sys, "get_int_max_str_digits", lambda: 0)()
CONFIG_DIR = Path(".maf") / "preflight-configs"


def _errors(*files: Path) -> list[ConfigError]:
    with pytest.raises(ConfigLoadError) as info:
        ConfigLoader(builtin_registry(), "production").load_files(list(files))
    return info.value.errors


def _one(path: Path, text: str) -> ConfigError:
    path.write_text(text)
    errors = _errors(path)
    assert len(errors) == 1, [e.format() for e in errors]
    assert errors[0].file == str(path)
    return errors[0]


# --- integers Python will not convert --------------------------------------------------------

HUGE_INTEGERS = [
    (
        "c.yaml",
        f"id: big\nname: x\nconfig_type: smoke_test\nconfig:\n  test_type: command\n"
        f"  retry_count: {HUGE}\n  test_definition: {{argv: ['true']}}\n",
        6,
    ),
    (
        "c.toml",
        f'id = "big"\nname = "x"\nconfig_type = "smoke_test"\n\n[config]\n'
        f'test_type = "command"\nretry_count = {HUGE}\n',
        7,
    ),
    ("c.json", f'{{"id": "big",\n "name": "x",\n "retry_count": {HUGE}}}\n', 3),
]


@pytest.mark.skipif(not LIMIT, reason="this Python converts integers of any length")
@pytest.mark.parametrize(
    ("name", "text", "line"), HUGE_INTEGERS, ids=[n for n, _, _ in HUGE_INTEGERS]
)
def test_an_integer_with_thousands_of_digits_is_a_located_error(
    tmp_path: Path, name: str, text: str, line: int
) -> None:
    error = _one(tmp_path / name, text)
    assert error.line == line
    assert error.message.endswith(
        f"an integer has more than {LIMIT:,} digits; no config value needs that many"
    )


@pytest.mark.skipif(not LIMIT, reason="this Python converts integers of any length")
def test_gate_with_a_huge_integer_names_the_file(pytester: pytest.Pytester) -> None:
    name, text, line = HUGE_INTEGERS[0]
    path = pytester.path / CONFIG_DIR / name
    path.parent.mkdir(parents=True)
    path.write_text(text)
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 11, output
    assert f"{CONFIG_DIR / name}:{line}: (document): invalid YAML: an integer has" in output
    assert "cannot prepare the check types" not in output


# --- one key, two spellings ------------------------------------------------------------------


def test_snake_and_camel_spellings_of_one_key_are_an_error(tmp_path: Path) -> None:
    error = _one(
        tmp_path / "c.json",
        json.dumps(
            {
                "id": "twice",
                "name": "x",
                "configType": "smoke_test",
                "config": {
                    "testType": "command",
                    "timeoutSeconds": 3,
                    "timeout_seconds": 30,
                    "testDefinition": {"argv": ["true"]},
                },
            },
            indent=1,
        ),
    )
    assert format_path(error.path) == "config.timeout_seconds"
    assert error.message == (
        "'timeoutSeconds' and 'timeout_seconds' are the same setting spelled twice; keep one"
    )
    assert error.line == 7  # the first of the two


def test_original_api_timeout_beside_timeout_ms_is_an_error(tmp_path: Path) -> None:
    error = _one(
        tmp_path / "c.yaml",
        "id: api\nname: x\nconfigType: smoke_test\nconfig:\n"
        "  testType: api\n  testDefinition:\n"
        "    url: http://127.0.0.1:9/\n    timeout: 500\n"
        "    timeoutMs: 9000\n",
    )
    assert format_path(error.path) == "config.test_definition.timeout_ms"
    assert error.message == (
        "'timeout' and 'timeoutMs' are the same setting spelled twice; keep one"
    )
    assert error.line == 9  # timeoutMs


def test_two_spellings_deep_in_an_override_are_an_error(tmp_path: Path) -> None:
    error = _one(
        tmp_path / "c.yaml",
        "id: api\nname: x\nconfigType: smoke_test\nconfig:\n"
        "  testType: api\n  testDefinition: {url: 'http://x/'}\n"
        "environmentOverrides:\n  prod:\n    testDefinition:\n"
        "      expectedStatus: 200\n      expected_status: 204\n",
    )
    assert format_path(error.path) == "environment_overrides.prod.test_definition.expected_status"
    assert "'expectedStatus' and 'expected_status'" in error.message
    assert error.line == 10


def test_connection_string_beside_url_is_an_error(tmp_path: Path) -> None:
    error = _one(
        tmp_path / "c.json",
        json.dumps(
            {
                "id": "db",
                "name": "x",
                "configType": "smoke_test",
                "config": {
                    "testType": "database",
                    "testDefinition": {
                        "connectionString": "sqlite:///a.db",
                        "url": "sqlite:///b.db",
                        "query": "select 1",
                    },
                },
            }
        ),
    )
    assert error.message == (
        "'connectionString' and 'url' are the same setting spelled twice; keep one"
    )


# --- encodings -------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-32", "utf-32-be", "utf-32-le"])
def test_utf32_is_called_utf32(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "c.json"
    bom = "\ufeff" if encoding != "utf-32" else ""  # the plain codec writes its own BOM
    path.write_text(bom + '{"id": "x"}', encoding=encoding)
    (error,) = _errors(path)
    assert (error.line, error.message) == (1, "file is UTF-32 text; expected UTF-8 JSON")


# --- ids that differ only in case ------------------------------------------------------------


def _config(config_id: str) -> str:
    return (
        f"id: {config_id}\nname: x\nconfig_type: smoke_test\nconfig:\n"
        "  test_type: command\n  test_definition: {argv: ['true']}\n"
    )


def test_ids_differing_only_in_case_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(_config("Dup"))
    (tmp_path / "b.yaml").write_text(_config("dup"))
    (error,) = _errors(tmp_path / "a.yaml", tmp_path / "b.yaml")
    assert (error.file, error.line, format_path(error.path)) == (str(tmp_path / "b.yaml"), 1, "id")
    assert error.message == (
        f"id 'dup' differs only in case from 'Dup', defined in "
        f"{tmp_path / 'a.yaml'}:1; ids become file names, so they must "
        "differ in more than case"
    )


def test_gate_refuses_ids_differing_only_in_case(pytester: pytest.Pytester) -> None:
    directory = pytester.path / CONFIG_DIR
    directory.mkdir(parents=True)
    (directory / "a.yaml").write_text(_config("Dup"))
    (directory / "b.yaml").write_text(_config("dup"))
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    assert result.ret == 11
    result.stderr.fnmatch_lines(
        [
            f"*{CONFIG_DIR / 'b.yaml'}:1: id: id 'dup' differs only in "
            f"case from 'Dup', defined in {CONFIG_DIR / 'a.yaml'}:1;*"
        ]
    )


def test_manager_does_not_save_an_id_differing_only_in_case(tmp_path: Path) -> None:
    (tmp_path / "Dup.yaml").write_text(_config("Dup"))
    manager = PreflightConfigManager(tmp_path)
    raw = {
        "id": "dup",
        "name": "x",
        "config_type": "smoke_test",
        "config": {"test_type": "command", "test_definition": {"argv": ["true"]}},
    }
    with pytest.raises(ConfigLoadError) as info:
        manager.save(raw)
    assert info.value.errors[0].message == (
        f"duplicate id 'dup'; already defined in {tmp_path / 'Dup.yaml'}:1 (as 'Dup')"
    )
    assert not (tmp_path / "dup.json").exists()
    assert manager.list() == ["Dup"]

"""Bad input of every kind: one clear, located error, never a crash or a pass (SPEC S1).

``BAD_CONFIGS`` is the table of the corpus in ``tests/data/bad_configs`` (plus files too big or
too binary to commit, generated in ``tmp_path``). Each row says what the one error must say:
the line (where the format gives one), the path inside the document, and a fragment of what
was expected. The same corpus then goes through a real pytest run with ``--maf-preflight``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.config.errors import ConfigError, ConfigLoadError, format_path
from pytest_maf_preflight.config.loader import ConfigLoader, discover

BAD = Path(__file__).parent / "data" / "bad_configs"
#: The default limit of ``maf_max_config_bytes``.
MAX_BYTES = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Bad:
    """One broken input and the error it must produce."""

    name: str  # file (or directory) in tests/data/bad_configs
    line: int | None  # the exact line, or None where the format gives none
    path: str  # format_path() of the error's path inside the document
    message: str  # fragment of the message: what was expected or what is wrong
    file: str | None = None  # the file the error names, when not ``name`` itself
    # ``{dir}`` in ``message`` stands for the directory of the file the error names.


BAD_CONFIGS = [
    # Syntax errors, with the parser's line.
    Bad(
        "syntax-json-trailing-comma.json",
        8,
        "(document)",
        "invalid JSON: Expecting property name enclosed in double quotes",
    ),
    Bad("syntax-json-unclosed.json", 8, "(document)", "invalid JSON: Expecting ',' delimiter"),
    Bad(
        "syntax-yaml-bad-indent.yaml",
        6,
        "(document)",
        "invalid YAML: mapping values are not allowed in this context",
    ),
    Bad(
        "syntax-yaml-unclosed-flow.yaml",
        8,
        "(document)",
        "invalid YAML: did not find expected ',' or ']'",
    ),
    Bad("syntax-toml-missing-value.toml", 7, "(document)", "invalid TOML: Invalid value"),
    Bad("syntax-toml-unclosed-string.toml", 2, "(document)", "invalid TOML: Illegal character"),
    Bad("json-nan.json", 7, "config.timeout_seconds", "NaN is not a JSON value; expected a number"),
    Bad("duplicate-key.json", 6, "name", "duplicate key 'name'"),
    Bad("duplicate-key.yaml", 8, "config.test_type", "duplicate key 'test_type'"),
    Bad(
        "yaml-python-tag.yaml",
        4,
        "(document)",
        "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply",
    ),
    # Files that are not config text at all.
    Bad("empty.yaml", 1, "(document)", "file is empty; expected a YAML config"),
    Bad("whitespace-only.json", 1, "(document)", "file is empty; expected a JSON config"),
    Bad("invalid-utf8.yaml", 3, "(document)", "file is not UTF-8 text"),
    Bad(
        "yaml-alias-bomb.yaml",
        1,
        "(document)",
        "YAML aliases expand to more than 100,000 nodes (an alias bomb?)",
    ),
    # The wrong shape.
    Bad(
        "list-instead-of-mapping.yaml",
        1,
        "(document)",
        "expected an object (a mapping) with a config (id, name, config_type, config), got "
        "an array",
    ),
    Bad("config-body-is-list.json", 5, "config", "expected object, got array"),
    Bad("configs-empty.yaml", 2, "configs", "expected a non-empty list of configs"),
    Bad(
        "configs-entry-not-mapping.yaml",
        9,
        "configs[1]",
        "expected an object (a mapping) with a config (id, name, config_type, config), got "
        "a string",
    ),
    Bad("missing-name.yaml", 1, "(document)", "'name' is required"),
    # Wrong types.
    Bad(
        "wrong-type-timeout-string.yaml",
        6,
        "config.timeout_seconds",
        "expected number, got string 'ten'",
    ),
    Bad(
        "wrong-type-argv-string.json",
        8,
        "config.test_definition.argv",
        "expected array, got string 'git --version'",
    ),
    Bad("wrong-type-is-active.toml", 4, "is_active", "expected boolean, got string 'yes'"),
    # Unknown names, with a "did you mean".
    Bad(
        "unknown-config-type.yaml",
        3,
        "config_type",
        "'smoke_tests' is not one of 'smoke_test', 'reservation_check', 'escalation_path' "
        "(did you mean 'smoke_test'?)",
    ),
    Bad(
        "unknown-test-type.json", 6, "config.test_type", "'comand' is not one of 'api', 'command',"
    ),
    Bad(
        "reservation-bad-check-type.yaml",
        5,
        "config.check_type",
        "(did you mean 'lock_validation'?)",
    ),
    Bad(
        "severity-misspelt.yaml",
        4,
        "severity",
        "'critcal' is not one of 'critical', 'warning' (did you mean 'critical'?)",
    ),
    Bad("unknown-key-top-level.yaml", 2, "nmae", "unknown key 'nmae' (did you mean 'name'?)"),
    Bad(
        "unknown-key-nested.yaml",
        8,
        "config.test_definition.stdout_regx",
        "unknown key 'stdout_regx' (did you mean 'stdout_regex'?)",
    ),
    Bad("unknown-key-beside-configs.toml", 1, "title", "unknown key 'title' beside 'configs'"),
    # Values the fields do not accept.
    Bad(
        "bad-id-slash.json",
        2,
        "id",
        "'../etc/passwd' is not an id: only letters, digits, '_' and '-'",
    ),
    Bad("bad-id-space.yaml", 1, "id", "'my check' is not an id: only letters, digits, '_' and '-'"),
    Bad(
        "bad-semver.yaml",
        4,
        "version",
        "'v1.2' is not a semantic version MAJOR.MINOR.PATCH such as '1.0.0'",
    ),
    # The JSON Schema's pattern (Python's re.search) would let the newline through; the model
    # matches the whole string.
    Bad(
        "bad-semver-newline.yaml",
        4,
        "version",
        "should be a semantic version such as '1.0.0', not '1.2.3\\n'",
    ),
    Bad(
        "bad-regex-stdout.yaml",
        8,
        "config.test_definition.stdout_regex",
        "is not a valid regular expression",
    ),
    Bad(
        "bad-regex-env-pattern.yaml",
        9,
        "config.test_definition.patterns.MAF_AGENT_ID",
        "'^[A-Z+$' is not a valid regular expression",
    ),
    Bad("negative-timeout.yaml", 6, "config.timeout_seconds", "expected more than 0, got -5"),
    Bad("negative-retry-count.json", 7, "config.retry_count", "expected at least 0, got -1"),
    # A camelCase (original-format) file: the path is the Pythonic one, the line is the
    # original key's.
    Bad("camelcase-negative-retry.json", 9, "config.retry_count", "expected at least 0, got -3"),
    Bad(
        "override-negative-latency.yaml",
        12,
        "environment_overrides.production.test_definition.max_latency_ms",
        "expected more than 0, got -1",
    ),
    Bad(
        "bad-pep440.toml",
        9,
        "config.test_definition.python",
        "'>=3.x' is not a PEP 440 version specifier",
    ),
    Bad(
        "escalation-duplicate-levels.yaml",
        7,
        "config.escalation_steps",
        "escalation step levels must be unique; level 1 appears more than once",
    ),
    Bad(
        "bad-json-schema.json",
        10,
        "config.test_definition.paths[0].json_schema",
        "not a valid JSON Schema",
    ),
    # Versions this plugin does not understand.
    Bad(
        "schema-version-99.yaml",
        1,
        "schema_version",
        "schema_version 99 is newer than this pytest-maf-preflight understands (up to 2)",
    ),
    Bad(
        "schema-version-3.json",
        4,
        "schema_version",
        "schema_version 3 is newer than this pytest-maf-preflight understands",
    ),
    # Duplicate ids: in one file, and across two files (the second names the first).
    Bad(
        "duplicate-id-in-list.toml",
        11,
        "configs[1].id",
        "duplicate id 'twice'; first defined in {dir}/duplicate-id-in-list.toml:2",
    ),
    Bad(
        "duplicate-ids",
        2,
        "id",
        "duplicate id 'shared-id'; first defined in {dir}/a-first.yaml:1",
        file="duplicate-ids/b-second.json",
    ),
]


# --- inputs generated at test time (too big or too binary to commit) ------------------------


def _huge(directory: Path) -> Path:
    """50 MB: a sparse file whose first bytes are not even JSON, so only a size check passes."""
    path = directory / "huge.json"
    with path.open("wb") as handle:
        handle.write(b"{ this is not JSON")
        handle.truncate(50 * 1024 * 1024)
    return path


def _binary(directory: Path) -> Path:
    path = directory / "garbage.yaml"
    path.write_bytes(bytes(range(256)) * 16)
    return path


def _utf16(directory: Path) -> Path:
    path = directory / "utf16.json"
    path.write_text('{"id": "x"}', encoding="utf-16")
    return path


def _deep_json(directory: Path) -> Path:
    path = directory / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    return path


def _deep_toml(directory: Path) -> Path:
    path = directory / "deep.toml"
    path.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    return path


def _nested_metadata(directory: Path) -> Path:
    """Deep enough to break recursive processing (migration of camelCase), shallow enough
    for the JSON parser."""
    path = directory / "nested.json"
    path.write_text(
        '{"id": "x", "name": "n", "configType": "smoke_test", "metadata":\n'
        + '{"a": ' * 600
        + "1"
        + "}" * 600
        + ', "config": {"testType": "command", "testDefinition": {"argv": ["true"]}}}'
    )
    return path


def _yaml_recursive_alias(directory: Path) -> Path:
    path = directory / "recursive.yaml"
    path.write_text("a: &a [*a]\n")
    return path


GENERATED: list[tuple[Callable[[Path], Path], Bad]] = [
    (
        _huge,
        Bad(
            "huge.json",
            None,
            "(document)",
            f"file is 52,428,800 bytes; config files are limited to {MAX_BYTES:,} bytes",
        ),
    ),
    (
        _binary,
        Bad(
            "garbage.yaml",
            None,
            "(document)",
            "file is binary (contains NUL bytes), expected YAML text",
        ),
    ),
    (_utf16, Bad("utf16.json", 1, "(document)", "file is UTF-16 text; expected UTF-8 JSON")),
    (_deep_json, Bad("deep.json", None, "(document)", "invalid JSON: nested too deeply")),
    (_deep_toml, Bad("deep.toml", None, "(document)", "invalid TOML: nested too deeply")),
    (_nested_metadata, Bad("nested.json", 2, "metadata.a.a.a", "nested more than 64 levels deep")),
    (_yaml_recursive_alias, Bad("recursive.yaml", 1, "(document)", "an alias bomb?")),
]


def _load(paths: list[Path]) -> list[ConfigError]:
    files, errors = discover(paths)
    assert not errors
    loader = ConfigLoader(builtin_registry(), "production", MAX_BYTES)
    with pytest.raises(ConfigLoadError) as info:
        loader.load_files(files)
    return info.value.errors


def _assert_one_clear_error(errors: list[ConfigError], bad: Bad, directory: Path) -> None:
    assert len(errors) == 1, [e.format() for e in errors]
    error = errors[0]
    assert Path(error.file) == directory / (bad.file or bad.name)
    assert error.line == bad.line
    assert format_path(error.path) == bad.path
    assert bad.message.format(dir=Path(error.file).parent) in error.message
    text = error.format()
    assert "\n" not in text
    where = f"{error.file}:{bad.line}" if bad.line else error.file
    assert text.startswith(f"{where}: {bad.path}: ")


def test_the_corpus_is_complete() -> None:
    """Every committed bad file is in the table (and the table names no missing file)."""
    assert sorted(b.name for b in BAD_CONFIGS) == sorted(p.name for p in BAD.iterdir())
    assert len(BAD_CONFIGS) + len(GENERATED) >= 30


@pytest.mark.parametrize("bad", BAD_CONFIGS, ids=lambda b: b.name)
def test_bad_config_gives_one_located_error(bad: Bad) -> None:
    _assert_one_clear_error(_load([BAD / bad.name]), bad, BAD)


@pytest.mark.parametrize(("make", "bad"), GENERATED, ids=[b.name for _, b in GENERATED])
def test_generated_bad_input_gives_one_located_error(
    tmp_path: Path, make: Callable[[Path], Path], bad: Bad
) -> None:
    make(tmp_path)
    _assert_one_clear_error(_load([tmp_path]), bad, tmp_path)


def test_size_limit_is_checked_before_reading(tmp_path: Path) -> None:
    """Just over the limit is refused by size; the same content just under it is parsed."""
    over = tmp_path / "over" / "c.json"
    under = tmp_path / "under" / "c.json"
    for path, size in ((over, 2048 + 1), (under, 2048)):
        path.parent.mkdir()
        path.write_text("{" + " " * (size - 1))
    loader = ConfigLoader(builtin_registry(), "development", max_bytes=2048)
    _, over_errors = loader.load_file(over)
    _, under_errors = loader.load_file(under)
    assert [e.message for e in over_errors] == [
        "file is 2,049 bytes; config files are limited to 2,048 bytes (ini maf_max_config_bytes)"
    ]
    assert len(under_errors) == 1
    assert under_errors[0].message.startswith("invalid JSON")


def test_every_error_in_a_file_is_reported_not_just_the_first(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(
        "id: two-problems\nname: x\nconfig_type: smoke_test\nversion: one\n"
        "config:\n  test_type: command\n  retry_count: -1\n"
        "  test_definition: {argv: ['true']}\n"
    )
    errors = _load([path])
    assert sorted((e.line, format_path(e.path)) for e in errors) == [
        (4, "version"),
        (7, "config.retry_count"),
    ]


# --- the same corpus through pytest -----------------------------------------------------------

PASSING_TEST = """\
from pathlib import Path

def test_app():
    Path("test-ran").write_text("yes")
"""


def _project_with(pytester: pytest.Pytester, sources: list[Path]) -> Path:
    target = pytester.path / ".maf" / "preflight-configs"
    target.mkdir(parents=True)
    for source in sources:
        if source.is_dir():
            for child in source.iterdir():
                shutil.copy(child, target)
        else:
            shutil.copy(source, target)
    pytester.makepyfile(test_app=PASSING_TEST)
    return target


def _assert_config_error_run(pytester: pytest.Pytester, bad: Bad) -> None:
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    output = result.stdout.str() + "\n" + result.stderr.str()
    assert result.ret == 11, output
    where = f".maf/preflight-configs/{Path(bad.file or bad.name).name}"
    if bad.line is not None:
        where += f":{bad.line}"
    assert f"{where}: {bad.path}: " in output
    assert bad.message.format(dir=".maf/preflight-configs") in output
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output
    # Nothing ran, so nothing can be reported as passed.
    assert not (pytester.path / "test-ran").exists()
    assert " passed" not in output
    assert "PASSED" not in output


@pytest.mark.parametrize("bad", BAD_CONFIGS, ids=lambda b: b.name)
def test_pytest_run_with_bad_config_exits_11(pytester: pytest.Pytester, bad: Bad) -> None:
    _project_with(pytester, [BAD / bad.name])
    _assert_config_error_run(pytester, bad)


@pytest.mark.parametrize(("make", "bad"), GENERATED, ids=[b.name for _, b in GENERATED])
def test_pytest_run_with_generated_bad_input_exits_11(
    pytester: pytest.Pytester, make: Callable[[Path], Path], bad: Bad
) -> None:
    make(_project_with(pytester, []))
    _assert_config_error_run(pytester, bad)


def test_pytest_run_reports_errors_of_every_bad_file_at_once(pytester: pytest.Pytester) -> None:
    names = ["negative-timeout.yaml", "unknown-test-type.json", "bad-pep440.toml"]
    _project_with(pytester, [BAD / name for name in names])
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    assert result.ret == 11
    result.stderr.fnmatch_lines(
        [
            "*3 preflight config errors:",
            "  .maf/preflight-configs/bad-pep440.toml:9: config.test_definition.python: *",
            "  .maf/preflight-configs/negative-timeout.yaml:6: config.timeout_seconds: *",
            "  .maf/preflight-configs/unknown-test-type.json:6: config.test_type: *",
        ]
    )


def test_pytest_run_with_a_bad_file_named_on_the_command_line(pytester: pytest.Pytester) -> None:
    extra = pytester.path / "elsewhere" / "bad.yaml"
    extra.parent.mkdir()
    shutil.copy(BAD / "bad-regex-stdout.yaml", extra)
    pytester.makepyfile(test_app=PASSING_TEST)
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", f"--maf-config={extra}")
    assert result.ret == 11
    result.stderr.fnmatch_lines(
        [
            "*elsewhere/bad.yaml:8: config.test_definition.stdout_regex: "
            "*is not a valid regular expression"
        ]
    )
    assert not (pytester.path / "test-ran").exists()


def test_sparse_huge_file_is_really_50_mb(tmp_path: Path) -> None:
    """The generated input is what it claims to be (without writing 50 MB of disk)."""
    assert os.path.getsize(_huge(tmp_path)) == 50 * 1024 * 1024

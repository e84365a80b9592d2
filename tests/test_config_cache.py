"""The config cache (issue 14): an unchanged set of config files is rebuilt from its entry in
pytest's cache directory without parsing; anything changed, invalid or damaged loads in full.

Real pytest runs through ``pytester`` (in subprocesses where what a run imports is the probe),
real files, real concurrent processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers_configs import PASSING_CHECK, WriteConfig
from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.config.cache import (
    ConfigCache,
    cache_key,
    entry_for,
    read_sources,
)
from pytest_maf_preflight.config.loader import ConfigLoader

GATE = ("-p", "maf_preflight", "--maf-preflight", "--maf-runtime=memory")
#: Written at the end of every run: which of the modules only a full load needs were imported.
PROBE = """
import json, sys

def pytest_sessionfinish(session):
    with open("imported.json", "w") as handle:
        json.dump(sorted(m for m in ("yaml",) if m in sys.modules), handle)
"""
#: A YAML config whose check needs a variable the test sets (or leaves unset).
NEEDS_VAR = """\
id: needs-var
name: A variable the test controls
config_type: smoke_test
config:
  test_type: environment
  test_definition: {required: [MAF_TEST_CACHE_A]}
"""


def entries(pytester: pytest.Pytester) -> list[Path]:
    directory = pytester.path / ".pytest_cache" / "d" / "maf-preflight-configs"
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


def imported(pytester: pytest.Pytester) -> list[str]:
    return list(json.loads((pytester.path / "imported.json").read_text()))


@pytest.fixture
def project(pytester: pytest.Pytester, write_config: WriteConfig) -> pytest.Pytester:
    pytester.makeconftest(PROBE)
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    write_config("path.yaml", PASSING_CHECK)
    return pytester


def test_an_unchanged_set_is_not_parsed_again(project: pytest.Pytester) -> None:
    first = project.runpytest_subprocess(*GATE)
    first.assert_outcomes(passed=2)
    # The probe sees the parser when it is used.
    assert imported(project) == ["yaml"]
    assert len(entries(project)) == 1
    second = project.runpytest_subprocess(*GATE)
    second.assert_outcomes(passed=2)
    second.stdout.fnmatch_lines(["gate open"])
    assert imported(project) == []


def test_no_cache_without_pytests_cache(project: pytest.Pytester) -> None:
    for _ in range(2):
        result = project.runpytest_subprocess(*GATE, "-p", "no:cacheprovider")
        result.assert_outcomes(passed=2)
        assert imported(project) == ["yaml"]
    assert not (project.path / ".pytest_cache").exists()


def test_cache_clear_loads_in_full(project: pytest.Pytester) -> None:
    project.runpytest_subprocess(*GATE).assert_outcomes(passed=2)
    project.runpytest_subprocess(*GATE, "--cache-clear").assert_outcomes(passed=2)
    assert imported(project) == ["yaml"]
    assert len(entries(project)) == 1  # written again once pytest emptied its cache


def test_a_file_changed_at_the_same_size_and_time_is_read_again(
    pytester: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAF_TEST_CACHE_A", "1")
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    path = write_config("var.yaml", NEEDS_VAR)
    assert pytester.runpytest(*GATE).ret == 0
    before = path.stat()
    path.write_text(NEEDS_VAR.replace("MAF_TEST_CACHE_A", "MAF_TEST_CACHE_B"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    result = pytester.runpytest(*GATE)
    result.stdout.fnmatch_lines(["*gate CLOSED (exit code 10): needs-var (failed)*"])
    assert result.ret == 10


def test_a_config_made_invalid_ends_every_run_with_exit_11(
    project: pytest.Pytester, write_config: WriteConfig
) -> None:
    assert project.runpytest(*GATE).ret == 0
    write_config("path.yaml", PASSING_CHECK.replace("required:", "requird:"))
    for _ in range(2):  # failures are never cached
        result = project.runpytest(*GATE)
        assert result.ret == 11
        result.stderr.fnmatch_lines(["*path.yaml*unknown key 'requird'*"])
    write_config("path.yaml", PASSING_CHECK)
    assert project.runpytest(*GATE).ret == 0


def test_the_environment_is_part_of_the_key(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    write_config(
        "path.yaml",
        PASSING_CHECK
        + "environment_overrides:\n  staging:\n    test_definition: "
        + "{required: [MAF_TEST_CACHE_UNSET]}\n",
    )
    for _ in range(2):  # each environment once in full, then from its own entry
        assert pytester.runpytest(*GATE).ret == 0
        staging = pytester.runpytest(*GATE, "--maf-env=staging")
        staging.stdout.fnmatch_lines(["*gate CLOSED (exit code 10): has-path (failed)*"])
        assert staging.ret == 10
    assert len(entries(pytester)) == 2


PLUGIN_TYPE = """\
from pytest_maf_preflight.checks.base import CheckType, Definition, Observation


class Always(Definition):
    answer: bool = True


def run(definition, ctx):
    return Observation(definition.answer, "true", str(definition.answer))


def pytest_maf_preflight_register_check_types(registry, config):
    registry.register(CheckType("always", Always, run))
"""


def test_a_set_using_a_plugins_check_type_is_not_cached(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    pytester.makeconftest(PLUGIN_TYPE)
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    write_config(
        "always.json",
        json.dumps(
            {
                "id": "always",
                "name": "Always",
                "config_type": "smoke_test",
                "config": {"test_type": "always", "test_definition": {}},
            }
        ),
    )
    assert pytester.runpytest(*GATE).ret == 0
    assert entries(pytester) == []  # its validation is the plugin's, which no key can see
    write_config("path.yaml", PASSING_CHECK)
    (pytester.path / ".maf" / "preflight-configs" / "always.json").unlink()
    assert pytester.runpytest(*GATE).ret == 0
    assert len(entries(pytester)) == 1  # the probe: the plugin's type alone is registered


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xff not json at all")


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _wrong_shape(path: Path) -> None:
    path.write_text(json.dumps({"format": 1, "key": [], "files": {}}))


def _config_invalid(path: Path) -> None:
    entry = json.loads(path.read_text())
    entry["files"][0][0]["document"]["config"]["test_definition"] = {"required": 5}
    path.write_text(json.dumps(entry))


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _symlink_loop(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.name)


def _dangling(path: Path) -> None:
    path.unlink()
    path.symlink_to("nothing-here.json")


@pytest.mark.parametrize(
    "damage",
    [
        _garbage,
        _truncated,
        _wrong_shape,
        _config_invalid,
        _directory,
        _fifo,
        _symlink_loop,
        _dangling,
    ],
)
def test_a_damaged_entry_is_a_miss(
    project: pytest.Pytester, damage: Callable[[Path], None]
) -> None:
    project.runpytest_subprocess(*GATE).assert_outcomes(passed=2)
    (entry,) = entries(project)
    damage(entry)
    # A subprocess with a timeout: an entry that blocked a read would hang the run.
    result = project.runpytest_subprocess(*GATE, timeout=120)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["gate open"])
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    assert imported(project) == ["yaml"]  # loaded in full


def test_another_sets_entry_under_this_name_is_not_trusted(
    project: pytest.Pytester, write_config: WriteConfig
) -> None:
    assert project.runpytest(*GATE).ret == 0
    (passing,) = entries(project)
    write_config("path.yaml", PASSING_CHECK.replace("[PATH]", "[MAF_TEST_CACHE_UNSET]"))
    assert project.runpytest(*GATE).ret == 10
    (failing,) = (e for e in entries(project) if e != passing)
    shutil.copyfile(passing, failing)  # a valid entry, but of other content
    result = project.runpytest(*GATE)
    result.stdout.fnmatch_lines(["*gate CLOSED (exit code 10): has-path (failed)*"])
    assert result.ret == 10


#: A config as big as configs get: a write of its entry takes long enough to be caught in the
#: middle by a reader, were it not atomic.
BIG = PASSING_CHECK + f"metadata: {{notes: '{'x' * 900_000}'}}\n"
#: One process of the race: writes its entry ``rounds`` times, or reads it back until the file
#: ``rounds`` names appears.
RACER = textwrap.dedent("""\
    import json, sys
    from pathlib import Path

    from pytest_maf_preflight.checks.builtin import builtin_registry
    from pytest_maf_preflight.config.cache import ConfigCache, cache_key, entry_for, read_sources
    from pytest_maf_preflight.config.loader import ConfigLoader

    role, config_file, directory, rounds = sys.argv[1:]
    files = [Path(config_file)]
    registry = builtin_registry()
    loader = ConfigLoader(registry, "development")
    sources = read_sources(files, loader.max_bytes)
    key = cache_key(
        sources, environment="development", max_bytes=loader.max_bytes, registry=registry
    )
    cache = ConfigCache(Path(directory))
    if role == "writer":
        entry = entry_for(key, sources, loader.load_files(files, sources), registry)
        for _ in range(int(rounds)):
            cache.store(key, entry)
    else:
        seen = broken = 0
        while not Path(rounds).exists():
            found = cache.load(key, sources, loader)
            if found is not None and len(found) == 1:
                seen += 1
            elif seen:
                broken += 1
        print(json.dumps({"seen": seen, "broken": broken}))
    """)


def test_processes_writing_one_entry_at_once_never_leave_it_broken(tmp_path: Path) -> None:
    config_file = tmp_path / "big.yaml"
    config_file.write_text(BIG)
    directory = tmp_path / "cache"
    directory.mkdir()
    script = tmp_path / "racer.py"
    script.write_text(RACER)

    def racer(role: str, rounds: str) -> subprocess.Popen[str]:
        args = [sys.executable, str(script), role, str(config_file), str(directory), rounds]
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    stop = tmp_path / "stop"
    reader = racer("reader", str(stop))
    writers = [racer("writer", "150"), racer("writer", "150")]
    for proc in writers:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    stop.write_text("")
    out, err = reader.communicate(timeout=300)
    assert reader.returncode == 0, err
    seen = json.loads(out)
    assert seen["broken"] == 0
    assert seen["seen"] > 0
    assert [p.name for p in directory.iterdir() if p.name.endswith(".tmp")] == []
    registry = builtin_registry()
    loader = ConfigLoader(registry, "development")
    sources = read_sources([config_file], loader.max_bytes)
    assert sources is not None
    key = cache_key(
        sources, environment="development", max_bytes=loader.max_bytes, registry=registry
    )
    assert ConfigCache(directory).load(key, sources, loader) == loader.load_files([config_file])


ORIGINAL_FORMAT = """\
configs:
  - id: api-up
    name: API answers
    configType: smoke_test
    config:
      testType: api
      timeoutSeconds: 5
      testDefinition:
        url: http://127.0.0.1:9/health
        expectedStatus: [200, 204]
        headers: {X-Trace: "1"}
    environmentOverrides:
      staging:
        testDefinition: {url: "http://127.0.0.1:9/staging"}
  - id: lock-check
    name: No stale locks
    configType: reservation_check
    config:
      checkType: lock_validation
      parameters: {paths: [src], lockTimeoutMinutes: 5}
"""


def test_an_entry_rebuilds_what_the_full_load_built(tmp_path: Path) -> None:
    config_file = tmp_path / "configs.yaml"
    config_file.write_text(ORIGINAL_FORMAT)
    registry = builtin_registry()
    loader = ConfigLoader(registry, "staging")
    sources = read_sources([config_file], loader.max_bytes)
    assert sources is not None
    key = cache_key(sources, environment="staging", max_bytes=loader.max_bytes, registry=registry)
    loaded = loader.load_files([config_file], sources)
    entry = entry_for(key, sources, loaded, registry)
    assert entry is not None
    cache = ConfigCache(tmp_path / "cache")
    cache.directory.mkdir()
    cache.store(key, entry)
    fresh = ConfigLoader(registry, "staging")
    restored = cache.load(key, sources, fresh)
    assert restored == loaded  # config, body, definition, file, path, line, format, document
    assert restored is not None
    assert [c.id_line for c in restored] == [c.id_line for c in loaded] == [2, 15]
    assert restored[0].definition.url == "http://127.0.0.1:9/staging"  # type: ignore[union-attr]
    assert "validator" not in vars(fresh)  # no JSON Schema was built


def test_a_document_json_cannot_give_back_is_not_cached(tmp_path: Path) -> None:
    config_file = tmp_path / "dated.yaml"
    config_file.write_text(PASSING_CHECK + "metadata: {since: 2024-01-01}\n")
    registry = builtin_registry()
    loader = ConfigLoader(registry, "development")
    sources = read_sources([config_file], loader.max_bytes)
    assert sources is not None
    key = cache_key(
        sources, environment="development", max_bytes=loader.max_bytes, registry=registry
    )
    # YAML reads the date as a date; JSON would give a string back.
    assert entry_for(key, sources, loader.load_files([config_file], sources), registry) is None


def test_a_set_whose_entry_could_not_be_read_back_is_not_cached(tmp_path: Path) -> None:
    config_file = tmp_path / "aliases.yaml"
    aliases = ", ".join(["*note"] * 300)
    config_file.write_text(
        PASSING_CHECK + f"metadata: {{note: &note '{'x' * 1000}', copies: [{aliases}]}}\n"
    )
    registry = builtin_registry()
    loader = ConfigLoader(registry, "development")
    sources = read_sources([config_file], loader.max_bytes)
    assert sources is not None
    key = cache_key(
        sources, environment="development", max_bytes=loader.max_bytes, registry=registry
    )
    loaded = loader.load_files([config_file], sources)
    assert len(loaded[0].document["metadata"]["copies"]) == 300  # 300 kB from 4 kB of YAML
    assert entry_for(key, sources, loaded, registry) is None

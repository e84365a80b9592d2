"""A pytest run with the plugin installed but the gate off must not import the heavy parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HEAVY = (
    "pydantic",
    "jsonschema",
    "sqlite3",
    "yaml",
    "pytest_maf_preflight.gate.controller",
    "pytest_maf_preflight.config.loader",
    "pytest_maf_preflight.protocol",
    "pytest_maf_preflight.runtime.sqlite",
    "pytest_maf_preflight.settings",
    "pytest_maf_preflight.http_transport",
    "http.client",
    "ssl",
)

CONFTEST = f"""
import json, sys
HEAVY = {HEAVY!r}

def pytest_sessionfinish(session):
    loaded = sorted(m for m in HEAVY if m in sys.modules)
    with open("loaded.json", "w") as handle:
        json.dump(loaded, handle)
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("def test_one():\n    assert True\n")
    pytester.makeini("[pytest]\n")
    return pytester


def test_gate_off_imports_nothing_heavy(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-p", "maf_preflight")
    result.assert_outcomes(passed=1)
    assert json.loads((project.path / "loaded.json").read_text()) == []


def test_gate_on_does_import_them(project: pytest.Pytester) -> None:
    # The counterpart: proves the probe sees imports when they happen.
    result = project.runpytest_subprocess("-p", "maf_preflight", "--maf-preflight")
    result.assert_outcomes(passed=1)
    loaded = json.loads((project.path / "loaded.json").read_text())
    assert "pydantic" in loaded
    assert "pytest_maf_preflight.gate.controller" in loaded


#: What a gated run whose only config is one ``environment`` check has no use for: the other
#: check types' modules (and their network, process and database imports), the JSON Schema
#: pass (its configs are valid), the escalation engine and its channels (no escalation path),
#: and the protocol models (the gate writes its messages as records).
NOT_FOR_ONE_ENVIRONMENT_CHECK = (
    "jsonschema",
    "http.client",
    "ssl",
    "packaging.specifiers",
    "pytest_maf_preflight.checks.api",
    "pytest_maf_preflight.checks.command",
    "pytest_maf_preflight.checks.database",
    "pytest_maf_preflight.checks.file_system",
    "pytest_maf_preflight.checks.performance",
    "pytest_maf_preflight.checks.python_env",
    "pytest_maf_preflight.config.schema",
    "pytest_maf_preflight.escalation.engine",
    "pytest_maf_preflight.escalation.channels",
    "pytest_maf_preflight.http_transport",
    "pytest_maf_preflight.processes.run",
    "pytest_maf_preflight.protocol",
)

#: Written when the run is over (escalations run at the end of the session).
LATE_PROBE = f"""
import json, sys
MODULES = {NOT_FOR_ONE_ENVIRONMENT_CHECK!r}

def pytest_unconfigure(config):
    with open("loaded.json", "w") as handle:
        json.dump(sorted(m for m in MODULES if m in sys.modules), handle)
"""

ENVIRONMENT_CHECK = """\
id: env-home
name: HOME is set
config_type: smoke_test
config:
  test_type: environment
  test_definition: {required: [HOME]}
"""


@pytest.fixture
def one_check(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(LATE_PROBE)
    pytester.makepyfile("def test_one():\n    assert True\n")
    pytester.makeini("[pytest]\n")
    configs = pytester.path / ".maf" / "preflight-configs"
    configs.mkdir(parents=True)
    (configs / "env.yaml").write_text(ENVIRONMENT_CHECK)
    return pytester


@pytest.mark.parametrize("cache", ["cache on", "no:cacheprovider"])
def test_one_environment_check_imports_only_what_it_needs(
    one_check: pytest.Pytester, cache: str
) -> None:
    args = ("-p", cache) if cache.startswith("no:") else ()
    for _ in range(2):  # a first run, then one that finds its configs (and session) recorded
        result = one_check.runpytest_subprocess(
            "-p", "maf_preflight", "--maf-preflight", "--maf-runtime=sqlite", *args
        )
        result.assert_outcomes(passed=2)
        assert json.loads((one_check.path / "loaded.json").read_text()) == []


PATH_AND_CHECKS = """\
configs:
  - id: on-call
    name: Tell the on-call agent
    config_type: escalation_path
    config:
      trigger_conditions: [{condition: preflight_failure, threshold: 1}]
      escalation_steps: [{level: 1, action: notify, target: on-call-agent}]
  - id: api-down
    name: Nothing listens there
    config_type: smoke_test
    escalation_path: on-call
    config:
      test_type: api
      timeout_seconds: 5
      test_definition: {url: "http://127.0.0.1:9/"}
  - id: version
    name: Python is recent
    config_type: smoke_test
    config:
      test_type: python
      test_definition: {python: ">=3.8"}
  - id: files
    name: A JSON file that fits its schema
    config_type: smoke_test
    config:
      test_type: file_system
      test_definition:
        paths: [{path: data.json, parse: true, json_schema: {type: object}}]
"""


def test_the_late_probe_sees_them_when_configs_use_them(
    one_check: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The counterpart: configs that use them (and an escalation path that opens) import them.
    (one_check.path / ".maf" / "preflight-configs" / "more.yaml").write_text(PATH_AND_CHECKS)
    (one_check.path / "data.json").write_text("{}")
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(one_check.path / "mail"))
    result = one_check.runpytest_subprocess(
        "-p", "maf_preflight", "--maf-preflight", "--maf-runtime=sqlite"
    )
    assert result.ret == 10  # api-down closes the gate
    result.stdout.fnmatch_lines(["*escalation opened: * on-call:api-down:failed*"])
    loaded = set(json.loads((one_check.path / "loaded.json").read_text()))
    assert loaded >= {
        "jsonschema",
        "http.client",
        "packaging.specifiers",
        "pytest_maf_preflight.checks.api",
        "pytest_maf_preflight.checks.python_env",
        "pytest_maf_preflight.checks.file_system",
        "pytest_maf_preflight.escalation.engine",
        "pytest_maf_preflight.escalation.channels",
        "pytest_maf_preflight.protocol",
    }


#: Runs ``maf-preflight guard check`` in this process (as the git hook runs it), then says
#: whether pytest was imported on the way.
GUARD_PROBE = """
import json, sys
from pytest_maf_preflight.cli.main import main
code = main(["guard", "check"])
print(json.dumps({"code": code, "loaded": [m for m in ("pytest", "_pytest") if m in sys.modules]}))
"""

LOCK_CHECK = """\
id: my-leases
name: Every staged file is under one of my leases, or nobody's
config_type: reservation_check
config:
  check_type: lock_validation
  parameters: {changed_files: staged}
"""


def run_python(code: str, cwd: Path) -> dict[str, Any]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MAF_", "GIT_"))}
    environ.update(
        MAF_AGENT_ID="agent-a",
        MAF_RUNTIME_MODE="sqlite",
        HOME=str(cwd.parent),
        GIT_CONFIG_NOSYSTEM="1",
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(json.loads(result.stdout.splitlines()[-1]))


def test_the_guard_does_not_import_pytest(tmp_path: Path) -> None:
    """The pre-commit hook loads the project's configs, reads the lease store, runs the check
    and records the run, and never pays for importing pytest."""
    repo = tmp_path / "repo"
    configs = repo / ".maf" / "preflight-configs"
    configs.mkdir(parents=True)
    (configs / "leases.yaml").write_text(LOCK_CHECK)
    (repo / "app.py").write_text("x = 1\n")
    for args in (["init", "-q"], ["add", "app.py"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, timeout=60)

    outcome = run_python(GUARD_PROBE, repo)

    assert outcome == {"code": 0, "loaded": []}
    assert (repo / ".git" / "maf-preflight" / "runtime.db").is_file()  # the run was recorded


def test_the_guard_probe_sees_pytest(tmp_path: Path) -> None:
    # The counterpart: the same probe, after importing the plugin, reports pytest.
    (tmp_path / "repo").mkdir()
    outcome = run_python(
        "import pytest_maf_preflight.plugin\n"
        + GUARD_PROBE.replace('code = main(["guard", "check"])', "code = 0"),
        tmp_path / "repo",
    )
    assert outcome == {"code": 0, "loaded": ["pytest", "_pytest"]}


#: Written as the configs load, before the checks start (the check types are registered then).
LOADING_PROBE = """
import json, sys
MODULES = (
    "sqlite3",
    "pytest_maf_preflight.runtime.records",
    "pytest_maf_preflight.gate.controller",
)

def pytest_maf_preflight_register_check_types(registry, config):
    with open("loading.json", "w") as handle:
        json.dump(sorted(m for m in MODULES if m in sys.modules), handle)
"""


def test_the_checks_start_before_the_runtime_is_imported(pytester: pytest.Pytester) -> None:
    """Settings and configs load without the runtime's records and drivers: the checks start
    first, and the runtime's imports overlap with them."""
    pytester.makeconftest(LOADING_PROBE)
    pytester.makepyfile("def test_one():\n    assert True\n")
    configs = pytester.path / ".maf" / "preflight-configs"
    configs.mkdir(parents=True)
    (configs / "env.yaml").write_text(ENVIRONMENT_CHECK)
    result = pytester.runpytest_subprocess("-p", "maf_preflight", "--maf-preflight")
    result.assert_outcomes(passed=2)
    assert json.loads((pytester.path / "loading.json").read_text()) == []

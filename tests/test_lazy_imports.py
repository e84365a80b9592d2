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

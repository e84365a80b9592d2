"""An agent project's tests: smoke tests gate the rest when run with --maf-preflight."""

import json
from pathlib import Path

import pytest

SETTINGS = Path(__file__).parent.parent / "agent-settings.json"


@pytest.mark.maf_smoke
def test_settings_name_an_agent():
    assert json.loads(SETTINGS.read_text())["agent"]


@pytest.mark.maf_smoke
def test_python_can_write_temp_files(tmp_path):
    (tmp_path / "probe").write_text("ok")
    assert (tmp_path / "probe").read_text() == "ok"


def test_agent_fixture(maf_agent):
    assert maf_agent.id == "example-agent"


@pytest.mark.maf_requires("git-available")
def test_needs_git():
    import subprocess

    assert subprocess.run(["git", "--version"], capture_output=True, check=True).returncode == 0


def test_gate_results_are_visible(maf_preflight_results):
    assert maf_preflight_results["python-toolchain"].passed

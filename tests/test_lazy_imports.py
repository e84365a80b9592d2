"""A pytest run with the plugin installed but the gate off must not import the heavy parts."""

from __future__ import annotations

import json

import pytest

HEAVY = ("pydantic", "jsonschema", "sqlite3", "yaml", "pytest_maf_preflight.gate.session",
         "pytest_maf_preflight.config.loader", "pytest_maf_preflight.protocol",
         "pytest_maf_preflight.runtime.sqlite", "pytest_maf_preflight.settings")

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
    assert "pytest_maf_preflight.gate.session" in loaded

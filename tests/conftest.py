"""Shared test setup: pytester runs load only our plugin, never whatever else is installed."""

from __future__ import annotations

import importlib.metadata
import json
import os
from pathlib import Path

import pytest

import pytest_maf_preflight

# Imported here, once: pytester's in-process runs unload modules first imported during a run,
# and PyYAML's C loader cannot be imported a second time into the same process.
import yaml  # noqa: F401

DATA = Path(__file__).parent / "data"
#: The examples shipped beside the project (a contract); the copy in tests/data is used when
#: ``../shared`` is absent.
SHARED_EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "examples"
EXAMPLES = SHARED_EXAMPLES if SHARED_EXAMPLES.is_dir() else DATA / "examples"


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test a package other than the installed one.

    The package sits beside ``tests/`` at the top of the checkout, so ``python -m pytest`` (which
    puts the working directory first on ``sys.path``) would import the checkout's copy even when
    a wheel is installed, as under tox. An editable install is the checkout by design.
    """
    try:
        dist = importlib.metadata.distribution("pytest-maf-preflight")
    except importlib.metadata.PackageNotFoundError:
        raise pytest.UsageError(
            "pytest-maf-preflight is not installed: pip install -e '.[test]' first"
        ) from None
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct_url.get("dir_info", {}).get("editable"):
        return
    installed = Path(str(dist.locate_file("pytest_maf_preflight/__init__.py"))).resolve()
    imported = Path(pytest_maf_preflight.__file__).resolve()
    if installed != imported:
        raise pytest.UsageError(
            f"the tests imported {imported}, not the installed package at {installed}: "
            "run them with the installed pytest script (not python -m pytest) from the checkout"
        )


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No autoloaded plugins in pytester runs, and no MAF_* settings leaking in from the shell."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in list(os.environ):
        if name.startswith("MAF_") or name in ("NODE_ENV", "AGENT_NAME"):
            monkeypatch.delenv(name)


@pytest.fixture
def write_config(pytester: pytest.Pytester):
    """Write a config file under ``.maf/preflight-configs`` of the pytester project."""

    def write(name: str, text: str) -> Path:
        path = pytester.path / ".maf" / "preflight-configs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write

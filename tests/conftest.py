"""Shared test setup: pytester runs load only our plugin, never whatever else is installed."""

from __future__ import annotations

import importlib.metadata
import json
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

# The helpers modules assert too: rewritten like the tests, a failed assert there shows its
# values. Registered before anything imports them.
pytest.register_assert_rewrite(*sorted(p.stem for p in Path(__file__).parent.glob("helpers_*.py")))

# Imported here, once: pytester's in-process runs unload modules first imported during a run,
# and PyYAML's C loader cannot be imported a second time into the same process.
import yaml  # noqa: E402, F401

import pytest_maf_preflight  # noqa: E402
from helpers_configs import WriteConfig, write_config_in  # noqa: E402
from helpers_http import Handler, HttpServer, Routes, StartHttpServer  # noqa: E402
from helpers_loopback import SilentListener  # noqa: E402
from helpers_mcp_server import McpServer, serve  # noqa: E402

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
    """No autoloaded plugins in pytester runs, and no MAF_* settings leaking in from the shell,
    nor GitHub Actions' (the gate would annotate and append to the job's step summary)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in list(os.environ):
        # Proxy variables too: every test server is on loopback, and the HTTP transport honours
        # them (tests/test_http_transport.py sets its own).
        if (
            name.startswith("MAF_")
            or name in ("NODE_ENV", "AGENT_NAME")
            or name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_WORKSPACE")
            or (name.lower() in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"))
        ):
            monkeypatch.delenv(name)


@pytest.fixture
def write_config(pytester: pytest.Pytester) -> WriteConfig:
    """Write a config file under ``.maf/preflight-configs`` of the pytester project."""

    def write(name: str, text: str) -> Path:
        return write_config_in(pytester.path, name, text)

    return write


@pytest.fixture
def git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """git, here and in the processes the test starts, reads no user or system config and
    commits as a fixed author. Returns the fresh HOME."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "t")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "t@example.invalid")
    return home


@pytest.fixture
def http_server() -> Iterator[StartHttpServer]:
    """Start loopback HTTP servers (tests/helpers_http.py); all stop when the test ends, and a
    handler that raised fails the test."""
    started: list[HttpServer] = []

    def start(
        handler: Handler | Routes,
        *,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        backlog: int = 16,
    ) -> HttpServer:
        server = HttpServer(handler, host=host, tls=tls, backlog=backlog).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    for server in started:
        server.raise_errors()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    with SilentListener() as listener:
        yield listener.port


@pytest.fixture
def mcp_server() -> Iterator[McpServer]:
    """The loopback MCP server shaped like mcp_agent_mail's (tests/helpers_mcp_server.py)."""
    with serve() as server:
        yield server

"""The channel package of ``tests/data/channel_pkg``, installed for a test.

Installing means what pip leaves behind, without pip: a copy of the module and a
``<name>-<version>.dist-info`` directory (``METADATA``, ``entry_points.txt`` written from the
package's ``pyproject.toml``) in one directory. With that directory on ``sys.path`` (a child
process's ``PYTHONPATH``), ``importlib.metadata`` finds the distribution and its entry points
like any installed one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pytest_maf_preflight.compat import tomllib

CHANNEL_PKG = Path(__file__).parent / "data" / "channel_pkg"
MODULE = "maf_test_channel"


def install_channel_pkg(site: Path) -> Path:
    """Install the test channel package into ``site``; returns ``site``."""
    project = tomllib.loads((CHANNEL_PKG / "pyproject.toml").read_text())["project"]
    shutil.copytree(CHANNEL_PKG / MODULE, site / MODULE)
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines: list[str] = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {value}" for name, value in entries.items())
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return site

"""``maf-preflight`` as the tests run it: as a command in a child process, or its ``main`` in
this process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_maf_preflight.cli.main import main


def cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The command in a child process that sees none of this process's MAF_* variables, only
    those in ``env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MAF_")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest_maf_preflight.cli", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main`` in this process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err

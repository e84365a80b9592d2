"""Real git repositories for tests: one runner, and the reservation check most of them use."""

from __future__ import annotations

import subprocess
from pathlib import Path

#: Checks the files this agent changed (working tree and commits since ``main``) against
#: every other agent's leases.
LOCK_VALIDATION = """\
id: no-foreign-leases
name: Changed files are not reserved by another agent
config_type: reservation_check
config:
  check_type: lock_validation
  parameters: {changed_files: git, base_ref: main}
"""


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd``; its stdout, or CalledProcessError (with stderr) when it fails."""
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          timeout=60).stdout

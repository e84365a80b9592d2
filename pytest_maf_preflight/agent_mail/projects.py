"""mcp_agent_mail's project keys and slugs, computed exactly as the server computes them.

A project is named by a human key (by default the project's absolute path) or by its slug.
Servers run with ``WORKTREES_ENABLED`` and a git-based ``PROJECT_IDENTITY_MODE`` use other
slugs (``<name>-<sha1[:10]>``); there the slug has to be given as it is.

When a config names no project, the key is the rootdir, except in a linked git worktree, where
it is the same place in the main checkout (`default_project_key`): every worktree of a
repository then reads and writes one project, as the agents in the main checkout do.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..gitdirs import shared_location

_SLUG_RE = re.compile(r"[^a-z0-9]+")


def slugify(value: str) -> str:
    """mcp_agent_mail's ``utils.slugify``, exactly (``str.lower`` included, not ASCII-only)."""
    slug = _SLUG_RE.sub("-", value.strip().lower()).strip("-")
    return slug or "project"


def default_project_key(rootdir: Path) -> str:
    """The project key when none is configured: ``rootdir`` (absolute, symlinks kept), or, in a
    linked worktree, the same place in the main checkout (a bare repository's worktrees: in the
    common dir). Raises ``gitdirs.GitDirError`` when the worktree's git files are unreadable."""
    return str(shared_location(rootdir))


def canonical_project_key(project: str, rootdir: Path) -> str:
    """The human key as mcp_agent_mail normalises it: a path-like key becomes absolute
    (relative to ``rootdir``, ``~`` expanded) and normalised, symlinks kept; others unchanged."""
    candidate = Path(project).expanduser()
    looks_like_path = (
        candidate.is_absolute()
        or project.startswith(("~", "."))
        or "/" in project
        or "\\" in project
    )
    if not looks_like_path:
        return project
    absolute = candidate if candidate.is_absolute() else rootdir / candidate
    return os.path.normpath(str(absolute))


def project_slug(project: str, rootdir: Path) -> str:
    """The slug mcp_agent_mail gives ``project`` by default (a slug is its own slug)."""
    return slugify(canonical_project_key(project, rootdir))

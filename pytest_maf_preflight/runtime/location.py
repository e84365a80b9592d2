"""Where the store lives by default: shared by every worktree of a git repository.

Agents working in parallel each get a ``git worktree add`` checkout of one repository; their
leases, history and escalations must be one store, or the reservation checks coordinate nobody.
All worktrees of a repository share its *common directory* (what ``git rev-parse
--git-common-dir`` names: the main checkout's ``.git``), and nothing in it is ever committed,
so the default store is ``<common dir>/maf-preflight/`` (``runtime.db``, and ``runtime/`` for
the JSON fallback). Outside git the rootdir's ``.maf/`` stays the default.

The common directory is found by reading files, never by running git (``gitdirs``): this runs
on every active pytest run and every CLI command, where a git subprocess would cost more than
the rest of the resolution together. ``GIT_DIR`` and ``GIT_COMMON_DIR`` are not consulted, as
in ``gitdirs``: the store belongs to the directory, the same one for the gate, the CLI and the
hooks git runs (which get a ``GIT_DIR`` naming the same worktree anyway).

Only the standard library, and nothing is imported until a store is needed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..gitdirs import GitDirError, find_checkout

#: The directory under the common directory that holds the shared store.
SHARED_DIR = "maf-preflight"


class LocationError(ValueError):
    """A ``.git`` file or ``commondir`` file that cannot be read or followed."""


@dataclasses.dataclass(frozen=True)
class Repository:
    """The git repository a directory belongs to."""

    #: The directory every worktree of the repository shares (resolved, so worktrees that
    #: reach it through different links agree).
    common_dir: Path
    #: What to call the repository: its main checkout, or the common directory when there is
    #: none to name (a bare repository's worktrees).
    label: Path

    @property
    def store_dir(self) -> Path:
        """Where the shared store lives."""
        return self.common_dir / SHARED_DIR


def find_repository(start: Path) -> Repository | None:
    """The repository ``start`` lies in, or ``None`` outside git. A ``.git`` file or
    ``commondir`` file that cannot be read or followed raises ``LocationError`` naming it."""
    try:
        checkout = find_checkout(start)
    except GitDirError as exc:
        raise LocationError(str(exc)) from None
    if checkout is None:
        return None
    if checkout.main_checkout is not None:
        label = checkout.main_checkout
    elif not checkout.is_linked_worktree:
        # A submodule, or a checkout with a separate git directory: the git directory names
        # no checkout, the place it was found in does.
        label = checkout.top
    else:
        label = checkout.common_dir
    return Repository(common_dir=checkout.common_dir.resolve(), label=label)

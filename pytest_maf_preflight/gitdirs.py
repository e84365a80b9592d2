"""Which git work tree a directory is in, and which repository it shares with other worktrees,
found by reading files (stdlib only, no git subprocess).

A main checkout has a ``.git`` directory. A linked worktree (``git worktree add``) has a
``.git`` file saying ``gitdir: <common dir>/worktrees/<name>``; that directory holds a
``commondir`` file naming the common dir (relative to itself, or absolute), which every
worktree of the repository shares. The main checkout is the parent of the common dir when the
common dir is named ``.git``; a bare repository (``repo.git``) has none. A submodule's ``.git``
file points to ``<super>/.git/modules/<name>``, which has no ``commondir``: it is a checkout of
its own, not a linked worktree.

``GIT_DIR`` and ``GIT_WORK_TREE`` are not consulted: the answer is about the directory, which
is what a project key or a hooks directory has to be the same for.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

_GITDIR_PREFIX = "gitdir:"
#: Larger ``.git`` or ``commondir`` files are not what git writes.
_MAX_POINTER_BYTES = 4096


class GitDirError(ValueError):
    """A ``.git`` file or ``commondir`` that exists but cannot be read as git writes it."""


@dataclasses.dataclass(frozen=True)
class Checkout:
    """A git work tree: its top level, its own git dir and the common dir it shares."""

    top: Path
    git_dir: Path
    common_dir: Path

    @property
    def is_linked_worktree(self) -> bool:
        return self.git_dir != self.common_dir

    @property
    def main_checkout(self) -> Path | None:
        """The main checkout of the repository, or ``None`` for a bare repository's worktree."""
        if self.common_dir.name != ".git":
            return None
        return self.common_dir.parent


def _read_pointer(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_POINTER_BYTES + 1)
    except OSError as exc:
        raise GitDirError(f"{path}: cannot be read: {exc.strerror}") from None
    if len(data) > _MAX_POINTER_BYTES:
        raise GitDirError(f"{path}: larger than git writes it ({_MAX_POINTER_BYTES} bytes)")
    text = os.fsdecode(data).strip()
    if not text or "\n" in text or "\0" in text:
        raise GitDirError(f"{path}: expected one line naming a directory")
    return text


def _resolve(base: Path, value: str) -> Path:
    # Lexically, like git: a symlinked path stays as git wrote it.
    return Path(os.path.normpath(os.path.join(base, value)))


def _linked_git_dir(dot_git: Path) -> Path:
    text = _read_pointer(dot_git)
    if not text.startswith(_GITDIR_PREFIX):
        raise GitDirError(f"{dot_git}: does not start with {_GITDIR_PREFIX!r}")
    git_dir = _resolve(dot_git.parent, text[len(_GITDIR_PREFIX) :].strip())
    if not git_dir.is_dir():
        raise GitDirError(f"{dot_git}: names {str(git_dir)!r}, which is not a directory")
    return git_dir


def _common_dir(git_dir: Path) -> Path:
    pointer = git_dir / "commondir"
    if not pointer.is_file():
        return git_dir
    common = _resolve(git_dir, _read_pointer(pointer))
    if not common.is_dir():
        raise GitDirError(f"{pointer}: names {str(common)!r}, which is not a directory")
    return common


def find_checkout(start: Path) -> Checkout | None:
    """The work tree containing ``start`` (made absolute, symlinks kept), or ``None`` outside
    any work tree. Raises `GitDirError` when a ``.git`` file or ``commondir`` on the way is
    unreadable or malformed: guessing would silently pick another project."""
    here = Path(os.path.abspath(start))
    for directory in (here, *here.parents):
        dot_git = directory / ".git"
        # HEAD tells a repository from a stray ".git" folder, which git walks past too.
        if dot_git.is_dir() and (dot_git / "HEAD").is_file():
            return Checkout(top=directory, git_dir=dot_git, common_dir=_common_dir(dot_git))
        if dot_git.is_file():
            git_dir = _linked_git_dir(dot_git)
            return Checkout(top=directory, git_dir=git_dir, common_dir=_common_dir(git_dir))
    return None


def shared_location(path: Path) -> Path:
    """``path`` as seen from the main checkout: for a path inside a linked worktree, the same
    place relative to the main checkout (or to the common dir of a bare repository); any other
    path unchanged (made absolute). Raises `GitDirError` like `find_checkout`."""
    absolute = Path(os.path.abspath(path))
    checkout = find_checkout(absolute)
    if checkout is None or not checkout.is_linked_worktree:
        return absolute
    anchor = checkout.main_checkout or checkout.common_dir
    relative = absolute.relative_to(checkout.top)
    return anchor / relative if relative.parts else anchor

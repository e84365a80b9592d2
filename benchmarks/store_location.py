"""Where the store is, on an active run (issue 12): the cost of finding the shared store.

An active run (and every CLI command) resolves the runtime settings once; inside a git
repository that means finding the common directory by reading ``.git`` files. Measured from a
linked worktree (three files read: ``.git``, ``commondir``) and from the main checkout, each
from a directory four levels below the checkout's top, beside two baselines in the same run:
``git rev-parse --git-common-dir`` (the subprocess the file reading replaces) and explicit
``MAF_DB_PATH``/``MAF_AGENT_MAIL_ROOT`` (no look at all). Also the check for an older
per-checkout store beside the shared one, with none there (the common case) and with one
(read-only open of its schema). Target: a few milliseconds at most.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from timing import interleave, median_ms

ROOT = Path(__file__).resolve().parent.parent


def _git(cwd: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@example.invalid",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@example.invalid",
    }
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def bench(quick: bool) -> dict[str, Any]:
    from pytest_maf_preflight.runtime.checkout_store import old_store_notice
    from pytest_maf_preflight.runtime.factory import resolve_runtime_settings
    from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

    runs = 21 if quick else 201
    with tempfile.TemporaryDirectory() as tmp:
        main = Path(tmp) / "main"
        deep = Path("pkg") / "sub" / "tests" / "unit"
        (main / deep).mkdir(parents=True)
        (main / deep / "keep").write_text("")
        _git(main, "init", "-q", "-b", "main")
        _git(main, "add", "-A")
        _git(main, "commit", "-q", "-m", "base")
        worktree = Path(tmp) / "green"
        _git(main, "worktree", "add", "-q", "-b", "green", str(worktree))
        explicit = {
            "MAF_DB_PATH": str(Path(tmp) / "x.db"),
            "MAF_AGENT_MAIL_ROOT": str(Path(tmp) / "mail"),
        }
        in_worktree, in_main = worktree / deep, main / deep

        def git_rev_parse() -> None:
            subprocess.run(
                ["git", "rev-parse", "--git-common-dir"],
                cwd=in_worktree,
                check=True,
                capture_output=True,
            )

        without_old = resolve_runtime_settings(in_worktree, {})
        samples = interleave(
            {
                "worktree": lambda: resolve_runtime_settings(in_worktree, {}),
                "main_checkout": lambda: resolve_runtime_settings(in_main, {}),
                "explicit_paths": lambda: resolve_runtime_settings(in_worktree, explicit),
                "git_rev_parse": git_rev_parse,
                "old_store_absent": lambda: old_store_notice(without_old),
            },
            runs,
        )
        with SqliteRuntime(in_worktree / ".maf" / "runtime.db"):
            pass
        with_old = resolve_runtime_settings(in_worktree, {})
        assert old_store_notice(with_old) is not None
        present = interleave({"old_store_present": lambda: old_store_notice(with_old)}, runs)
    figures = {name: median_ms(values) for name, values in {**samples, **present}.items()}
    figures["git_over_worktree"] = figures["git_rev_parse"] / figures["worktree"]
    figures["runs"] = runs
    return figures


def report(figures: dict[str, Any]) -> list[str]:
    return [
        f"Store location (issue 12): resolving the runtime settings, {figures['runs']} "
        "interleaved runs",
        f"  from a linked worktree:        {figures['worktree']:8.3f} ms  (target: a few ms)",
        f"  from the main checkout:        {figures['main_checkout']:8.3f} ms",
        f"  explicit paths (no look):      {figures['explicit_paths']:8.3f} ms",
        f"  git rev-parse (baseline):      {figures['git_rev_parse']:8.3f} ms; ratio "
        f"{figures['git_over_worktree']:.0f}",
        f"  older-store check, none there: {figures['old_store_absent']:8.3f} ms; one there: "
        f"{figures['old_store_present']:.3f} ms",
    ]

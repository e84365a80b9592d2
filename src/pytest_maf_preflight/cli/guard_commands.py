"""``maf-preflight guard install|check|uninstall``: the reservation check as a git pre-commit hook
(SPEC S3).

- ``install [--repo PATH] [--force]`` writes a POSIX sh ``pre-commit`` hook into the directory
  git names for hooks (``git rev-parse --git-path hooks``, so ``core.hooksPath`` is honoured). The
  hook runs ``<this python> -m pytest_maf_preflight.cli guard check`` from the repository top
  level. A hook that was there before is kept and chained: it moves to ``pre-commit.maf-chained``
  and runs first, with the hook's arguments; its failure stops the commit. Installing again
  rewrites our hook (recognised by its marker line) and chains nothing new. When both a foreign
  ``pre-commit`` and ``pre-commit.maf-chained`` exist, install refuses; ``--force`` then saves
  the foreign hook as ``pre-commit.bak`` (``.bak.1``, ...), where it no longer runs.
- ``uninstall [--repo PATH]`` removes our hook and puts a chained one back.
- ``check [--config-dir PATH] [--agent NAME] [--env NAME] [--mode MODES]`` runs the project's
  active ``reservation_check`` configs of check type ``lock_validation`` (from
  ``.maf/preflight-configs`` under the top level, as ``maf-preflight validate`` loads them) on
  the staged files, or, when there are none, a default advisory ``lock_validation`` of the staged
  files. The run is recorded in the runtime as a session (details ``{"trigger": "guard"}``) with
  its executions and conflicts. ``MAF_RESERVATION_OVERRIDE=1`` lets the commit through with a
  warning on stderr, and the conflicts are recorded as overridden. The agent is ``--agent``, else
  ``MAF_AGENT_ID``, else ``AGENT_NAME``, else ``anonymous``.

Exit codes of ``check``: 0 every blocking check passed (a failed ``warning``-severity config is
printed, not blocking); 1 the commit is blocked: a conflict, a check that errored or timed out
(checks fail closed), an invalid config, no runtime to read leases from; 2 usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import (
    DEFAULT_CONFIG_DIR,
    PROG,
    CliError,
    CliExit,
    display_path,
    error_line,
    print_json,
)
from .reservation_commands import agent_name

if TYPE_CHECKING:
    from ..checks.base import CheckResult
    from ..checks.runner import PlannedCheck
    from ..config.loader import LoadedConfig

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

HOOK_NAME = "pre-commit"
CHAINED_NAME = "pre-commit.maf-chained"
#: The line that tells our hook from anyone else's.
MARKER = "# maf-preflight guard: pre-commit hook written by 'maf-preflight guard install'"
#: The check run when the project configures no ``lock_validation`` of its own.
DEFAULT_CHECK_ID = "maf-guard-lock-validation"
GIT_TIMEOUT = 30.0
JSON_HELP = "Print JSON"


def register(subparsers: Subparsers) -> None:
    guard = subparsers.add_parser(
        "guard", help="Check reservations before every git commit",
        description="A git pre-commit hook that blocks a commit whose staged files are under "
                    "another agent's conflicting reservation.")
    actions = guard.add_subparsers(dest="guard_command", metavar="ACTION", required=True)

    install = actions.add_parser(
        "install", help="Install the pre-commit hook (an existing hook is chained)",
        description="Write the pre-commit hook into the repository's hooks directory (as git "
                    "reports it; core.hooksPath is honoured). An existing hook moves to "
                    f"{CHAINED_NAME} and runs first; installing again is harmless.")
    install.add_argument("--repo", type=Path, metavar="PATH",
                         help="Repository (default: the current directory)")
    install.add_argument("--force", action="store_true",
                         help=f"When both a foreign hook and {CHAINED_NAME} exist, save the "
                              "foreign hook as pre-commit.bak (it stops running) and install")
    install.add_argument("--json", action="store_true", help=JSON_HELP)
    install.set_defaults(handler=run_install)

    uninstall = actions.add_parser(
        "uninstall", help="Remove the pre-commit hook and restore a chained one",
        description=f"Remove our pre-commit hook and move {CHAINED_NAME} back in its place.")
    uninstall.add_argument("--repo", type=Path, metavar="PATH",
                           help="Repository (default: the current directory)")
    uninstall.add_argument("--json", action="store_true", help=JSON_HELP)
    uninstall.set_defaults(handler=run_uninstall)

    check = actions.add_parser(
        "check", help="Check the staged files against reservations (what the hook runs)",
        description="Run the project's active lock_validation reservation checks on the staged "
                    "files (or a default advisory one) and record the run. Exit 0: the commit "
                    "may go ahead; 1: it is blocked (a conflict, a check error, an invalid "
                    "config, no runtime). MAF_RESERVATION_OVERRIDE=1 lets it through, loudly "
                    "and recorded.")
    check.add_argument("--config-dir", type=Path, metavar="PATH",
                       help=f"Config directory (default: {DEFAULT_CONFIG_DIR} under the "
                            "repository top level)")
    check.add_argument("--agent", metavar="NAME",
                       help="Agent committing (default: MAF_AGENT_ID, then AGENT_NAME, then "
                            "'anonymous')")
    check.add_argument("--env", metavar="NAME",
                       help="Environment whose overrides apply (default: MAF_ENV, then "
                            "NODE_ENV, then 'development')")
    check.add_argument("--mode", metavar="MODES",
                       help="Runtime modes to use (default: as MAF_RUNTIME_MODE, else "
                            "sqlite,json,memory)")
    check.add_argument("--json", action="store_true", help=JSON_HELP)
    check.set_defaults(handler=run_check)


# --- git -----------------------------------------------------------------------------------------

def _git(args: list[str], cwd: Path) -> str:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                                timeout=GIT_TIMEOUT, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise CliError("git not found on PATH") from None
    except subprocess.TimeoutExpired:
        raise CliError(f"git {args[0]} did not finish within {GIT_TIMEOUT:g} s") from None
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise CliError(f"{display_path(cwd)}: git {' '.join(args)} failed: "
                       f"{lines[0] if lines else f'exit code {result.returncode}'}")
    return result.stdout.rstrip("\n")


def _repository(repo: Path | None) -> tuple[Path, Path]:
    """The repository's top level and its hooks directory, as git sees them."""
    where = Path.cwd() if repo is None else repo
    if not where.is_dir():
        raise CliError(f"{display_path(where)}: no such directory")
    if _git(["rev-parse", "--is-bare-repository"], where) == "true":
        raise CliError(f"{display_path(where)}: a bare repository has no commits to guard")
    top = Path(_git(["rev-parse", "--show-toplevel"], where))
    # Relative to ``where`` unless core.hooksPath is absolute; worktrees share the main hooks.
    hooks = Path(os.path.abspath(where / _git(["rev-parse", "--git-path", "hooks"], where)))
    return top, hooks


# --- install / uninstall -------------------------------------------------------------------------

def hook_script(python: str) -> str:
    """The hook: the chained hook first, then ``guard check`` from the top level."""
    return f"""#!/bin/sh
{MARKER}
# Blocks a commit whose staged files are under another agent's conflicting reservation.
# A hook that was here before runs first (from {CHAINED_NAME}); 'maf-preflight guard
# uninstall' puts it back. MAF_RESERVATION_OVERRIDE=1 lets a commit through, loudly and recorded.
chained="$(dirname -- "$0")/{CHAINED_NAME}"
if [ -x "$chained" ]; then
    "$chained" "$@" || exit $?
fi
top=$(git rev-parse --show-toplevel) || exit 1
cd "$top" || exit 1
exec {shlex.quote(python)} -m pytest_maf_preflight.cli guard check
"""


def is_ours(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False
    return MARKER.encode() in head.splitlines()


def _move(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``, never over an existing ``target``."""
    try:
        # A hard link fails when the target exists: no window in which a file is replaced.
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        raise CliError(f"{display_path(target)}: already exists; not overwritten") from None
    except (NotImplementedError, OSError):  # no hard links here (some file systems)
        if os.path.lexists(target):
            raise CliError(f"{display_path(target)}: already exists; not overwritten") from None
        os.rename(source, target)
        return
    os.unlink(source)


def _backup_name(path: Path) -> Path:
    candidate = path.with_name(path.name + ".bak")
    number = 0
    while os.path.lexists(candidate):
        number += 1
        candidate = path.with_name(f"{path.name}.bak.{number}")
    return candidate


def _make_executable(path: Path) -> None:
    mode = path.stat().st_mode & 0o7777
    os.chmod(path, mode | 0o100 | ((mode & 0o044) >> 2))  # x for the owner, and where readable


def run_install(args: argparse.Namespace) -> int:
    from ..atomic import write_atomic

    top, hooks = _repository(args.repo)
    hook, chained = hooks / HOOK_NAME, hooks / CHAINED_NAME
    hooks.mkdir(parents=True, exist_ok=True)
    script = hook_script(sys.executable).encode()
    notes: list[str] = []
    backup: Path | None = None
    if is_ours(chained):
        # A copy of our own hook in the chained place would run the check twice, forever.
        chained.unlink()
        notes.append(f"removed a copy of this hook from {display_path(chained)}")
    if is_ours(hook):
        status = "unchanged" if hook.read_bytes() == script else "updated"
    elif os.path.lexists(hook):
        if os.path.lexists(chained):
            if not args.force:
                raise CliError(
                    f"{display_path(hook)} is another tool's hook and {display_path(chained)} "
                    "already exists, so it cannot be chained; move one of them away, or use "
                    "--force to save the hook as a backup that no longer runs")
            backup = _backup_name(hook)
            _move(hook, backup)
            notes.append(f"saved the previous hook as {display_path(backup)}; it no longer runs")
        else:
            _move(hook, chained)
            notes.append(f"the previous hook moved to {display_path(chained)} and runs first")
            if not os.access(chained, os.X_OK):
                notes.append("it is not executable, so (as before) git's hook does not run it")
        status = "installed"
    else:
        status = "installed"
    if status != "unchanged":
        write_atomic(hook, script)
    _make_executable(hook)
    result = {"status": status, "repository": str(top), "hook": str(hook),
              "chained": str(chained) if os.path.lexists(chained) else None,
              "backup": str(backup) if backup else None, "python": sys.executable,
              "notes": notes}
    if args.json:
        print_json(result)
        return int(CliExit.OK)
    for note in notes:
        print(f"note: {note}")
    verb = {"installed": "installed", "updated": "updated",
            "unchanged": "already installed"}[status]
    print(f"{verb}: {display_path(hook)} runs 'maf-preflight guard check' before every commit"
          + (f" (after {CHAINED_NAME})" if result["chained"] else ""))
    return int(CliExit.OK)


def run_uninstall(args: argparse.Namespace) -> int:
    _, hooks = _repository(args.repo)
    hook, chained = hooks / HOOK_NAME, hooks / CHAINED_NAME
    restored = False
    if is_ours(hook):
        hook.unlink()
        status = "uninstalled"
        if os.path.lexists(chained) and not is_ours(chained):
            _move(chained, hook)
            restored = True
    elif os.path.lexists(hook):
        status = "not installed"  # someone else's hook: not ours to remove
    else:
        status = "not installed"
    if args.json:
        print_json({"status": status, "hook": str(hook), "restored": restored})
        return int(CliExit.OK)
    if status == "uninstalled":
        print(f"uninstalled: {display_path(hook)}"
              + (f"; the previous hook is back from {CHAINED_NAME}" if restored else ""))
    elif os.path.lexists(hook):
        print(f"not installed: {display_path(hook)} is another hook; left alone")
    else:
        print(f"not installed: no {display_path(hook)}")
    return int(CliExit.OK)


# --- check ---------------------------------------------------------------------------------------

def _default_check() -> PlannedCheck:
    from ..checks.reservation import reservation_check_type
    from ..checks.runner import PlannedCheck
    from ..config.models import ReservationCheckBody, ReservationParameters
    from ..gate.planning import RESERVATION_TIMEOUT

    body = ReservationCheckBody(check_type="lock_validation",
                                parameters=ReservationParameters(changed_files="staged"))
    return PlannedCheck(check_id=DEFAULT_CHECK_ID,
                        name="No staged file is under another agent's reservation",
                        severity="critical", check_type=reservation_check_type("lock_validation"),
                        definition=body, timeout=RESERVATION_TIMEOUT, retry_count=0,
                        retry_delay=0.0)


def _plan(config_dir: Path | None, top: Path, environment: str
          ) -> tuple[list[LoadedConfig], list[PlannedCheck]] | list[str]:
    """The guard's configs and checks, or the config errors (one line each)."""
    from ..checks.builtin import builtin_registry
    from ..config.errors import ConfigLoadError
    from ..config.loader import ConfigLoader, discover
    from ..config.models import ReservationCheckBody
    from ..gate.planning import plan_check

    explicit = config_dir is not None
    directory = config_dir if config_dir is not None else top / DEFAULT_CONFIG_DIR
    files, errors = discover([directory], required=[directory] if explicit else ())
    if errors:
        return [e.format(Path.cwd()) for e in errors]
    registry = builtin_registry()
    try:
        configs = ConfigLoader(registry, environment).load_files(files)
    except ConfigLoadError as exc:
        return [e.format(Path.cwd()) for e in exc.errors]
    selected: list[LoadedConfig] = []
    planned: list[PlannedCheck] = []
    for loaded in configs:
        body = loaded.body
        if not (isinstance(body, ReservationCheckBody) and body.check_type == "lock_validation"):
            continue
        check = plan_check(loaded, registry.get)
        if check is None:  # inactive
            continue
        # The hook judges what is about to be committed, whatever the config compares.
        staged = body.model_copy(update={"parameters": body.parameters.model_copy(
            update={"changed_files": "staged"})})
        selected.append(loaded)
        planned.append(dataclasses.replace(check, definition=staged))
    return selected, planned or [_default_check()]


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no message"


def _report_lines(result: CheckResult, blocking: bool) -> list[str]:
    label = "conflict" if blocking else "warning"
    conflicts = result.details.get("conflicts") or []
    if result.status.value in ("error", "timeout"):
        detail = _first_line(result.message or result.observed)
        return [f"{'error' if blocking else 'warning'}: {result.check_id}: {result.status.value}:"
                f" {detail} (the check fails closed)"]
    if conflicts:
        return [f"{label}: {result.check_id}: {c.get('message') or c.get('type')}"
                for c in conflicts]
    return [f"{label}: {result.check_id}: {_first_line(result.observed)}"]


def run_check(args: argparse.Namespace) -> int:
    from ..checks.base import CheckContext
    from ..checks.reservation import OVERRIDE_ENV, reservation_state
    from ..checks.runner import run_checks
    from ..gate.decision import is_blocking
    from ..gate.recording import build_bundle
    from ..options import DEFAULT_AGENT, DEFAULT_MAX_CONCURRENCY
    from ..redaction import is_secret_key
    from ..reservations.changes import ChangeDetectionError, git_toplevel
    from ..runtime.base import RuntimeStateError, RuntimeUnavailable
    from ..runtime.factory import RuntimeConfigError, open_chain, resolve_runtime_settings
    from ..runtime.records import now
    from .common import environment_name

    started = now()
    agent = agent_name(args.agent, default=DEFAULT_AGENT)
    environment = environment_name(args.env)
    try:
        top = git_toplevel(Path.cwd(), GIT_TIMEOUT)
    except ChangeDetectionError as exc:
        raise CliError(str(exc), CliExit.INVALID) from None
    if top is None:
        raise CliError(f"{display_path(Path.cwd())}: not inside a git work tree")
    planned_or_errors = _plan(args.config_dir, top, environment)
    if isinstance(planned_or_errors, list):
        for line in planned_or_errors:
            print(line, file=sys.stderr)
        raise CliError("commit blocked: the preflight configs are invalid, so reservations "
                       "cannot be checked", CliExit.INVALID)
    selected, planned = planned_or_errors

    try:
        # The runtime the hook sees: relative MAF_DB_PATH etc. are taken from the top level.
        settings = resolve_runtime_settings(top, os.environ, args.mode, cli_source="--mode")
    except RuntimeConfigError as exc:
        raise CliError(str(exc)) from None
    try:
        opened = open_chain(settings)
    except RuntimeUnavailable as exc:
        raise CliError(f"commit blocked: no lease store to check against: {exc}",
                       CliExit.INVALID) from None
    notes = [f"runtime {note}; using the next mode" for note in opened.skipped]
    with opened.runtime as runtime:
        try:
            state: Any = reservation_state(runtime, opened.mode, fell_back=bool(opened.skipped),
                                           agent_id=agent)
        except (RuntimeStateError, OSError) as exc:  # the checks then fail closed
            state = None
            notes.append(f"cannot read the lease store: {exc}")
        ctx = CheckContext(rootdir=top, environ=dict(os.environ), environment=environment,
                           agent_id=agent, reservations=state)
        results = run_checks(planned, ctx, DEFAULT_MAX_CONCURRENCY)
        blocking = [r for r in results if not r.passed and is_blocking(r, False)]
        warned = [r for r in results if not r.passed and not is_blocking(r, False)]
        overridden = [r for r in results if r.passed and r.details.get("override")]
        code = int(CliExit.INVALID if blocking else CliExit.OK)
        bundle = build_bundle(
            agent_id=agent, environment=environment, runtime_mode=opened.mode,
            started_at=started, gate_open=not blocking, exit_code=code, results=results,
            smoke=(), loaded=selected,
            secrets=[v for k, v in os.environ.items() if v and is_secret_key(k)],
            details={"trigger": "guard", "rootdir": str(top),
                     "blocking": [f"{r.check_id} ({r.status.value})" for r in blocking],
                     "warnings": [r.check_id for r in warned],
                     "overridden": [r.check_id for r in overridden]})
        recorded = True
        try:
            runtime.record_session(bundle)
            runtime.heartbeat(agent, details={"environment": environment, "trigger": "guard"})
        except (RuntimeStateError, OSError) as exc:  # the verdict stands; the record is lost
            recorded = False
            notes.append(f"the guard run was not recorded: {exc}")

    for result in overridden:
        count = len(result.details.get("conflicts") or [])
        print(f"{PROG}: WARNING: {OVERRIDE_ENV}=1 lets this commit through despite {count} "
              f"reservation conflict{'s' if count != 1 else ''} of {result.check_id} (recorded "
              "as overridden)", file=sys.stderr)
        for found in result.details.get("conflicts") or []:
            print(f"  overridden: {found.get('message') or found.get('type')}", file=sys.stderr)
    staged = max((len(r.details.get("changed_files") or []) for r in results), default=0)
    if args.json:
        print_json({"ok": not blocking, "agent": agent, "environment": environment,
                    "runtime_mode": opened.mode, "session_id": bundle.session.id,
                    "recorded": recorded, "staged_files": staged,
                    "blocking": [r.check_id for r in blocking],
                    "warnings": [r.check_id for r in warned],
                    "overridden": [r.check_id for r in overridden],
                    "conflicts": len(bundle.conflicts), "notes": notes,
                    "results": [r.to_dict() for r in results]})
        return code
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for result in [*blocking, *warned]:
        for line in _report_lines(result, result in blocking):
            print(line)
    if blocking:
        print(error_line(
            f"commit blocked for agent {agent!r}: {len(blocking)} reservation check"
            f"{'s' if len(blocking) != 1 else ''} failed ("
            + ", ".join(f"{r.check_id}: {r.status.value}" for r in blocking)
            + f"); release or wait for the leases, or set {OVERRIDE_ENV}=1 to override "
            "(recorded)"), file=sys.stderr)
    else:
        print(f"maf-preflight guard: ok: {staged} staged file{'s' if staged != 1 else ''}, "
              f"{len(results)} check{'s' if len(results) != 1 else ''} ({opened.mode})")
    return code

"""``maf-preflight guard check``: what the pre-commit hook runs (SPEC S3).

It runs the project's active ``reservation_check`` configs of check type ``lock_validation``
(from ``.maf/preflight-configs`` under the top level, as ``maf-preflight validate`` loads them) on
the staged files, or, when there are none, a default advisory ``lock_validation`` of the staged
files. The run is recorded in the runtime as a session (details ``{"trigger": "guard"}``) with
its executions and conflicts. ``MAF_RESERVATION_OVERRIDE=1`` lets the commit through with a
warning on stderr, and the conflicts are recorded as overridden. The agent is ``--agent``, else
``MAF_AGENT_ID``, else ``AGENT_NAME``, else ``anonymous``.

With ``--pre-push`` (what the pre-push hook runs) the files judged are those changed by the
commits being pushed, read from the ref lines git writes to the hook's stdin
(``reservations.changes.pushed_files`` says which commits count); the session's details say
``{"hook": "pre-push", "push": {...}}``. A push that sends no changed file (a deleted branch)
passes without a check.

Exit codes: 0 every blocking check passed (a failed ``warning``-severity config is printed, not
blocking); 1 the commit (or push) is blocked: a conflict, a check that errored or timed out
(checks fail closed), an invalid config, no runtime to read leases from; 2 usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import (
    DEFAULT_CONFIG_DIR,
    PROG,
    CliError,
    CliExit,
    agent_name,
    display_path,
    environment_name,
    error_line,
    first_line,
    print_json,
    runtime_settings,
)

if TYPE_CHECKING:
    from ..checks.base import CheckResult
    from ..checks.runner import PlannedCheck
    from ..config.loader import LoadedConfig

#: The check run when the project configures no ``lock_validation`` of its own.
DEFAULT_CHECK_ID = "maf-guard-lock-validation"
GIT_TIMEOUT = 30.0


def _default_check(changes: dict[str, Any]) -> PlannedCheck:
    from ..checks.reservation import reservation_check_type
    from ..checks.runner import PlannedCheck
    from ..config.models import ReservationCheckBody, ReservationParameters
    from ..gate.planning import RESERVATION_TIMEOUT

    body = ReservationCheckBody(
        check_type="lock_validation", parameters=ReservationParameters(**changes)
    )
    what = "pushed" if changes["changed_files"] == "list" else "staged"
    return PlannedCheck(
        check_id=DEFAULT_CHECK_ID,
        name=f"No {what} file is under another agent's reservation",
        severity="critical",
        check_type=reservation_check_type("lock_validation"),
        definition=body,
        timeout=RESERVATION_TIMEOUT,
        retry_count=0,
        retry_delay=0.0,
    )


def _plan(
    config_dir: Path | None, top: Path, environment: str, changes: dict[str, Any]
) -> tuple[list[LoadedConfig], list[PlannedCheck]] | list[str]:
    """The guard's configs and checks, or the config errors (one line each). ``changes``
    replaces the configs' choice of changed files: the staged ones, or the pushed ones."""
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
        # The hook judges what is about to be committed or pushed, whatever the config compares.
        judged = body.model_copy(update={"parameters": body.parameters.model_copy(update=changes)})
        selected.append(loaded)
        planned.append(dataclasses.replace(check, definition=judged))
    return selected, planned or [_default_check(changes)]


def _report_lines(result: CheckResult, blocking: bool) -> list[str]:
    label = "conflict" if blocking else "warning"
    conflicts = result.details.get("conflicts") or []
    if result.status.value in ("error", "timeout"):
        detail = first_line(result.message or result.observed)
        return [
            f"{'error' if blocking else 'warning'}: {result.check_id}: {result.status.value}:"
            f" {detail} (the check fails closed)"
        ]
    if conflicts:
        return [
            f"{label}: {result.check_id}: {c.get('message') or c.get('type')}" for c in conflicts
        ]
    return [f"{label}: {result.check_id}: {first_line(result.observed)}"]


def run_check(args: argparse.Namespace) -> int:
    from ..checks.base import CheckContext
    from ..checks.reservation import OVERRIDE_ENV, reservation_state
    from ..checks.runner import run_checks
    from ..gate.decision import is_blocking
    from ..gate.recording import build_bundle
    from ..names import ANONYMOUS_AGENT, DEFAULT_MAX_CONCURRENCY
    from ..redaction import is_secret_key
    from ..reservations.changes import ChangeDetectionError, git_toplevel
    from ..runtime.errors import RuntimeStateError, RuntimeUnavailable
    from ..runtime.factory import open_chain
    from ..runtime.records import now

    started = now()
    agent = agent_name(args.agent, default=ANONYMOUS_AGENT)
    environment = environment_name(args.env)
    try:
        top = git_toplevel(Path.cwd(), GIT_TIMEOUT)
    except ChangeDetectionError as exc:
        raise CliError(str(exc), CliExit.INVALID) from None
    if top is None:
        raise CliError(f"{display_path(Path.cwd())}: not inside a git work tree")
    changes: dict[str, Any] = {"changed_files": "staged"}
    push: dict[str, Any] | None = None
    if args.pre_push:
        push = _pushed(top, args.remote)
        if not push["files"]:
            # Nothing to judge (a deleted branch, commits every remote already has).
            print(
                f"maf-preflight guard: ok: the push sends no changed files "
                f"({push['commits']} new commit{'s' if push['commits'] != 1 else ''})"
            )
            return int(CliExit.OK)
        changes = {
            "changed_files": "list",
            "files": push["files"],
            "paths": [],
            "file_path": None,
            "base_ref": None,
        }
    planned_or_errors = _plan(args.config_dir, top, environment, changes)
    if isinstance(planned_or_errors, list):
        for line in planned_or_errors:
            print(line, file=sys.stderr)
        raise CliError(
            f"{'push' if push else 'commit'} blocked: the preflight configs are "
            "invalid, so reservations cannot be checked",
            CliExit.INVALID,
        )
    selected, planned = planned_or_errors

    # The runtime the hook sees: relative MAF_DB_PATH etc. are taken from the top level.
    settings = runtime_settings(args.mode, top)
    try:
        opened = open_chain(settings)
    except RuntimeUnavailable as exc:
        raise CliError(
            f"{'push' if push else 'commit'} blocked: no lease store to check against: {exc}",
            CliExit.INVALID,
        ) from None
    notes = [f"runtime {note}; using the next mode" for note in opened.skipped]
    with opened.runtime as runtime:
        try:
            state: Any = reservation_state(
                runtime, opened.mode, fell_back=bool(opened.skipped), agent_id=agent
            )
        except (RuntimeStateError, OSError) as exc:  # the checks then fail closed
            state = None
            notes.append(f"cannot read the lease store: {exc}")
        ctx = CheckContext(
            rootdir=top,
            environ=dict(os.environ),
            environment=environment,
            agent_id=agent,
            reservations=state,
        )
        results = run_checks(planned, ctx, DEFAULT_MAX_CONCURRENCY)
        blocking = [r for r in results if not r.passed and is_blocking(r, False)]
        warned = [r for r in results if not r.passed and not is_blocking(r, False)]
        overridden = [r for r in results if r.passed and r.details.get("override")]
        code = int(CliExit.INVALID if blocking else CliExit.OK)
        bundle = build_bundle(
            agent_id=agent,
            environment=environment,
            runtime_mode=opened.mode,
            started_at=started,
            gate_open=not blocking,
            exit_code=code,
            results=results,
            smoke=(),
            loaded=selected,
            secrets=[v for k, v in os.environ.items() if v and is_secret_key(k)],
            details={
                "trigger": "guard",
                "hook": "pre-push" if push else "pre-commit",
                **({"push": {k: v for k, v in push.items() if k != "files"}} if push else {}),
                "rootdir": str(top),
                "blocking": [f"{r.check_id} ({r.status.value})" for r in blocking],
                "warnings": [r.check_id for r in warned],
                "overridden": [r.check_id for r in overridden],
            },
        )
        recorded = True
        try:
            runtime.record_session(bundle)
            runtime.heartbeat(agent, details={"environment": environment, "trigger": "guard"})
        except (RuntimeStateError, OSError) as exc:  # the verdict stands; the record is lost
            recorded = False
            notes.append(f"the guard run was not recorded: {exc}")

    for result in overridden:
        count = len(result.details.get("conflicts") or [])
        print(
            f"{PROG}: WARNING: {OVERRIDE_ENV}=1 lets this {'push' if push else 'commit'} "
            f"through despite {count} "
            f"reservation conflict{'s' if count != 1 else ''} of {result.check_id} (recorded "
            "as overridden)",
            file=sys.stderr,
        )
        for found in result.details.get("conflicts") or []:
            print(f"  overridden: {found.get('message') or found.get('type')}", file=sys.stderr)
    staged = (
        len(push["files"])
        if push
        else max((len(r.details.get("changed_files") or []) for r in results), default=0)
    )
    if args.json:
        print_json(
            {
                "ok": not blocking,
                "agent": agent,
                "environment": environment,
                "runtime_mode": opened.mode,
                "session_id": bundle.session.id,
                "recorded": recorded,
                "staged_files": staged,
                **({"push": push} if push else {}),
                "blocking": [r.check_id for r in blocking],
                "warnings": [r.check_id for r in warned],
                "overridden": [r.check_id for r in overridden],
                "conflicts": len(bundle.conflicts),
                "notes": notes,
                "results": [r.to_dict() for r in results],
            }
        )
        return code
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for result in [*blocking, *warned]:
        for line in _report_lines(result, result in blocking):
            print(line)
    if blocking:
        print(
            error_line(
                f"{'push' if push else 'commit'} blocked for agent {agent!r}: {len(blocking)} "
                "reservation check"
                f"{'s' if len(blocking) != 1 else ''} failed ("
                + ", ".join(f"{r.check_id}: {r.status.value}" for r in blocking)
                + f"); release or wait for the leases, or set {OVERRIDE_ENV}=1 to override "
                "(recorded)"
            ),
            file=sys.stderr,
        )
    else:
        what = (
            f"{push['commits']} pushed commit{'s' if push['commits'] != 1 else ''} "
            f"changing {staged} file{'s' if staged != 1 else ''}"
            if push
            else f"{staged} staged file{'s' if staged != 1 else ''}"
        )
        print(
            f"maf-preflight guard: ok: {what}, "
            f"{len(results)} check{'s' if len(results) != 1 else ''} ({opened.mode})"
        )
    return code


def _pushed(top: Path, remote: str | None) -> dict[str, Any]:
    """What a push sends, from the ref lines git writes to a pre-push hook's stdin."""
    from ..reservations.changes import ChangeDetectionError, parse_push_lines, pushed_files

    try:
        updates = parse_push_lines(sys.stdin.read())
        pushed = pushed_files(top, updates, timeout=GIT_TIMEOUT)
    except ChangeDetectionError as exc:
        raise CliError(
            f"push blocked: the pushed commits cannot be determined: {exc}", CliExit.INVALID
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(
            f"push blocked: cannot read git's list of pushed refs: {exc}", CliExit.INVALID
        ) from None
    if remote is not None and "://" in remote:
        from ..redaction import redact_url

        remote = redact_url(remote)  # git passes the URL when the remote has no name
    return {
        "remote": remote,
        "commits": pushed.commits,
        "files": list(pushed.changed.paths),
        "refs": [
            {
                "local_ref": u.local_ref,
                "remote_ref": u.remote_ref,
                "deletes": u.deletes,
                "creates": u.creates,
            }
            for u in updates
        ],
    }

"""``reservation_check`` configs (SPEC S3): lock_validation, concurrent_access, file_exists,
permissions; stale lock files are reported by any of them when asked for.

The checks read a ``ReservationState`` taken from the runtime before the checks run (the lease
store's connection belongs to the thread that opened it, and every check should judge the same
moment). Anything that goes wrong raises, and the runner turns that into ``error``: a
reservation check never passes because it could not look.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..names import ANONYMOUS_AGENT, is_anonymous
from .base import CheckContext, CheckType, Observation

if TYPE_CHECKING:
    from ..config.models import ReservationCheckBody, ReservationParameters
    from ..reservations.changes import ChangedFiles
    from ..reservations.conflicts import Conflict, Holding
    from ..runtime.interface import RuntimeState
    from ..runtime.records import Lease, SessionRecord

#: Set to ``1`` to let a run pass despite conflicts: loudly, and recorded as an override.
OVERRIDE_ENV = "MAF_RESERVATION_OVERRIDE"
#: How far back other agents' recorded changed files count for ``concurrent_access``.
DEFAULT_CHANGE_WINDOW = 3600.0
#: At most this many changed paths are kept in a result (and so in the runtime).
MAX_RECORDED_PATHS = 5000
GIT_TIMEOUT = 30.0


@dataclasses.dataclass(frozen=True)
class ReservationState:
    """What the lease store held when the gate started."""

    store_mode: str
    leases: tuple[Lease, ...]
    #: Other agents' most recently recorded changed files (from earlier reservation checks).
    recent_changes: Mapping[str, tuple[str, ...]]
    at: float
    #: Why this store cannot see other agents' leases (the check then fails closed).
    blind: str | None = None
    #: A database the store found at its own path and left alone (the original MAF's), read
    #: as a lease source besides the places ``reservations.original_maf`` looks in anyway.
    original_databases: tuple[Path, ...] = ()


def reservation_state(
    runtime: RuntimeState,
    mode: str,
    *,
    fell_back: bool,
    agent_id: str = "",
    at: float | None = None,
    window: float = DEFAULT_CHANGE_WINDOW,
) -> ReservationState:
    at = time.time() if at is None else at
    blind = None
    if fell_back:
        # Other agents keep their leases in the store this one could not open: a check that
        # read the fallback instead would pass without having seen them.
        blind = (
            f"the lease store fell back to {mode}, where other agents' leases are not; "
            "fix the runtime (see the header) or choose this mode explicitly"
        )
    elif is_anonymous(agent_id):
        blind = (
            f"no agent id is set (it is {ANONYMOUS_AGENT!r}, the default), so this agent's "
            "leases cannot be told from anyone else's; set --maf-agent-id, MAF_AGENT_ID, "
            "AGENT_NAME or ini maf_agent_id"
        )
    # Only the sqlite runtime has one: it moved beside a database that was not its own.
    original = getattr(runtime, "original_path", None)
    return ReservationState(
        store_mode=mode,
        leases=tuple(runtime.leases(now=at)),
        recent_changes=_recent_changes(runtime, agent_id, at - window),
        at=at,
        blind=blind,
        original_databases=(original,) if original is not None else (),
    )


def _sessions_since(runtime: RuntimeState, since: float) -> Iterator[SessionRecord]:
    """Sessions started at or after ``since``, newest first, read in growing pages: a gate run
    must not load a long history to look at its last hour."""
    limit = 64
    while True:
        page = runtime.sessions(limit=limit)
        recent = [s for s in page if s.started_at >= since]
        if len(recent) < len(page) or len(page) < limit:
            yield from recent
            return
        limit *= 4


def _recent_changes(
    runtime: RuntimeState, agent_id: str, since: float
) -> dict[str, tuple[str, ...]]:
    """Each other agent's newest recorded changed files since ``since``, session by session
    (newest first), so busy runtimes cannot push them out of a fixed-size window."""
    recent: dict[str, tuple[str, ...]] = {}
    for session in _sessions_since(runtime, since):
        if session.agent_id == agent_id or session.agent_id in recent:
            continue
        for execution in runtime.executions(session_id=session.id):
            details = execution.result.get("details") or {}
            changed = details.get("changed_files") if isinstance(details, dict) else None
            if str(execution.result.get("test_type", "")).startswith(
                "reservation_check/"
            ) and isinstance(changed, list):
                recent[session.agent_id] = tuple(str(p) for p in changed)
                break
    return recent


# --- the runs ---------------------------------------------------------------------------------


def _state(ctx: CheckContext) -> ReservationState:
    state = ctx.reservations
    if not isinstance(state, ReservationState):
        raise RuntimeError(
            "no lease store is available (the runtime could not be opened), so "
            "reservations cannot be checked"
        )
    if state.blind is not None:
        raise RuntimeError(state.blind)
    return state


def _project_root(ctx: CheckContext) -> Path:
    from ..reservations.changes import git_toplevel

    return git_toplevel(ctx.rootdir, ctx.remaining(GIT_TIMEOUT)) or ctx.rootdir


def _explicit(params: ReservationParameters) -> list[str]:
    return [*params.files, *params.paths, *([params.file_path] if params.file_path else [])]


def _changed(
    params: ReservationParameters, ctx: CheckContext, default_git: bool
) -> ChangedFiles | None:
    from ..reservations.changes import changed_files, listed_files

    explicit = _explicit(params)
    mode = params.changed_files
    if mode == "list" or (mode is None and explicit):
        return listed_files(_project_root(ctx), explicit)
    if mode is None and not default_git:
        return None
    mode = mode or "git"
    # A base ref only means something against the working tree (``staged`` is the index).
    return changed_files(
        ctx.rootdir,
        mode,
        timeout=ctx.remaining(GIT_TIMEOUT),
        base_ref=params.base_ref if mode == "git" else None,
    )


def _holdings(
    params: ReservationParameters,
    state: ReservationState,
    ctx: CheckContext,
    details: dict[str, Any],
) -> list[Holding]:
    from ..reservations.conflicts import Holding

    holdings = [
        Holding(
            agent=lease.agent_id,
            pattern=lease.path_pattern,
            exclusive=lease.exclusive,
            expires_at=lease.expires_at,
            source="leases",
            lease_id=lease.id,
            fencing_token=lease.fencing_token,
        )
        for lease in state.leases
        if lease.active(state.at)
    ]
    details["lease_store"] = {"mode": state.store_mode, "active_leases": len(holdings)}
    if params.agent_mail is not None:
        from ..agent_mail.reservations import read_reservations

        report = read_reservations(
            params.agent_mail,
            rootdir=ctx.rootdir,
            environ=ctx.environ,
            now=state.at,
            timeout=ctx.remaining(GIT_TIMEOUT),
        )
        details["agent_mail"] = {
            "source": report.source,
            "location": report.location,
            "project": report.project,
            "active_reservations": len(report.reservations),
            "warnings": list(report.warnings),
        }
        holdings.extend(
            Holding(
                agent=r.agent,
                pattern=r.path_pattern,
                exclusive=r.exclusive,
                expires_at=r.expires_at,
                source=f"agent_mail:{r.source}",
                dialect="agent_mail",
                lease_id=r.reservation_id,
            )
            for r in report.reservations
        )
    holdings.extend(_original_maf(state, ctx, details))
    return holdings


def _original_maf(
    state: ReservationState, ctx: CheckContext, details: dict[str, Any]
) -> list[Holding]:
    """The original MAF's file leases (exclusive, one file each), from every checkout of the
    repository; an unreadable store raises, so the check fails closed."""
    from ..reservations.conflicts import Holding
    from ..reservations.original_maf import checkout_roots, read_original_leases

    roots = checkout_roots(ctx.rootdir)
    report = read_original_leases(
        roots,
        environ=ctx.environ,
        now=state.at,
        timeout=ctx.remaining(GIT_TIMEOUT),
        extra_databases=state.original_databases,
    )
    if not report.stores:
        return []
    warnings = []
    if report.outside:
        shown = ", ".join(repr(p) for p in report.outside[:3])
        warnings.append(
            f"{len(report.outside)} original MAF lease(s) name files outside this "
            f"repository, which match nothing: {shown}"
            + (", ..." if len(report.outside) > 3 else "")
        )
    details["original_maf"] = {
        "stores": [
            {"location": where, "source": source, "active_leases": count}
            for where, source, count in report.stores
        ],
        "active_leases": len(report.leases),
        "outside": list(report.outside),
        "warnings": warnings,
    }
    return [
        Holding(
            agent=lease.agent,
            pattern=lease.pattern,
            exclusive=True,
            expires_at=lease.expires_at,
            source=f"original_maf:{lease.source}",
            lease_id=lease.lease_id,
        )
        for lease in report.leases
    ]


def _sources(details: Mapping[str, Any], root: Path) -> str:
    """Where the reservations came from, for the report: honest about what was looked at."""
    store = details["lease_store"]
    text = f"{store['active_leases']} active lease(s) in the {store['mode']} lease store"
    mail = details.get("agent_mail")
    if mail:
        text += (
            f" and {mail['active_reservations']} mcp_agent_mail reservation(s) from its "
            f"{mail['source']} ({mail['location']}, project {mail['project']})"
        )
    original = details.get("original_maf")
    if original:
        where: dict[str, list[str]] = {}
        for found in original["stores"]:
            where.setdefault(_shown(found["location"], root), []).append(found["source"])
        text += f" and {original['active_leases']} original MAF lease(s) in " + ", ".join(
            f"{path} ({', '.join(kinds)})" for path, kinds in where.items()
        )
    return text


def _shown(location: str, root: Path) -> str:
    """A store's path, relative to the rootdir when it is below it: reports stay short."""
    relative = os.path.relpath(location, root)
    return location if relative.startswith(os.pardir) else relative


def _stale_locks(
    params: ReservationParameters, root: Path, state: ReservationState
) -> list[Conflict]:
    from ..reservations.conflicts import Conflict
    from ..reservations.lockfiles import find_stale_lock_files

    if not params.stale_lock_globs and params.lock_timeout_minutes is None:
        return []
    max_age = params.lock_timeout_minutes * 60 if params.lock_timeout_minutes is not None else None
    stale = find_stale_lock_files(
        root, params.stale_lock_globs or ["**/*.lock"], max_age_seconds=max_age, now=state.at
    )
    return [
        Conflict("stale_lock", lock.path, detail=f"stale lock file: {lock.reason}")
        for lock in stale
    ]


def _verdict(
    conflicts: list[Conflict],
    details: dict[str, Any],
    ctx: CheckContext,
    expected: str,
    checked: str,
) -> Observation:
    details["conflicts"] = [c.to_dict() for c in conflicts]
    if not conflicts:
        return Observation(True, expected, checked, details)
    lines = [
        f"{len(conflicts)} conflict{'s' if len(conflicts) != 1 else ''} ({checked}):",
        *(f"  {c.describe()}" for c in conflicts[:50]),
    ]
    if len(conflicts) > 50:
        lines.append(f"  ... and {len(conflicts) - 50} more")
    for source in ("agent_mail", "original_maf"):
        for warning in details.get(source, {}).get("warnings", ()):
            lines.append(f"  note: {warning}")
    if ctx.environ.get(OVERRIDE_ENV) == "1":
        details["override"] = True
        lines[0] = f"OVERRIDDEN by {OVERRIDE_ENV}=1: {lines[0]}"
        return Observation(True, expected, "\n".join(lines), details)
    return Observation(False, expected, "\n".join(lines), details)


def _record_changes(changed: ChangedFiles, details: dict[str, Any]) -> None:
    details["changed_files"] = list(changed.paths[:MAX_RECORDED_PATHS])
    if len(changed.paths) > MAX_RECORDED_PATHS:
        details["changed_files_truncated"] = len(changed.paths)
    details["changes_source"] = changed.source
    if changed.renames:
        details["renames"] = [list(pair) for pair in changed.renames[:MAX_RECORDED_PATHS]]
    if changed.deleted:
        details["deleted"] = list(changed.deleted[:MAX_RECORDED_PATHS])


def lock_validation(body: ReservationCheckBody, ctx: CheckContext) -> Observation:
    from ..reservations.conflicts import path_conflicts

    state = _state(ctx)
    params = body.parameters
    details: dict[str, Any] = {}
    changed = _changed(params, ctx, default_git=True)
    assert changed is not None
    _record_changes(changed, details)
    holdings = _holdings(params, state, ctx, details)
    strict = params.mode == "strict" or bool(params.exclusive_write_access)
    conflicts = path_conflicts(
        ctx.agent_id,
        changed.paths,
        holdings,
        require_own=strict,
        require_exclusive=bool(params.exclusive_write_access),
    )
    conflicts += _stale_locks(params, changed.root, state)
    expected = (
        "every changed file is covered by a lease of this agent and by no other "
        "agent's conflicting lease"
        if strict
        else "no changed file is under another agent's conflicting lease"
    )
    checked = (
        f"{len(changed.paths)} changed file(s) from {changed.source} against "
        f"{_sources(details, ctx.rootdir)}"
    )
    return _verdict(conflicts, details, ctx, expected, checked)


def concurrent_access(body: ReservationCheckBody, ctx: CheckContext) -> Observation:
    from ..reservations.conflicts import concurrent_changes, holding_conflicts, reader_counts

    state = _state(ctx)
    params = body.parameters
    details: dict[str, Any] = {}
    holdings = _holdings(params, state, ctx, details)
    conflicts = holding_conflicts(holdings)
    if params.max_concurrent_readers is not None:
        conflicts += reader_counts(holdings, params.max_concurrent_readers)
    changed = _changed(params, ctx, default_git=False)
    own: tuple[str, ...] = ()
    if changed is not None:
        _record_changes(changed, details)
        own = changed.paths
    conflicts += concurrent_changes(ctx.agent_id, own, dict(state.recent_changes))
    details["agents_with_recorded_changes"] = sorted(state.recent_changes)
    conflicts += _stale_locks(params, changed.root if changed else _project_root(ctx), state)
    checked = (
        f"{_sources(details, ctx.rootdir)}; changed files of "
        f"{len(state.recent_changes) + (1 if changed else 0)} agent(s)"
    )
    return _verdict(
        conflicts,
        details,
        ctx,
        "no two agents hold conflicting reservations or change the same file",
        checked,
    )


def _held_paths(
    body: ReservationCheckBody, state: ReservationState, ctx: CheckContext
) -> tuple[Path, list[str], list[str]]:
    """The root, the literal paths to look at (the agent's leases and the listed paths) and
    the glob patterns that were left out."""
    from ..reservations.patterns import is_literal, normalize_path

    root = _project_root(ctx)
    patterns = [
        lease.path_pattern
        for lease in state.leases
        if lease.agent_id == ctx.agent_id and lease.active(state.at)
    ]
    literal = [normalize_path(p.strip("/")) for p in patterns if is_literal(p)]
    globs = [p for p in patterns if not is_literal(p)]
    literal += [normalize_path(p) for p in _explicit(body.parameters)]
    return root, sorted(set(literal)), globs


def file_exists(body: ReservationCheckBody, ctx: CheckContext) -> Observation:
    from ..reservations.conflicts import Conflict

    state = _state(ctx)
    root, paths, globs = _held_paths(body, state, ctx)
    details: dict[str, Any] = {"paths": paths, "globs_not_checked": globs}
    conflicts = [
        Conflict("missing_path", p, detail="reserved but does not exist")
        for p in paths
        if not os.path.lexists(root / p)
    ]
    conflicts += _stale_locks(body.parameters, root, state)
    return _verdict(
        conflicts,
        details,
        ctx,
        "every reserved path exists",
        f"{len(paths)} reserved path(s) under {root}"
        + (f"; {len(globs)} glob lease(s) not checked" if globs else ""),
    )


def _writable(path: Path) -> bool:
    if path.exists():
        mode = os.W_OK | (os.X_OK if path.is_dir() else 0)
        return os.access(path, mode)
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return os.access(parent, os.W_OK | os.X_OK)  # the path can be created


def permissions(body: ReservationCheckBody, ctx: CheckContext) -> Observation:
    from ..reservations.conflicts import Conflict

    state = _state(ctx)
    root, paths, globs = _held_paths(body, state, ctx)
    details: dict[str, Any] = {"paths": paths, "globs_not_checked": globs}
    conflicts = [
        Conflict("not_writable", p, detail=f"{ctx.agent_id} cannot write it")
        for p in paths
        if not _writable(root / p)
    ]
    conflicts += _stale_locks(body.parameters, root, state)
    return _verdict(
        conflicts,
        details,
        ctx,
        "this agent can write every path it holds",
        f"{len(paths)} held path(s) under {root}"
        + (f"; {len(globs)} glob lease(s) not checked" if globs else ""),
    )


_RUNS = {
    "lock_validation": lock_validation,
    "concurrent_access": concurrent_access,
    "file_exists": file_exists,
    "permissions": permissions,
}


def reservation_check_type(name: str) -> CheckType:
    from ..config.models import ReservationCheckBody

    return CheckType(
        f"reservation_check/{name}",
        ReservationCheckBody,  # type: ignore[arg-type]
        _RUNS[name],
    )

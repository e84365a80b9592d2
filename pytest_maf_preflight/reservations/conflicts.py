"""The conflict rule (SPEC S3), applied to our leases and to mcp_agent_mail's reservations.

A conflict is another agent's active reservation, at least one side exclusive, on an overlapping
pattern. For a changed file, "our side" is the agent's own reservation covering it when it holds
one, else a write, which counts as exclusive: a shared lease held by someone else means "keep
this stable while I read it", so a writer without a lease of its own conflicts with it.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Sequence
from typing import Any

from .index import PatternIndex
from .patterns import Dialect, literal_prefix, patterns_overlap


@dataclasses.dataclass(frozen=True)
class Holding:
    """One reservation someone holds: a lease of ours or an agent-mail file reservation."""

    agent: str
    pattern: str
    exclusive: bool
    expires_at: float
    source: str  # "leases" or "agent_mail:<url|database|storage>"
    dialect: Dialect = "gitignore"
    lease_id: str | None = None
    fencing_token: int | None = None

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        where = "lease" if self.source == "leases" else f"{self.source} reservation"
        ident = f" {self.lease_id[:12]}" if self.lease_id else ""
        return (
            f"{self.agent} ({kind} {where}{ident} on {self.pattern!r}, "
            f"expires {format_time(self.expires_at)})"
        )


@dataclasses.dataclass(frozen=True)
class Conflict:
    """One finding; ``conflict_type`` is what is recorded in ``reservation_conflicts``."""

    conflict_type: str  # foreign_lease, unreserved, lease_overlap, concurrent_change, ...
    path: str | None
    holder: Holding | None = None
    other: Holding | None = None
    detail: str = ""

    def describe(self) -> str:
        if self.conflict_type == "foreign_lease" and self.holder is not None:
            return f"{self.path}: reserved by {self.holder.describe()}"
        if self.conflict_type == "lease_overlap" and self.holder and self.other:
            return f"{self.holder.describe()} overlaps {self.other.describe()}"
        return f"{self.path or ''}: {self.detail}" if self.path else self.detail

    def to_dict(self) -> dict[str, Any]:
        holder = self.holder
        data: dict[str, Any] = {
            "type": self.conflict_type,
            "path": self.path,
            "message": self.describe(),
            "holder_agent_id": holder.agent if holder else None,
            "path_pattern": holder.pattern if holder else None,
            "exclusive": holder.exclusive if holder else None,
            "lease_id": holder.lease_id if holder else None,
            "expires_at": holder.expires_at if holder else None,
            "source": holder.source if holder else None,
        }
        if self.other is not None:
            data["other"] = dataclasses.asdict(self.other)
        return data


def format_time(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def path_conflicts(
    agent_id: str,
    paths: Iterable[str],
    holdings: Sequence[Holding],
    *,
    require_own: bool = False,
    require_exclusive: bool = False,
) -> list[Conflict]:
    """Conflicts of ``agent_id`` changing ``paths``; with ``require_own`` (strict mode) a path
    must also be covered by the agent's own reservation (an exclusive one with
    ``require_exclusive``)."""
    index: PatternIndex[Holding] = PatternIndex((h.pattern, h.dialect, h) for h in holdings)
    found: list[Conflict] = []
    for path in paths:
        covering = index.covering(path)
        own = [h for h in covering if h.agent == agent_id]
        writing_exclusively = not own or any(h.exclusive for h in own)
        for holding in covering:
            if holding.agent != agent_id and (holding.exclusive or writing_exclusively):
                found.append(Conflict("foreign_lease", path, holding))
        if require_own and not own:
            found.append(
                Conflict(
                    "unreserved", path, detail=f"not covered by a lease of {agent_id} (strict mode)"
                )
            )
        elif require_exclusive and not any(h.exclusive for h in own):
            found.append(
                Conflict(
                    "unreserved",
                    path,
                    detail=f"{agent_id} holds only a shared "
                    "lease on it; exclusive write access is required",
                )
            )
    return found


def holding_conflicts(holdings: Sequence[Holding]) -> list[Conflict]:
    """Pairs of reservations of different agents that conflict with each other."""
    found: list[Conflict] = []
    for a, b in _candidate_pairs(holdings):
        first, second = holdings[a], holdings[b]
        if first.agent == second.agent or not (first.exclusive or second.exclusive):
            continue
        if _overlap(first, second):
            found.append(Conflict("lease_overlap", None, first, second))
    return found


def _overlap(first: Holding, second: Holding) -> bool:
    return patterns_overlap(first.pattern, second.pattern, first.dialect, second.dialect)


def _candidate_pairs(holdings: Sequence[Holding]) -> list[tuple[int, int]]:
    """The index pairs ``(a, b)``, ``a < b``, whose patterns may overlap, in order.

    Two patterns can only overlap when the literal directories they start with agree (one
    list a prefix of the other), so pairs are drawn within one top directory, and patterns with
    no literal start (``*.lock``) are paired with everything.
    """
    wild: list[int] = []
    by_top: dict[str, list[int]] = {}
    prefixes = [literal_prefix(h.pattern) for h in holdings]
    for i, prefix in enumerate(prefixes):
        if prefix:
            by_top.setdefault(prefix[0], []).append(i)
        else:
            wild.append(i)
    pairs: set[tuple[int, int]] = set()
    for group in by_top.values():
        pairs.update(
            (a, b)
            for n, a in enumerate(group)
            for b in group[n + 1 :]
            if _prefixes_agree(prefixes[a], prefixes[b])
        )
    pairs.update((min(a, b), max(a, b)) for a in wild for b in range(len(holdings)) if a != b)
    return sorted(pairs)


def _prefixes_agree(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def reader_counts(holdings: Sequence[Holding], limit: int) -> list[Conflict]:
    """Shared reservations with more than ``limit`` readers (``max_concurrent_readers``).

    The readers of a shared reservation are the distinct agents holding a shared reservation
    whose pattern overlaps its pattern, its own holder included: ``docs/**``, ``docs/*.md`` and
    ``docs/x.md`` held by three agents give each of them three readers, whatever the pattern
    strings. Overlap is taken pairwise, so ``src/**`` shared with the holders of ``src/a/**``
    and ``src/b/**`` has three readers although no single file has more than two: the count
    errs towards a conflict. One finding per pattern, naming its readers.
    """
    shared = [h for h in holdings if not h.exclusive]
    readers = [{h.agent} for h in shared]
    for a, b in _candidate_pairs(shared):
        first, second = shared[a], shared[b]
        if second.agent in readers[a] and first.agent in readers[b]:
            continue  # nothing to learn (also: the same agent twice)
        if _overlap(first, second):
            readers[a].add(second.agent)
            readers[b].add(first.agent)
    by_pattern: dict[str, set[str]] = {}
    for holding, agents in zip(shared, readers, strict=True):
        by_pattern.setdefault(holding.pattern, set()).update(agents)
    return [
        Conflict(
            "too_many_readers",
            pattern,
            detail=f"{len(agents)} agents hold shared reservations overlapping it "
            f"({', '.join(sorted(agents))}); at most {limit} allowed",
        )
        for pattern, agents in sorted(by_pattern.items())
        if len(agents) > limit
    ]


def concurrent_changes(
    agent_id: str, own: Iterable[str], others: dict[str, tuple[str, ...]]
) -> list[Conflict]:
    """Files changed by more than one agent (this one's changes and others' recorded ones)."""
    changed_by: dict[str, set[str]] = {}
    for path in own:
        changed_by.setdefault(path, set()).add(agent_id)
    for agent, paths in others.items():
        for path in paths:
            changed_by.setdefault(path, set()).add(agent)
    return [
        Conflict(
            "concurrent_change",
            path,
            detail=f"changed by {len(agents)} agents: {', '.join(sorted(agents))}",
        )
        for path, agents in sorted(changed_by.items())
        if len(agents) > 1
    ]

"""``integration`` checks: a named group of other checks that must all pass.

An integration check runs nothing itself: the runner decides it from its members' results once
they are all known, so each member runs once however many groups name it. A member may be
another group (decided first); groups that name each other in a cycle could never be decided,
so loading refuses them (see ``config.references``) and the runner fails them closed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import NamedTuple

from pydantic import Field

from .base import CheckContext, CheckResult, CheckType, Definition, Observation


class IntegrationDefinition(Definition):
    checks: list[str] = Field(
        min_length=1,
        description="Ids of the checks that must all pass "
        "(smoke checks or other integration checks, which "
        "are decided first; groups naming each other in a cycle are "
        "a config error)",
    )


def run(definition: IntegrationDefinition, ctx: CheckContext) -> Observation:
    raise RuntimeError("an integration check is decided by the runner from its members")


def decide(members: Mapping[str, CheckResult | None]) -> Observation:
    """Passed when every member passed; the report lists each member and its status."""
    listed = ", ".join(
        f"{cid} {r.status.value if r else 'not an active check'}" for cid, r in members.items()
    )
    failed = [cid for cid, r in members.items() if r is None or not r.passed]
    return Observation(
        passed=not failed,
        expected=f"all of {', '.join(members)} pass",
        observed=(
            f"{len(failed)} of {len(members)} did not pass: {listed}"
            if failed
            else f"all passed: {listed}"
        ),
        details={
            "members": {cid: (r.status.value if r else "unknown") for cid, r in members.items()}
        },
    )


class GroupOrder:
    """When each group can be decided: once every check it names has a result, so a group that
    names groups comes after them. Ids that are not among ``known`` (not active checks) will
    never have a result and are not waited for."""

    def __init__(self, members: Mapping[str, Sequence[str]], known: Collection[str]) -> None:
        self._waiting = {
            group: {m for m in names if m in known} for group, names in members.items()
        }
        self._waited_by: dict[str, list[str]] = {}
        for group, waiting in self._waiting.items():
            for member in waiting:
                self._waited_by.setdefault(member, []).append(group)

    def free(self) -> list[str]:
        """The groups that wait for nothing."""
        return [group for group, waiting in self._waiting.items() if not waiting]

    def done(self, check_id: str) -> list[str]:
        """The groups that the result of ``check_id`` leaves waiting for nothing more."""
        freed = []
        for group in self._waited_by.pop(check_id, ()):
            waiting = self._waiting[group]
            waiting.discard(check_id)
            if not waiting:
                freed.append(group)
        return freed


class Cycle(NamedTuple):
    """Groups that reach each other through their members, so none can ever be decided."""

    #: The path that closes the cycle, e.g. ``("a", "b", "a")`` or ``("a", "a")``.
    path: tuple[str, ...]
    #: Every group caught in it (a path shows one way round; there may be more groups).
    groups: frozenset[str]


def cycles(members: Mapping[str, Sequence[str]]) -> list[Cycle]:
    """The cycles among groups; ``members`` maps each group's id to the ids it names (ids that
    are not groups are ignored). One per set of groups that reach each other, its path
    starting at the set's first group in ``members`` order, in that order."""
    order = {group: i for i, group in enumerate(members)}
    found = []
    for component in _strongly_connected(members):
        start = min(component, key=order.__getitem__)
        if len(component) > 1 or start in members[start]:
            found.append(Cycle(_path_back(start, component, members), frozenset(component)))
    return sorted(found, key=lambda cycle: order[cycle.path[0]])


def _path_back(
    start: str, within: set[str], members: Mapping[str, Sequence[str]]
) -> tuple[str, ...]:
    """The shortest path from ``start`` back to itself through ``within`` (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for group in frontier:
            for member in members[group]:
                if member == start:
                    path = [group]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return (start, *reversed(path[:-1]), start)
                if member in within and member not in previous:
                    previous[member] = group
                    following.append(member)
        frontier = following
    raise ValueError(f"{start} is on no cycle")  # callers pass a strongly connected set


def _strongly_connected(members: Mapping[str, Sequence[str]]) -> Iterator[set[str]]:
    """Tarjan's strongly connected components of the group graph, without recursion (a chain
    of thousands of nested groups must not hit Python's recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    work: list[tuple[str, Iterator[str]]] = []  # the depth-first path, with members left

    def enter(group: str) -> None:
        index[group] = low[group] = len(index)
        stack.append(group)
        on_stack.add(group)
        work.append((group, iter([m for m in members[group] if m in members])))

    for root in members:
        if root in index:
            continue
        enter(root)
        while work:
            group, left = work[-1]
            member = next(left, None)
            if member is not None:
                if member not in index:
                    enter(member)
                elif member in on_stack:
                    low[group] = min(low[group], index[member])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[group])
            if low[group] == index[group]:
                component = set()
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.add(top)
                    if top == group:
                        break
                yield component


CHECK_TYPE = CheckType(
    "integration", IntegrationDefinition, run, "A group of other checks that must all pass"
)

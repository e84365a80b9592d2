"""The plugin's markers on each collected item, read once, when collection is done.

``item.get_closest_marker`` walks the item's chain of nodes each time; asked for three markers
in several hooks of every test, that was most of what the plugin cost per test. Here each
parent node's markers are read once for all its children, and each item's result is stashed
on the item, so a hook asks its stash.

Loaded in every pytest run where the package is installed (the gate-off path uses it): it
imports nothing but pytest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import pytest

SMOKE = "maf_smoke"
REQUIRES = "maf_requires"
RESERVE = "maf_reserve"
_NAMES = frozenset({SMOKE, REQUIRES, RESERVE})


@dataclasses.dataclass(frozen=True, slots=True)
class ItemMarks:
    """The closest of each of the plugin's markers on an item, as ``get_closest_marker``
    would find it."""

    smoke: bool = False
    requires: pytest.Mark | None = None
    reserve: pytest.Mark | None = None

    def names(self) -> set[str]:
        return {
            name
            for name, present in (
                (SMOKE, self.smoke),
                (REQUIRES, self.requires is not None),
                (RESERVE, self.reserve is not None),
            )
            if present
        }


#: Most items: none of the plugin's markers.
PLAIN = ItemMarks()
MARKS_KEY = pytest.StashKey[ItemMarks]()
_NONE: Mapping[str, pytest.Mark] = {}


class MarkReader:
    """Reads items' marks; each parent node's markers once, however many children it has."""

    def __init__(self) -> None:
        self._inherited: dict[pytest.Collector, Mapping[str, pytest.Mark]] = {}

    def _from_parents(self, node: pytest.Collector | None) -> Mapping[str, pytest.Mark]:
        if node is None:
            return _NONE
        found = self._inherited.get(node)
        if found is None:
            closest = dict(self._from_parents(node.parent))
            # The first of a node's own markers is the closest: later ones are overwritten.
            for mark in reversed(node.own_markers):
                if mark.name in _NAMES:
                    closest[mark.name] = mark
            found = closest or _NONE
            self._inherited[node] = found
        return found

    def read(self, item: pytest.Item) -> ItemMarks:
        inherited = self._from_parents(item.parent)
        own = [mark for mark in item.own_markers if mark.name in _NAMES]
        if not own and not inherited:
            return PLAIN
        closest = dict(inherited)
        for mark in reversed(own):
            closest[mark.name] = mark
        return ItemMarks(
            smoke=SMOKE in closest, requires=closest.get(REQUIRES), reserve=closest.get(RESERVE)
        )


def mark_items(items: Iterable[pytest.Item], reader: MarkReader | None = None) -> set[str]:
    """Read and stash each item's marks; return the marker names found on any of them."""
    reader = reader or MarkReader()
    found: set[str] = set()
    for item in items:
        marks = item.stash[MARKS_KEY] = reader.read(item)
        if marks is not PLAIN:
            found |= marks.names()
    return found


def marks_of(item: pytest.Item) -> ItemMarks:
    """The marks stashed at collection; read now for an item that did not go through it."""
    marks = item.stash.get(MARKS_KEY, None)
    if marks is None:
        marks = item.stash[MARKS_KEY] = MarkReader().read(item)
    return marks

"""Environment overrides: a deep merge that never writes back into the base config."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Nested mappings merge key by key; lists and scalars in ``override`` replace.

    Returns a new dict; neither argument is modified, and nothing in the result is shared
    with them, so later edits of the merged body cannot reach the base config.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged

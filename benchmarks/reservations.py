"""Reservation benchmarks for SPEC S10: lease patterns against changed paths.

- :func:`bench_many`: 10,000 leases (half of them globs) against 10,000 changed paths, with
  :class:`PatternIndex` (target: under 1 s, building the index included). The baseline checks
  every pair with ``path_matches``; 10^8 pairs would take minutes, so it runs on a slice of the
  paths and is scaled linearly to all of them (the ``naive_scaled_*`` keys say so).
- :func:`bench_small`: 50 paths against 100 leases, the index built for every run (target:
  under 0.5 ms), beside every pair with ``path_matches``.

Figures are medians over interleaved repetitions; regexes compiled for a pattern are cached
across runs, as they are in a gate process that checks the same leases again. ``index_cold_ms``
is one run with every cache emptied first.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

from timing import interleave, median_ms

ROOT = Path(__file__).resolve().parent.parent


def _modules() -> tuple[Any, Any]:
    from pytest_maf_preflight.reservations import index, patterns

    return patterns, index


def workload(leases: int, paths: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Lease patterns (half literal files, half globs, mostly anchored) and changed paths of a
    project with 200 packages, as agents would reserve and change them."""
    rng = random.Random(seed)
    packages = 200
    literal_count = leases // 2
    patterns: list[str] = []
    for _ in range(literal_count):
        pkg, mod = rng.randrange(packages), rng.randrange(60)
        patterns.append(
            rng.choice(
                [
                    f"src/pkg{pkg}/mod{mod}.py",
                    f"src/pkg{pkg}/sub{mod % 7}/",
                    f"tests/pkg{pkg}/test_mod{mod}.py",
                    f"docs/pkg{pkg}.md",
                ]
            )
        )
    unanchored = ["*.lock", "*.tmp", "__pycache__/", "*.egg-info/", "*~", "build/", ".env*"]
    globs: list[str] = []
    while len(globs) < leases - literal_count:
        pkg, mod = rng.randrange(packages), rng.randrange(60)
        roll = rng.random()
        if roll < 0.002:
            globs.append(rng.choice(unanchored))
        elif roll < 0.004:
            globs.append(rng.choice(["**/conftest.py", "*/migrations/*.sql", "**/fixtures/"]))
        else:
            globs.append(
                rng.choice(
                    [
                        f"src/pkg{pkg}/**",
                        f"src/pkg{pkg}/*.py",
                        f"src/pkg{pkg}/sub{mod % 7}/*.py",
                        f"tests/test_x{mod}*.py",
                        f"tests/pkg{pkg}/test_*.py",
                        f"src/pkg{pkg}/mod{mod}*",
                        f"docs/pkg{pkg}/**/*.md",
                        f"src/pkg{pkg}/[ab]*.py",
                    ]
                )
            )
    patterns += globs
    rng.shuffle(patterns)
    changed: list[str] = []
    for _ in range(paths):
        pkg, mod = rng.randrange(packages), rng.randrange(60)
        changed.append(
            rng.choice(
                [
                    f"src/pkg{pkg}/mod{mod}.py",
                    f"src/pkg{pkg}/sub{mod % 7}/mod{mod}.py",
                    f"tests/pkg{pkg}/test_mod{mod}.py",
                    f"tests/test_x{mod}_{pkg}.py",
                    f"docs/pkg{pkg}/guide/page{mod}.md",
                    f"src/pkg{pkg}/__pycache__/mod{mod}.pyc",
                    f"poetry{pkg}.lock",
                    f"src/pkg{pkg}/migrations/{mod}.sql",
                ]
            )
        )
    return patterns, changed


def _clear_caches(patterns: Any, index: Any) -> None:
    for module in (patterns, index):
        for value in vars(module).values():
            clear = getattr(value, "cache_clear", None)
            if callable(clear):
                clear()


def bench_many(quick: bool) -> dict[str, float]:
    """10,000 leases (half globs) against 10,000 changed paths: the index (built in each run)
    beside every pair with ``path_matches``, measured on a slice and scaled to all paths."""
    patterns, index = _modules()
    leases, paths = workload(10_000, 10_000)
    entries = [(pattern, "gitignore", n) for n, pattern in enumerate(leases)]
    runs = 3 if quick else 9
    naive_slice = paths[:50] if quick else paths[:200]
    path_matches = patterns.path_matches

    def indexed() -> int:
        idx = index.PatternIndex(entries)
        return sum(len(idx.covering(path)) for path in paths)

    def naive() -> int:
        return sum(1 for path in naive_slice for pattern in leases if path_matches(path, pattern))

    _clear_caches(patterns, index)
    start = time.perf_counter()
    found = indexed()
    cold_ms = (time.perf_counter() - start) * 1000
    samples = interleave({"index": indexed, "naive": naive}, runs)
    index_ms = median_ms(samples["index"])
    naive_scaled_ms = median_ms(samples["naive"]) * len(paths) / len(naive_slice)
    return {
        "leases": len(leases),
        "paths": len(paths),
        "coverings": found,
        "index_ms": index_ms,
        "index_cold_ms": cold_ms,
        "naive_slice_paths": len(naive_slice),
        "naive_scaled_ms": naive_scaled_ms,
        "naive_scaled_over_index": naive_scaled_ms / index_ms,
    }


def bench_small(quick: bool) -> dict[str, float]:
    """50 changed paths against 100 leases: the index, built in every run, beside every pair
    with ``path_matches``."""
    patterns, index = _modules()
    leases, paths = workload(100, 50, seed=1)
    entries = [(pattern, "gitignore", n) for n, pattern in enumerate(leases)]
    runs = 51 if quick else 501
    path_matches = patterns.path_matches

    def indexed() -> int:
        idx = index.PatternIndex(entries)
        return sum(len(idx.covering(path)) for path in paths)

    def naive() -> int:
        return sum(1 for path in paths for pattern in leases if path_matches(path, pattern))

    samples = interleave({"index": indexed, "naive": naive}, runs)
    index_ms = median_ms(samples["index"])
    naive_ms = median_ms(samples["naive"])
    return {
        "leases": len(leases),
        "paths": len(paths),
        "index_ms": index_ms,
        "naive_ms": naive_ms,
        "naive_over_index": naive_ms / index_ms,
    }


if __name__ == "__main__":
    import json

    quick_run = "--quick" in sys.argv
    print(json.dumps({"many": bench_many(quick_run), "small": bench_small(quick_run)}, indent=2))

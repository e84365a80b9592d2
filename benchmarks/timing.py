"""What every benchmark here shares: interleaved repetitions and their medians.

Machines here are noisy: variants alternate (and reverse order every other round) so drift
hits them alike, and figures are medians.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleave(variants: dict[str, Callable[[], object]], runs: int) -> dict[str, list[float]]:
    """Seconds per run of each variant, after one warm-up run each (caches, imports)."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():
        fn()
    for i in range(runs):
        order = list(variants.items())
        if i % 2:
            order.reverse()
        for name, fn in order:
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000

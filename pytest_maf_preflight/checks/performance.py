"""``performance`` checks: N requests or commands, budgets on p50/p95/max latency and errors."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

from pydantic import Field, model_validator

from .api import ApiDefinition
from .base import CheckContext, CheckType, Definition, Observation


class PerformanceDefinition(Definition):
    request: ApiDefinition | None = None
    argv: list[str] | None = Field(default=None, min_length=1)
    iterations: int = Field(default=10, ge=1, le=100_000)
    concurrency: int = Field(default=1, ge=1, le=1000)
    p50_ms: float | None = Field(default=None, gt=0)
    p95_ms: float | None = Field(default=None, gt=0)
    max_ms: float | None = Field(default=None, gt=0)
    max_error_rate: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _one_thing_to_run(self) -> PerformanceDefinition:
        if (self.request is None) == (self.argv is None):
            raise ValueError("give exactly one of request (an api request) or argv (a command)")
        return self


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 of 20 samples is the 19th smallest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _one_iteration(definition: PerformanceDefinition, ctx: CheckContext) -> Callable[[], bool]:
    """A function running one request or command and returning whether it succeeded."""
    if definition.request is not None:
        from .api import run as run_api

        request = definition.request
        return lambda: run_api(request, ctx).passed
    from .command import CommandDefinition
    from .command import run as run_command

    command = CommandDefinition(argv=list(definition.argv or []))
    return lambda: run_command(command, ctx).passed


def run(definition: PerformanceDefinition, ctx: CheckContext) -> Observation:
    iteration = _one_iteration(definition, ctx)
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    remaining = iter(range(definition.iterations))

    def worker() -> None:
        nonlocal errors
        while True:
            with lock:
                if next(remaining, None) is None or ctx.remaining(1.0) <= 0:
                    return
            start = time.perf_counter()
            try:
                ok = iteration()
            except Exception:  # an iteration that breaks counts as an error, never a pass
                ok = False
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                latencies.append(elapsed)
                errors += 0 if ok else 1

    threads = [
        threading.Thread(target=worker, daemon=True)
        for _ in range(min(definition.concurrency, definition.iterations))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    expected = [f"{definition.iterations} iterations"]
    problems: list[str] = []
    done = len(latencies)
    if done < definition.iterations:
        problems.append(f"only {done} of {definition.iterations} iterations before the deadline")
    figures: dict[str, float] = {}
    if latencies:
        figures = {
            "p50_ms": percentile(latencies, 0.50),
            "p95_ms": percentile(latencies, 0.95),
            "max_ms": max(latencies),
            "error_rate": errors / done,
        }
        for name in ("p50_ms", "p95_ms", "max_ms"):
            budget = getattr(definition, name)
            if budget is not None:
                expected.append(f"{name[:-3]} <= {budget:g} ms")
                if figures[name] > budget:
                    problems.append(f"{name[:-3]} {figures[name]:.1f} ms over {budget:g} ms")
        expected.append(f"error rate <= {definition.max_error_rate:g}")
        if figures["error_rate"] > definition.max_error_rate:
            problems.append(
                f"error rate {figures['error_rate']:.2f} over "
                f"{definition.max_error_rate:g} ({errors} of {done} failed)"
            )
    observed = (
        "; ".join(problems)
        if problems
        else (
            f"p50 {figures['p50_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms, "
            f"max {figures['max_ms']:.1f} ms, {errors} errors in {done}"
        )
    )
    return Observation(
        passed=not problems,
        expected=", ".join(expected),
        observed=observed,
        details={
            **{k: round(v, 3) for k, v in figures.items()},
            "iterations": done,
            "errors": errors,
        },
    )


CHECK_TYPE = CheckType(
    "performance",
    PerformanceDefinition,
    run,
    "Latency (p50/p95/max) and error-rate budgets over N iterations",
    waits=True,
)

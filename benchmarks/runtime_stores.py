"""Runtime store benchmarks (issue 7): PostgreSQL beside SQLite, measured in the same run.

- :func:`bench` ``recording``: executions recorded per second, one session of ``executions``
  executions written with ``record_session`` (one transaction, as the plugin records a run).
  Every repetition writes a new session, so no write is skipped as already present.
- :func:`bench` ``leases``: lease round trips per second, one agent acquiring an exclusive lease
  and releasing it again, ``cycles`` times, while other agents hold ``HELD`` leases on other
  patterns (so every acquire checks real candidates for a conflict).

Repetitions alternate between the stores, so drift hits both alike; figures are medians and the
comparison is the ratio ``postgres / sqlite`` (above 1: PostgreSQL is faster).

PostgreSQL: ``MAF_BENCH_POSTGRES_URL``, else ``MAF_TEST_POSTGRES_URL``, else the local test
server; the tables go into a fresh schema, dropped afterwards. Without psycopg or a server the
PostgreSQL figures are skipped, with the reason, and SQLite is measured alone.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
#: Leases of other agents held while the benchmark agent acquires and releases its own.
HELD = 50


def postgres_url() -> str:
    return (
        os.environ.get("MAF_BENCH_POSTGRES_URL")
        or os.environ.get("MAF_TEST_POSTGRES_URL")
        or DEFAULT_URL
    )


def postgres_unavailable(url: str) -> str | None:
    """Why PostgreSQL cannot be measured here, or None."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'pytest-maf-preflight[postgres]')"
    from pytest_maf_preflight.runtime.postgres import one_line

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        # libpq's message names the host and port, never the password.
        return f"no PostgreSQL server at {shown(url)}: {one_line(str(exc))}"
    return None


def shown(url: str) -> str:
    """``url`` without its password, in URL or ``key=value`` form."""
    try:
        from pytest_maf_preflight.runtime.postgres import describe_url

        return describe_url(url)
    except Exception:  # psycopg missing: hide every password-like value by hand
        import re

        return re.sub(r"(password=|:)[^@&\s]*(?=@|&|\s|$)", r"\1***", url)


@contextmanager
def _stores(url: str | None) -> Iterator[dict[str, Any]]:
    """A fresh SQLite database and, with ``url``, a fresh PostgreSQL schema; both removed
    afterwards."""
    from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

    with tempfile.TemporaryDirectory() as tmp:
        stores: dict[str, Any] = {"sqlite": SqliteRuntime(Path(tmp) / "runtime.db")}
        schema = f"maf_bench_{uuid.uuid4().hex}"
        try:
            if url is not None:
                from pytest_maf_preflight.runtime.postgres import PostgresRuntime

                stores["postgres"] = PostgresRuntime(url, schema=schema)
            yield stores
        finally:
            for store in stores.values():
                store.close()
            if "postgres" in stores:
                import psycopg
                from psycopg import sql

                with psycopg.connect(url or "", autocommit=True) as conn:
                    conn.execute(
                        sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                    )


def _session(mode: str, count: int) -> Any:
    from pytest_maf_preflight.runtime.records import (
        ExecutionRecord,
        SessionBundle,
        SessionRecord,
        new_id,
    )

    started = time.time()
    session = SessionRecord(
        id=new_id(),
        agent_id="bench",
        environment="development",
        started_at=started,
        completed_at=started,
        status="open",
        exit_code=0,
        runtime_mode=mode,
    )
    executions = tuple(
        ExecutionRecord(
            id=new_id(),
            session_id=session.id,
            config_id=f"check-{i % 100}",
            config_version="1.0.0",
            agent_id="bench",
            kind="check",
            status="passed",
            started_at=started + i,
            completed_at=started + i,
            duration=0.001,
            attempts=1,
            result={"observed": "ok", "i": i},
        )
        for i in range(count)
    )
    return SessionBundle(session=session, executions=executions)


def _alternate(variants: dict[str, Callable[[], float]], runs: int) -> dict[str, list[float]]:
    """``runs`` samples of each variant (each returns its own elapsed seconds), the order
    reversed every other round; one warm-up round first."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():
        fn()
    for i in range(runs):
        order = list(variants.items())
        if i % 2:
            order.reverse()
        for name, fn in order:
            samples[name].append(fn())
    return samples


def _recording(stores: dict[str, Any], executions: int, runs: int) -> dict[str, float]:
    def record(mode: str) -> Callable[[], float]:
        def run() -> float:
            bundle = _session(mode, executions)  # built outside the timing
            start = time.perf_counter()
            stores[mode].record_session(bundle)
            return time.perf_counter() - start

        return run

    samples = _alternate({mode: record(mode) for mode in stores}, runs)
    return {
        f"{mode}_per_second": executions / statistics.median(times)
        for mode, times in samples.items()
    }


def _leases(stores: dict[str, Any], cycles: int, runs: int) -> dict[str, float]:
    for store in stores.values():
        for n in range(HELD):
            store.acquire_leases(f"holder-{n}", [f"src/pkg{n}/**"], ttl=3600)

    def round_trips(mode: str) -> Callable[[], float]:
        store = stores[mode]

        def run() -> float:
            start = time.perf_counter()
            for n in range(cycles):
                [lease] = store.acquire_leases(
                    "bench", [f"src/bench/mod{n % 10}.py"], ttl=60
                ).granted
                store.release_lease(lease.id, "bench")
            return time.perf_counter() - start

        return run

    samples = _alternate({mode: round_trips(mode) for mode in stores}, runs)
    return {
        f"{mode}_per_second": cycles / statistics.median(times) for mode, times in samples.items()
    }


def bench(quick: bool) -> dict[str, Any]:
    """Both benchmarks on SQLite and, when it can be reached, PostgreSQL."""
    executions, cycles, runs = (2_000, 100, 3) if quick else (10_000, 500, 7)
    url = postgres_url()
    skipped = postgres_unavailable(url)
    with _stores(None if skipped else url) as stores:
        recording = _recording(stores, executions, runs)
        leases = _leases(stores, cycles, runs)
    figures: dict[str, Any] = {
        "postgres": shown(url),
        "postgres_skipped": skipped,
        "runs": runs,
        "recording": {"executions": executions, **recording},
        "leases": {"cycles": cycles, "held": HELD, **leases},
    }
    if skipped is None:
        for name in ("recording", "leases"):
            part = figures[name]
            part["postgres_over_sqlite"] = part["postgres_per_second"] / part["sqlite_per_second"]
    return figures


def report(figures: dict[str, Any]) -> list[str]:
    """The figures as lines for ``run.py``."""
    rec, leases = figures["recording"], figures["leases"]
    lines = [
        f"Issue 7 runtime stores: SQLite beside PostgreSQL ({figures['postgres']}), "
        f"medians of {figures['runs']} alternating runs"
    ]
    if figures["postgres_skipped"]:
        lines.append(f"  PostgreSQL skipped: {figures['postgres_skipped']}")
    lines.append(f"  executions recorded, one session of {rec['executions']:,}:")
    lines.append(f"    sqlite   {rec['sqlite_per_second']:10,.0f} /s")
    if "postgres_per_second" in rec:
        lines.append(
            f"    postgres {rec['postgres_per_second']:10,.0f} /s  "
            f"(postgres/sqlite {rec['postgres_over_sqlite']:.2f})"
        )
    lines.append(
        f"  lease acquire+release round trips ({leases['cycles']} per run, "
        f"{leases['held']} leases of other agents held):"
    )
    lines.append(f"    sqlite   {leases['sqlite_per_second']:10,.0f} /s")
    if "postgres_per_second" in leases:
        lines.append(
            f"    postgres {leases['postgres_per_second']:10,.0f} /s  "
            f"(postgres/sqlite {leases['postgres_over_sqlite']:.2f})"
        )
    return lines


if __name__ == "__main__":
    import json

    result = bench("--quick" in sys.argv)
    if "--json" in sys.argv:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(report(result)))

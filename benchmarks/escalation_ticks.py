"""``maf-preflight escalations tick`` on SQLite (issue 15): what one tick costs.

- ``none_due``: 10,000 open escalations, none due. The command as cron runs it (``main`` in this
  process: locate and open the store, tick, print), beside the same command over an empty store
  in the same run; the engine's ``tick()`` alone on an open store. Target: the command under
  1 s. The store is filled once, before timing (one bulk insert of rows made by the runtime's
  own row conversion).
- ``with_config``: the same, with a config directory holding a path that watches for stale
  agents (``agent_stale``) and 10 agents holding leases, none stale: a tick then loads the
  configs and reviews the agents.
- ``due_100``: 100 of the 10,000 due, each delivering its next level to a mailbox (one message
  file each, written atomically). Every repetition starts from a copy of the same store (the
  copy is not timed).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from timing import interleave, median_ms

OPEN = 10_000
DUE = 100
AGENTS = 10

STALE_PATH = """\
id: stale-agents
name: Agents that went silent holding leases
config_type: escalation_path
config:
  trigger_conditions:
    - {condition: agent_stale, threshold: 30}
  escalation_steps:
    - {level: 1, action: notify, target: coordinator, timeout_minutes: 60}
"""


def _snapshot() -> dict[str, Any]:
    from pytest_maf_preflight.config.models import EscalationPathBody
    from pytest_maf_preflight.escalation.paths import PathRef

    body = EscalationPathBody.model_validate(
        {
            "trigger_conditions": [{"condition": "preflight_failure", "threshold": 3}],
            "escalation_steps": [
                {"level": 1, "action": "notify", "target": "on-call", "timeout_minutes": 15},
                {"level": 2, "action": "escalate", "target": "lead", "timeout_minutes": 60},
            ],
        }
    )
    return PathRef("bench-path", "1.0.0", body).snapshot()


def fill(db: Path, mail_root: Path, *, count: int, due: int) -> None:
    """A store with ``count`` open escalations at level 1, the first ``due`` of them overdue."""
    from pytest_maf_preflight.runtime.records import EscalationRecord, new_id
    from pytest_maf_preflight.runtime.sql_rows import ESCALATIONS, escalation_row
    from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

    SqliteRuntime(db).close()  # the schema, migrated
    now = time.time()
    snapshot = _snapshot()
    rows = [
        escalation_row(
            EscalationRecord(
                id=new_id(),
                path_id="bench-path",
                dedup_key=f"bench-path:check-{i}:failed",
                check_id=f"check-{i}",
                failure_class="failed",
                state="triggered",
                level=1,
                occurrences=1,
                path_snapshot=snapshot,
                created_at=now - 600,
                updated_at=now - 600,
                next_action_at=now - 60 if i < due else now + 3600,
                details={
                    "summary": f"check-{i} failed",
                    "severity": "critical",
                    "agent_id": "bench",
                    "mail_root": str(mail_root),
                },
            )
        )
        for i in range(count)
    ]
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.executemany(ESCALATIONS.insert(), rows)


@contextlib.contextmanager
def _cli_environment(cwd: Path, db: Path, mail_root: Path) -> Iterator[None]:
    """``maf-preflight`` run in ``cwd`` against ``db``, as cron would (the environment set,
    the output swallowed)."""
    saved, before = dict(os.environ), Path.cwd()
    os.environ.update(
        {
            "MAF_RUNTIME_MODE": "sqlite",
            "MAF_DB_PATH": str(db),
            "MAF_AGENT_MAIL_ROOT": str(mail_root),
        }
    )
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(before)
        os.environ.clear()
        os.environ.update(saved)


def _tick_command(cwd: Path, db: Path, mail_root: Path) -> Callable[[], None]:
    from pytest_maf_preflight.cli.main import main

    def tick() -> None:
        with _cli_environment(cwd, db, mail_root), contextlib.redirect_stdout(io.StringIO()):
            code = main(["escalations", "tick"])
        assert code == 0, code

    return tick


def _stale_watch(project: Path, db: Path) -> None:
    """A config watching for stale agents, and ``AGENTS`` agents holding leases, none stale."""
    from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

    configs = project / ".maf" / "preflight-configs"
    configs.mkdir(parents=True)
    (configs / "stale.yaml").write_text(STALE_PATH)
    with SqliteRuntime(db) as runtime:
        for i in range(AGENTS):
            runtime.heartbeat(f"agent-{i}")
            runtime.acquire_leases(f"agent-{i}", [f"src/part{i}/**"], ttl=3600)


def bench(quick: bool) -> dict[str, Any]:
    from pytest_maf_preflight.escalation.engine import EscalationEngine
    from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

    runs = 5 if quick else 21
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mail = root / "mail"
        plain, watched, empty_dir = root / "plain", root / "watched", root / "empty"
        for directory in (plain, watched, empty_dir):
            directory.mkdir()
        many, empty = root / "many.db", root / "empty.db"
        fill(many, mail, count=OPEN, due=0)
        fill(empty, mail, count=0, due=0)
        watched_db = root / "watched.db"
        shutil.copy(many, watched_db)
        _stale_watch(watched, watched_db)

        with SqliteRuntime(many) as runtime:
            engine = EscalationEngine(
                runtime, {}, agent_id="bench", mail_root=mail, environ={}, deliver=True
            )
            samples = interleave(
                {
                    "command_none_due": _tick_command(plain, many, mail),
                    "command_empty": _tick_command(empty_dir, empty, mail),
                    "command_with_config": _tick_command(watched, watched_db, mail),
                    "engine_tick": engine.tick,
                },
                runs,
            )

        template = root / "due.db"
        fill(template, mail, count=OPEN, due=DUE)
        due_samples: list[float] = []
        for i in range(max(3, runs // 2)):
            db = root / f"due-{i}.db"
            shutil.copy(template, db)
            tick = _tick_command(plain, db, mail)
            start = time.perf_counter()
            tick()
            due_samples.append(time.perf_counter() - start)
            with SqliteRuntime(db) as runtime:
                delivered = sum(1 for d in runtime.deliveries() if d.status == "delivered")
            assert delivered == DUE, delivered
    none_due = median_ms(samples["command_none_due"])
    baseline = median_ms(samples["command_empty"])
    due_ms = statistics.median(due_samples) * 1000
    return {
        "open": OPEN,
        "command_none_due_ms": none_due,
        "command_empty_ms": baseline,
        "none_due_over_empty": none_due / baseline,
        "command_with_config_ms": median_ms(samples["command_with_config"]),
        "engine_tick_ms": median_ms(samples["engine_tick"]),
        "due": DUE,
        "command_due_ms": due_ms,
        "per_delivery_ms": due_ms / DUE,
    }


def report(figures: dict[str, Any]) -> list[str]:
    return [
        f"S4 escalations tick on SQLite: {figures['open']:,} open escalations",
        f"  none due, the command:        {figures['command_none_due_ms']:8.1f} ms  "
        "(target < 1000 ms)",
        f"  empty store (baseline):       {figures['command_empty_ms']:8.1f} ms; ratio "
        f"{figures['none_due_over_empty']:.2f}",
        f"  with a stale-agent path and {AGENTS} agents holding leases: "
        f"{figures['command_with_config_ms']:.1f} ms",
        f"  the engine's tick alone:      {figures['engine_tick_ms']:8.2f} ms",
        f"  {figures['due']} due, each delivered to a mailbox: {figures['command_due_ms']:.1f} ms "
        f"({figures['per_delivery_ms']:.2f} ms per delivery)",
    ]

"""Eight real processes tick the real engine at the same moment (S4): each due level is
delivered exactly once, whichever process wins it, on one SQLite file or, as eight hosts, on
one PostgreSQL schema (issue 7)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers_runtime_procs import POSTGRES_URL, own_schema
from pytest_maf_preflight.config.models import EscalationPathBody
from pytest_maf_preflight.escalation.engine import EscalationEngine
from pytest_maf_preflight.escalation.paths import PathRef
from pytest_maf_preflight.runtime.interface import RuntimeState
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

TICKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from pytest_maf_preflight.escalation.engine import EscalationEngine
    from pytest_maf_preflight.runtime.postgres import PostgresRuntime
    from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

    db, mail, go, name, schema = sys.argv[1:6]
    opened = (PostgresRuntime(db, schema=schema) if db.startswith("postgresql:")
              else SqliteRuntime(Path(db)))
    with opened as runtime:
        engine = EscalationEngine(runtime, {}, agent_id=name, mail_root=Path(mail), environ={})
        print("ready", flush=True)
        while not Path(go).exists():
            time.sleep(0.001)
        report = engine.tick()
    print(len(report.advanced), len(report.deliveries))
""")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Where the processes meet: a SQLite file, or a schema on the PostgreSQL server (each
    process then acts as another host)."""
    if request.param == "sqlite":
        yield str(tmp_path / "runtime.db"), "-"
        return
    with own_schema() as schema:
        yield POSTGRES_URL, schema


def open_store(db: str, schema: str) -> RuntimeState:
    if db.startswith("postgresql:"):
        from pytest_maf_preflight.runtime.postgres import PostgresRuntime

        return PostgresRuntime(db, schema=schema)
    return SqliteRuntime(Path(db))


@pytest.mark.parametrize("escalations", [1, 5])
def test_concurrent_ticks_deliver_each_level_once(
    tmp_path: Path, escalations: int, store: tuple[str, str]
) -> None:
    (db, schema), mail, go = store, tmp_path / "mail", tmp_path / "go"
    body = EscalationPathBody.model_validate(
        {
            "trigger_conditions": [{"condition": "preflight_failure"}],
            "escalation_steps": [
                {"level": 1, "action": "notify", "target": "on-call", "timeout_minutes": 0.5},
                {"level": 2, "action": "escalate", "target": "lead", "timeout_minutes": 60},
            ],
            "targets": {"on-call": {"channel": "mailbox"}, "lead": {"channel": "mailbox"}},
        }
    )
    ref = PathRef("p", "1.0.0", body)
    with open_store(db, schema) as runtime:
        # Opened a minute ago: level 1 (30 s) is overdue now.
        opener = EscalationEngine(
            runtime,
            {"p": ref},
            agent_id="gate",
            mail_root=mail,
            environ={},
            clock=lambda: time.time() - 60,
        )
        opened = [
            opener.raise_manual("p", summary=f"#{n}", check_id=f"c{n}") for n in range(escalations)
        ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TICKER, db, str(mail), str(go), f"ticker-{n}", schema],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(8)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        go.touch()
        outputs = [proc.communicate(timeout=60)[0].split() for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert all(proc.returncode == 0 for proc in procs)
    assert sum(int(advanced) for advanced, _ in outputs) == escalations
    lead_inbox = sorted((mail / "mailboxes" / "lead" / "inbox").glob("*.json"))
    assert len(lead_inbox) == escalations
    with open_store(db, schema) as runtime:
        for escalation in opened:
            assert escalation is not None
            levels = [d.level for d in runtime.deliveries(escalation.id) if d.status == "delivered"]
            assert levels == [1, 2]
            stored = runtime.get_escalation(escalation.id)
            assert stored is not None
            assert (stored.state, stored.level) == ("escalated", 2)

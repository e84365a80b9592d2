"""Hostile lines in the ``json`` runtime's files: each is skipped and reported by file and line,
in a real gate run, in the CLI, and for generated lines of every kind (hypothesis)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers_cli import cli
from helpers_configs import PASSING_CHECK, WriteConfig
from pytest_maf_preflight.redaction import redact_mapping
from pytest_maf_preflight.runtime.jsonl import FILES, MAX_LINE_DEPTH, JsonRuntime
from pytest_maf_preflight.runtime.records import (
    AgentRecord,
    ConfigSnapshot,
    ConflictRecord,
    DecisionRecord,
    DeliveryRecord,
    EscalationPathDefinition,
    EscalationRecord,
    ExecutionRecord,
    Lease,
    Message,
    SessionBundle,
    SessionRecord,
    SilenceRecord,
    SmokeTestDefinition,
    WaiverRecord,
    to_json,
)

#: 50,000 nested objects: the line that took the gate and the CLI down with RecursionError.
DEEP_LINE = b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"\n"


def deep_executions_log(root: Path) -> Path:
    log = root / ".agent-mail" / "runtime" / "executions.jsonl"
    log.parent.mkdir(parents=True)
    log.write_bytes(DEEP_LINE)
    return log


def test_a_deeply_nested_line_is_skipped_by_the_gate(
    pytester: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAF_RUNTIME_MODE", "json")
    write_config("check.yaml", PASSING_CHECK)
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    deep_executions_log(pytester.path)
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*runtime json: skipped executions.jsonl line 1: nested more than "
            f"{MAX_LINE_DEPTH} levels deep*",
            "*recorded 1 execution(s) in json*",
        ]
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    with JsonRuntime(pytester.path / ".agent-mail") as runtime:
        [session] = runtime.sessions()
        assert [e.config_id for e in runtime.executions()] == ["has-path"]
        assert session.runtime_mode == "json"


def test_history_skips_a_deeply_nested_line(tmp_path: Path) -> None:
    log = deep_executions_log(tmp_path)
    with JsonRuntime(tmp_path / ".agent-mail") as runtime:
        runtime.record_session(bundle_of(1000.0))
    result = cli(tmp_path, "history", "--json", MAF_RUNTIME_MODE="json")
    assert result.returncode == 0, result.stderr
    assert [e["config_id"] for e in json.loads(result.stdout)["executions"]] == ["git"]
    assert f"skipped {log.name} line 1: nested more than {MAX_LINE_DEPTH} levels deep" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr
    info = cli(tmp_path, "runtime", "info", MAF_RUNTIME_MODE="json")
    assert info.returncode == 0, info.stderr
    assert "executions: 1" in info.stdout.splitlines()
    synced = cli(tmp_path, "runtime", "sync", "--from", "json", "--to", "sqlite", "--json")
    assert synced.returncode == 0, synced.stderr
    assert json.loads(synced.stdout)["copied"]["executions"] == 1
    assert "nested more than" in synced.stderr


def test_a_record_too_deep_to_read_back_is_never_written(tmp_path: Path) -> None:
    from pytest_maf_preflight.runtime.errors import RuntimeStateError

    # The line and its record are two levels; ``details`` brings the rest.
    fits: dict[str, Any] = {}
    for _ in range(MAX_LINE_DEPTH - 3):
        fits = {"a": fits}
    with JsonRuntime(tmp_path) as runtime:
        with pytest.raises(RuntimeStateError, match=f"more than {MAX_LINE_DEPTH} levels"):
            runtime.heartbeat("deep", details={"a": fits})
        runtime.heartbeat("fits", details=fits)
        assert [a.id for a in runtime.agents()] == ["fits"]
        assert runtime.problems == []


# --- generated lines --------------------------------------------------------------------------


def bundle_of(started: float) -> SessionBundle:
    session = SessionRecord(
        id="s-1",
        agent_id="codex-1",
        environment="development",
        started_at=started,
        completed_at=started + 1,
        status="open",
        exit_code=0,
        runtime_mode="json",
        details={"why": {"nested": [1]}},
    )
    execution = ExecutionRecord(
        id="e-1",
        session_id=session.id,
        config_id="git",
        config_version="1.0.0",
        agent_id="codex-1",
        kind="check",
        status="passed",
        started_at=started,
        completed_at=started + 0.1,
        duration=0.1,
        attempts=1,
        result={"exit_code": 0},
    )
    snapshot = ConfigSnapshot(
        config_id="git",
        version="1.0.0",
        config_type="smoke_test",
        content_hash="h-1",
        document={"id": "git"},
        recorded_at=started,
    )
    message = Message(
        id="m-1", type="status", agent_id="codex-1", payload={"ok": True}, created_at=started
    )
    conflict = ConflictRecord(
        id="c-1",
        session_id=session.id,
        conflict_type="exclusive",
        severity="error",
        agent_id="codex-1",
        holder_agent_id="claude-2",
        path="src/a.py",
        path_pattern="src/**",
        lease_id=None,
        expires_at=None,
        status="open",
        override=False,
        detected_at=started,
    )
    smoke = SmokeTestDefinition(
        nodeid="t.py::s",
        version="d1",
        content_hash="d1",
        file="t.py",
        document={"markers": []},
        recorded_at=started,
    )
    path = EscalationPathDefinition(
        path_id="p", version="1", content_hash="p1", document={"id": "p"}, recorded_at=started
    )
    return SessionBundle(
        session=session,
        executions=(execution,),
        snapshots=(snapshot,),
        messages=(message,),
        conflicts=(conflict,),
        smoke_tests=(smoke,),
        escalation_paths=(path,),
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runtime with one line in every file, written by the runtime itself."""
    root = tmp_path_factory.mktemp("template")
    with JsonRuntime(root) as runtime:
        runtime.record_session(bundle_of(1000.0))
        runtime.heartbeat("codex-1", at=1000.0, details={"pid": 1})
        runtime.acquire_leases("codex-1", ["src/**"], ttl=60, now=1000.0)
        escalation, _ = runtime.open_escalation(
            path_id="p",
            dedup_key="k",
            check_id="git",
            failure_class="failed",
            path_snapshot={"id": "p", "config": {"levels": [{"after": 1}]}},
            next_action_at=None,
            details={},
            now=1000.0,
        )
        runtime.record_delivery(
            DeliveryRecord(
                escalation_id=escalation.id,
                level=1,
                channel="mailbox",
                target="ops",
                attempt=1,
                status="delivered",
                error=None,
                response={},
                attempted_at=1000.0,
            )
        )
        runtime.add_waiver(
            WaiverRecord(
                id="w-1",
                check_id="git",
                granted_by="lead",
                reason="outage",
                granted_at=1000.0,
                expires_at=2000.0,
                escalation_id=escalation.id,
                scope={"leases": ["l-1"]},
            )
        )
        runtime.record_decision(
            DecisionRecord(
                id="d-1",
                escalation_id=escalation.id,
                level=1,
                decision="approved",
                decided_by="lead",
                reason="outage",
                decided_at=1000.0,
            )
        )
        runtime.add_silence(
            SilenceRecord(
                id="s-1",
                check_id="git",
                path_id="p",
                created_by="ops",
                reason="window",
                created_at=1000.0,
                expires_at=2000.0,
            )
        )
    assert all(len(lines(root, name)) == 1 for name in FILES), "one line per file"
    return root


def lines(root: Path, name: str) -> list[bytes]:
    return (root / "runtime" / FILES[name]).read_bytes().splitlines()


#: How many records each file's lines make, read back through the public API.
COUNTS: dict[str, Callable[[JsonRuntime], list[Any]]] = {
    "sessions": lambda r: r.sessions(),
    "executions": lambda r: r.executions(),
    "snapshots": lambda r: r.config_snapshots(),
    "messages": lambda r: r.messages(),
    "agents": lambda r: r.agents(),
    "conflicts": lambda r: r.reservation_conflicts(),
    "leases": lambda r: r.leases(active_only=False),
    "escalations": lambda r: r.escalations(),
    "deliveries": lambda r: r.deliveries(),
    "waivers": lambda r: r.waivers(),
    "decisions": lambda r: r.decisions(),
    "silences": lambda r: r.silences(),
}
#: The field that makes a record new (deliveries have none: every line is one).
IDENTITY = {
    "snapshots": "content_hash",
    "deliveries": None,
    "smoke_tests": "content_hash",
    "escalation_paths": "content_hash",
}
RECORDS: dict[str, type[Any]] = {
    "sessions": SessionRecord,
    "executions": ExecutionRecord,
    "snapshots": ConfigSnapshot,
    "messages": Message,
    "agents": AgentRecord,
    "conflicts": ConflictRecord,
    "leases": Lease,
    "escalations": EscalationRecord,
    "deliveries": DeliveryRecord,
    "smoke_tests": SmokeTestDefinition,
    "escalation_paths": EscalationPathDefinition,
    "waivers": WaiverRecord,
    "decisions": DecisionRecord,
    "silences": SilenceRecord,
}
NUMBER = '"__number__"'
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)  # NUL and all included
#: Number texts JSON allows (or Python reads) that the runtime must refuse.
BAD_NUMBERS = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "1E+309"]),
    st.integers(4301, 20_000).map(lambda digits: "9" * digits),
)
#: Line texts a JSON parser reads as a string holding a lone surrogate.
LONE_SURROGATES = st.sampled_from(["\\ud800", "x\\udfff", "\\udbff\\u0041", "\\ude00\\ud83d"])


class Line:
    """A generated line, and whether the runtime must report it or count it as a record."""

    def __init__(self, raw: bytes, *, bad: bool, new: bool = False) -> None:
        self.raw, self.bad, self.new = raw, bad, new

    def __repr__(self) -> str:
        return f"Line({self.raw[:80]!r}..., bad={self.bad}, new={self.new})"


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


def required_fields(name: str) -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(RECORDS[name])
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]


@st.composite
def generated_line(draw: st.DrawFn, templates: dict[str, dict[str, Any]], name: str) -> Line:
    """A valid record, or one of the broken lines the runtime must skip and report."""
    line = templates[name]
    record: dict[str, Any] = dict(line["record"])
    identity = IDENTITY.get(name, "id")
    if identity:
        record[identity] = draw(TEXT) + f"#{draw(st.uuids()).hex}"
    mappings = [k for k, v in record.items() if isinstance(v, dict)]
    floats = [k for k, v in record.items() if isinstance(v, float)]
    strings = [k for k, v in record.items() if isinstance(v, str)]
    kind = draw(
        st.sampled_from(
            [
                "good",
                "wrong type",
                "missing field",
                "wrong kind",
                "deep",
                "deep record",
                "garbage",
                "truncated",
                "bad number",
                "lone surrogate",
                "raw surrogate",
                "raw NUL",
            ]
        )
    )

    def dump(**top: Any) -> bytes:
        return json.dumps({**line, "record": record, **top}, ensure_ascii=False).encode()

    if kind == "good":
        if mappings:  # nested as deep as a line may be: kept, and safe to walk later
            field = draw(st.sampled_from(mappings))
            record[field] = {"n": nested(draw(st.integers(0, MAX_LINE_DEPTH - 4)))}
        if floats:
            record[draw(st.sampled_from(floats))] = draw(
                st.floats(allow_nan=False, allow_infinity=False)
            )
        return Line(dump(), bad=False, new=True)
    if kind == "wrong type":
        # A list where the record holds no list (an agent's capabilities are one: any list of
        # names is valid there).
        scalars = sorted(k for k, v in record.items() if not isinstance(v, list))
        record[draw(st.sampled_from(scalars))] = draw(st.sampled_from([[], [1], ["x"], [{"a": 1}]]))
        return Line(dump(), bad=True)
    if kind == "missing field":
        del record[draw(st.sampled_from(required_fields(name)))]
        return Line(dump(), bad=True)
    if kind == "wrong kind":
        other = draw(st.sampled_from(sorted(set(templates) - {name})))
        return Line(dump(kind=templates[other]["kind"]), bad=True)
    if kind == "deep":
        depth = draw(st.integers(MAX_LINE_DEPTH + 1, 60_000))
        opener, closer = draw(st.sampled_from([(b'{"a":', b"}"), (b"[", b"]")]))
        return Line(opener * depth + b"1" + closer * depth, bad=True)
    if kind == "deep record":  # deep enough to parse, too deep to keep
        deep = {"n": nested(draw(st.integers(MAX_LINE_DEPTH, 900)))}
        if not mappings:  # a lease: beside the record, where a reader ignores it if shallow
            return Line(dump(extra=deep), bad=True)
        record[draw(st.sampled_from(mappings))] = deep
        return Line(dump(), bad=True)
    if kind == "garbage":
        raw = draw(st.binary(min_size=1, max_size=64).filter(lambda b: b"\n" not in b))
        return Line(raw, bad=bool(raw.strip()))
    if kind == "truncated":
        raw = dump()
        return Line(raw[: draw(st.integers(1, len(raw) - 1))], bad=True)
    if kind == "bad number":
        record[draw(st.sampled_from(floats or sorted(record)))] = "__number__"
        return Line(dump().replace(NUMBER.encode(), draw(BAD_NUMBERS).encode()), bad=True)
    record[draw(st.sampled_from(strings))] = "__text__"
    if kind == "lone surrogate":
        text = json.dumps({**line, "record": record})
        return Line(text.replace("__text__", draw(LONE_SURROGATES)).encode(), bad=True)
    inject = b"\xed\xa0\x80" if kind == "raw surrogate" else b"a\x00b"
    return Line(dump().replace(b"__text__", inject), bad=True)


@st.composite
def file_and_lines(draw: st.DrawFn, templates: dict[str, dict[str, Any]]) -> tuple[str, list[Line]]:
    name = draw(st.sampled_from(sorted(FILES)))
    return name, draw(st.lists(generated_line(templates, name), min_size=1, max_size=5))


PROBLEM = re.compile(r"^(?P<file>\S+) line (?P<line>\d+): ")


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_generated_lines_are_kept_or_reported_by_file_and_line(
    template: Path, data: st.DataObject
) -> None:
    templates = {name: json.loads(lines(template, name)[0]) for name in FILES}
    name, generated = data.draw(file_and_lines(templates))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(template / "runtime", root / "runtime")
        with open(root / "runtime" / FILES[name], "ab") as log:
            log.write(b"".join(line.raw + b"\n" for line in generated))
        with JsonRuntime(root) as runtime:
            kept = {key: read(runtime) for key, read in COUNTS.items()}
            info = runtime.info()
            problems = list(runtime.problems)
        where = [PROBLEM.match(problem) for problem in problems]
        assert all(where), problems
        assert {(m["file"], int(m["line"])) for m in where if m} == {
            (FILES[name], 2 + i) for i, line in enumerate(generated) if line.bad
        }
        assert len(where) == sum(line.bad for line in generated)
        added = sum(line.new for line in generated)
        assert {key: len(records) for key, records in kept.items()} == {
            key: 1 + (added if key == name else 0) for key in COUNTS
        }
        assert [note for note in info.notes if note.startswith("skipped ")] == [
            f"skipped {problem}" for problem in problems
        ]
        # What was kept can be redacted, shown and written again.
        for records in kept.values():
            for record in records:
                json.dumps(redact_mapping(to_json(record)), ensure_ascii=False).encode()

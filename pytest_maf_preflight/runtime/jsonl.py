"""The ``json`` runtime: append-only JSON Lines under ``<MAF_AGENT_MAIL_ROOT>/runtime``.

The fallback when SQLite cannot start, so it must survive what made SQLite fail: several
writers at once and writers killed half-way. The layout::

    runtime/.lock             filelock held for every append, and while reading
    runtime/state.json        format marker, written whole (temp file + fsync + rename)
    runtime/sessions.jsonl    one line per recorded bundle: the bundle's commit record
    runtime/executions.jsonl
    runtime/snapshots.jsonl
    runtime/smoke_tests.jsonl       maf_smoke definitions, in session bundles (once per content)
    runtime/escalation_paths.jsonl  escalation path definitions, likewise
    runtime/messages.jsonl    an event log: ``enqueue``, ``deliver`` and ``ack`` events
    runtime/agents.jsonl      heartbeats; the last line of an agent wins
    runtime/conflicts.jsonl   reservation conflicts, in session bundles or on their own
    runtime/leases.jsonl      the lease store: a line per grant, renewal and release, each
                              the whole lease as it is now; the last line of a lease wins
    runtime/escalations.jsonl escalations: a line per open, occurrence, claim and
                              transition, each the whole escalation as it is now; the last
                              line of an escalation wins
    runtime/deliveries.jsonl  delivery attempts, one line each, in the order recorded
    runtime/waivers.jsonl     waivers: a line when granted and one when revoked, each the
                              whole waiver as it is now; the last line of a waiver wins
    runtime/decisions.jsonl   approvals and rejections of escalations, one line each
    runtime/silences.jsonl    silences, kept the way waivers are (a line when added, one
                              when ended early)

Every line is one JSON object with ``"kind"`` and ``"v": 1``. A bundle goes to each file as
one append (one ``write`` of all its lines, then fsync), the session line last: the lines of
a bundle carry a ``"bundle"`` token and count only once a session line with that token
exists, so a writer killed half-way leaves no partial session, and at most one truncated
trailing line, which the next writer ends with a line break before appending. Readers skip
broken lines, collect them in ``problems`` (file and line number) and log them on the
``pytest_maf_preflight.runtime`` logger; the rest is kept. A line is broken when it is not
what a writer would write: not UTF-8, not JSON, NaN or a number out of range, nested more than
``MAX_LINE_DEPTH`` levels, a lone surrogate in a string, or not a record of the file's kind.
The same id written again is ignored (the first line wins), so retries and imports are
idempotent.

Leases are live state, so for them the *last* line of an id wins. Every lease operation reads
the log and appends under the file lock, which makes acquire atomic across processes. The
lines of one grant carry a ``"grant"`` token and their number (``"of"``) and count only once
all of them are there: a writer killed half-way through a grant leaves no partial grant. The
fencing token of a new grant or renewal is one more than the largest in the log.

Escalations are live state too, kept the way leases are (the last line of an id wins, every
call one read and one append under the file lock, so opening a dedup key and claiming a level
are atomic across processes). Each change is a single line, so a killed writer leaves either
the change or one broken line, which readers skip and report. Waivers and silences are kept the
same way; a waiver or silence already there is never written again, so only a revocation (or
an early end) adds a second line of an id.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import re
import threading
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from ..atomic import write_atomic
from .agent_fields import agent_record, checked_agent
from .arguments import at_or_now, checked_limit, checked_time, required_time
from .errors import RuntimeStateError, RuntimeUnavailable
from .escalation_rules import (
    EscalationClaim,
    EscalationOpening,
    EscalationTransition,
    another_occurrence,
    checked_delivery,
    open_for_key,
    unknown_escalation,
)
from .interface import RuntimeState
from .lease_rules import (
    LeaseRequest,
    blocking_leases,
    checked_idle,
    checked_ttl,
    owned_lease,
    renewed_lease,
    stale_leases,
)
from .queries import (
    deliveries_in_order,
    due_in_order,
    filter_escalations,
    filter_executions,
    filter_leases,
    filter_silences,
    filter_waivers,
    messages_in_order,
    newest_check_execution,
    newest_conflicts,
    newest_decisions,
    newest_definitions,
    newest_sessions,
    newest_snapshots,
)
from .recent_outcomes import DEFAULT_PER_CHECK, checked_ids, checked_per_check, outcomes_of
from .records import (
    AgentRecord,
    CheckStats,
    ConfigSnapshot,
    ConflictRecord,
    DecisionRecord,
    DeliveryRecord,
    EscalationPathDefinition,
    EscalationRecord,
    EscalationState,
    ExecutionRecord,
    Lease,
    LeaseGrant,
    Message,
    RecentOutcome,
    RuntimeInfo,
    SessionBundle,
    SessionRecord,
    SilenceRecord,
    SmokeTestDefinition,
    WaiverRecord,
    new_id,
    now,
    to_json,
)
from .waiver_rules import (
    checked_by,
    checked_decision,
    checked_silence,
    checked_waiver,
    ended,
    revoked,
)

if TYPE_CHECKING:
    from pydantic import TypeAdapter
    from pydantic_core import ErrorDetails

logger = logging.getLogger("pytest_maf_preflight.runtime")

FORMAT_VERSION = 1
#: How long a writer waits for another one before giving up (seconds).
LOCK_TIMEOUT = 60.0
#: Heartbeats append; the agents file is rewritten whole once it holds this many lines and
#: four times as many as there are agents.
AGENTS_COMPACT_LINES = 1000
#: Likewise for the lease log, rewritten with the last line of every lease (released ones too:
#: the largest fencing token must stay in the log).
LEASES_COMPACT_LINES = 1000
#: Likewise for the escalation log (the last line of every escalation, closed ones too).
ESCALATIONS_COMPACT_LINES = 1000
#: Deepest nesting of objects and arrays in a line. What the plugin writes stays far below it
#: (a config snapshot is at most ``config.documents.MAX_DEPTH`` deep, two levels below the
#: line), and everything that later walks a record (redaction, JSON output, a copy to another
#: mode) recurses once per level, so a deeper line is broken, and is never written.
MAX_LINE_DEPTH = 128
#: An escaped surrogate half: only then can a parsed string hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

FILES = {
    "sessions": "sessions.jsonl",
    "executions": "executions.jsonl",
    "snapshots": "snapshots.jsonl",
    "messages": "messages.jsonl",
    "agents": "agents.jsonl",
    "conflicts": "conflicts.jsonl",
    "leases": "leases.jsonl",
    "escalations": "escalations.jsonl",
    "deliveries": "deliveries.jsonl",
    "smoke_tests": "smoke_tests.jsonl",
    "escalation_paths": "escalation_paths.jsonl",
    "waivers": "waivers.jsonl",
    "decisions": "decisions.jsonl",
    "silences": "silences.jsonl",
}
_KIND_OF_FILE = {
    "sessions": "session",
    "executions": "execution",
    "snapshots": "snapshot",
    "messages": "message",
    "agents": "agent",
    "conflicts": "conflict",
    "leases": "lease",
    "escalations": "escalation",
    "deliveries": "delivery",
    "smoke_tests": "smoke_test",
    "escalation_paths": "escalation_path",
    "waivers": "waiver",
    "decisions": "decision",
    "silences": "silence",
}

R = TypeVar("R")


class _BadLine(ValueError):
    """A line that is JSON but not a record this format knows."""


# --- records from and to lines ------------------------------------------------------------


def _new_definitions(
    kind: str,
    stored: Mapping[tuple[str, str], Any],
    given: Iterable[tuple[tuple[str, str], Any]],
    token: str,
) -> list[bytes]:
    """Lines for the definitions (``(key, record)`` pairs) not stored yet, each key once."""
    out: list[bytes] = []
    seen: set[tuple[str, str]] = set()
    for key, record in given:
        if key not in stored and key not in seen:
            seen.add(key)
            out.append(_line(kind, bundle=token, record=to_json(record)))
    return out


@functools.cache
def _fields_adapter(cls: type[Any]) -> TypeAdapter[dict[str, Any]]:
    """The validator of a ``cls`` record's JSON object, built once per record type.

    Every field is checked as strictly as JSON allows (``"1"`` is no int, ``true`` no number),
    required fields must be there and unknown ones must not. pydantic validates a dataclass
    from a dict only in lax mode, so the check is made on a TypedDict of the record's fields,
    and the record is built from what it returns. pydantic is imported here, not at module
    level: a run that never reads this runtime does not pay for it.
    """
    from pydantic import ConfigDict, Strict, TypeAdapter
    from typing_extensions import NotRequired, TypedDict

    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if typing.get_origin(hint) is tuple:  # JSON has no tuples: an array of the items
            hint = Annotated[hint, Strict(False)]
        required = (
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        )
        fields[field.name] = hint if required else NotRequired[hint]
    make_typed_dict: Any = TypedDict  # a name and fields known only now
    shape = make_typed_dict(cls.__name__, fields)
    shape.__pydantic_config__ = ConfigDict(strict=True, extra="forbid")
    return TypeAdapter(shape)


def _first_problem(errors: Sequence[ErrorDetails]) -> str:
    """What is wrong with a record, as readers report it: not an object, else an unknown field
    (by name), else a missing field, else a field of the wrong type (in field order)."""
    if any(not error["loc"] for error in errors):
        return "record is not an object"
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return f"unknown field {unknown[0]!r}"
    missing = [e["loc"][0] for e in errors if e["type"] == "missing"]
    if missing:
        return f"missing field {missing[0]!r}"
    return f"field {errors[0]['loc'][0]!r} has a wrong type or value"


def _decode(cls: type[R], data: Any) -> R:
    """A record from its JSON object, every field checked; ``_BadLine`` says what is wrong."""
    from pydantic_core import ValidationError

    try:
        fields = _fields_adapter(typing.cast(Any, cls)).validate_python(data)
    except ValidationError as exc:
        problem = _first_problem(exc.errors(include_url=False, include_input=False))
        raise _BadLine(problem) from None
    return cls(**fields)


def _line(kind: str, **fields: Any) -> bytes:
    line = {"kind": kind, "v": FORMAT_VERSION, **fields}
    try:
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        data = text.encode("utf-8")  # a lone surrogate fails here, as readers would refuse it
    except RecursionError:
        text = ""
    except (TypeError, ValueError) as exc:
        raise RuntimeStateError(f"a {kind} record is not JSON-serialisable: {exc}") from exc
    if not text or _too_deep(text, line):
        raise RuntimeStateError(
            f"a {kind} record is nested more than {MAX_LINE_DEPTH} levels "
            "deep, which readers skip as broken"
        )
    return data + b"\n"


#: What ``_load_line`` notes when the parser itself ran out of recursion.
_TOO_DEEP = object()


def _load_line(raw: bytes) -> Any:
    """The JSON value of one line; ``_BadLine`` for anything no writer of this format writes."""
    try:
        text = raw.decode("utf-8")  # strict: also refuses UTF-8-encoded surrogates
    except UnicodeDecodeError as exc:
        raise _BadLine(f"not valid JSON (not UTF-8 at byte {exc.start})") from None
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        data = _TOO_DEEP
    except ValueError as exc:  # also NaN, 1e999, an integer of more digits than Python reads
        raise _BadLine(f"not valid JSON ({exc})") from None
    if data is _TOO_DEEP or _too_deep(text, data):
        raise _BadLine(f"nested more than {MAX_LINE_DEPTH} levels deep")
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise _BadLine("a string holds a lone surrogate (not text)") from None
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _too_deep(text: str, data: Any) -> bool:
    """Whether ``data`` (parsed from or dumped to ``text``) nests more than ``MAX_LINE_DEPTH``
    levels; a walk without recursion, and only when ``text`` has enough brackets to be."""
    if text.count("{") + text.count("[") <= MAX_LINE_DEPTH:
        return False
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, (list, tuple)):
            continue
        if depth == MAX_LINE_DEPTH:
            return True
        stack.extend((item, depth + 1) for item in value)
    return False


@dataclasses.dataclass
class _Entry:
    """One good line: what it says, and where."""

    line_no: int
    data: dict[str, Any]


@dataclasses.dataclass
class _Tail:
    """What has been read of one file: lines up to ``offset`` are parsed."""

    name: str
    path: Path
    ident: tuple[int, int] | None = None
    offset: int = 0
    line_no: int = 0
    #: The last bytes read, to notice a file rewritten in place under the same size or more.
    last_bytes: bytes = b""


@dataclasses.dataclass
class _State:
    """Everything the lines read so far say."""

    sessions: dict[str, SessionRecord] = dataclasses.field(default_factory=dict)
    executions: dict[str, ExecutionRecord] = dataclasses.field(default_factory=dict)
    snapshots: dict[tuple[str, str], ConfigSnapshot] = dataclasses.field(default_factory=dict)
    smoke_tests: dict[tuple[str, str], SmokeTestDefinition] = dataclasses.field(
        default_factory=dict
    )
    escalation_paths: dict[tuple[str, str], EscalationPathDefinition] = dataclasses.field(
        default_factory=dict
    )
    messages: dict[str, Message] = dataclasses.field(default_factory=dict)
    agents: dict[str, AgentRecord] = dataclasses.field(default_factory=dict)
    agent_lines: int = 0
    conflicts: dict[str, ConflictRecord] = dataclasses.field(default_factory=dict)
    leases: dict[str, Lease] = dataclasses.field(default_factory=dict)
    lease_lines: int = 0
    #: The largest fencing token of any lease line read, complete grant or not.
    max_token: int = 0
    #: Lines of grants not all of whose lines are there (yet), by grant token.
    pending_grants: dict[str, list[Lease]] = dataclasses.field(default_factory=dict)
    escalations: dict[str, EscalationRecord] = dataclasses.field(default_factory=dict)
    escalation_lines: int = 0
    deliveries: list[DeliveryRecord] = dataclasses.field(default_factory=list)
    waivers: dict[str, WaiverRecord] = dataclasses.field(default_factory=dict)
    decisions: dict[str, DecisionRecord] = dataclasses.field(default_factory=dict)
    silences: dict[str, SilenceRecord] = dataclasses.field(default_factory=dict)
    #: Bundle tokens whose session line has been read.
    committed: set[str] = dataclasses.field(default_factory=set)
    #: Lines of bundles whose session line is not (yet) there, by token.
    pending: dict[str, list[tuple[str, Any]]] = dataclasses.field(default_factory=dict)


class JsonRuntime(RuntimeState):
    """Records in JSON Lines files under ``root / "runtime"``; see the module docstring."""

    mode = "json"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.directory = self.root / "runtime"
        #: Broken lines skipped while reading: ``"<file> line <n>: <what is wrong>"``.
        self.problems: list[str] = []
        self._seen_problems: set[tuple[str, tuple[int, int] | None, int]] = set()
        self._mutex = threading.RLock()
        self._tails = {name: _Tail(name, self.directory / file) for name, file in FILES.items()}
        self._state = _State()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuntimeUnavailable(
                f"cannot create the JSON runtime directory {self.directory}: {exc.strerror or exc}"
            ) from exc
        import filelock

        self._lock = filelock.FileLock(str(self.directory / ".lock"), timeout=LOCK_TIMEOUT)
        try:
            with self._locked(starting=True):
                self._start()
        except OSError as exc:
            raise RuntimeUnavailable(
                f"cannot write the JSON runtime under {self.directory}: {exc.strerror or exc}"
            ) from exc

    def _start(self) -> None:
        marker = self.directory / "state.json"
        if not marker.exists():
            write_atomic(
                marker,
                json.dumps(
                    {
                        "kind": "state",
                        "v": FORMAT_VERSION,
                        "format": "pytest-maf-preflight runtime",
                        "created_at": now(),
                    },
                    indent=2,
                ).encode()
                + b"\n",
            )
        for tail in self._tails.values():
            # Creates the files, and proves they can be appended to.
            os.close(os.open(tail.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666))
        self._refresh()

    # --- locking, reading and appending -----------------------------------------------------

    @contextmanager
    def _locked(self, starting: bool = False) -> Iterator[None]:
        import filelock

        error = RuntimeUnavailable if starting else RuntimeStateError
        with self._mutex:
            try:
                self._lock.acquire()
            except filelock.Timeout as exc:
                raise error(
                    f"the JSON runtime lock {self._lock.lock_file} was held for more "
                    f"than {LOCK_TIMEOUT:g} s"
                ) from exc
            except OSError as exc:
                raise error(f"cannot lock {self._lock.lock_file}: {exc.strerror or exc}") from exc
            try:
                yield
            except OSError as exc:
                # Any file problem while the lock is held (EACCES, EIO, ENOSPC, a directory
                # where a log should be) is the runtime's error, for the caller's fallback.
                raise error(
                    f"cannot use the JSON runtime under {self.root}: "
                    f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
                ) from exc
            finally:
                self._lock.release()

    def _problem(self, tail: _Tail, line_no: int, what: str) -> None:
        key = (tail.name, tail.ident, line_no)
        if key in self._seen_problems:
            return
        self._seen_problems.add(key)
        text = f"{tail.path.name} line {line_no}: {what}"
        self.problems.append(text)
        logger.warning("JSON runtime %s: skipped %s", self.directory, text)

    def _refresh(self) -> None:
        """Read what was appended since the last call (the file lock held)."""
        fresh: dict[str, list[_Entry]] = {}
        for name, tail in self._tails.items():
            entries = self._read_new(tail)
            if entries is None:  # rewritten or shrunk: start over from every file
                self._reset()
                self._refresh()
                return
            fresh[name] = entries
        # Sessions first: a bundle's session line commits the lines read with it.
        for entry in fresh["sessions"]:
            self._apply_session(entry)
        for entry in fresh["executions"]:
            self._apply_bundled("execution", entry, ExecutionRecord)
        for entry in fresh["snapshots"]:
            self._apply_bundled("snapshot", entry, ConfigSnapshot)
        for entry in fresh["smoke_tests"]:
            self._apply_bundled("smoke_test", entry, SmokeTestDefinition)
        for entry in fresh["escalation_paths"]:
            self._apply_bundled("escalation_path", entry, EscalationPathDefinition)
        for entry in fresh["messages"]:
            self._apply_message(entry)
        for entry in fresh["agents"]:
            self._apply_agent(entry)
        for entry in fresh["conflicts"]:
            self._apply_bundled("conflict", entry, ConflictRecord)
        for entry in fresh["leases"]:
            self._apply_lease(entry)
        for entry in fresh["escalations"]:
            self._apply_escalation(entry)
        for entry in fresh["deliveries"]:
            self._apply_delivery(entry)
        for entry in fresh["waivers"]:
            self._apply_live("waivers", entry, WaiverRecord, self._state.waivers)
        for entry in fresh["decisions"]:
            record = self._decode_entry("decisions", entry, DecisionRecord)
            if record is not None:
                self._state.decisions.setdefault(record.id, record)
        for entry in fresh["silences"]:
            self._apply_live("silences", entry, SilenceRecord, self._state.silences)

    def _reset(self) -> None:
        self._state = _State()
        for name, file in FILES.items():
            self._tails[name] = _Tail(name, self.directory / file)

    def _read_new(self, tail: _Tail) -> list[_Entry] | None:
        """The complete new lines of a file, parsed; None when it was replaced or rewritten."""
        try:
            handle = open(tail.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return None if tail.ident is not None else []
        with handle:
            stat = os.fstat(handle.fileno())
            ident = (stat.st_dev, stat.st_ino)
            if tail.ident is None:
                tail.ident = ident
            elif ident != tail.ident or stat.st_size < tail.offset:
                return None
            if stat.st_size == tail.offset:
                return []
            start = tail.offset - len(tail.last_bytes)
            handle.seek(start)
            data = handle.read()
        if data[: len(tail.last_bytes)] != tail.last_bytes:
            return None
        data = data[len(tail.last_bytes) :]
        end = data.rfind(b"\n") + 1
        complete, rest = data[:end], data[end:]
        entries = []
        for raw in complete.split(b"\n")[:-1]:
            tail.line_no += 1
            entry = self._parse(tail, raw)
            if entry is not None:
                entries.append(entry)
        if end:
            tail.offset += end
            tail.last_bytes = complete[-64:]
        if rest:
            self._problem(
                tail,
                tail.line_no + 1,
                "truncated line (no line end), "
                f"{len(rest)} bytes: probably a writer killed while appending",
            )
        return entries

    def _parse(self, tail: _Tail, raw: bytes) -> _Entry | None:
        if not raw.strip():
            return None
        try:
            data = _load_line(raw)
        except _BadLine as exc:
            self._problem(tail, tail.line_no, f"{exc}; {len(raw)} bytes")
            return None
        if not isinstance(data, dict):
            self._problem(tail, tail.line_no, "not a JSON object")
            return None
        expected = _KIND_OF_FILE[tail.name]
        if data.get("kind") != expected:
            self._problem(tail, tail.line_no, f"kind {data.get('kind')!r}, expected {expected!r}")
            return None
        if data.get("v") != FORMAT_VERSION:
            self._problem(tail, tail.line_no, f"unsupported format version {data.get('v')!r}")
            return None
        return _Entry(tail.line_no, data)

    def _bad(self, name: str, entry: _Entry, what: str) -> None:
        self._problem(self._tails[name], entry.line_no, what)

    def _apply_session(self, entry: _Entry) -> None:
        try:
            record = _decode(SessionRecord, entry.data.get("record"))
            token = entry.data.get("bundle")
            if not isinstance(token, str):
                raise _BadLine("no bundle token")
        except (_BadLine, TypeError) as exc:
            self._bad("sessions", entry, f"invalid session: {exc}")
            return
        state = self._state
        state.sessions.setdefault(record.id, record)
        state.committed.add(token)
        for kind, item in state.pending.pop(token, []):
            self._store(kind, item)

    def _apply_bundled(self, kind: str, entry: _Entry, cls: type[Any]) -> None:
        name = f"{kind}s"
        try:
            record = _decode(cls, entry.data.get("record"))
            token = entry.data.get("bundle")
            if token is not None and not isinstance(token, str):
                raise _BadLine("bundle token is not a string")
        except (_BadLine, TypeError) as exc:
            self._bad(name, entry, f"invalid {kind}: {exc}")
            return
        if token is None or token in self._state.committed:
            self._store(kind, record)
        else:
            self._state.pending.setdefault(token, []).append((kind, record))

    def _store(self, kind: str, record: Any) -> None:
        state = self._state
        if kind == "execution":
            state.executions.setdefault(record.id, record)
        elif kind == "snapshot":
            state.snapshots.setdefault((record.config_id, record.content_hash), record)
        elif kind == "conflict":
            state.conflicts.setdefault(record.id, record)
        elif kind == "smoke_test":
            state.smoke_tests.setdefault((record.nodeid, record.content_hash), record)
        elif kind == "escalation_path":
            state.escalation_paths.setdefault((record.path_id, record.content_hash), record)
        else:
            state.messages.setdefault(record.id, record)

    def _apply_message(self, entry: _Entry) -> None:
        event = entry.data.get("event")
        if event == "enqueue":
            self._apply_bundled("message", entry, Message)
            return
        message_id = entry.data.get("id")
        if event not in ("deliver", "ack") or not isinstance(message_id, str):
            self._bad("messages", entry, f"invalid message event {event!r}")
            return
        message = self._state.messages.get(message_id)
        if message is None:
            self._bad("messages", entry, f"{event} of an unknown message {message_id!r}")
        elif event == "ack":
            self._state.messages[message_id] = dataclasses.replace(message, status="acked")
        elif message.status == "queued":
            self._state.messages[message_id] = dataclasses.replace(message, status="delivered")

    def _apply_agent(self, entry: _Entry) -> None:
        try:
            record = _decode(AgentRecord, entry.data.get("record"))
        except (_BadLine, TypeError) as exc:
            self._bad("agents", entry, f"invalid agent: {exc}")
            return
        self._state.agents[record.id] = record
        self._state.agent_lines += 1

    def _apply_lease(self, entry: _Entry) -> None:
        try:
            record = _decode(Lease, entry.data.get("record"))
            grant, size = entry.data.get("grant"), entry.data.get("of")
            if grant is not None and not (
                isinstance(grant, str)
                and isinstance(size, int)
                and not isinstance(size, bool)
                and size > 0
            ):
                raise _BadLine("grant token or size is wrong")
        except (_BadLine, TypeError) as exc:
            self._bad("leases", entry, f"invalid lease: {exc}")
            return
        state = self._state
        state.lease_lines += 1
        state.max_token = max(state.max_token, record.fencing_token)
        if grant is None:
            state.leases[record.id] = record
            return
        parts = state.pending_grants.setdefault(grant, [])
        parts.append(record)
        if len(parts) >= typing.cast(int, size):
            for lease in state.pending_grants.pop(grant):
                state.leases[lease.id] = lease

    def _apply_escalation(self, entry: _Entry) -> None:
        try:
            record = _decode(EscalationRecord, entry.data.get("record"))
        except (_BadLine, TypeError) as exc:
            self._bad("escalations", entry, f"invalid escalation: {exc}")
            return
        self._state.escalations[record.id] = record
        self._state.escalation_lines += 1

    def _apply_delivery(self, entry: _Entry) -> None:
        try:
            record = _decode(DeliveryRecord, entry.data.get("record"))
        except (_BadLine, TypeError) as exc:
            self._bad("deliveries", entry, f"invalid delivery: {exc}")
            return
        self._state.deliveries.append(record)

    def _decode_entry(self, name: str, entry: _Entry, cls: type[R]) -> R | None:
        """The record of a standalone line, or ``None`` (reported) when it is broken."""
        try:
            return _decode(cls, entry.data.get("record"))
        except (_BadLine, TypeError) as exc:
            self._bad(name, entry, f"invalid {_KIND_OF_FILE[name]}: {exc}")
            return None

    def _apply_live(self, name: str, entry: _Entry, cls: type[R], into: dict[str, R]) -> None:
        """A line of a record that changes (a waiver, a silence): the last line of an id wins."""
        record = self._decode_entry(name, entry, cls)
        if record is not None:
            into[typing.cast(Any, record).id] = record

    def _append(self, name: str, lines: list[bytes]) -> None:
        """Append ``lines`` to one file in one write, then fsync (the file lock held)."""
        if not lines:
            return
        tail = self._tails[name]
        data = b"".join(lines)
        fd = os.open(tail.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                # A killed writer's truncated line: end it, so it stays one broken line.
                data = b"\n" + data
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write(self, appends: list[tuple[str, list[bytes]]]) -> None:
        try:
            for name, lines in appends:
                self._append(name, lines)
        except OSError as exc:
            raise RuntimeStateError(
                f"cannot append to the JSON runtime under {self.directory}: {exc.strerror or exc}"
            ) from exc

    @contextmanager
    def _current(self) -> Iterator[_State]:
        """The state as the files say now, the file lock held for the block."""
        with self._locked():
            self._refresh()
            yield self._state

    # --- sessions and executions ------------------------------------------------------------

    def record_session(self, bundle: SessionBundle) -> None:
        token = new_id()
        with self._current() as state:
            executions: list[bytes] = []
            snapshots: list[bytes] = []
            messages: list[bytes] = []
            seen: set[Any] = set()
            for execution in bundle.executions:
                if execution.id not in state.executions and execution.id not in seen:
                    seen.add(execution.id)
                    executions.append(_line("execution", bundle=token, record=to_json(execution)))
            for snapshot in bundle.snapshots:
                key = ("snapshot", snapshot.config_id, snapshot.content_hash)
                if (key[1], key[2]) not in state.snapshots and key not in seen:
                    seen.add(key)
                    snapshots.append(_line("snapshot", bundle=token, record=to_json(snapshot)))
            for message in bundle.messages:
                key = ("message", message.id, "")
                if message.id not in state.messages and key not in seen:
                    seen.add(key)
                    messages.append(
                        _line("message", event="enqueue", bundle=token, record=to_json(message))
                    )
            conflicts = self._new_conflicts(state, bundle.conflicts, token)
            smoke_tests = _new_definitions(
                "smoke_test",
                state.smoke_tests,
                (((d.nodeid, d.content_hash), d) for d in bundle.smoke_tests),
                token,
            )
            paths = _new_definitions(
                "escalation_path",
                state.escalation_paths,
                (((d.path_id, d.content_hash), d) for d in bundle.escalation_paths),
                token,
            )
            if bundle.session.id in state.sessions and not (
                executions or snapshots or messages or conflicts or smoke_tests or paths
            ):
                return  # everything is there already
            session = [_line("session", bundle=token, record=to_json(bundle.session))]
            # The session line last: it commits the others.
            self._write(
                [
                    ("executions", executions),
                    ("snapshots", snapshots),
                    ("messages", messages),
                    ("conflicts", conflicts),
                    ("smoke_tests", smoke_tests),
                    ("escalation_paths", paths),
                    ("sessions", session),
                ]
            )

    @staticmethod
    def _new_conflicts(
        state: _State, conflicts: Sequence[ConflictRecord], token: str | None
    ) -> list[bytes]:
        """Lines for the conflicts not stored yet (each id once)."""
        out: list[bytes] = []
        seen: set[str] = set()
        for conflict in conflicts:
            if conflict.id not in state.conflicts and conflict.id not in seen:
                seen.add(conflict.id)
                out.append(_line("conflict", bundle=token, record=to_json(conflict)))
        return out

    def sessions(
        self, limit: int | None = None, *, agent_id: str | None = None
    ) -> list[SessionRecord]:
        with self._current() as state:
            return newest_sessions(state.sessions.values(), limit, agent_id)

    def get_session(self, session_id: str) -> SessionRecord | None:
        with self._current() as state:
            return state.sessions.get(session_id)

    def executions(
        self,
        *,
        config_id: str | None = None,
        status: str | None = None,
        session_id: str | None = None,
        limit: int | None = None,
    ) -> list[ExecutionRecord]:
        with self._current() as state:
            rows = list(state.executions.values())
        return filter_executions(
            rows, config_id=config_id, status=status, session_id=session_id, limit=limit
        )

    def latest_check_execution(
        self, config_id: str, *, agent_id: str, environment: str
    ) -> ExecutionRecord | None:
        with self._current() as state:
            return newest_check_execution(
                state.executions.values(),
                state.sessions,
                config_id=config_id,
                agent_id=agent_id,
                environment=environment,
            )

    def check_stats(
        self, *, since: float | None = None, agent_id: str | None = None
    ) -> list[CheckStats]:
        since = checked_time(since, "since")
        with self._current() as state:
            rows = list(state.executions.values())
        from .check_stats import stats_of  # for stats and pages only

        return stats_of(rows, since=since, agent_id=agent_id)

    def recent_outcomes(
        self,
        *,
        per_check: int = DEFAULT_PER_CHECK,
        since: float | None = None,
        agent_id: str | None = None,
        config_ids: Sequence[str] | None = None,
    ) -> list[RecentOutcome]:
        per_check, since = checked_per_check(per_check), checked_time(since, "since")
        wanted = checked_ids(config_ids)
        with self._current() as state:
            rows = list(state.executions.values())
        return outcomes_of(
            rows, per_check=per_check, since=since, agent_id=agent_id, config_ids=wanted
        )

    def config_snapshots(self, config_id: str | None = None) -> list[ConfigSnapshot]:
        with self._current() as state:
            return newest_snapshots(state.snapshots.values(), config_id)

    def smoke_tests(self, nodeid: str | None = None) -> list[SmokeTestDefinition]:
        with self._current() as state:
            return newest_definitions(state.smoke_tests.values(), "nodeid", nodeid)

    def escalation_paths(self, path_id: str | None = None) -> list[EscalationPathDefinition]:
        with self._current() as state:
            return newest_definitions(state.escalation_paths.values(), "path_id", path_id)

    # --- messages --------------------------------------------------------------------------

    def _store_messages(self, records: Sequence[Message]) -> None:
        # One append of standalone lines: a writer killed half-way keeps whole messages only.
        with self._current() as state:
            seen: set[str] = set()
            lines: list[bytes] = []
            for message in records:
                if message.id not in state.messages and message.id not in seen:
                    seen.add(message.id)
                    lines.append(
                        _line("message", event="enqueue", bundle=None, record=to_json(message))
                    )
            self._write([("messages", lines)])

    def dequeue(self, recipient: str | None = None, limit: int = 1) -> list[Message]:
        with self._current() as state:
            queued = messages_in_order(state.messages.values(), "queued", recipient)[
                : checked_limit(limit)
            ]
            if not queued:
                return []
            at = now()
            self._write(
                [("messages", [_line("message", event="deliver", id=m.id, at=at) for m in queued])]
            )
        return [dataclasses.replace(m, status="delivered") for m in queued]

    def ack(self, message_id: str) -> bool:
        with self._current() as state:
            message = state.messages.get(message_id)
            if message is None:
                return False
            if message.status == "acked":
                return True
            self._write([("messages", [_line("message", event="ack", id=message_id, at=now())])])
            return True

    def messages(
        self,
        status: str | None = None,
        *,
        types: Sequence[str] | None = None,
        agent_id: str | None = None,
        since: float | None = None,
    ) -> list[Message]:
        with self._current() as state:
            return messages_in_order(
                state.messages.values(), status, types=types, agent_id=agent_id, since=since
            )

    # --- agents ----------------------------------------------------------------------------

    def heartbeat(
        self,
        agent_id: str,
        at: float | None = None,
        details: dict[str, Any] | None = None,
        *,
        agent_type: str = "worker",
        capabilities: Sequence[str] = (),
        status: str = "active",
    ) -> AgentRecord:
        record = agent_record(
            agent_id,
            now() if at is None else at,
            details,
            agent_type=agent_type,
            capabilities=capabilities,
            status=status,
        )
        with self._current() as state:
            self._write([("agents", [_line("agent", record=to_json(record))])])
            lines = state.agent_lines + 1
            if lines >= AGENTS_COMPACT_LINES and lines >= 4 * (len(state.agents) + 1):
                self._refresh()
                self._compact_agents()
        return record

    def agents(self) -> list[AgentRecord]:
        with self._current() as state:
            return sorted(state.agents.values(), key=lambda a: a.id)

    def _compact_agents(self) -> None:
        """Rewrite the agents file whole, one line per agent (the file lock held)."""
        lines = [
            _line("agent", record=to_json(a))
            for a in sorted(self._state.agents.values(), key=lambda a: a.id)
        ]
        write_atomic(self._tails["agents"].path, b"".join(lines))
        self._reset()
        self._refresh()

    # --- leases ----------------------------------------------------------------------------

    def acquire_leases(
        self,
        agent_id: str,
        patterns: Sequence[str],
        *,
        exclusive: bool = True,
        ttl: float,
        reason: str = "",
        now: float | None = None,
    ) -> LeaseGrant:
        request = LeaseRequest.check(
            agent_id, patterns, exclusive=exclusive, ttl=ttl, reason=reason, now=now
        )
        ids = [new_id() for _ in request.patterns]
        grant = new_id()
        with self._current() as state:
            at = at_or_now(request.now)
            blocking = blocking_leases(
                state.leases.values(), request.agent_id, request.patterns, request.exclusive, at
            )
            if blocking:
                return LeaseGrant(granted=(), conflicts=tuple(blocking))
            granted = request.leases(ids, state.max_token + 1, at)
            self._write_leases(
                [
                    _line("lease", grant=grant, of=len(granted), record=to_json(lease))
                    for lease in granted
                ]
            )
        return LeaseGrant(granted=granted, conflicts=())

    def renew_lease(
        self, lease_id: str, agent_id: str, *, ttl: float, now: float | None = None
    ) -> Lease:
        agent_id, ttl, given = checked_agent(agent_id), checked_ttl(ttl), checked_time(now)
        with self._current() as state:
            lease = owned_lease(state.leases.get(lease_id), lease_id, agent_id)
            renewed = renewed_lease(
                lease, agent_id, ttl, at_or_now(given), state.max_token + 1, state.leases.values()
            )
            self._write_leases([_line("lease", record=to_json(renewed))])
        return renewed

    def release_lease(self, lease_id: str, agent_id: str, *, now: float | None = None) -> Lease:
        agent_id, given = checked_agent(agent_id), checked_time(now)
        with self._current() as state:
            lease = owned_lease(state.leases.get(lease_id), lease_id, agent_id)
            if lease.released_at is not None:
                return lease
            released = dataclasses.replace(lease, released_at=at_or_now(given))
            self._write_leases([_line("lease", record=to_json(released))])
        return released

    def release_stale_leases(
        self, *, now: float | None = None, idle_agent_seconds: float | None = None
    ) -> list[Lease]:
        given, idle = checked_time(now), checked_idle(idle_agent_seconds)
        with self._current() as state:
            at = at_or_now(given)
            stale = [
                dataclasses.replace(lease, released_at=at)
                for lease in stale_leases(state.leases.values(), state.agents.values(), at, idle)
            ]
            self._write_leases([_line("lease", record=to_json(lease)) for lease in stale])
        return stale

    def leases(
        self, *, active_only: bool = True, agent_id: str | None = None, now: float | None = None
    ) -> list[Lease]:
        given = checked_time(now)
        with self._current() as state:
            return filter_leases(
                state.leases.values(),
                active_only=active_only,
                agent_id=agent_id,
                at=at_or_now(given),
            )

    def _write_leases(self, lines: list[bytes]) -> None:
        """Append to the lease log, and compact it when it is long (the file lock held)."""
        if not lines:
            return
        self._write([("leases", lines)])
        state = self._state
        total = state.lease_lines + len(lines)
        if total >= LEASES_COMPACT_LINES and total >= 4 * (len(state.leases) + len(lines)):
            self._refresh()
            self._compact_leases()

    def _compact_leases(self) -> None:
        """Rewrite the lease log whole, the last line of each lease (the file lock held)."""
        leases = sorted(self._state.leases.values(), key=lambda lease: lease.fencing_token)
        write_atomic(
            self._tails["leases"].path,
            b"".join(_line("lease", record=to_json(lease)) for lease in leases),
        )
        self._reset()
        self._refresh()

    # --- reservation conflicts -------------------------------------------------------------

    def record_conflicts(self, conflicts: Sequence[ConflictRecord]) -> None:
        with self._current() as state:
            self._write([("conflicts", self._new_conflicts(state, conflicts, None))])

    def reservation_conflicts(
        self, *, session_id: str | None = None, limit: int | None = None
    ) -> list[ConflictRecord]:
        with self._current() as state:
            return newest_conflicts(state.conflicts.values(), session_id, limit)

    # --- escalations -----------------------------------------------------------------------

    def open_escalation(
        self,
        *,
        path_id: str,
        dedup_key: str,
        check_id: str | None,
        failure_class: str | None,
        path_snapshot: Mapping[str, Any],
        next_action_at: float | None,
        details: Mapping[str, Any],
        now: float | None = None,
    ) -> tuple[EscalationRecord, bool]:
        opening = EscalationOpening.check(
            path_id=path_id,
            dedup_key=dedup_key,
            check_id=check_id,
            failure_class=failure_class,
            path_snapshot=path_snapshot,
            next_action_at=next_action_at,
            details=details,
            now=now,
        )
        escalation_id = new_id()
        with self._current() as state:
            at = at_or_now(opening.now)
            current = open_for_key(state.escalations.values(), opening.dedup_key)
            if current is not None:
                record, created = another_occurrence(current, at), False
            else:
                record, created = opening.record(escalation_id, at), True
            self._write_escalation(record)
        return record, created

    def claim_escalation(
        self,
        escalation_id: str,
        *,
        expect_level: int,
        expect_next_action_at: float | None,
        level: int,
        next_action_at: float | None,
        state: EscalationState,
        details: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> EscalationRecord | None:
        claim = EscalationClaim.check(
            expect_level=expect_level,
            expect_next_action_at=expect_next_action_at,
            level=level,
            next_action_at=next_action_at,
            state=state,
            details=details,
            now=now,
        )
        with self._current() as current:
            claimed = claim.apply(current.escalations.get(escalation_id), at_or_now(claim.now))
            if claimed is not None:
                self._write_escalation(claimed)
        return claimed

    def transition_escalation(
        self,
        escalation_id: str,
        *,
        state: EscalationState,
        by: str | None,
        from_states: Sequence[EscalationState],
        now: float | None = None,
    ) -> EscalationRecord | None:
        move = EscalationTransition.check(state=state, by=by, from_states=from_states, now=now)
        with self._current() as current:
            moved = move.apply(current.escalations.get(escalation_id), at_or_now(move.now))
            if moved is not None:
                self._write_escalation(moved)
        return moved

    def get_escalation(self, escalation_id: str) -> EscalationRecord | None:
        with self._current() as state:
            return state.escalations.get(escalation_id)

    def escalations(
        self,
        *,
        states: Sequence[str] | None = None,
        path_id: str | None = None,
        check_id: str | None = None,
        limit: int | None = None,
    ) -> list[EscalationRecord]:
        with self._current() as state:
            rows = list(state.escalations.values())
        return filter_escalations(
            rows, states=states, path_id=path_id, check_id=check_id, limit=limit
        )

    def due_escalations(self, now: float) -> list[EscalationRecord]:
        at = required_time(now)
        with self._current() as state:
            return due_in_order(state.escalations.values(), at)

    def record_delivery(self, delivery: DeliveryRecord) -> None:
        delivery = checked_delivery(delivery)
        with self._current() as state:
            if delivery.escalation_id not in state.escalations:
                raise unknown_escalation(delivery.escalation_id)
            self._write([("deliveries", [_line("delivery", record=to_json(delivery))])])

    def deliveries(self, escalation_id: str | None = None) -> list[DeliveryRecord]:
        with self._current() as state:
            return deliveries_in_order(state.deliveries, escalation_id)

    def _write_escalation(self, record: EscalationRecord) -> None:
        """Append one escalation line, and compact the log when it is long (the lock held)."""
        self._write([("escalations", [_line("escalation", record=to_json(record))])])
        state = self._state
        total = state.escalation_lines + 1
        if total >= ESCALATIONS_COMPACT_LINES and total >= 4 * (len(state.escalations) + 1):
            self._refresh()
            self._compact_escalations()

    def _compact_escalations(self) -> None:
        """Rewrite the escalation log whole, the last line of each (the file lock held)."""
        rows = sorted(self._state.escalations.values(), key=lambda e: (e.created_at, e.id))
        write_atomic(
            self._tails["escalations"].path,
            b"".join(_line("escalation", record=to_json(e)) for e in rows),
        )
        self._reset()
        self._refresh()

    # --- waivers, decisions and silences ------------------------------------------------------

    def add_waiver(self, record: WaiverRecord) -> None:
        record = checked_waiver(record)
        line = _line("waiver", record=to_json(record))
        with self._current() as state:
            if record.id not in state.waivers:
                self._write([("waivers", [line])])

    def waivers(
        self, active_at: float | None = None, check_id: str | None = None
    ) -> list[WaiverRecord]:
        at = checked_time(active_at, "active_at")
        with self._current() as state:
            return filter_waivers(state.waivers.values(), at, check_id)

    def revoke_waiver(
        self, waiver_id: str, by: str, now: float | None = None
    ) -> WaiverRecord | None:
        by, given = checked_by(by), checked_time(now)
        with self._current() as state:
            current = state.waivers.get(waiver_id)
            if current is None:
                return None
            changed = revoked(current, by, at_or_now(given))
            if changed is not current:
                self._write([("waivers", [_line("waiver", record=to_json(changed))])])
        return changed

    def record_decision(self, record: DecisionRecord) -> None:
        record = checked_decision(record)
        line = _line("decision", record=to_json(record))
        with self._current() as state:
            if record.id not in state.decisions:
                self._write([("decisions", [line])])

    def decisions(self, escalation_id: str | None = None) -> list[DecisionRecord]:
        with self._current() as state:
            return newest_decisions(state.decisions.values(), escalation_id)

    def add_silence(self, record: SilenceRecord) -> None:
        record = checked_silence(record)
        line = _line("silence", record=to_json(record))
        with self._current() as state:
            if record.id not in state.silences:
                self._write([("silences", [line])])

    def silences(self, active_at: float | None = None) -> list[SilenceRecord]:
        at = checked_time(active_at, "active_at")
        with self._current() as state:
            return filter_silences(state.silences.values(), at)

    def expire_silence(
        self, silence_id: str, by: str, now: float | None = None
    ) -> SilenceRecord | None:
        by, given = checked_by(by), checked_time(now)
        with self._current() as state:
            current = state.silences.get(silence_id)
            if current is None:
                return None
            changed = ended(current, by, at_or_now(given))
            if changed is not current:
                self._write([("silences", [_line("silence", record=to_json(changed))])])
        return changed

    # --- the rest --------------------------------------------------------------------------

    def info(self) -> RuntimeInfo:
        with self._current() as state:
            counts = {
                "sessions": len(state.sessions),
                "executions": len(state.executions),
                "config_snapshots": len(state.snapshots),
                "messages": len(state.messages),
                "agents": len(state.agents),
                "leases": len(state.leases),
                "reservation_conflicts": len(state.conflicts),
                "escalations": len(state.escalations),
                "escalation_deliveries": len(state.deliveries),
                "smoke_tests": len(state.smoke_tests),
                "escalation_paths": len(state.escalation_paths),
                "waivers": len(state.waivers),
                "escalation_decisions": len(state.decisions),
                "silences": len(state.silences),
            }
            pending = sum(len(items) for items in state.pending.values())
            grants = sum(len(items) for items in state.pending_grants.values())
        notes = [f"skipped {p}" for p in self.problems]
        if pending:
            notes.append(f"{pending} records of bundles that were never completed are ignored")
        if grants:
            notes.append(f"{grants} leases of grants that were never completed are ignored")
        return RuntimeInfo(
            mode=self.mode,
            location=str(self.directory),
            schema_version=FORMAT_VERSION,
            counts=counts,
            notes=tuple(notes),
        )

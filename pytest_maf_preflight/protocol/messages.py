"""The protocol messages (SPEC S6): an envelope, five message types, and their JSON Schemas.

Every message is an ``Envelope`` (``id``, ``type``, ``timestamp``, ``agent_id``,
``correlation_id``, ``version``) plus a body whose fields depend on ``type``. ``type`` is a
``Literal`` on each model, so ``ProtocolMessage`` is a union discriminated on it.

The models are strict (no coercion of ``"1"`` to ``1``; no NaN or infinity) and forbid unknown
keys, so what ``parse_message`` accepts is what the generated JSON Schema accepts.

In the runtime queue a message is a ``runtime.records.Message``: the envelope's fields are its
columns (``timestamp`` as ``created_at``) and the body is its ``payload``. The record has no
column for the envelope's ``version``, so the payload carries it too (see ``to_record``).

This module imports pydantic; nothing on the plugin's idle path imports it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from ..config.errors import format_path, kind
from ..names import NAME_PATTERN, NAME_RULE
from ..runtime.records import ExecutionStatus, Message, new_id, now

#: An agent name (also a message id): it may become part of a mailbox path.
AgentId = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=128)]
MessageId = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=128)]
Text = Annotated[str, Field(min_length=1)]
Severity = Literal["critical", "warning"]
EscalationAction = Literal["acknowledge", "resolve", "reject", "approve"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
#: What a failed pattern means, for error messages (pydantic only repeats the regex).
_PATTERN_RULES = {NAME_PATTERN: NAME_RULE}


class ProtocolError(ValueError):
    """An invalid protocol message. ``str()`` is one line naming the field path;
    ``errors`` holds every ``(path, message)`` found."""

    def __init__(self, message: str, errors: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.errors: tuple[tuple[str, str], ...] = tuple(errors)

    @property
    def path(self) -> str:
        """The path of the first problem (``"(message)"`` for the message as a whole)."""
        return self.errors[0][0] if self.errors else "(message)"


def _type_required(schema: dict[str, Any]) -> None:
    """``type`` has a default on each model (so Python callers may omit it), but a message on
    the wire must name its type: the schema requires it, as ``parse_message`` does."""
    schema.get("properties", {}).get("type", {}).pop("default", None)
    required = schema.setdefault("required", [])
    if "type" not in required:
        required.insert(0, "type")


class Envelope(BaseModel):
    """The fields every message shares. Subclasses narrow ``type`` to one ``Literal``."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        json_schema_extra=_type_required,
        # Built when first used: escalation notices need one or two of the five models.
        defer_build=True,
    )

    id: MessageId = Field(default_factory=new_id, description="Unique id (uuid4 hex by default)")
    type: str = Field(description="The message type; selects the body")
    timestamp: float = Field(default_factory=now, ge=0, description="Epoch seconds")
    agent_id: AgentId = Field(description="The agent that sent the message")
    correlation_id: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        default=None, description="Ties a reply or result to the message it answers"
    )
    version: int = Field(default=1, ge=1, description="Protocol version of the envelope")


ENVELOPE_FIELDS: frozenset[str] = frozenset(Envelope.model_fields)


class PreflightCheck(Envelope):
    """A request to run one config's check."""

    type: Literal["PREFLIGHT_CHECK"] = "PREFLIGHT_CHECK"
    config_id: Text
    execution_id: Text
    check_type: Text = Field(description="The check's kind, e.g. the smoke test's test_type")
    context: dict[str, Any] = Field(
        default_factory=dict,
        description="What else the sender says about the check (the "
        "gate: its name, severity and config version)",
    )


class PreflightResult(Envelope):
    """The outcome of one execution; the gate enqueues one per execution."""

    type: Literal["PREFLIGHT_RESULT"] = "PREFLIGHT_RESULT"
    config_id: Text
    config_version: str
    execution_id: Text
    session_id: Text
    status: ExecutionStatus
    duration: float = Field(ge=0, description="Seconds")
    attempts: int = Field(ge=0)
    error_message: str | None = None
    summary: str = ""


class ReservationConflict(Envelope):
    """Another agent holds a reservation on paths this agent touches."""

    type: Literal["RESERVATION_CONFLICT"] = "RESERVATION_CONFLICT"
    conflict_type: Text
    severity: Severity
    # A finding without a holder (a changed path nobody reserved, a reserved path that is gone)
    # names neither an agent nor a pattern.
    holder_agent: Text | None = Field(default=None, description="The agent holding the lease")
    path_pattern: Text | None = Field(default=None, description="The holder's pattern")
    expires_at: float | None = Field(default=None, description="Epoch seconds")
    paths: list[str] = Field(default_factory=list, description="This agent's paths it covers")
    execution_id: Text | None = Field(
        default=None, description="The execution of the check that found it"
    )
    config_id: Text | None = Field(default=None, description="That check's config id")
    conflict_id: Text | None = Field(default=None, description="Its row in reservation_conflicts")
    source: str | None = Field(default=None, description="Where the holder's lease lives")
    message: str = Field(default="", description="The conflict as one line")


class EscalationRequest(Envelope):
    """An escalation raised along an escalation path, at one level, to one target."""

    type: Literal["ESCALATION_REQUEST"] = "ESCALATION_REQUEST"
    escalation_id: Text
    path_id: Text
    level: int = Field(ge=1)
    target: Text
    severity: Severity
    summary: str
    dedup_key: Text
    details: dict[str, Any] = Field(default_factory=dict)


class EscalationResponse(Envelope):
    """A responder's answer to an escalation."""

    type: Literal["ESCALATION_RESPONSE"] = "ESCALATION_RESPONSE"
    escalation_id: Text
    action: EscalationAction
    responder: AgentId
    note: str | None = None
    accepted: bool | None = Field(
        default=None,
        description="For a decision (action approve or reject): whether the escalation's "
        "request was accepted, that is approved and its check waived",
    )


ProtocolMessage = Annotated[
    PreflightCheck | PreflightResult | ReservationConflict | EscalationRequest | EscalationResponse,
    Field(discriminator="type"),
]

#: Message type -> model.
MESSAGE_TYPES: dict[str, type[Envelope]] = {
    "PREFLIGHT_CHECK": PreflightCheck,
    "PREFLIGHT_RESULT": PreflightResult,
    "RESERVATION_CONFLICT": ReservationConflict,
    "ESCALATION_REQUEST": EscalationRequest,
    "ESCALATION_RESPONSE": EscalationResponse,
}


@functools.cache
def _adapter() -> TypeAdapter[ProtocolMessage]:
    """The union's validator, built when a message is first parsed (not at import)."""
    return TypeAdapter(ProtocolMessage)


def _describe(error: ErrorDetails) -> tuple[str, str]:
    """One pydantic error as ``(path, message)``; the union's tag is dropped from the path."""
    loc = error["loc"]
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        if error["type"] == "union_tag_not_found":
            return "type", "missing message type"
        return "type", (
            f"unknown message type {error['input'].get('type')!r}; expected one of "
            f"{', '.join(MESSAGE_TYPES)}"
        )
    if loc and loc[0] in MESSAGE_TYPES:
        loc = loc[1:]
    message = error["msg"]
    pattern = (error.get("ctx") or {}).get("pattern")
    if error["type"] == "string_pattern_mismatch" and pattern in _PATTERN_RULES:
        message = f"{error['input']!r} is not a valid name ({_PATTERN_RULES[pattern]})"
    elif error["type"] == "missing":
        message = "required field missing"
    elif error["type"] == "extra_forbidden":
        message = "unknown field"
    return format_path(loc), message


def _error(prefix: str, exc: ValidationError) -> ProtocolError:
    errors = [_describe(error) for error in exc.errors()]
    path, message = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ProtocolError(f"{prefix}: {path}: {message}{more}".replace("\n", " "), errors)


def parse_message(data: Mapping[str, Any]) -> ProtocolMessage:
    """Validate a message (a JSON object) into its model, chosen by ``type``.

    Raises ``ProtocolError`` (a ``ValueError``) whose one-line message names the field path.
    """
    if not isinstance(data, Mapping):
        raise ProtocolError(
            f"invalid message: (message): expected an object, got {kind(data, article=True)}",
            [("(message)", "expected an object")],
        )
    type_ = data.get("type")
    prefix = f"invalid {type_} message" if type_ in MESSAGE_TYPES else "invalid message"
    try:
        return _adapter().validate_python(dict(data))
    except ValidationError as exc:
        raise _error(prefix, exc) from None


def parse_json(text: str | bytes) -> ProtocolMessage:
    """``parse_message`` for a JSON document."""
    import json

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(
            f"invalid message: (message): not JSON: {exc}", [("(message)", "not JSON")]
        ) from None
    return parse_message(data)


def _snake(name: str) -> str:
    from ..config.migrations import snake

    return snake(name)


def message_from_mapping(data: Mapping[str, Any]) -> ProtocolMessage:
    """``parse_message`` for what callers hand ``RuntimeState.enqueue``: field names in
    snake_case or in the original MAF's camelCase (``agentId``, ``executionId``), as configs
    accept both. Only the top-level names are renamed; ``context`` and ``details`` are the
    sender's own data. Errors name the field as the caller spelled it.
    """
    if not isinstance(data, Mapping):
        return parse_message(data)
    renamed: dict[str, Any] = {}
    spelled: dict[str, str] = {}  # snake_case name -> the caller's spelling
    for key, value in data.items():
        name = _snake(key) if isinstance(key, str) else key
        if name in renamed:
            where = spelled.get(name, name)
            raise ProtocolError(
                f"invalid message: {key}: the same field as {where!r}, spelled twice; keep one",
                [(str(key), "spelled twice")],
            )
        renamed[name] = value
        if isinstance(key, str):
            spelled[name] = key
    camel = any(spelled[name] != name for name in spelled)
    try:
        return parse_message(renamed)
    except ProtocolError as exc:
        if not camel:
            raise
        errors = [(_respell(path, spelled), message) for path, message in exc.errors]
        first = str(exc).replace(f": {exc.errors[0][0]}: ", f": {errors[0][0]}: ", 1)
        raise ProtocolError(first, errors) from None


def _respell(path: str, spelled: Mapping[str, str]) -> str:
    """A field path in the caller's camelCase (a missing field: in the original's spelling)."""
    head, sep, rest = path.partition(".")
    bracket = head.find("[")
    name, tail = (head, "") if bracket < 0 else (head[:bracket], head[bracket:])
    if name in spelled:
        return f"{spelled[name]}{tail}{sep}{rest}"
    parts = name.split("_")
    return f"{parts[0]}{''.join(p.title() for p in parts[1:])}{tail}{sep}{rest}"


def as_record(message: Message | Envelope | Mapping[str, Any]) -> Message:
    """What ``RuntimeState.enqueue`` stores: a record as it is; a model, or a mapping validated
    by ``message_from_mapping``, as a new ``queued`` record. ``ProtocolError`` (a
    ``ValueError`` naming the field) for anything else."""
    if isinstance(message, Message):
        return message
    if isinstance(message, Envelope):
        return to_record(message)
    if not isinstance(message, Mapping):
        raise ProtocolError(
            f"invalid message: (message): expected a message, a record or a "
            f"mapping, got {kind(message, article=True)}",
            [("(message)", "expected an object")],
        )
    return to_record(message_from_mapping(message))


def to_json(msg: Envelope) -> dict[str, Any]:
    """A message as a JSON-able dict, every field present."""
    return msg.model_dump(mode="json")


def to_record(msg: Envelope, recipient: str | None = None) -> Message:
    """A message as a runtime queue record (status ``queued``).

    The payload is the body (every field beyond the envelope) plus ``version``, which has no
    column of its own.
    """
    payload = msg.model_dump(mode="json", exclude=set(ENVELOPE_FIELDS - {"version"}))
    return Message(
        id=msg.id,
        type=msg.type,
        agent_id=msg.agent_id,
        payload=payload,
        created_at=msg.timestamp,
        correlation_id=msg.correlation_id,
        recipient=recipient,
    )


def from_record(record: Message) -> ProtocolMessage:
    """The message a runtime queue record holds; ``ProtocolError`` if it is not a valid one."""
    prefix = f"invalid {record.type} record {record.id}"
    clashes = sorted(set(record.payload) & (ENVELOPE_FIELDS - {"version"}))
    if clashes:
        errors = [(f"payload.{name}", "envelope field in the payload") for name in clashes]
        raise ProtocolError(f"{prefix}: {errors[0][0]}: {errors[0][1]}", errors)
    data = {
        **record.payload,
        "id": record.id,
        "type": record.type,
        "agent_id": record.agent_id,
        "timestamp": record.created_at,
        "correlation_id": record.correlation_id,
    }
    try:
        return _adapter().validate_python(data)
    except ValidationError as exc:
        raise _error(prefix, exc) from None


def message_schemas() -> dict[str, dict[str, Any]]:
    """A JSON Schema (draft 2020-12) per message type, generated from the models."""
    return {
        name: {"$schema": DRAFT, **model.model_json_schema()}
        for name, model in MESSAGE_TYPES.items()
    }


def message_schema() -> dict[str, Any]:
    """The JSON Schema of any protocol message (a ``oneOf`` discriminated on ``type``)."""
    return {"$schema": DRAFT, "title": "ProtocolMessage", **_adapter().json_schema()}

"""Protocol messages (SPEC S6): round trips, dispatch on ``type``, errors and JSON Schemas."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter, ValidationError

from pytest_maf_preflight.protocol import (
    ENVELOPE_FIELDS,
    MESSAGE_TYPES,
    Envelope,
    EscalationRequest,
    EscalationResponse,
    PreflightCheck,
    PreflightResult,
    ProtocolError,
    ProtocolMessage,
    ReservationConflict,
    from_record,
    message_schema,
    message_schemas,
    parse_json,
    parse_message,
    to_json,
    to_record,
)
from pytest_maf_preflight.runtime.records import Message

TYPES = (
    "PREFLIGHT_CHECK",
    "PREFLIGHT_RESULT",
    "RESERVATION_CONFLICT",
    "ESCALATION_REQUEST",
    "ESCALATION_RESPONSE",
)


def samples() -> dict[str, Envelope]:
    """One message per type, every field set (no defaults left), envelope fields included."""
    common: dict[str, Any] = {
        "agent_id": "agent-1.worker_a",
        "correlation_id": "corr-42",
        "timestamp": 1_700_000_000.125,
    }
    return {
        "PREFLIGHT_CHECK": PreflightCheck(
            **common, id="m-check", config_id="api-health", execution_id="exec-1", check_type="http"
        ),
        "PREFLIGHT_RESULT": PreflightResult(
            **common,
            id="m-result",
            config_id="api-health",
            config_version="1.2.0",
            execution_id="exec-1",
            session_id="sess-1",
            status="failed",
            duration=0.25,
            attempts=3,
            error_message="HTTP 503 from /health",
            summary="api down",
        ),
        "RESERVATION_CONFLICT": ReservationConflict(
            **common,
            id="m-conflict",
            conflict_type="exclusive_lease",
            severity="critical",
            holder_agent="GreenCastle",
            path_pattern="src/**/*.py",
            expires_at=1_700_000_600.5,
            paths=["src/a.py", "src/b/c.py"],
        ),
        "ESCALATION_REQUEST": EscalationRequest(
            **common,
            id="m-esc",
            escalation_id="esc-7",
            path_id="ops-path",
            level=2,
            target="oncall",
            severity="warning",
            summary="3 failures in 10 minutes",
            dedup_key="ops-path:api-health",
            details={
                "failures": 3,
                "configs": ["api-health"],
                "nested": {"ok": False, "ratio": 0.5},
            },
        ),
        "ESCALATION_RESPONSE": EscalationResponse(
            **common,
            id="m-resp",
            escalation_id="esc-7",
            action="resolve",
            responder="lead-1",
            note="fixed by restart",
        ),
    }


@pytest.fixture(params=TYPES)
def message(request: pytest.FixtureRequest) -> Envelope:
    return samples()[request.param]


def body_fields(msg: Envelope) -> set[str]:
    return set(type(msg).model_fields) - ENVELOPE_FIELDS


# --- the models ------------------------------------------------------------------------------


def test_the_five_types_and_their_models() -> None:
    assert tuple(MESSAGE_TYPES) == TYPES
    for name, model in MESSAGE_TYPES.items():
        assert issubclass(model, Envelope)
        assert model.model_fields["type"].default == name


def test_envelope_defaults() -> None:
    first = PreflightCheck(agent_id="a", config_id="c", execution_id="e", check_type="t")
    second = PreflightCheck(agent_id="a", config_id="c", execution_id="e", check_type="t")
    assert re.fullmatch(r"[0-9a-f]{32}", first.id)
    assert first.id != second.id
    assert abs(first.timestamp - time.time()) < 5
    assert first.type == "PREFLIGHT_CHECK"
    assert first.correlation_id is None
    assert first.version == 1


def test_messages_are_frozen(message: Envelope) -> None:
    with pytest.raises(ValidationError):
        message.agent_id = "someone-else"  # type: ignore[misc]


# --- round trips -----------------------------------------------------------------------------


def test_record_round_trip(message: Envelope) -> None:
    record = to_record(message, recipient="lead-1")
    assert (record.id, record.type, record.agent_id) == (message.id, message.type, message.agent_id)
    assert record.created_at == message.timestamp
    assert record.correlation_id == message.correlation_id == "corr-42"
    assert record.recipient == "lead-1"
    assert record.status == "queued"
    # The payload is the body, plus the version (the record has no column for it).
    assert set(record.payload) == body_fields(message) | {"version"}
    assert from_record(record) == message


def test_record_round_trip_through_json_storage(message: Envelope) -> None:
    # What a SQLite or JSON Lines runtime does with the payload: dump it and load it back.
    record = to_record(message)
    stored = dataclasses.replace(
        record, payload=json.loads(json.dumps(record.payload)), status="delivered"
    )
    restored = from_record(stored)
    assert restored == message
    assert type(restored) is type(message)


def test_json_round_trip(message: Envelope) -> None:
    data = to_json(message)
    assert set(data) == set(type(message).model_fields)
    assert parse_json(json.dumps(data)) == message
    assert parse_json(message.model_dump_json()) == message
    assert parse_message(json.loads(json.dumps(data))) == message


def test_version_survives_the_record() -> None:
    message = PreflightCheck(
        agent_id="a", config_id="c", execution_id="e", check_type="t", version=2
    )
    restored = from_record(to_record(message))
    assert restored.version == 2
    assert restored == message


def test_correlation_id_ties_reply_to_request() -> None:
    request = samples()["ESCALATION_REQUEST"]
    reply = EscalationResponse(
        agent_id="lead-1",
        correlation_id=request.id,
        escalation_id="esc-7",
        action="acknowledge",
        responder="lead-1",
    )
    record = to_record(reply, recipient=request.agent_id)
    assert record.correlation_id == request.id
    assert from_record(record).correlation_id == request.id
    assert parse_json(reply.model_dump_json()).correlation_id == request.id
    # And its absence survives as absence.
    bare = reply.model_copy(update={"correlation_id": None})
    assert to_record(bare).correlation_id is None
    assert from_record(to_record(bare)).correlation_id is None


# --- dispatch on type ------------------------------------------------------------------------


def test_union_dispatches_on_type(message: Envelope) -> None:
    parsed = parse_message(to_json(message))
    assert type(parsed) is type(message)
    assert type(TypeAdapter(ProtocolMessage).validate_python(to_json(message))) is type(message)


def test_type_decides_which_fields_are_expected() -> None:
    # A PREFLIGHT_CHECK body labelled as a response: judged as a response, not as a check.
    data = to_json(samples()["PREFLIGHT_CHECK"]) | {"type": "ESCALATION_RESPONSE"}
    with pytest.raises(ProtocolError) as info:
        parse_message(data)
    paths = {path for path, _ in info.value.errors}
    assert {
        "escalation_id",
        "action",
        "responder",
        "config_id",
        "execution_id",
        "check_type",
    } <= paths
    assert str(info.value).startswith("invalid ESCALATION_RESPONSE message: ")


# --- invalid input ---------------------------------------------------------------------------


def result_data(**changes: Any) -> dict[str, Any]:
    data = to_json(samples()["PREFLIGHT_RESULT"])
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    return data


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        pytest.param(
            result_data(type="PREFLIGHT_WHATEVER"),
            "type",
            "unknown message type 'PREFLIGHT_WHATEVER'; expected one of PREFLIGHT_CHECK",
            id="unknown-type",
        ),
        pytest.param(result_data(type=...), "type", "missing message type", id="missing-type"),
        pytest.param(
            result_data(session_id=...), "session_id", "required field missing", id="missing-field"
        ),
        pytest.param(
            result_data(agent_id="bad agent"),
            "agent_id",
            "'bad agent' is not a valid",
            id="agent-id-space",
        ),
        pytest.param(
            result_data(agent_id="../etc"),
            "agent_id",
            "not starting with '.'",
            id="agent-id-traversal",
        ),
        pytest.param(
            result_data(agent_id="a/b"), "agent_id", "is not a valid", id="agent-id-slash"
        ),
        pytest.param(result_data(agent_id=""), "agent_id", "", id="agent-id-empty"),
        pytest.param(result_data(agent_id=7), "agent_id", "valid string", id="agent-id-int"),
        pytest.param(result_data(bogus=1), "bogus", "unknown field", id="extra-key"),
        pytest.param(
            result_data(status="green"),
            "status",
            "'passed', 'failed', 'timeout'",
            id="wrong-status",
        ),
        pytest.param(result_data(duration="0.5"), "duration", "valid number", id="no-coercion"),
        pytest.param(result_data(duration=math.nan), "duration", "finite", id="nan"),
        pytest.param(
            result_data(duration=-1.0),
            "duration",
            "greater than or equal to 0",
            id="negative-duration",
        ),
        pytest.param(result_data(attempts=1.5), "attempts", "valid integer", id="float-attempts"),
        pytest.param(
            to_json(samples()["RESERVATION_CONFLICT"]) | {"paths": ["a", 3]},
            "paths[1]",
            "valid string",
            id="nested-path",
        ),
        pytest.param(
            to_json(samples()["ESCALATION_RESPONSE"]) | {"action": "ignore"},
            "action",
            "'acknowledge', 'resolve', 'reject' or 'approve'",
            id="wrong-action",
        ),
        pytest.param(
            to_json(samples()["ESCALATION_REQUEST"]) | {"level": 0},
            "level",
            "greater than or equal to 1",
            id="level-zero",
        ),
        pytest.param(
            to_json(samples()["ESCALATION_REQUEST"]) | {"severity": "meh"},
            "severity",
            "'critical' or 'warning'",
            id="wrong-severity",
        ),
    ],
)
def test_invalid_input_names_the_field(data: dict[str, Any], path: str, fragment: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_message(data)
    error = info.value
    assert isinstance(error, ValueError)
    text = str(error)
    assert "\n" not in text
    assert f": {path}: " in text
    assert fragment in text
    assert error.path == path


def test_several_problems_are_all_kept_and_counted() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_message(result_data(status="green", attempts=-1, extra=True))
    assert {path for path, _ in info.value.errors} == {"status", "attempts", "extra"}
    assert str(info.value).endswith("(and 2 more)")


@pytest.mark.parametrize("data", [[], "PREFLIGHT_CHECK", None, 3])
def test_a_message_must_be_an_object(data: Any) -> None:
    with pytest.raises(ProtocolError, match=r"^invalid message: \(message\): expected an object"):
        parse_message(data)


def test_parse_json_rejects_non_json() -> None:
    with pytest.raises(ProtocolError, match=r"^invalid message: \(message\): not JSON"):
        parse_json("{not json")


def test_from_record_rejects_a_bad_payload() -> None:
    record = to_record(samples()["PREFLIGHT_RESULT"])
    broken = dataclasses.replace(record, payload={**record.payload, "status": "green"})
    with pytest.raises(ProtocolError, match=r"^invalid PREFLIGHT_RESULT record m-result: status: "):
        from_record(broken)


def test_from_record_rejects_envelope_fields_in_the_payload() -> None:
    # The record's columns are the envelope; a payload that repeats one would be ambiguous.
    record = to_record(samples()["PREFLIGHT_CHECK"])
    smuggled = dataclasses.replace(record, payload={**record.payload, "agent_id": "intruder"})
    with pytest.raises(ProtocolError, match=r": payload\.agent_id: envelope field in the payload"):
        from_record(smuggled)


def test_from_record_rejects_an_unknown_type() -> None:
    record = Message(id="m1", type="HELLO", agent_id="a", payload={}, created_at=1.0)
    with pytest.raises(ProtocolError, match=r"^invalid HELLO record m1: type: unknown message"):
        from_record(record)


# --- JSON Schemas ----------------------------------------------------------------------------


def test_schemas_are_valid_draft_2020_12() -> None:
    schemas = message_schemas()
    assert tuple(schemas) == TYPES
    for schema in [*schemas.values(), message_schema()]:
        Draft202012Validator.check_schema(schema)


def test_schemas_accept_real_instances(message: Envelope) -> None:
    data = to_json(message)
    Draft202012Validator(message_schemas()[message.type]).validate(data)
    Draft202012Validator(message_schema()).validate(data)
    # Minimal instances too: only the required fields, defaults left to the model.
    minimal = {key: data[key] for key in message_schemas()[message.type]["required"]}
    Draft202012Validator(message_schema()).validate(minimal)
    assert type(parse_message(minimal)) is type(message)


@pytest.mark.parametrize(
    ("change", "keyword"),
    [
        ({"status": "green"}, "enum"),
        ({"session_id": ...}, "required"),
        ({"type": ...}, "required"),
        ({"bogus": 1}, "additionalProperties"),
        ({"agent_id": "../etc"}, "pattern"),
        ({"duration": "0.5"}, "type"),
    ],
)
def test_schema_and_parser_reject_the_same_broken_instance(
    change: dict[str, Any], keyword: str
) -> None:
    data = result_data(**change)
    errors = list(Draft202012Validator(message_schemas()["PREFLIGHT_RESULT"]).iter_errors(data))
    assert keyword in {error.validator for error in errors}
    assert not Draft202012Validator(message_schema()).is_valid(data)
    with pytest.raises(ProtocolError):
        parse_message(data)


def test_union_schema_rejects_a_type_with_another_types_body() -> None:
    data = to_json(samples()["PREFLIGHT_CHECK"]) | {"type": "PREFLIGHT_RESULT"}
    assert not Draft202012Validator(message_schema()).is_valid(data)

"""Protocol messages (SPEC S6): what the runtime queue and the mailboxes carry.

Importing this package imports pydantic; only the gate and the command import it, never the
plugin's idle path.
"""

from __future__ import annotations

from .messages import (
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

__all__ = [
    "ENVELOPE_FIELDS",
    "MESSAGE_TYPES",
    "Envelope",
    "EscalationRequest",
    "EscalationResponse",
    "PreflightCheck",
    "PreflightResult",
    "ProtocolError",
    "ProtocolMessage",
    "ReservationConflict",
    "from_record",
    "message_schema",
    "message_schemas",
    "parse_json",
    "parse_message",
    "to_json",
    "to_record",
]

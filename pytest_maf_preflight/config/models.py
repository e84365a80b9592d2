"""Pydantic models of the config envelope and of the reservation and escalation bodies.

Smoke-check definitions live beside their runners in ``pytest_maf_preflight.checks``. The
JSON Schema is generated from these models (see ``schema``); the models use snake_case only,
because camelCase documents are migrated to snake_case before validation (see ``migrations``).
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ..names import NAME_PATTERN

ID_PATTERN = r"^[A-Za-z0-9_-]+$"
SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_SEMVER = re.compile(SEMVER_PATTERN)
ConfigId = Annotated[str, Field(pattern=ID_PATTERN, min_length=1, max_length=128)]
#: An environment name (``environment_overrides`` key); it may become part of a path.
EnvironmentName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=128)]
CONFIG_TYPES = ("smoke_test", "reservation_check", "escalation_path")


class Strict(BaseModel):
    """Unknown keys are errors (types are enforced first by the JSON Schema)."""

    # Built when first used: a run without escalation paths never builds their validators.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def compile_regex(value: str) -> str:
    """A config's regex, refused at load unless it compiles in the dialect it is matched in."""
    from ..matching import validate

    return validate(value)


Regex = Annotated[str, Field(json_schema_extra={"format": "regex"})]


class Severity(str, enum.Enum):
    CRITICAL = "critical"
    WARNING = "warning"


class PreflightConfig(Strict):
    """The envelope every config shares; ``config`` is validated by type (see ``schema``)."""

    id: ConfigId = Field(description="Unique id; also used as a file name")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    config_type: Literal["smoke_test", "reservation_check", "escalation_path"]
    config: dict[str, Any]
    environment_overrides: dict[EnvironmentName, dict[str, Any]] = Field(
        default_factory=dict,
        description="Environment name -> partial config body, deep-merged",
        # pydantic states the key pattern as patternProperties, which lets other keys through.
        json_schema_extra={"propertyNames": {"pattern": NAME_PATTERN, "maxLength": 128}},
    )
    version: str = Field(default="1.0.0", json_schema_extra={"pattern": SEMVER_PATTERN})
    schema_version: int | None = Field(
        default=None, ge=1, description="Config format version (migrated on load)"
    )
    is_active: bool = True
    severity: Severity = Severity.CRITICAL
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    escalation_path: ConfigId | None = None
    created_at: float | None = Field(default=None, description="Original format: epoch ms")
    updated_at: float | None = Field(default=None, description="Original format: epoch ms")
    created_by: str | None = None

    @field_validator("version")
    @classmethod
    def _semantic(cls, version: str) -> str:
        # Python's re rather than pydantic's (Rust's regex, where ``\d``, Unicode's digits,
        # makes this pattern a 0.3 MB automaton in every gated run); the same strings match,
        # fullmatch refusing a newline after the version as Rust's ``$`` does.
        if not _SEMVER.fullmatch(version):
            raise ValueError(f"should be a semantic version such as '1.0.0', not {version!r}")
        return version


class SmokeTestBody(Strict):
    """The body of a ``smoke_test``; ``test_definition`` is validated by ``test_type``."""

    test_type: str
    test_definition: dict[str, Any] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=30.0, gt=0, le=86_400)
    retry_count: int = Field(default=0, ge=0, le=100)
    retry_delay_seconds: float = Field(default=1.0, ge=0, le=3_600)
    reuse_passed_for_seconds: float = Field(
        default=0,
        ge=0,
        le=86_400,
        description="Report a pass recorded this recently (same content, agent and "
        "environment, and no later failure) instead of running the check again; 0: never",
    )

    @field_validator("reuse_passed_for_seconds")
    @classmethod
    def _not_for_groups(cls, seconds: float, info: ValidationInfo) -> float:
        # A group is decided from its members' results of this run; a reused pass of the
        # group would hide a member that fails now.
        if seconds and info.data.get("test_type") == "integration":
            raise ValueError(
                "an integration check is decided from its members' results in each run and "
                "is never reused; set reuse_passed_for_seconds on its members instead"
            )
        return seconds


class AgentMailSource(Strict):
    """Where mcp_agent_mail reservations are read from (read-only)."""

    project: str | None = None
    url: str | None = None
    token_env: str | None = None
    database: str | None = None
    storage: str | None = None


class ReservationParameters(Strict):
    changed_files: Literal["git", "staged", "list"] | None = None
    files: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    file_path: str | None = Field(default=None, description="Original format: one path")
    base_ref: str | None = None
    mode: Literal["advisory", "strict"] = "advisory"
    agent_mail: AgentMailSource | None = None
    lock_timeout_minutes: float | None = Field(
        default=None, gt=0, description="Lock files older than this are stale"
    )
    exclusive_write_access: bool | None = Field(
        default=None, description="Original format: require exclusive leases (strict mode)"
    )
    max_concurrent_readers: int | None = Field(
        default=None, ge=1, description="Most agents holding overlapping shared reservations"
    )
    stale_lock_globs: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _list_names_files(self) -> ReservationParameters:
        if self.changed_files == "list" and not (self.files or self.paths or self.file_path):
            raise ValueError(
                "changed_files 'list' needs the files to check in files, paths or "
                "file_path (an empty list would check nothing)"
            )
        return self


class ReservationCheckBody(Strict):
    check_type: Literal["lock_validation", "concurrent_access", "file_exists", "permissions"]
    parameters: ReservationParameters = Field(default_factory=ReservationParameters)


class TriggerCondition(Strict):
    condition: Literal[
        "preflight_failure",
        "failure_count",
        "reservation_conflict",
        "check_timeout",
        "system_down",
        "agent_stale",
    ]
    operator: Literal["gt", "gte", "lt", "lte", "eq", "ne"] = "gte"
    threshold: float = 1
    window_minutes: float | None = Field(default=None, gt=0)


#: The step actions that ask the target for a decision (``escalations approve|reject``).
DECISION_ACTIONS = ("approve", "reject")


class EscalationStep(Strict):
    level: int = Field(ge=1)
    action: Literal["notify", "escalate", "approve", "reject"]
    target: Annotated[str, Field(pattern=ID_PATTERN)]
    timeout_minutes: float | None = Field(default=None, gt=0)
    #: An acknowledgement at this level that is not resolved within it runs out.
    ack_timeout_minutes: float | None = Field(default=None, gt=0)
    #: How long an approval at this (decision) step waives the check.
    waiver_minutes: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _waivers_at_decisions(self) -> EscalationStep:
        if self.waiver_minutes is not None and self.action not in DECISION_ACTIONS:
            raise ValueError(
                f"waiver_minutes is for approve and reject steps (an approval grants the "
                f"waiver); level {self.level} is a {self.action} step"
            )
        return self


class EscalationTarget(Strict):
    # Any id: plugins add channels (SPEC S8), so whether the name is known is checked where
    # the channels are (``config.references.unknown_channels``), not by the model.
    channel: Annotated[str, Field(pattern=ID_PATTERN, max_length=128)] = Field(
        default="mailbox",
        description="mailbox, webhook, command, agent_mail, or a channel a plugin adds",
    )
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _no_inline_credentials(cls, url: str | None) -> str | None:
        # The path is snapshotted into every escalation it opens: a password written into the
        # URL would be stored (and shown) there. ${ENV:NAME} keeps it out.
        from urllib.parse import urlsplit

        if url is not None and "${ENV:" not in url and urlsplit(url).password:
            raise ValueError(
                "the url carries a password; put it in an environment variable "
                "and write ${ENV:NAME}, or use token_env"
            )
        return url

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        # Every channel with a url (webhook, agent_mail) speaks HTTP; anything else could only
        # fail at the first escalation, long after the config was accepted. A scheme that
        # comes from ${ENV:...} is known at delivery only, and is checked there.
        from urllib.parse import urlsplit

        if url is None:
            return url
        literal = url.split("${", 1)[0]
        scheme, colon, _ = literal.partition(":")
        if (colon and scheme.lower() not in ("http", "https")) or (not colon and literal == url):
            raise ValueError(f"the url {url!r} is not an http:// or https:// URL")
        if literal == url and not urlsplit(url).hostname:
            raise ValueError(f"the url {url!r} names no host")
        return url

    argv: list[str] | None = None
    project: str | None = None
    sender: str | None = None
    token_env: str | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    #: Settings of a channel a plugin adds, handed to it as they are.
    options: dict[str, Any] = Field(default_factory=dict)


class EscalationPermissions(Strict):
    acknowledge: list[str] | None = None
    resolve: list[str] | None = None
    #: Who may take decisions (approve, reject) and grant waivers.
    approve: list[str] | None = None
    escalate_to: dict[str, list[str]] | None = None


class EscalationPathBody(Strict):
    trigger_conditions: list[TriggerCondition] = Field(min_length=1)
    escalation_steps: list[EscalationStep] = Field(min_length=1)
    timeout_minutes: float | None = Field(default=None, gt=0)
    max_escalation_level: int | None = Field(default=None, ge=1)
    repeat: bool | int = False
    targets: dict[str, EscalationTarget] = Field(default_factory=dict)
    permissions: EscalationPermissions | None = None

    @model_validator(mode="after")
    def _a_step_within_the_maximum(self) -> EscalationPathBody:
        top = self.max_escalation_level
        if top is not None and all(step.level > top for step in self.escalation_steps):
            raise ValueError(
                f"max_escalation_level {top} is below every step's level: nothing "
                "would ever be delivered"
            )
        return self

    @field_validator("escalation_steps")
    @classmethod
    def _levels_unique(cls, steps: list[EscalationStep]) -> list[EscalationStep]:
        seen: set[int] = set()
        for step in steps:
            if step.level in seen:
                raise ValueError(
                    f"escalation step levels must be unique; level {step.level} "
                    "appears more than once"
                )
            seen.add(step.level)
        return steps


#: Keys a body model leaves out on purpose, with why, said instead of "unknown key" (by
#: ``schema``, which reports unknown keys). Keyed by the body model's name.
REFUSED_KEYS: dict[str, dict[str, str]] = {
    "ReservationCheckBody": {
        "reuse_passed_for_seconds": "a reservation_check is never reused: leases and changed "
        "files change from one run to the next, so it runs every time; remove "
        "reuse_passed_for_seconds",
    },
}

BODY_MODELS: dict[str, type[Strict]] = {
    "smoke_test": SmokeTestBody,
    "reservation_check": ReservationCheckBody,
    "escalation_path": EscalationPathBody,
}

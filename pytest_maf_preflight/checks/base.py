"""What every check type shares: statuses, results, the context a check runs in, the registry."""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


class CheckStatus(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ERROR = "error"
    SKIPPED = "skipped"


class Definition(BaseModel):
    """Base of every ``test_definition`` model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


@dataclasses.dataclass(frozen=True)
class Observation:
    """What one attempt of a check saw. ``passed`` False means the environment is not fit."""

    passed: bool
    expected: str
    observed: str
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class CheckTimeout(Exception):
    """Raised by a runner whose attempt could not finish by its deadline; reported as
    ``timeout``."""


class CheckFailure(Exception):
    """Raised by a runner to report a failed expectation without building an Observation."""

    def __init__(self, expected: str, observed: str) -> None:
        super().__init__(observed)
        self.expected = expected
        self.observed = observed


@dataclasses.dataclass(frozen=True)
class CheckContext:
    """What a runner may use: the rootdir for relative paths, the environment, settings."""

    rootdir: Path
    environ: Mapping[str, str]
    environment: str
    agent_id: str
    base_url: str | None = None
    deadline: float | None = None  # time.monotonic() by which the attempt must end
    #: What ``reservation_check`` configs read: a ``checks.reservation.ReservationState``
    #: taken before the checks run, or None when there is no lease store (they fail closed).
    reservations: Any = None

    def path(self, raw: str) -> Path:
        expanded = Path(raw).expanduser()
        return expanded if expanded.is_absolute() else self.rootdir / expanded

    def remaining(self, default: float) -> float:
        if self.deadline is None:
            return default
        return max(0.0, self.deadline - time.monotonic())


Runner = Callable[[Any, CheckContext], Observation]


@dataclasses.dataclass(frozen=True)
class CheckType:
    """A ``test_type``: how its definition is validated and how it runs.

    ``run`` is None for a type whose definitions load but which cannot run in this version;
    such a check ends as ``error`` (failing closed) rather than passing unchecked.
    """

    name: str
    definition: type[Definition]
    run: Runner | None
    description: str = ""


class CheckRegistry:
    """The check types known to this session: built-ins plus those plugins register (S8)."""

    def __init__(self, types: Iterable[CheckType] = ()) -> None:
        self._types: dict[str, CheckType] = {}
        for check_type in types:
            self.register(check_type)

    def register(self, check_type: CheckType) -> None:
        if check_type.name in self._types:
            raise ValueError(f"check type {check_type.name!r} is already registered")
        self._types[check_type.name] = check_type

    def get(self, name: str) -> CheckType | None:
        return self._types.get(name)

    def names(self) -> list[str]:
        return sorted(self._types)

    def __iter__(self) -> Any:
        return iter(self._types[name] for name in self.names())


@dataclasses.dataclass
class CheckResult:
    """The outcome of one check in one gate run; plain data so it crosses to xdist workers."""

    check_id: str
    name: str
    test_type: str
    severity: str
    status: CheckStatus
    expected: str = ""
    observed: str = ""
    message: str = ""
    attempts: int = 0
    duration: float = 0.0
    started_at: float = 0.0
    completed_at: float = 0.0
    config_file: str = ""
    config_version: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: The active waiver that lets this failure through (``gate.waivers.summary``): the gate
    #: stays open for it, ``status`` stays what the check saw.
    waiver: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.status is CheckStatus.PASSED

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        values = dict(data)
        values["status"] = CheckStatus(values["status"])
        return cls(**values)

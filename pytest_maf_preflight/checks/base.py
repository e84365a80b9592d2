"""What every check type shares: statuses, results, the context a check runs in, the registry."""

from __future__ import annotations

import dataclasses
import enum
import importlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
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

    # Built when first used: a run builds the validators of the types its configs use only.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


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

    ``waits``: an attempt spends its time waiting on a server or a process, not computing, so
    the runner gives each one a thread at once (up to the concurrency cap) instead of letting
    it queue for the pool to grow.
    """

    name: str
    definition: type[Definition]
    run: Runner | None
    description: str = ""
    waits: bool = False


class CheckRegistry:
    """The check types known to this session: built-ins plus those plugins register (S8).

    A type may be registered by the module that holds it (``modules``: name -> module path,
    with a ``CHECK_TYPE``), imported the first time the type is asked for: a run imports the
    modules of the types its configs use, not every type's runner and its imports.
    """

    def __init__(
        self, types: Iterable[CheckType] = (), modules: Mapping[str, str] | None = None
    ) -> None:
        self._types: dict[str, CheckType] = {}
        self._modules: dict[str, str] = {}
        for name, module in (modules or {}).items():
            self._claim(name)
            self._modules[name] = module
        for check_type in types:
            self.register(check_type)

    def _claim(self, name: str) -> None:
        if name in self._types or name in self._modules:
            raise ValueError(f"check type {name!r} is already registered")

    def register(self, check_type: CheckType) -> None:
        self._claim(check_type.name)
        self._types[check_type.name] = check_type

    def get(self, name: str) -> CheckType | None:
        found = self._types.get(name)
        if found is None and name in self._modules:
            found = self._types[name] = self._load(name, self._modules[name])
        return found

    def is_builtin(self, name: str) -> bool:
        """Whether ``name`` is a type of this package (registered by module), not a plugin's."""
        return name in self._modules

    def names(self) -> list[str]:
        return sorted({*self._types, *self._modules})

    def __iter__(self) -> Iterator[CheckType]:
        """Every type, by name (importing the modules of those not imported yet)."""
        return iter([t for name in self.names() if (t := self.get(name)) is not None])

    @staticmethod
    def _load(name: str, module: str) -> CheckType:
        check_type = importlib.import_module(module).CHECK_TYPE
        if not isinstance(check_type, CheckType) or check_type.name != name:
            raise TypeError(f"{module}.CHECK_TYPE is not the check type {name!r}")
        return check_type


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
    #: What a pass may be reused under (see ``gate.reuse``); empty for a check that is never
    #: reused (``reuse_passed_for_seconds`` 0).
    content_hash: str = ""
    #: For a pass reused from an earlier run instead of running: that run's
    #: ``{"execution_id", "session_id", "completed_at"}``; None for a check that ran.
    reused_from: dict[str, Any] | None = None
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

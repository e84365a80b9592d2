"""From a loaded config to a check the runner can run (shared by the gate and the CLI guard)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..checks.base import CheckType
from ..checks.runner import PlannedCheck
from ..config.loader import LoadedConfig
from ..config.models import ReservationCheckBody, SmokeTestBody

#: ``reservation_check`` configs carry no timeout of their own; git and a read of the lease
#: store are quick, an agent-mail server may not be.
RESERVATION_TIMEOUT = 30.0


def plan_check(
    loaded: LoadedConfig, lookup: Callable[[str], CheckType | None]
) -> PlannedCheck | None:
    """The check ``loaded`` describes, or None for inactive configs and escalation paths."""
    config = loaded.config
    if not config.is_active or config.config_type == "escalation_path":
        return None
    body = loaded.body
    members: tuple[str, ...] = ()
    definition: object = loaded.definition
    reuse = 0.0  # never for a reservation check: leases change between runs
    if isinstance(body, SmokeTestBody):
        check_type = lookup(body.test_type)
        timeout, retries, delay = body.timeout_seconds, body.retry_count, body.retry_delay_seconds
        reuse = body.reuse_passed_for_seconds
        if body.test_type == "integration":
            members = tuple(getattr(loaded.definition, "checks", ()))
    else:
        assert isinstance(body, ReservationCheckBody)
        from ..checks.reservation import reservation_check_type

        check_type = reservation_check_type(body.check_type)
        definition = body
        timeout, retries, delay = RESERVATION_TIMEOUT, 0, 0.0
    if check_type is None:  # the loader validated the type; a plugin that vanished since
        raise ValueError(f"{loaded.id}: unknown check type")
    return PlannedCheck(
        check_id=config.id,
        name=config.name,
        severity=config.severity.value,
        check_type=check_type,
        definition=definition,
        timeout=timeout,
        retry_count=retries,
        retry_delay=delay,
        config_file=str(loaded.file),
        config_version=config.version,
        members=members,
        reuse_seconds=reuse,
    )


def plan_all(
    loaded: Iterable[LoadedConfig], lookup: Callable[[str], CheckType | None]
) -> list[tuple[LoadedConfig, PlannedCheck]]:
    """Every check the configs describe, with its config, in config order."""
    return [(entry, planned) for entry in loaded if (planned := plan_check(entry, lookup))]

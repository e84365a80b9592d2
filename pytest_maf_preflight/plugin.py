"""The pytest entry point ``maf_preflight``: options, markers, fixtures, and the gate switch.

Everything heavy (pydantic, jsonschema, the checks) is imported only once ``--maf-preflight``
is on or a fixture asks for it: this module is loaded in every pytest run where the package
is installed, and those runs must not pay for it.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING

import pytest

from . import options
from .gate.keys import GATE_KEY, WORKER_KEY
from .item_marks import REQUIRES, RESERVE, mark_items, marks_of

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from .agent import MafAgent
    from .checks.base import CheckResult
    from .config.manager import PreflightConfigManager
    from .reservations.holding import LeaseStore, MafReservations
    from .runtime.interface import RuntimeState
    from .runtime.records import EscalationRecord
    from .settings import Settings

_MARKERS = (
    "maf_smoke: part of the preflight gate; runs right after the config checks, and its "
    "failure skips the rest of the session (with --maf-preflight)",
    "maf_requires(check_id, ...): skip this test unless those preflight checks passed",
    "maf_preflight_check: a preflight config check item (set by the plugin)",
    'maf_runtime("configured"): the maf_runtime fixture gives the configured runtime (the '
    "one the gate records in) instead of a temporary one",
    "maf_reserve(paths, exclusive=True, ttl=900, reason=''): hold a lease on these paths or "
    "patterns (in the configured runtime, as this run's agent) while the test runs; a conflict "
    "with another agent's lease makes the test error in setup",
)
_SETTINGS_KEY = pytest.StashKey["Settings"]()
_STORE_KEY = pytest.StashKey["LeaseStore"]()
_RESERVED_KEY = pytest.StashKey["MafReservations"]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def _settings(config: pytest.Config) -> Settings:
    if _SETTINGS_KEY not in config.stash:
        from .settings import resolve

        config.stash[_SETTINGS_KEY] = resolve(config)
    return config.stash[_SETTINGS_KEY]


#: pytest sessions configured in this process and not yet unconfigured: more than one while a
#: session runs pytest in-process (pytester), which then must leave the process as it was.
open_sessions = 0


def pytest_configure(config: pytest.Config) -> None:
    global open_sessions
    open_sessions += 1
    for marker in _MARKERS:
        config.addinivalue_line("markers", marker)
    # An xdist worker is gated when its controller sent the gate's results (gate.controller).
    payload = getattr(config, "workerinput", {}).get(WORKER_KEY)
    if payload is None and not _enabled(config):
        return
    settings = _settings(config)
    nested = open_sessions > 1
    # "from .gate.x import name", not "from .gate import x": pytester's in-process runs unload
    # the modules they imported, but not the attribute naming one on an older package object.
    if payload is not None:
        from .gate.worker import register_worker

        register_worker(config, settings, payload, nested=nested)
    else:
        from .gate.controller import register_controller
        from .gate.early_start import start_early

        # While pytest starts up (see gate.early_start); this module is the plugin configuring.
        start_early(config, settings, sys.modules[__name__])
        register_controller(config, settings, nested=nested)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """Validate configs before the session: invalid ones end the run with exit code 11."""
    if getattr(config, "workerinput", None) is not None or not _enabled(config):
        return None
    if getattr(config.option, "help", False) or getattr(config.option, "version", False):
        return None
    from .exitcodes import MafExitCode
    from .gate.loading import preload, record_config_error

    settings = _settings(config)
    report = preload(config, settings)
    if report is None:
        return None
    sys.stderr.write(f"maf-preflight: {report}\n")
    note = record_config_error(settings, report)
    if note is not None:
        sys.stderr.write(f"maf-preflight: {note}\n")
    return int(MafExitCode.CONFIG_ERROR)


def _enabled(config: pytest.Config) -> bool:
    """Cheap test of the switch, without resolving (and validating) every setting."""
    if config.option.maf_preflight or config.option.maf_preflight_only:
        return True
    import os

    raw = os.environ.get("MAF_PREFLIGHT")
    if raw is not None and raw.strip():
        return _settings(config).enabled
    return bool(config.getini("maf_preflight") or config.getini("maf_preflight_only"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Register the marker hooks below only when some selected test carries the marker, so a
    test without them costs this plugin no hook call."""
    config = session.config
    if config.option.collectonly:
        return
    # The gate, when on, read the markers once it had put smoke tests back; read here otherwise.
    gate = config.stash.get(GATE_KEY, None)
    # One reader for all items: each parent node's markers are read once, not once per child.
    present = (
        gate.marked if gate is not None and gate.marked is not None else mark_items(session.items)
    )
    manager = config.pluginmanager
    # With the gate on, the gate decides on maf_requires.
    if (
        REQUIRES in present
        and GATE_KEY not in config.stash
        and manager.get_plugin("maf_preflight_requires") is None
    ):
        manager.register(_RequiresWithoutGate(), "maf_preflight_requires")
    if RESERVE in present and manager.get_plugin("maf_preflight_reserve") is None:
        manager.register(_ReserveMarker(), "maf_preflight_reserve")


class _RequiresWithoutGate:
    """maf_requires with the gate off: the test is skipped, saying it needs the gate."""

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, object, object]:
        marker = marks_of(item).requires
        reason = None
        if marker is not None:
            reason = (
                f"maf_requires({', '.join(map(str, marker.args))}) needs the preflight "
                "gate (--maf-preflight)"
            )
            # A skip mark lets pytest report the test's own location, not this file's.
            item.add_marker(pytest.mark.skip(reason=reason))
        result = yield
        if reason is not None:
            pytest.skip(reason)
        return result


class _ReserveMarker:
    """maf_reserve: the test holds its leases from setup to teardown."""

    # A plain hook, not a wrapper: raising before a wrapper's yield would skip the other
    # plugins' setup and break their teardown (pytest's own skipping plugin raises from here
    # the same way).
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        marker = marks_of(item).reserve
        if marker is not None:
            _reserve(item, marker)

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            holder = item.stash.get(_RESERVED_KEY, None)
            if holder is not None:
                holder.release_all()


def _reserve(item: pytest.Item, marker: pytest.Mark) -> None:
    from .reservations.holding import DEFAULT_TTL, MafReservations, ReservationConflictError
    from .runtime.errors import RuntimeStateError

    paths: list[str] = []
    for arg in marker.args:
        paths.extend([arg] if isinstance(arg, str) else list(arg))
    unknown = set(marker.kwargs) - {"exclusive", "ttl", "reason"}
    if not paths or unknown or not all(isinstance(p, str) for p in paths):
        raise pytest.UsageError(
            f"{item.nodeid}: maf_reserve takes paths or patterns (strings, or one list) and "
            f"exclusive=, ttl=, reason=; got args {marker.args!r}, kwargs {marker.kwargs!r}"
        )
    holder = MafReservations(_lease_store(item.config), _settings(item.config).agent_id)
    item.stash[_RESERVED_KEY] = holder
    try:
        holder.grant(
            *paths,
            exclusive=bool(marker.kwargs.get("exclusive", True)),
            ttl=float(marker.kwargs.get("ttl", DEFAULT_TTL)),
            reason=str(marker.kwargs.get("reason", f"test {item.nodeid}")),
        )
    except (ReservationConflictError, ValueError, RuntimeStateError) as exc:
        pytest.fail(f"maf_reserve: {exc}", pytrace=False)


def _lease_store(config: pytest.Config) -> LeaseStore:
    if _STORE_KEY not in config.stash:
        from .reservations.holding import LeaseStore

        config.stash[_STORE_KEY] = LeaseStore(_settings(config).runtime)
    return config.stash[_STORE_KEY]


def pytest_unconfigure(config: pytest.Config) -> None:
    global open_sessions
    open_sessions -= 1
    store = config.stash.get(_STORE_KEY, None)
    if store is not None:
        store.close()


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def maf_agent(pytestconfig: pytest.Config) -> MafAgent:
    """The agent: id, environment, and ``heartbeat(**details)`` into the configured runtime.

    The id comes from ``--maf-agent-id`` > ``MAF_AGENT_ID`` > ``AGENT_NAME`` > ini
    ``maf_agent_id`` > ``anonymous``.
    """
    from .agent import MafAgent

    settings = _settings(pytestconfig)
    return MafAgent(
        id=settings.agent_id,
        environment=settings.environment,
        runtime_settings=settings.runtime,
        agent_type=settings.agent_type,
        capabilities=settings.agent_capabilities,
    )


@pytest.fixture(scope="session")
def maf_config(pytestconfig: pytest.Config) -> PreflightConfigManager:
    """A ``PreflightConfigManager`` over this session's config paths and environment."""
    from .config.manager import PreflightConfigManager

    settings = _settings(pytestconfig)
    gate = pytestconfig.stash.get(GATE_KEY, None)
    registry = gate.registry if gate is not None else None
    if registry is None:  # gate off, or an xdist worker: the same check types, hook included
        from .checks.builtin import builtin_registry

        registry = builtin_registry()
        pytestconfig.hook.pytest_maf_preflight_register_check_types(
            registry=registry, config=pytestconfig
        )
    return PreflightConfigManager(
        settings.config_paths[0],
        environment=settings.environment,
        registry=registry,
        extra_paths=settings.config_paths[1:],
        max_bytes=settings.max_config_bytes,
    )


@pytest.fixture
def maf_runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeState]:
    """A ``RuntimeState`` of the configured mode chain.

    Temporary (files under ``tmp_path``; ``postgres`` becomes ``sqlite``) unless the test is marked
    ``@pytest.mark.maf_runtime("configured")``, which opens the runtime the gate records in.
    """
    from .runtime.factory import open_chain

    runtime_settings = _settings(request.config).runtime
    marker = request.node.get_closest_marker("maf_runtime")
    if marker is not None and tuple(marker.args) != ("configured",):
        raise pytest.UsageError(
            f"{request.node.nodeid}: maf_runtime takes no argument or "
            f"'configured', got {marker.args!r}"
        )
    if marker is None:
        # Temporary means files under tmp_path: a shared PostgreSQL database is not, so the
        # postgres mode gives way to sqlite here.
        chain = tuple(
            dict.fromkeys("sqlite" if m == "postgres" else m for m in runtime_settings.chain)
        )
        runtime_settings = dataclasses.replace(
            runtime_settings,
            db_path=tmp_path / "runtime.db",
            mail_root=tmp_path / "agent-mail",
            chain=chain,
            db_url=None,
            json_root=None,
            db_shared=False,
        )
    opened = open_chain(runtime_settings)
    try:
        yield opened.runtime
    finally:
        opened.runtime.close()


@pytest.fixture
def maf_reservations(pytestconfig: pytest.Config) -> Iterator[MafReservations]:
    """Leases as this run's agent, in the configured runtime: ``with
    maf_reservations.acquire("src/a.py", ttl=60) as leases: ...``, ``renew(lease)``,
    ``release(lease)``. Whatever the test still holds at its end is released."""
    from .reservations.holding import MafReservations

    holder = MafReservations(_lease_store(pytestconfig), _settings(pytestconfig).agent_id)
    try:
        yield holder
    finally:
        holder.release_all()


@pytest.fixture
def maf_escalate(pytestconfig: pytest.Config) -> Iterator[Callable[..., EscalationRecord | None]]:
    """Raise an escalation along a configured path as this run's agent:
    ``maf_escalate("default-escalation", "the nightly data is stale", severity="warning")``
    opens it (or adds an occurrence) in the configured runtime and delivers its first level;
    with ``--maf-no-escalate`` nothing is raised and it returns None. The path's
    ``permissions`` apply."""
    from .escalation.session import engine_for
    from .gate.escalating import escalation_settings
    from .gate.loading import load_configs
    from .runtime.factory import open_chain

    settings = _settings(pytestconfig)
    gate = pytestconfig.stash.get(GATE_KEY, None)
    loaded = (
        gate.loaded if gate is not None and gate.loaded else load_configs(pytestconfig, settings)[1]
    )
    opened = open_chain(settings.runtime)
    engine = engine_for(opened.runtime, escalation_settings(settings, pytestconfig), loaded)

    def escalate(
        path_id: str, summary: str, *, severity: str = "critical", check_id: str | None = None
    ) -> EscalationRecord | None:
        from .escalation.engine import EngineReport

        report = EngineReport()
        try:
            return engine.raise_manual(
                path_id, summary=summary, severity=severity, check_id=check_id, report=report
            )
        finally:
            if gate is not None:  # the summary lists what tests raised too
                gate.escalated(report.lines())

    try:
        yield escalate
    finally:
        opened.runtime.close()


@pytest.fixture(scope="session")
def maf_preflight_results(pytestconfig: pytest.Config) -> Mapping[str, CheckResult]:
    """Check id -> result of this session's preflight gate (empty when the gate is off)."""
    gate = pytestconfig.stash.get(GATE_KEY, None)
    if gate is None:
        return {}
    return dict(gate.results)

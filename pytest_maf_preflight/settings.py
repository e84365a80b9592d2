"""``Settings``: every option, ini key and environment variable, resolved once.

Precedence is CLI > environment > ini > default, and every validation error names the source
it came from. Kept apart from ``options`` (which only declares them): this module is imported
only when the gate is on or a fixture needs a setting, so a run without the gate pays nothing.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .names import (
    ANONYMOUS_AGENT,
    DEFAULT_CONFIG_DIR,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_CONFIG_BYTES,
    NAME_PATTERN,
    NAME_RULE,
    environment_name,
)
from .options import INI_ALIASES, UNSET

if TYPE_CHECKING:
    from .runtime.factory import RuntimeSettings

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the plugin reads from options, environment and ini, resolved once."""

    enabled: bool
    only: bool
    rootdir: Path
    config_paths: tuple[Path, ...]
    environment: str
    agent_id: str
    report_path: Path | None
    warnings_as_errors: bool
    max_concurrency: int
    base_url: str | None
    max_config_bytes: int
    runtime: RuntimeSettings
    escalate: bool = True
    default_escalation: str | None = None
    #: What the agent's heartbeats record besides its id (the seed's agents table).
    agent_type: str = "worker"
    agent_capabilities: tuple[str, ...] = ()
    #: ``gc.freeze()`` once the tests start (see ``gate.heap``).
    gc_freeze: bool = True
    #: Whether a check's recent pass may stand in for running it (``gate.reuse``).
    reuse: bool = True
    #: Where to write the report page (``report_page``); None: no page.
    html_path: Path | None = None


def _flag(
    cli: bool | None, env_names: tuple[str, ...], ini: bool, environ: Mapping[str, str]
) -> bool:
    if cli:
        return True
    for name in env_names:
        raw = environ.get(name)
        if raw is not None:
            value = raw.strip().lower()
            if value in _TRUE:
                return True
            if value in _FALSE:
                return False
            raise pytest.UsageError(
                f"{name} environment variable: expected one of 1/0/true/false, got {raw!r}"
            )
    return ini


def _ini(config: pytest.Config, name: str, default: Any = "") -> tuple[Any, str]:
    """An ini value and its source: the key ``name``, else its earlier spelling
    (``options.INI_ALIASES``), else ``default``. The two spellings set to different values
    are a usage error naming both."""
    value = config.getini(name)
    old = INI_ALIASES.get(name)
    old_value = UNSET if old is None else config.getini(old)
    if old is None or old_value is UNSET:
        return (default if value is UNSET else value), f"{name} in the config file"
    if value is UNSET:
        return old_value, f"{old} in the config file"
    if value != old_value:
        raise pytest.UsageError(
            f"{name} and {old} in the config file: set to different values ({value!r} and "
            f"{old_value!r}); {old} is the old spelling of {name}: remove it"
        )
    return value, f"{name} in the config file"


def _first(*candidates: tuple[str | None, str]) -> tuple[str, str] | None:
    """The first non-empty value and the name of the source it came from."""
    for value, source in candidates:
        if value:
            return value, source
    return None


def _agent_fields(config: pytest.Config, env: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """The agent's type and capabilities: environment > ini > worker, none."""
    from .runtime.agent_fields import checked_agent_fields

    kind = _first(
        (env.get("MAF_AGENT_TYPE", "").strip(), "MAF_AGENT_TYPE environment variable"),
        (str(config.getini("maf_agent_type")).strip(), "maf_agent_type in the config file"),
    )
    names = _first(
        (env.get("MAF_AGENT_CAPABILITIES"), "MAF_AGENT_CAPABILITIES environment variable"),
        (str(config.getini("maf_agent_capabilities")), "maf_agent_capabilities in the config file"),
    )
    agent_type, capabilities = "worker", tuple[str, ...]()
    if kind:
        try:
            agent_type = checked_agent_fields(kind[0], (), "active")[0]
        except ValueError as exc:
            raise pytest.UsageError(f"{kind[1]}: {exc}") from None
    if names:
        try:
            capabilities = checked_agent_fields(
                "worker", [n.strip() for n in names[0].split(",") if n.strip()], "active"
            )[1]
        except ValueError as exc:
            raise pytest.UsageError(f"{names[1]}: {exc}") from None
    return agent_type, capabilities


def _positive_int(value: str, source: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise pytest.UsageError(f"{source}: expected a whole number, got {value!r}") from None
    if number < 1:
        raise pytest.UsageError(f"{source}: expected a number of at least 1, got {number}")
    return number


def _name(value: str, source: str) -> str:
    if len(value) > 128 or not re.fullmatch(NAME_PATTERN, value):
        raise pytest.UsageError(
            f"{source}: {value!r} is not a valid name ({NAME_RULE}; at most 128 characters)"
        )
    return value


#: Options whose value is a path. pytest chooses the rootdir and ini file before it knows
#: plugin options, so a separate value ("--opt PATH") is taken for a test path there and can
#: move the rootdir away from the project, and with it the default config directory.
_PATH_OPTIONS = (
    "--maf-config",
    "--maf-preflight-config",
    "--maf-report",
    "--maf-preflight-report",
    "--maf-html",
    "--maf-preflight-html",
)


def _check_path_option_form(args: Sequence[str]) -> None:
    for arg in args:
        if arg in _PATH_OPTIONS:
            raise pytest.UsageError(
                f"write {arg}=PATH (with '='): pytest chooses the rootdir before it knows this "
                "option, and would take a separate PATH for a test path"
            )


def _output_path(
    config: pytest.Config, given: tuple[str, str] | None, rootdir: Path
) -> Path | None:
    """A file the run writes: relative to where pytest was started when given on the command
    line, to the rootdir when given in the ini file."""
    if not given:
        return None
    path = Path(given[0])
    if path.is_absolute():
        return path
    return (Path(config.invocation_params.dir) if given[1].startswith("--") else rootdir) / path


def resolve(config: pytest.Config, environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve ``Settings`` from CLI > environment > ini > default."""
    _check_path_option_form(config.invocation_params.args)
    env = os.environ if environ is None else environ
    opt = config.option
    rootdir = Path(config.rootpath)

    enabled = _flag(
        opt.maf_preflight, ("MAF_PREFLIGHT",), bool(config.getini("maf_preflight")), env
    )
    only = _flag(opt.maf_preflight_only, (), bool(config.getini("maf_preflight_only")), env)
    if only:
        enabled = True

    paths: list[Path] = [rootdir / DEFAULT_CONFIG_DIR]
    for raw in _ini(config, "maf_config", [])[0]:
        paths.append(rootdir / os.path.expanduser(str(raw)))
    for raw in opt.maf_config:
        paths.append(Path(os.path.expanduser(raw)).resolve())

    try:
        environment = environment_name(opt.maf_env, env, str(config.getini("maf_env")))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    agent = _first(
        (opt.maf_agent_id, "--maf-agent-id"),
        (env.get("MAF_AGENT_ID"), "MAF_AGENT_ID environment variable"),
        (env.get("AGENT_NAME"), "AGENT_NAME environment variable"),
        (config.getini("maf_agent_id"), "maf_agent_id in the config file"),
    )
    report = _first(
        (opt.maf_report, "--maf-report"),
        _ini(config, "maf_report"),
    )
    concurrency = _first(
        (opt.maf_max_concurrency, "--maf-max-concurrency"),
        (
            env.get("MAF_PREFLIGHT_MAX_CONCURRENCY"),
            "MAF_PREFLIGHT_MAX_CONCURRENCY environment variable",
        ),
        _ini(config, "maf_max_concurrency"),
    )
    base_url = _first(
        (opt.maf_base_url, "--maf-base-url"),
        (env.get("MAF_PREFLIGHT_BASE_URL"), "MAF_PREFLIGHT_BASE_URL environment variable"),
        _ini(config, "maf_base_url"),
    )
    max_bytes = _first(_ini(config, "maf_max_config_bytes"))
    warnings_as_errors = _flag(
        opt.maf_warnings_as_errors,
        ("MAF_PREFLIGHT_WARNINGS_AS_ERRORS",),
        bool(_ini(config, "maf_warnings_as_errors", False)[0]),
        env,
    )
    gc_freeze = _flag(
        None, ("MAF_PREFLIGHT_GC_FREEZE",), bool(_ini(config, "maf_gc_freeze", True)[0]), env
    )
    no_escalate = _flag(
        opt.maf_no_escalate, ("MAF_NO_ESCALATE",), bool(config.getini("maf_no_escalate")), env
    )
    no_reuse = _flag(opt.maf_no_reuse, ("MAF_NO_REUSE",), bool(config.getini("maf_no_reuse")), env)
    default_escalation = str(_ini(config, "maf_default_escalation")[0]).strip() or None
    agent_type, agent_capabilities = _agent_fields(config, env)
    html = _first(
        (opt.maf_html, "--maf-html"), (config.getini("maf_html"), "maf_html in the config file")
    )

    from .runtime.factory import RuntimeConfigError, resolve_runtime_settings

    try:
        runtime = resolve_runtime_settings(
            rootdir,
            env,
            opt.maf_runtime,
            str(config.getini("maf_runtime")),
            db_url_cli=opt.maf_db_url,
            db_url_ini=str(config.getini("maf_db_url")),
        )
    except RuntimeConfigError as exc:
        raise pytest.UsageError(str(exc)) from None

    return Settings(
        runtime=runtime,
        enabled=enabled,
        only=only,
        rootdir=rootdir,
        config_paths=tuple(dict.fromkeys(paths)),
        environment=environment,
        agent_id=_name(*agent) if agent else ANONYMOUS_AGENT,
        report_path=_output_path(config, report, rootdir),
        html_path=_output_path(config, html, rootdir),
        warnings_as_errors=warnings_as_errors,
        max_concurrency=(_positive_int(*concurrency) if concurrency else DEFAULT_MAX_CONCURRENCY),
        base_url=base_url[0] if base_url else None,
        max_config_bytes=_positive_int(*max_bytes) if max_bytes else DEFAULT_MAX_CONFIG_BYTES,
        escalate=not no_escalate,
        reuse=not no_reuse,
        default_escalation=default_escalation,
        gc_freeze=gc_freeze,
        agent_type=agent_type,
        agent_capabilities=agent_capabilities,
    )

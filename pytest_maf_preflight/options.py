"""Command-line options and ini keys, declared (``settings`` resolves them).

One scheme: ``--maf-preflight`` and ``--maf-preflight-only`` (ini ``maf_preflight``,
``maf_preflight_only``) switch the gate on; every other setting is ``--maf-<setting>`` on the
command line and ``maf_<setting>`` in the ini file. The earlier spellings still work: an old
option is a second option string of the same option, an old ini key is registered as an alias
(``INI_ALIASES``), which ``settings`` reads after the new key.

Help strings are module constants shared by ``addoption`` and ``addini``. This module is
loaded in every pytest run, so it holds declarations only; the defaults shared with the
``maf-preflight`` command are in ``names``, which does not import pytest.
"""

from __future__ import annotations

from typing import Final, Literal

import pytest

from .names import DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_CONFIG_BYTES

HELP_PREFLIGHT = "Run the preflight gate before the session and skip the rest when it closes"
HELP_ONLY = "Run the preflight gate (config checks and maf_smoke tests) and nothing else"
HELP_CONFIG = (
    "Preflight config file or directory, in addition to .maf/preflight-configs (repeatable)"
)
HELP_CONFIG_INI = (
    "Preflight config files or directories, relative to the rootdir, in "
    "addition to .maf/preflight-configs"
)
HELP_ENV = "Environment whose config overrides apply (default: development)"
HELP_AGENT = "Id of the agent this session runs for"
HELP_AGENT_TYPE = (
    "The agent's type, recorded with its heartbeats: coordinator, worker "
    "(default), verifier or escalation_manager (env MAF_AGENT_TYPE)"
)
HELP_AGENT_CAPABILITIES = (
    "The agent's capabilities, recorded with its heartbeats: names "
    "separated by commas (env MAF_AGENT_CAPABILITIES)"
)
HELP_REPORT = "Write a JSON report of the gate to this path"
HELP_HTML = (
    "Write the gate's report page (one self-contained HTML file: timeline, history, leases, "
    "escalations, agents) to this path"
)
HELP_WARNINGS_AS_ERRORS = "Let failing warning-severity checks fail the run and close the gate"
HELP_MAX_CONCURRENCY = f"Most preflight checks run at once (default: {DEFAULT_MAX_CONCURRENCY})"
HELP_GC_FREEZE = (
    "Freeze the objects alive when the tests start, so garbage collections "
    "during the tests skip them (default: true; env MAF_PREFLIGHT_GC_FREEZE)"
)
HELP_BASE_URL = "Base URL for api checks whose endpoint has no base_url"
HELP_RUNTIME = (
    "Runtime modes to record in, tried in order (default: sqlite,json,memory; "
    "also MAF_RUNTIME_MODE)"
)
HELP_DB_URL = (
    "PostgreSQL URL of the postgres runtime mode (also MAF_DB_URL; a password may "
    "come from PGPASSWORD or ~/.pgpass)"
)
HELP_NO_ESCALATE = "Raise, advance and deliver no escalations in this run"
HELP_NO_REUSE = (
    "Run every check in this run, also those whose recent pass could be reused "
    "(reuse_passed_for_seconds; env MAF_NO_REUSE)"
)
HELP_DEFAULT_ESCALATION = "Escalation path for checks that name none"
HELP_MAX_CONFIG_BYTES = (
    f"Largest preflight config file accepted, in bytes (default: {DEFAULT_MAX_CONFIG_BYTES})"
)

#: Ini keys renamed to the ``maf_<setting>`` scheme: the key -> its earlier spelling.
INI_ALIASES: Final = {
    "maf_config": "maf_preflight_paths",
    "maf_report": "maf_preflight_report",
    "maf_warnings_as_errors": "maf_preflight_warnings_as_errors",
    "maf_max_concurrency": "maf_preflight_max_concurrency",
    "maf_gc_freeze": "maf_preflight_gc_freeze",
    "maf_base_url": "maf_preflight_base_url",
    "maf_max_config_bytes": "maf_preflight_max_config_bytes",
    "maf_default_escalation": "maf_preflight_default_escalation",
}
#: What ``getini`` returns for a key of ``INI_ALIASES`` (either spelling) that the ini file
#: leaves out, so that ``settings`` can tell it from a key set to its default value.
UNSET: Final = object()


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("maf-preflight", "preflight gate for multi-agent setups")
    group.addoption(
        "--maf-preflight",
        action="store_true",
        default=None,
        dest="maf_preflight",
        help=HELP_PREFLIGHT,
    )
    group.addoption(
        "--maf-preflight-only",
        action="store_true",
        default=None,
        dest="maf_preflight_only",
        help=HELP_ONLY,
    )
    group.addoption(
        "--maf-config",
        "--maf-preflight-config",
        action="append",
        default=[],
        metavar="PATH",
        dest="maf_config",
        help=HELP_CONFIG,
    )
    group.addoption("--maf-env", default=None, metavar="NAME", dest="maf_env", help=HELP_ENV)
    group.addoption(
        "--maf-agent-id", default=None, metavar="ID", dest="maf_agent_id", help=HELP_AGENT
    )
    group.addoption(
        "--maf-report",
        "--maf-preflight-report",
        default=None,
        metavar="PATH",
        dest="maf_report",
        help=HELP_REPORT,
    )
    group.addoption(
        "--maf-html",
        "--maf-preflight-html",
        default=None,
        metavar="PATH",
        dest="maf_html",
        help=HELP_HTML,
    )
    group.addoption(
        "--maf-warnings-as-errors",
        "--maf-preflight-warnings-as-errors",
        action="store_true",
        default=None,
        dest="maf_warnings_as_errors",
        help=HELP_WARNINGS_AS_ERRORS,
    )
    group.addoption(
        "--maf-max-concurrency",
        "--maf-preflight-max-concurrency",
        default=None,
        metavar="N",
        dest="maf_max_concurrency",
        help=HELP_MAX_CONCURRENCY,
    )
    group.addoption(
        "--maf-runtime", default=None, metavar="MODES", dest="maf_runtime", help=HELP_RUNTIME
    )
    group.addoption(
        "--maf-db-url", default=None, metavar="URL", dest="maf_db_url", help=HELP_DB_URL
    )
    group.addoption(
        "--maf-base-url",
        "--maf-preflight-base-url",
        default=None,
        metavar="URL",
        dest="maf_base_url",
        help=HELP_BASE_URL,
    )
    group.addoption(
        "--maf-no-escalate",
        action="store_true",
        default=None,
        dest="maf_no_escalate",
        help=HELP_NO_ESCALATE,
    )
    group.addoption(
        "--maf-no-reuse",
        action="store_true",
        default=None,
        dest="maf_no_reuse",
        help=HELP_NO_REUSE,
    )

    parser.addini("maf_preflight", HELP_PREFLIGHT, type="bool", default=False)
    parser.addini("maf_preflight_only", HELP_ONLY, type="bool", default=False)
    parser.addini("maf_env", HELP_ENV, default="")
    parser.addini("maf_agent_id", HELP_AGENT, default="")
    parser.addini("maf_agent_type", HELP_AGENT_TYPE, default="")
    parser.addini("maf_agent_capabilities", HELP_AGENT_CAPABILITIES, default="")
    parser.addini("maf_runtime", HELP_RUNTIME, default="")
    parser.addini("maf_db_url", HELP_DB_URL, default="")
    parser.addini("maf_no_escalate", HELP_NO_ESCALATE, type="bool", default=False)
    parser.addini("maf_no_reuse", HELP_NO_REUSE, type="bool", default=False)
    parser.addini("maf_html", HELP_HTML, default="")
    _add_renamed_ini(parser, "maf_config", HELP_CONFIG_INI, "linelist")
    _add_renamed_ini(parser, "maf_report", HELP_REPORT)
    _add_renamed_ini(parser, "maf_warnings_as_errors", HELP_WARNINGS_AS_ERRORS, "bool")
    _add_renamed_ini(parser, "maf_max_concurrency", HELP_MAX_CONCURRENCY)
    _add_renamed_ini(parser, "maf_gc_freeze", HELP_GC_FREEZE, "bool")
    _add_renamed_ini(parser, "maf_base_url", HELP_BASE_URL)
    _add_renamed_ini(parser, "maf_max_config_bytes", HELP_MAX_CONFIG_BYTES)
    _add_renamed_ini(parser, "maf_default_escalation", HELP_DEFAULT_ESCALATION)


def _add_renamed_ini(
    parser: pytest.Parser,
    name: str,
    help_text: str,
    kind: Literal["bool", "linelist"] | None = None,
) -> None:
    """Register ``name`` and its earlier spelling, both ``UNSET`` when left out."""
    parser.addini(name, help_text, type=kind, default=UNSET)
    parser.addini(INI_ALIASES[name], f"Alias of {name}", type=kind, default=UNSET)

"""Command-line options and ini keys, declared (``settings`` resolves them).

Help strings are module constants shared by ``addoption`` and ``addini``. This module is
loaded in every pytest run, so it holds declarations only.
"""

from __future__ import annotations

import pytest

from . import names

HELP_PREFLIGHT = "Run the preflight gate before the session and skip the rest when it closes"
HELP_ONLY = "Run the preflight gate (config checks and maf_smoke tests) and nothing else"
HELP_CONFIG = (
    "Preflight config file or directory, in addition to .maf/preflight-configs (repeatable)"
)
HELP_PATHS = "Preflight config files or directories, relative to the rootdir"
HELP_ENV = "Environment whose config overrides apply (default: development)"
HELP_AGENT = "Id of the agent this session runs for"
HELP_AGENT_TYPE = ("The agent's type, recorded with its heartbeats: coordinator, worker "
                   "(default), verifier or escalation_manager (env MAF_AGENT_TYPE)")
HELP_AGENT_CAPABILITIES = ("The agent's capabilities, recorded with its heartbeats: names "
                           "separated by commas (env MAF_AGENT_CAPABILITIES)")
HELP_REPORT = "Write a JSON report of the gate to this path"
HELP_WARNINGS_AS_ERRORS = "Let failing warning-severity checks fail the run and close the gate"
HELP_MAX_CONCURRENCY = "Most preflight checks run at once (default: 50)"
HELP_GC_FREEZE = ("Freeze the objects alive when the tests start, so garbage collections "
                  "during the tests skip them (default: true; env MAF_PREFLIGHT_GC_FREEZE)")
HELP_BASE_URL = "Base URL for api checks whose endpoint has no base_url"
HELP_RUNTIME = ("Runtime modes to record in, tried in order (default: sqlite,json,memory; "
                "also MAF_RUNTIME_MODE)")
HELP_DB_URL = ("PostgreSQL URL of the postgres runtime mode (also MAF_DB_URL; a password may "
               "come from PGPASSWORD or ~/.pgpass)")
HELP_NO_ESCALATE = "Raise, advance and deliver no escalations in this run"
HELP_DEFAULT_ESCALATION = "Escalation path for checks that name none"
HELP_MAX_CONFIG_BYTES = "Largest preflight config file accepted, in bytes (default: 1048576)"

DEFAULT_AGENT = names.ANONYMOUS_AGENT
DEFAULT_MAX_CONCURRENCY = 50
DEFAULT_MAX_CONFIG_BYTES = 1024 * 1024



def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("maf-preflight", "preflight gate for multi-agent setups")
    group.addoption("--maf-preflight", action="store_true", default=None, dest="maf_preflight",
                    help=HELP_PREFLIGHT)
    group.addoption("--maf-preflight-only", action="store_true", default=None,
                    dest="maf_preflight_only", help=HELP_ONLY)
    group.addoption("--maf-preflight-config", action="append", default=[], metavar="PATH",
                    dest="maf_preflight_config", help=HELP_CONFIG)
    group.addoption("--maf-env", default=None, metavar="NAME", dest="maf_env", help=HELP_ENV)
    group.addoption("--maf-agent-id", default=None, metavar="ID", dest="maf_agent_id",
                    help=HELP_AGENT)
    group.addoption("--maf-preflight-report", default=None, metavar="PATH",
                    dest="maf_preflight_report", help=HELP_REPORT)
    group.addoption("--maf-preflight-warnings-as-errors", action="store_true", default=None,
                    dest="maf_preflight_warnings_as_errors", help=HELP_WARNINGS_AS_ERRORS)
    group.addoption("--maf-preflight-max-concurrency", default=None, metavar="N",
                    dest="maf_preflight_max_concurrency", help=HELP_MAX_CONCURRENCY)
    group.addoption("--maf-runtime", default=None, metavar="MODES", dest="maf_runtime",
                    help=HELP_RUNTIME)
    group.addoption("--maf-db-url", default=None, metavar="URL", dest="maf_db_url",
                    help=HELP_DB_URL)
    group.addoption("--maf-preflight-base-url", default=None, metavar="URL",
                    dest="maf_preflight_base_url", help=HELP_BASE_URL)
    group.addoption("--maf-no-escalate", action="store_true", default=None,
                    dest="maf_no_escalate", help=HELP_NO_ESCALATE)

    parser.addini("maf_preflight", HELP_PREFLIGHT, type="bool", default=False)
    parser.addini("maf_preflight_only", HELP_ONLY, type="bool", default=False)
    parser.addini("maf_preflight_paths", HELP_PATHS, type="linelist", default=[])
    parser.addini("maf_env", HELP_ENV, default="")
    parser.addini("maf_agent_id", HELP_AGENT, default="")
    parser.addini("maf_agent_type", HELP_AGENT_TYPE, default="")
    parser.addini("maf_agent_capabilities", HELP_AGENT_CAPABILITIES, default="")
    parser.addini("maf_preflight_report", HELP_REPORT, default="")
    parser.addini("maf_preflight_warnings_as_errors", HELP_WARNINGS_AS_ERRORS, type="bool",
                  default=False)
    parser.addini("maf_preflight_max_concurrency", HELP_MAX_CONCURRENCY, default="")
    parser.addini("maf_preflight_gc_freeze", HELP_GC_FREEZE, type="bool", default=True)
    parser.addini("maf_preflight_base_url", HELP_BASE_URL, default="")
    parser.addini("maf_preflight_max_config_bytes", HELP_MAX_CONFIG_BYTES, default="")
    parser.addini("maf_runtime", HELP_RUNTIME, default="")
    parser.addini("maf_db_url", HELP_DB_URL, default="")
    parser.addini("maf_no_escalate", HELP_NO_ESCALATE, type="bool", default=False)
    parser.addini("maf_preflight_default_escalation", HELP_DEFAULT_ESCALATION, default="")

"""Names shared by the pytest plugin and the ``maf-preflight`` command (stdlib only, cheap).

An environment name selects ``environment_overrides`` and may become part of a path, so it is
restricted to letters, digits, ``_``, ``-`` and ``.``, and cannot start with ``.`` (no ``..``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: Where configs live under the rootdir (or the current directory for the command).
DEFAULT_CONFIG_DIR = ".maf/preflight-configs"
DEFAULT_ENV = "development"
#: An environment name (also an ``environment_overrides`` key): no '/', no leading '.'.
NAME_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$"
NAME_RULE = "letters, digits, '_', '-' and '.', not starting with '.'"
#: The agent id of a run that names none. It stands for nobody: leases held under it could not
#: be told from anyone else's, so no lease is granted to it and a reservation check run under
#: it cannot tell this agent's leases from others' (it fails closed).
ANONYMOUS_AGENT = "anonymous"
#: Most checks run at once, by the gate and by ``maf-preflight guard check``.
DEFAULT_MAX_CONCURRENCY = 50
#: Largest config file read, in bytes (ini ``maf_max_config_bytes``).
DEFAULT_MAX_CONFIG_BYTES = 1024 * 1024


def is_anonymous(agent_id: str) -> bool:
    """Whether ``agent_id`` names no agent. The one rule for the gate, the fixtures and the
    command: ``anonymous`` set on purpose (a flag, a variable) is the same as none set."""
    return agent_id == ANONYMOUS_AGENT


def environment_name(
    cli_value: str | None,
    environ: Mapping[str, str],
    ini_value: str = "",
    *,
    cli_source: str = "--maf-env",
) -> str:
    """The environment whose overrides apply: CLI > MAF_ENV > NODE_ENV > ini > ``development``.

    The first non-empty value wins and must match ``NAME_PATTERN``; otherwise ``ValueError``
    names where the value came from (``cli_source`` names the command-line option).
    """
    for value, source in (
        (cli_value, cli_source),
        (environ.get("MAF_ENV"), "MAF_ENV environment variable"),
        (environ.get("NODE_ENV"), "NODE_ENV environment variable"),
        (ini_value, "maf_env in the config file"),
    ):
        if value:
            if not re.fullmatch(NAME_PATTERN, value):
                raise ValueError(
                    f"{source}: {value!r} is not a valid environment name ({NAME_RULE})"
                )
            return value
    return DEFAULT_ENV

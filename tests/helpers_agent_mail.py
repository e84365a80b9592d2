"""Reading mcp_agent_mail reservations as the agent-mail tests do: a fixed "now" and project,
and what a report holds."""

from __future__ import annotations

import calendar
from pathlib import Path

from pytest_maf_preflight.agent_mail.reservations import SourceReport, read_reservations
from pytest_maf_preflight.config.models import AgentMailSource

#: "Now" for every test: 2026-11-25 09:30:00 UTC. Times near it hide string-comparison bugs.
NOW = float(calendar.timegm((2026, 11, 25, 9, 30, 0)))
PROJECT = "/srv/repos/app"
SLUG = "srv-repos-app"


def read(
    source: AgentMailSource,
    rootdir: Path,
    *,
    environ: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> SourceReport:
    return read_reservations(
        source, rootdir=rootdir, environ=environ or {}, now=NOW, timeout=timeout
    )


def held(report: SourceReport) -> set[tuple[str, str, bool]]:
    return {(r.agent, r.path_pattern, r.exclusive) for r in report.reservations}

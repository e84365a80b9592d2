"""A ``PageData`` as one self-contained HTML document, and writing it.

Every string that came from outside (check ids, agent names, messages, patterns, targets) goes
through ``html.escape``; numbers are formatted here. The page holds its style and script
(``assets``) and asks for nothing over the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path

from ..atomic import write_atomic
from ..runtime.records import AgentRecord, CheckStats, DeliveryRecord
from .assets import SCRIPT, STYLE, content_security_policy
from .charts import STATUSES, rate_bar, sparkline_svg, strip_html, timeline_html
from .model import CheckHistory, EscalationView, LadderStep, LeaseRow, PageData, RunHeader
from .text import duration, iso, relative, utc


def write_page(path: Path, page: PageData) -> None:
    """Write the page atomically (missing directories are created); ``OSError`` when it
    cannot be written. Not flushed to disk: a report can be written again, and the flushes
    would cost a run's page more than the rest of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, render(page).encode("utf-8"), durable=False)


def render(page: PageData) -> str:
    """The whole document; each check's history row is an anchor the timeline links to."""
    anchors = {h.config_id: f"check-{i}" for i, h in enumerate(page.histories)}
    body = "".join(
        (
            _header(page),
            _run(page.run),
            _timeline(page, anchors),
            _histories(page.histories, anchors),
            _flaky(page.flaky, anchors),
            _leases(page.leases, page.generated_at),
            _escalations(page.escalations, page.generated_at),
            _agents(page.agents, page.generated_at),
            _footer(),
        )
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{content_security_policy()}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light">'
        f"<title>{escape(_title(page))}</title><style>{STYLE}</style></head>\n"
        f"<body>{body}<script>{SCRIPT}</script></body></html>\n"
    )


def _title(page: PageData) -> str:
    run = page.run
    if run is None:
        return "maf-preflight report"
    verdict = f"gate {run.verdict}" if run.verdict else "gate not decided"
    return f"maf-preflight: {verdict}, agent {run.agent_id}"


def _when(epoch: float | None, now: float) -> str:
    """A UTC time and, beside it, how long ago or ahead (kept current by the script)."""
    if epoch is None:
        return '<span class="muted">-</span>'
    return (
        f'<time datetime="{iso(epoch)}">{utc(epoch)}</time> <span class="muted">'
        f'(<span data-at="{epoch:.3f}">{relative(epoch, now)}</span>)</span>'
    )


def _section(section_id: str, title: str, count: int | None, content: str) -> str:
    shown = f' <span class="count">({count})</span>' if count is not None else ""
    return f'<section id="{section_id}"><h2>{escape(title)}{shown}</h2>{content}</section>'


def _header(page: PageData) -> str:
    notes = ""
    if page.notes:
        items = "".join(f"<li>{escape(note)}</li>" for note in page.notes)
        notes = f'<div class="notes" data-notes><ul>{items}</ul></div>'
    return (
        "<header><h1>maf-preflight report</h1>"
        f'<p class="sub">Written {_when(page.generated_at, page.generated_at)} from '
        f"{escape(page.store)}; history of {escape(page.scope)}.</p>{notes}</header>"
    )


def _run(run: RunHeader | None) -> str:
    if run is None:
        return _section("run", "Latest session", None, '<p class="empty">No session recorded.</p>')
    verdict = run.verdict or "not decided"
    facts = [
        ("agent", escape(run.agent_id)),
        ("environment", escape(run.environment)),
        ("started", f'<time datetime="{iso(run.started_at)}">{utc(run.started_at)}</time>'),
        ("exit code", "-" if run.exit_code is None else str(run.exit_code)),
    ]
    if run.session_id:
        facts.append(("session", f'<span class="mono">{escape(run.session_id)}</span>'))
    lists = [
        ("Closed by", run.blocking),
        ("Warnings", run.warnings),
        ("Failed maf_smoke tests", run.smoke_failures),
    ]
    content = (
        f'<p><span class="verdict {escape(verdict.replace(" ", "_"))}" data-verdict="'
        f'{escape(verdict)}">gate {escape(verdict)}</span></p>'
        '<div class="facts">'
        + "".join(f'<div><span class="k">{name}</span>{value}</div>' for name, value in facts)
        + "</div>"
        + "".join(
            f"<p><strong>{label}:</strong> "
            + ", ".join(f"<code>{escape(item)}</code>" for item in items)
            + "</p>"
            for label, items in lists
            if items
        )
    )
    return _section("run", run.title, None, content)


def _timeline(page: PageData, anchors: Mapping[str, str]) -> str:
    timeline = page.timeline
    decisive = timeline.decisive
    intro = ""
    if decisive is not None:
        intro = (
            f'<p class="sub">{len(timeline.bars)} check{"s" if len(timeline.bars) != 1 else ""}'
            f" on one time axis: the checks took {escape(duration(timeline.span))}; the gate "
            f"waited last for <strong>{escape(decisive.check_id)}</strong> "
            f"({escape(duration(decisive.duration))}).</p>"
        )
    legend = (
        '<div class="legend">'
        + "".join(f'<span><i class="st-{s}"></i>{s}</span>' for s in STATUSES)
        + '<span><i class="st-failed tl-bar nonblocking" style="position:static;display:inline-'
        'block"></i>warning only (does not block)</span>' + "<span>&times;N: attempts</span></div>"
        if timeline.bars
        else ""
    )
    return _section(
        "timeline", "Gate timeline", None, intro + timeline_html(timeline, anchors) + legend
    )


def _histories(histories: Sequence[CheckHistory], anchors: Mapping[str, str]) -> str:
    if not histories:
        return _section(
            "history", "Check history", 0, '<p class="empty">No executions recorded.</p>'
        )
    rows = "".join(_history_row(h, anchors[h.config_id]) for h in histories)
    table = (
        "<table><thead><tr><th>Check</th><th>Last outcomes (oldest to newest)</th>"
        '<th>Duration trend</th><th>Pass rate</th><th class="num">Runs</th>'
        '<th class="num">p50</th><th class="num">p95</th><th>Last</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )
    return _section("history", "Check history", len(histories), table)


def _history_row(history: CheckHistory, anchor: str) -> str:
    stats = history.stats
    outcomes = history.outcomes
    kind = ' <span class="badge plain">maf_smoke</span>' if history.kind == "smoke" else ""
    if stats is not None:
        numbers = (
            f"<td>{rate_bar(stats.pass_rate, 'pass')}</td>"
            f'<td class="num">{stats.runs}</td>'
            f'<td class="num">{escape(duration(stats.p50_duration))}</td>'
            f'<td class="num">{escape(duration(stats.p95_duration))}</td>'
            f"<td>{_badge(stats.last_status)}</td>"
        )
    else:  # only skipped executions: nothing to count
        last = outcomes[-1].status if outcomes else "-"
        numbers = '<td class="muted">-</td>' * 4 + f"<td>{_badge(last)}</td>"
    return (
        f'<tr id="{anchor}" data-history data-check-id="{escape(history.config_id)}" '
        f'data-outcomes="{len(outcomes)}">'
        f'<td class="mono">{escape(history.config_id)}{kind}</td>'
        f"<td>{strip_html(outcomes)}</td>"
        f"<td>{sparkline_svg([o.duration for o in outcomes])}</td>"
        f"{numbers}</tr>"
    )


def _badge(status: str) -> str:
    kind = f"st-{escape(status)}" if status in STATUSES else "plain"
    return f'<span class="badge {kind}">{escape(status)}</span>'


def _flaky(flaky: Sequence[CheckStats], anchors: Mapping[str, str]) -> str:
    if not flaky:
        return _section(
            "flaky",
            "Flaky checks",
            0,
            '<p class="empty">No check changed between passing and failing in this history.</p>',
        )
    rows = "".join(
        f'<tr data-flaky data-check-id="{escape(s.config_id)}">'
        f'<td class="num">{rank}</td>'
        f'<td class="mono"><a href="#{anchors.get(s.config_id, "history")}">'
        f"{escape(s.config_id)}</a></td>"
        f"<td>{rate_bar(s.flip_rate, 'flip')}</td>"
        f'<td class="num">{s.flips} of {max(0, s.runs - 1)}</td>'
        f"<td>{rate_bar(s.pass_rate, 'pass')}</td>"
        f"<td>{_badge(s.last_status)}</td></tr>"
        for rank, s in enumerate(flaky, 1)
    )
    table = (
        '<p class="sub">Ranked by how often the outcome flipped between passing and not passing '
        "from one run to the next.</p>"
        '<table><thead><tr><th class="num">#</th><th>Check</th><th>Flip rate</th>'
        '<th class="num">Flips</th><th>Pass rate</th><th>Last</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )
    return _section("flaky", "Flaky checks", len(flaky), table)


def _leases(leases: Sequence[LeaseRow], now: float) -> str:
    if not leases:
        return _section("leases", "Active leases", 0, '<p class="empty">No active lease.</p>')
    rows = "".join(
        f'<tr data-lease data-holder="{escape(lease.holder)}">'
        f'<td class="mono">{escape(lease.pattern)}</td><td>{escape(lease.holder)}</td>'
        f"<td>{'exclusive' if lease.exclusive else 'shared'}</td>"
        f"<td>{_when(lease.expires_at, now)}</td><td>{escape(lease.source)}</td>"
        f"<td>{escape(lease.reason)}</td></tr>"
        for lease in leases
    )
    table = (
        "<table><thead><tr><th>Pattern</th><th>Holder</th><th>Kind</th><th>Expires</th>"
        f"<th>Source</th><th>Reason</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return _section("leases", "Active leases", len(leases), table)


def _escalations(views: Sequence[EscalationView], now: float) -> str:
    if not views:
        return _section(
            "escalations", "Open escalations", 0, '<p class="empty">No open escalation.</p>'
        )
    return _section(
        "escalations",
        "Open escalations",
        len(views),
        "".join(_escalation(view, now) for view in views),
    )


def _escalation(view: EscalationView, now: float) -> str:
    e = view.record
    summary = e.details.get("summary")
    ack = ""
    if e.acknowledged_by is not None or e.acknowledged_at is not None:
        ack = (
            f'<p class="ack" data-acknowledged-by="{escape(e.acknowledged_by or "")}">'
            f"Acknowledged by {escape(e.acknowledged_by or '?')} "
            f"{_when(e.acknowledged_at, now)}: the climb stopped.</p>"
        )
    facts = [
        ("state", escape(e.state)),
        ("level", str(e.level)),
        ("occurrences", str(e.occurrences)),
        ("check", escape(e.check_id or "-")),
        ("failure", escape(e.failure_class or "-")),
        ("opened", _when(e.created_at, now)),
        ("next action", _when(e.next_action_at, now)),
    ]
    steps = "".join(_step(step, e.level) for step in view.steps)
    if view.other_deliveries:
        steps += (
            '<li class="reached">other levels (not in the path as it was opened)'
            f"{_deliveries(view.other_deliveries)}</li>"
        )
    return (
        f'<article class="esc" data-escalation data-state="{escape(e.state)}" '
        f'data-level="{e.level}">'
        f'<h3><span class="mono">{escape(e.id[:12])}</span> on path '
        f"<code>{escape(e.path_id)}</code>"
        + (f": {escape(str(summary))}" if summary else "")
        + "</h3>"
        '<div class="facts">'
        + "".join(f'<div><span class="k">{name}</span>{value}</div>' for name, value in facts)
        + f"</div>{ack}"
        + (f'<ol class="ladder">{steps}</ol>' if steps else "")
        + "</article>"
    )


def _step(step: LadderStep, level: int) -> str:
    state = "current" if step.level == level else "reached" if step.level < level else "pending"
    timeout = f", times out after {step.timeout_minutes:g} min" if step.timeout_minutes else ""
    return (
        f'<li class="{state}" data-step="{step.level}" data-step-state="{state}">'
        f"Level {step.level}: {escape(step.action)} <code>{escape(step.target)}</code> "
        f"by {escape(step.channel)}{timeout}"
        f"{_deliveries(step.deliveries)}</li>"
    )


def _deliveries(deliveries: Iterable[DeliveryRecord]) -> str:
    items = "".join(
        f'<li data-delivery="{escape(d.status)}">{escape(d.channel)} &rarr; '
        f"<code>{escape(d.target)}</code>: {_badge_delivery(d.status)} attempt {d.attempt}, "
        f'<time datetime="{iso(d.attempted_at)}">{utc(d.attempted_at)}</time>'
        + (f": {escape(d.error)}" if d.error else "")
        + "</li>"
        for d in deliveries
    )
    return f"<ul>{items}</ul>" if items else ""


def _badge_delivery(status: str) -> str:
    kind = {"delivered": "st-passed", "failed": "st-failed", "fallback": "st-timeout"}.get(
        status, "plain"
    )
    return f'<span class="badge {kind}">{escape(status)}</span>'


def _agents(agents: Sequence[AgentRecord], now: float) -> str:
    if not agents:
        return _section(
            "agents", "Agents", 0, '<p class="empty">No agent has sent a heartbeat.</p>'
        )
    rows = "".join(
        f'<tr data-agent="{escape(a.id)}"><td>{escape(a.id)}</td><td>{escape(a.agent_type)}</td>'
        f"<td>{escape(a.status)}</td><td>{_when(a.last_heartbeat, now)}</td>"
        f"<td>{escape(', '.join(a.capabilities)) or '-'}</td></tr>"
        for a in agents
    )
    table = (
        "<table><thead><tr><th>Agent</th><th>Type</th><th>Status</th><th>Last heartbeat</th>"
        f"<th>Capabilities</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return _section("agents", "Agents", len(agents), table)


def _footer() -> str:
    from .. import __version__

    return (
        f"<footer>pytest-maf-preflight {escape(__version__)}. Times are UTC; "
        "relative times are as of when the page is read.</footer>"
    )

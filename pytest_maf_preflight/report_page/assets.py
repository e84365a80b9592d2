"""The page's style sheet and script, inlined into every page: no file beside it, nothing
fetched (the page's Content-Security-Policy allows no network at all).

The script is optional: without it the page shows the same, with the relative times ("in 14m",
"3h ago") as they were when the page was written; with it they are as of when it is read.
"""

from __future__ import annotations

import base64
import hashlib

STYLE = """
:root { --passed: #2e9d5b; --failed: #d64541; --timeout: #e08a1e; --error: #8e44ad;
  --skipped: #9aa0a6; --ink: #1f2328; --muted: #656d76; --line: #d0d7de; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; padding: 1.5rem 2rem 3rem; color: var(--ink); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
h1 { font-size: 1.5rem; margin: 0 0 .2rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .6rem; padding-bottom: .25rem;
  border-bottom: 1px solid var(--line); }
h2 .count { color: var(--muted); font-weight: normal; font-size: .9rem; }
.sub, .empty, .muted { color: var(--muted); }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: .92em; }
.notes { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px;
  padding: .5rem .8rem; }
.verdict { display: inline-block; padding: .1rem .55rem; border-radius: 1rem; color: #fff;
  font-weight: 600; }
.verdict.open { background: var(--passed); }
.verdict.closed, .verdict.config_error, .verdict.interrupted { background: var(--failed); }
.facts { display: flex; flex-wrap: wrap; gap: .3rem 1.6rem; margin: .6rem 0; }
.facts .k { color: var(--muted); margin-right: .3rem; }
.st-passed { background: var(--passed); } .st-failed { background: var(--failed); }
.st-timeout { background: var(--timeout); } .st-error { background: var(--error); }
.st-skipped { background: var(--skipped); }
.badge { display: inline-block; padding: 0 .45rem; border-radius: .7rem; color: #fff;
  font-size: .85em; }
.badge.plain { background: var(--soft); color: var(--ink); border: 1px solid var(--line); }
.tl { margin: .4rem 0; }
.tl-row { display: grid; grid-template-columns: minmax(9rem, 16rem) 1fr 15rem;
  align-items: center; gap: .6rem; min-height: 1.5rem; }
.tl-label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; text-align: right; }
.tl-label a { color: inherit; text-decoration: none; }
.tl-track { position: relative; height: 1.05rem; background: var(--soft); border-radius: 3px; }
.tl-bar { position: absolute; top: 0; bottom: 0; border-radius: 3px; min-width: 2px; }
.tl-bar.nonblocking { background-image: repeating-linear-gradient(135deg,
  rgba(255,255,255,.45) 0 4px, transparent 4px 8px); }
.tl-bar.decisive { outline: 2px solid var(--ink); outline-offset: 1px; }
.tl-dur { color: var(--muted); white-space: nowrap; font-variant-numeric: tabular-nums; }
.decisive-mark { margin-left: .5rem; color: var(--ink); font-weight: 600; }
.tl-axis-row { min-height: 1.2rem; }
.tl-axis { position: relative; height: 1.2rem; border-bottom: 1px solid var(--line);
  font-size: 11px; color: var(--muted); }
.tick { position: absolute; bottom: 2px; transform: translateX(-50%); white-space: nowrap; }
.tick:first-child { transform: none; }
.legend { display: flex; flex-wrap: wrap; gap: 1rem; color: var(--muted); font-size: .9em;
  margin-top: .4rem; }
.legend i { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px;
  vertical-align: -1px; margin-right: .3rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid var(--line);
  vertical-align: middle; }
th { font-weight: 600; color: var(--muted); font-size: .9em; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fbfcfd; }
.strip { display: inline-flex; gap: 1px; vertical-align: middle; }
.strip .o { display: inline-block; width: 6px; height: 16px; border-radius: 1px; }
.spark { color: #3b6fd4; vertical-align: middle; }
.spark circle { fill: #3b6fd4; }
.rate { display: inline-block; width: 4rem; height: .55rem; background: var(--soft);
  border: 1px solid var(--line); border-radius: 3px; overflow: hidden; vertical-align: middle; }
.rate span { display: block; height: 100%; }
.rate.pass span { background: var(--passed); } .rate.flip span { background: var(--timeout); }
.esc { border: 1px solid var(--line); border-radius: 6px; padding: .6rem .9rem; margin: .7rem 0; }
.esc h3 { font-size: 1rem; margin: 0 0 .3rem; }
.ladder { list-style: none; padding: 0; margin: .5rem 0 0; }
.ladder > li { border-left: 3px solid var(--line); padding: .15rem 0 .35rem .7rem; }
.ladder > li.reached { border-left-color: var(--timeout); }
.ladder > li.current { border-left-color: var(--failed); font-weight: 600; }
.ladder > li.pending { color: var(--muted); }
.ladder ul { margin: .15rem 0 0; padding-left: 1.1rem; font-weight: normal; }
.ack { color: var(--passed); font-weight: 600; }
footer { margin-top: 2.5rem; color: var(--muted); font-size: .85em; }
"""

SCRIPT = """
(function () {
  "use strict";
  var now = Date.now() / 1000;
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function span(s) {
    s = Math.round(Math.abs(s));
    if (s < 60) { return s + "s"; }
    var m = Math.floor(s / 60); s = s % 60;
    if (m < 60) { return m + "m" + two(s) + "s"; }
    var h = Math.floor(m / 60); m = m % 60;
    if (h < 48) { return h + "h" + two(m) + "m"; }
    return Math.floor(h / 24) + "d" + two(h % 24) + "h";
  }
  var times = document.querySelectorAll("[data-at]");
  for (var i = 0; i < times.length; i++) {
    var at = parseFloat(times[i].getAttribute("data-at"));
    if (isFinite(at)) {
      times[i].textContent = at > now ? "in " + span(at - now) : span(now - at) + " ago";
    }
  }
  document.documentElement.setAttribute("data-rendered", "yes");
})();
"""


def script_hash() -> str:
    """The script's CSP source (``'sha256-...'``): the only script the page may run."""
    digest = hashlib.sha256(SCRIPT.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


#: No network (``default-src 'none'``: no fetch, image, font or frame), this page's style and
#: only its own script; a string that slipped through escaping could not run.
def content_security_policy() -> str:
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src {script_hash()}; base-uri 'none'; form-action 'none'"
    )

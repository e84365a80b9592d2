"""The report page in a real browser (issue 16): headless Chromium loads it, runs its script,
and shows one bar per check, the failed one marked, with nothing on the console.

Skipped, saying how to install Chromium, where it is missing (failed instead under
``MAF_TEST_CHROMIUM_REQUIRED=1``); screenshots go to ``MAF_TEST_SCREENSHOT_DIR`` when set.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from helpers_browser import chromium, elements, keep_screenshot, render, screenshot, text_of
from helpers_configs import WriteConfig, command_config
from helpers_report_page import record_run
from pytest_maf_preflight.report_page.gather import page_from_runtime
from pytest_maf_preflight.report_page.render import write_page
from pytest_maf_preflight.runtime.memory import MemoryRuntime

SLEEP = [sys.executable, "-c", "import time; time.sleep(0.2)"]


@pytest.fixture(autouse=True)
def _browser() -> None:
    """Skip (or fail, when required) before anything else runs without a browser."""
    chromium()


def test_a_gate_runs_page_in_chromium(
    pytester: pytest.Pytester, write_config: WriteConfig, tmp_path: Path
) -> None:
    checks = {"fast": ["true"], "slow": SLEEP, "broken": ["false"], "also-fast": ["true"]}
    for check_id, argv in checks.items():
        write_config(f"{check_id}.json", command_config(check_id, argv))
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "--maf-html=page.html")
    assert result.ret == 10
    page = pytester.path / "page.html"

    shown = render(page, tmp_path / "profile")

    assert shown.console == []
    [root] = elements(shown.dom, tag="html")
    assert root.attrs["data-rendered"] == "yes"  # the page's script ran
    bars = elements(shown.dom, "data-bar")
    assert sorted(b.attrs["data-check-id"] for b in bars) == sorted(checks)
    [failed] = [b for b in bars if b.attrs["data-status"] == "failed"]
    assert failed.attrs["data-check-id"] == "broken"
    assert "st-failed" in failed.classes
    [decisive] = [b for b in bars if b.attrs["data-decisive"] == "true"]
    assert decisive.attrs["data-check-id"] == "slow"
    # Relative times are the script's, as of reading: "ago" or "in", never blank.
    relative = [text for text in text_of(shown.dom).split("(")[1:] if "ago)" in text]
    assert relative
    keep_screenshot(page, "report-page-gate-run", tmp_path / "profile")


def test_hostile_strings_are_text_in_chromium(tmp_path: Path) -> None:
    runtime = MemoryRuntime()
    hostile = "<script>document.title='owned'</script>"
    record_run(runtime, 1_000_000.0, [(hostile, "failed", 0.0, 0.5, 1), ("x", "passed", 0, 1, 1)])
    page = tmp_path / "page.html"
    write_page(
        page,
        page_from_runtime(
            runtime,
            store="a memory runtime",
            scope="all agents",
            since=None,
            agent_id=None,
            rootdir=tmp_path,
            now=1_000_100.0,
        ),
    )

    shown = render(page, tmp_path / "profile")

    assert shown.console == []
    assert len(elements(shown.dom, tag="script")) == 1
    # The document's title is the page's own: the stored script did not run.
    title = re.search(r"<title>(.*?)</title>", shown.dom)
    assert title is not None
    assert title.group(1) == "maf-preflight: gate closed, agent codex-1"
    assert hostile in text_of(shown.dom)
    assert {b.attrs["data-check-id"] for b in elements(shown.dom, "data-bar")} == {hostile, "x"}


def test_the_console_check_sees_errors(tmp_path: Path) -> None:
    # The counterpart of the assertions above: a broken script and a blocked request do show.
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta http-equiv='Content-Security-Policy' "
        "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
        "<img src='https://example.invalid/x.png'><script>missing();</script></body></html>"
    )
    shown = render(page, tmp_path / "profile")
    assert any("Uncaught ReferenceError: missing is not defined" in m for m in shown.console)
    assert any("Content Security Policy" in m for m in shown.console)


def test_a_screenshot_is_a_png(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><html><body><h1>hello</h1></body></html>")
    png = screenshot(page, tmp_path / "shot.png", tmp_path / "profile", width=400, height=300)
    assert png.stat().st_size > 100

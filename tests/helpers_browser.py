"""Rendering the report page in a real browser, headless Chromium (Debian's ``chromium``), and
reading HTML back as elements.

Chromium is a system package, not a Python one: where it is missing the browser tests skip,
saying how to install it, except with ``MAF_TEST_CHROMIUM_REQUIRED=1`` (CI, ``.ci/run``), where
a missing browser fails them. ``MAF_TEST_SCREENSHOT_DIR`` keeps their screenshots (CI keeps
that directory as an artifact). Both are read when this module is first imported, before
tests/conftest.py removes every MAF_* variable from each test's environment.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM_REQUIRED = os.environ.get("MAF_TEST_CHROMIUM_REQUIRED") == "1"
_SCREENSHOTS = os.environ.get("MAF_TEST_SCREENSHOT_DIR")
SCREENSHOT_DIR = Path(_SCREENSHOTS).resolve() if _SCREENSHOTS else None
INSTALL = "apt-get install chromium"
#: A console message of the page, as Chromium logs it with --enable-logging=stderr.
_CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\] (.*)")


def chromium() -> str:
    """The browser's path; skips (or, when required, fails) the test without one."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = f"headless Chromium is not installed: {INSTALL}"
        if CHROMIUM_REQUIRED:
            pytest.fail(f"MAF_TEST_CHROMIUM_REQUIRED=1, but {reason}", pytrace=False)
        pytest.skip(reason)
    return found


@dataclasses.dataclass(frozen=True)
class Rendered:
    #: The DOM after the page's script ran.
    dom: str
    #: What the page wrote to the console (errors, CSP violations, uncaught exceptions).
    console: list[str]


def _run(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *extra,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def render(page: Path, profile: Path) -> Rendered:
    """Load ``page`` in headless Chromium: its DOM once loaded, and its console messages."""
    done = _run(page, profile, "--dump-dom")
    console = [m.group(1) for m in map(_CONSOLE.search, done.stderr.splitlines()) if m]
    return Rendered(dom=done.stdout, console=console)


def screenshot(
    page: Path, png: Path, profile: Path, *, width: int = 1280, height: int = 1600
) -> Path:
    png.parent.mkdir(parents=True, exist_ok=True)
    _run(page, profile, f"--window-size={width},{height}", f"--screenshot={png}")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    return png


def keep_screenshot(page: Path, name: str, profile: Path) -> Path | None:
    """A screenshot of ``page`` in ``MAF_TEST_SCREENSHOT_DIR`` when that is set."""
    if SCREENSHOT_DIR is None:
        return None
    return screenshot(page, SCREENSHOT_DIR / f"{name}.png", profile)


@dataclasses.dataclass(frozen=True)
class Element:
    tag: str
    attrs: dict[str, str]
    classes: tuple[str, ...]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.elements.append(Element(tag, values, tuple(values.get("class", "").split())))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def elements(html: str, attribute: str | None = None, tag: str | None = None) -> list[Element]:
    """The elements of ``html`` carrying ``attribute`` (and of ``tag``), in document order."""
    parser = _Collector()
    parser.feed(html)
    return [
        e
        for e in parser.elements
        if (attribute is None or attribute in e.attrs) and (tag is None or e.tag == tag)
    ]


def text_of(html: str) -> str:
    """The page's text, as a reader sees it (entities decoded)."""
    parser = _Collector()
    parser.feed(html)
    return "".join(parser.text)

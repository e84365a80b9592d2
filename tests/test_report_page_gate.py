"""``pytest --maf-preflight --maf-html=PATH``: the report page of the run (issue 16)."""

from __future__ import annotations

import json
import sys

import pytest

from helpers_browser import elements, text_of
from helpers_configs import WriteConfig, command_config

SLEEP = [sys.executable, "-c", "import time; time.sleep(0.3)"]


def gate_configs(write_config: WriteConfig) -> None:
    write_config("fast.json", command_config("fast", ["true"]))
    write_config("slow.json", command_config("slow", SLEEP))
    write_config("broken.json", command_config("broken", ["false"]))
    write_config("advisory.json", command_config("advisory", ["false"], severity="warning"))


def test_the_run_writes_its_page(pytester: pytest.Pytester, write_config: WriteConfig) -> None:
    gate_configs(write_config)
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    result = pytester.runpytest(
        "-p", "maf_preflight", "--maf-preflight", "--maf-html=out/page.html", "--maf-agent-id=a-1"
    )
    assert result.ret == 10  # the page changes nothing
    html = (pytester.path / "out" / "page.html").read_text(encoding="utf-8")
    bars = {e.attrs["data-check-id"]: e for e in elements(html, "data-bar")}
    assert sorted(bars) == ["advisory", "broken", "fast", "slow"]
    assert bars["broken"].attrs["data-status"] == "failed"
    assert "st-failed" in bars["broken"].classes
    assert "nonblocking" in bars["advisory"].classes  # a warning check's failure
    assert "nonblocking" not in bars["broken"].classes
    assert bars["slow"].attrs["data-decisive"] == "true"
    [verdict] = elements(html, "data-verdict")
    assert verdict.attrs["data-verdict"] == "closed"
    text = text_of(html)
    assert "This run" in text
    assert "broken (failed)" in text
    assert "a-1" in text
    # The history was read after recording: this run is in it, once per check.
    assert [e.attrs["data-outcomes"] for e in elements(html, "data-history")] == ["1"] * 4


SMOKE = "import pytest\n\n@pytest.mark.maf_smoke\ndef test_up():\n    pass\n"


def test_the_page_shows_this_runs_checks_over_earlier_runs(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("fast.json", command_config("fast", ["true"]))
    write_config("gone.json", command_config("gone", ["true"]))
    pytester.makepyfile(test_smoke=SMOKE)
    for _ in range(2):
        assert pytester.runpytest("-p", "maf_preflight", "--maf-preflight").ret == 0
    (pytester.path / ".maf" / "preflight-configs" / "gone.json").unlink()
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "--maf-html=page.html")
    assert result.ret == 0
    html = (pytester.path / "page.html").read_text(encoding="utf-8")
    # This run's check and smoke test, each with the three runs recorded; not "gone".
    assert histories(html) == {"fast": "3", "test_smoke.py::test_up": "3"}
    assert len(elements(html, "data-bar")) == 1  # the timeline is this run's checks alone


def histories(html: str) -> dict[str, str]:
    return {
        e.attrs["data-check-id"]: e.attrs["data-outcomes"] for e in elements(html, "data-history")
    }


def test_under_xdist_the_controller_writes_the_page(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("fast.json", command_config("fast", ["true"]))
    write_config("broken.json", command_config("broken", ["false"]))
    pytester.makepyfile(test_smoke=SMOKE)
    result = pytester.runpytest_subprocess(
        "-p", "maf_preflight", "-p", "xdist", "-n", "2", "--maf-preflight", "--maf-html=page.html"
    )
    assert result.ret == 10
    html = (pytester.path / "page.html").read_text(encoding="utf-8")
    assert sorted(e.attrs["data-check-id"] for e in elements(html, "data-bar")) == [
        "broken",
        "fast",
    ]
    assert set(histories(html)) >= {"broken", "fast"}


@pytest.mark.parametrize(
    ("args", "ini", "where"),
    [
        (("--maf-preflight-html=alias.html",), "", "elsewhere/alias.html"),
        ((), "maf_html = sub/ini.html\n", "sub/ini.html"),
    ],
    ids=["alias", "ini"],
)
def test_other_spellings_and_where_relative_paths_go(
    pytester: pytest.Pytester,
    write_config: WriteConfig,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    ini: str,
    where: str,
) -> None:
    write_config("fast.json", command_config("fast", ["true"]))
    pytester.makeini(f"[pytest]\n{ini}")
    # Started below the rootdir: a command-line path is taken from there, an ini one from the
    # rootdir.
    monkeypatch.chdir(pytester.mkdir("elsewhere"))
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", *args)
    assert result.ret == 0
    assert len(elements((pytester.path / where).read_text(encoding="utf-8"), "data-bar")) == 1


def test_a_page_that_cannot_be_written_is_a_note(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("fast.json", command_config("fast", ["true"]))
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    (pytester.path / "taken").write_text("a file, not a directory")
    result = pytester.runpytest(
        "-p",
        "maf_preflight",
        "--maf-preflight",
        "--maf-html=taken/page.html",
        "--maf-report=gate.json",
    )
    result.stdout.fnmatch_lines(
        ["maf-preflight: cannot write the report page to *taken/page.html: *"]
    )
    assert result.ret == 0
    assert json.loads((pytester.path / "gate.json").read_text())["exit_code"] == 0


def test_the_path_needs_an_equals_sign(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "--maf-html", "p.html")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*write --maf-html=PATH (with '=')*"])


PROBE = """
import sys

def pytest_unconfigure(config):
    with open("modules.txt", "w") as out:
        out.write(str("pytest_maf_preflight.report_page" in sys.modules))
"""


@pytest.mark.parametrize(("args", "loaded"), [((), "False"), (("--maf-html=p.html",), "True")])
def test_the_page_module_loads_only_when_asked_for(
    pytester: pytest.Pytester, write_config: WriteConfig, args: tuple[str, ...], loaded: str
) -> None:
    write_config("fast.json", command_config("fast", ["true"]))
    pytester.makeconftest(PROBE)
    result = pytester.runpytest_subprocess("-p", "maf_preflight", "--maf-preflight", *args)
    assert result.ret == 0
    assert (pytester.path / "modules.txt").read_text() == loaded

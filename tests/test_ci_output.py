"""CI-native output: GitHub Actions annotations and step summary when ``GITHUB_ACTIONS=true``,
and the check items in ``--junitxml`` as GitLab's and Jenkins' JUnit readers take them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers_configs import WriteConfig, command_config
from pytest_maf_preflight.gate.github import annotation, escape_data, escape_property

#: A failing check whose ``id`` is on line 2, below a comment.
BROKEN_YAML = """\
# exits 3
id: broken
name: broken command
config_type: smoke_test
config:
  test_type: command
  test_definition: {argv: ["false"]}
"""
FAILURE = (
    "preflight check 'broken' (command, critical) FAILED after 1 attempt in *s"
    "%0A  expected: exit code 0%0A  observed: exit code 1"
)


@pytest.fixture
def on_github(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """GitHub Actions' variables as a runner sets them; the step summary file, with another
    step's summary in it already."""
    summary = pytester.path / "step-summary.md"
    summary.write_text("# build\n\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    return summary


def gate(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "maf_preflight", "--maf-preflight", *args)


def test_failed_checks_become_annotations_on_the_line_of_their_id(
    pytester: pytest.Pytester, write_config: WriteConfig, on_github: Path
) -> None:
    write_config("broken.yaml", BROKEN_YAML)
    write_config("flaky.json", command_config("flaky", ["false"], severity="warning"))
    write_config("fast.json", command_config("fast", ["true"]))
    result = gate(pytester, "-q")
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        [
            "maf-preflight: gate CLOSED *",
            "::error file=.maf/preflight-configs/broken.yaml,line=2,title=broken::"
            + FAILURE
            + "%0A  config:   .maf/preflight-configs/broken.yaml",
            "::warning file=.maf/preflight-configs/flaky.json,line=1,title=flaky::"
            "preflight check 'flaky' (command, warning) FAILED *",
        ]
    )
    assert len([line for line in result.outlines if line.startswith("::")]) == 2


def test_properties_and_message_are_escaped(
    pytester: pytest.Pytester, write_config: WriteConfig, on_github: Path
) -> None:
    # A file name holding every character a property must escape; the message names it too,
    # where only the percent is escaped.
    write_config("50%,a:b.yaml", BROKEN_YAML)
    result = gate(pytester)
    result.stdout.fnmatch_lines(
        [
            "::error file=.maf/preflight-configs/50%25%2Ca%3Ab.yaml,line=2,title=broken::"
            + FAILURE
            + "%0A  config:   .maf/preflight-configs/50%25,a:b.yaml"
        ]
    )


def test_escaping_follows_the_workflow_command_rules() -> None:
    assert escape_data("100% done\r\nnext: a, b") == "100%25 done%0D%0Anext: a, b"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    assert annotation("warning", "x", file="f.yaml") == "::warning file=f.yaml::x"


def test_paths_are_relative_to_the_workspace(
    pytester: pytest.Pytester,
    write_config: WriteConfig,
    on_github: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path.parent))
    write_config("broken.yaml", BROKEN_YAML)
    result = gate(pytester)
    result.stdout.fnmatch_lines(
        [f"::error file={pytester.path.name}/.maf/preflight-configs/broken.yaml,line=2,*"]
    )


def test_a_failed_smoke_test_is_annotated_on_its_file(
    pytester: pytest.Pytester, write_config: WriteConfig, on_github: Path
) -> None:
    write_config("fast.json", command_config("fast", ["true"]))
    pytester.makepyfile(
        test_up="import pytest\n\n@pytest.mark.maf_smoke\ndef test_up():\n    assert False\n"
    )
    result = gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        [
            "::error file=test_up.py,title=test_up.py%3A%3Atest_up::"
            "maf_smoke test test_up.py::test_up failed: the gate is closed"
        ]
    )


def test_the_step_summary_is_appended(
    pytester: pytest.Pytester, write_config: WriteConfig, on_github: Path
) -> None:
    write_config("broken.yaml", BROKEN_YAML)
    write_config("flaky.json", command_config("flaky", ["false"], severity="warning"))
    write_config("fast.json", command_config("fast", ["true"]))
    gate(pytester, "--maf-agent-id", "ci-1", "--maf-env", "ci")
    lines = on_github.read_text().splitlines()
    pytest.LineMatcher(lines).fnmatch_lines(
        [
            "# build",
            "",
            "## maf-preflight: gate CLOSED",
            "",
            "Agent ci-1, environment ci.",
            "",
            "Closed by: broken (failed)",
            "",
            "Warnings: flaky",
            "",
            "| check | status | duration |",
            "| --- | --- | --- |",
            "| broken | **FAILED** | * ms |",
            "| fast | passed | * ms |",
            "| flaky | warning (failed) | * ms |",
            "",
        ],
        consecutive=True,
    )
    assert len(lines) == 16


def test_an_open_gate_summary_and_a_second_run_append(
    pytester: pytest.Pytester, write_config: WriteConfig, on_github: Path
) -> None:
    write_config("fast.json", command_config("fast", ["true"]))
    for _ in range(2):
        assert gate(pytester).ret == 0
    text = on_github.read_text()
    assert text.count("## maf-preflight: gate open\n") == 2
    assert "Closed by" not in text
    assert text.startswith("# build\n")


def test_an_unwritable_step_summary_is_a_note(
    pytester: pytest.Pytester,
    write_config: WriteConfig,
    on_github: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path))  # a directory
    write_config("broken.yaml", BROKEN_YAML)
    result = gate(pytester)
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        [
            "::error file=*",
            "maf-preflight: cannot append the gate's summary to GITHUB_STEP_SUMMARY "
            f"({pytester.path}): Is a directory",
        ]
    )


def test_nothing_for_github_elsewhere(
    pytester: pytest.Pytester,
    write_config: WriteConfig,
    on_github: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_config("broken.yaml", BROKEN_YAML)
    for value in ("false", ""):
        monkeypatch.setenv("GITHUB_ACTIONS", value)
        result = gate(pytester)
        assert result.ret == 10
        result.stdout.no_fnmatch_line("::*")
    assert on_github.read_text() == "# build\n\n"


def test_xdist_annotates_once(
    pytester: pytest.Pytester, write_config: WriteConfig, on_github: Path
) -> None:
    pytest.importorskip("xdist")
    write_config("broken.yaml", BROKEN_YAML)
    pytester.makepyfile(test_app="def test_one():\n    pass\n\ndef test_two():\n    pass\n")
    result = pytester.runpytest_subprocess(
        "-p", "maf_preflight", "-p", "xdist", "-n", "2", "--maf-preflight"
    )
    assert result.ret == 10
    assert [line.split(",")[0] for line in result.outlines if line.startswith("::")] == [
        "::error file=.maf/preflight-configs/broken.yaml"
    ]
    assert on_github.read_text().count("## maf-preflight: gate CLOSED") == 1


# --- JUnit XML ----------------------------------------------------------------------------------


@pytest.mark.parametrize("xdist", [False, True], ids=["plain", "xdist"])
def test_junit_xml_has_each_check_as_a_test_case_with_its_message(
    pytester: pytest.Pytester, write_config: WriteConfig, xdist: bool
) -> None:
    if xdist:
        pytest.importorskip("xdist")
    write_config("broken.yaml", BROKEN_YAML)
    write_config("fast.json", command_config("fast", ["true"]))
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    dist = ("-p", "xdist", "-n", "2") if xdist else ()
    result = pytester.runpytest_subprocess(
        "-p", "maf_preflight", *dist, "--maf-preflight", "--junitxml=out.xml"
    )
    assert result.ret == 10
    cases = {
        case.get("name"): case for case in ET.parse(pytester.path / "out.xml").iter("testcase")
    }
    assert set(cases) == {"broken", "fast", "test_app"}
    # Jenkins: package and class from classname (split at its last dot), the test from name,
    # "Error Message" from failure's message, the stack trace from its text; GitLab shows the
    # failure's text. The config file's path, with dots for slashes as pytest writes it.
    broken, fast, app = cases["broken"], cases["fast"], cases["test_app"]
    assert broken.get("classname") == ".maf.preflight-configs.broken.yaml"
    failure = broken.find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert message.startswith("preflight check 'broken' (command, critical) FAILED")
    assert failure.text is not None
    assert "observed: exit code 1" in failure.text
    assert "config:   .maf/preflight-configs/broken.yaml" in failure.text
    assert fast.get("classname") == ".maf.preflight-configs.fast.json"
    assert [child.tag for child in fast if child.tag != "properties"] == []
    properties = {p.get("name"): p.get("value") for p in fast.iter("property")}
    assert (properties["maf_check_id"], properties["maf_check_status"]) == ("fast", "passed")
    skipped = app.find("skipped")
    assert skipped is not None
    assert skipped.get("message") == "maf-preflight gate closed by: broken (failed)"
    assert skipped.text is not None
    assert "maf-preflight gate closed by: broken (failed)" in skipped.text

"""Values that parse but could only fail when a check or an escalation runs are config errors
at load: a date/time inside an api ``json_body``, a NUL or a lone surrogate in a command's
``argv``, an escalation target url that is not http(s). Each goes through a real pytest run
(exit 11, file, line and path named) and through ``maf-preflight validate`` (a real process)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.config.loader import ConfigLoader


@dataclasses.dataclass(frozen=True)
class Case:
    name: str  # the file name
    text: str
    line: int
    path: str
    message: str


def _api_with(value: str) -> str:
    return f"""\
id = "api-date"
name = "A date in the body"
config_type = "smoke_test"

[config]
test_type = "api"

[config.test_definition]
url = "http://127.0.0.1:9/"
method = "POST"

[config.test_definition.json_body]
name = "x"
items = [{{ since = {value} }}]
"""


def _command_with(argument: str) -> str:
    # The JSON escape is written out, so the file itself is plain ASCII.
    return f"""\
{{
  "id": "argv-bad",
  "name": "An argument no operating system takes",
  "config_type": "smoke_test",
  "config": {{
    "test_type": "command",
    "test_definition": {{
      "argv": ["echo",
               "{argument}"]
    }}
  }}
}}
"""


def _escalation_with(url: str) -> str:
    return f"""\
id: hook-path
name: A webhook target
config_type: escalation_path
config:
  trigger_conditions:
    - {{condition: preflight_failure, operator: gte, threshold: 1}}
  escalation_steps:
    - {{level: 1, action: notify, target: lead}}
  targets:
    lead:
      channel: webhook
      url: "{url}"
"""


_DATE = "which JSON cannot carry; write it as a string (in quotes)"
CASES = [
    *(
        Case(
            "api-date.toml",
            _api_with(value),
            12,
            "config.test_definition.json_body",
            f"json_body.items[0].since is a date/time ({shown}), {_DATE}",
        )
        for value, shown in [
            ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00+00:00"),
            ("2024-01-01T10:00:00", "2024-01-01T10:00:00"),
            ("2024-01-01", "2024-01-01"),
            ("10:30:00", "10:30:00"),
        ]
    ),
    Case(
        "argv-nul.json",
        _command_with("a\\u0000b"),
        9,
        "config.test_definition.argv[1]",
        "contains a NUL character, which no command line, path or environment can carry",
    ),
    Case(
        "argv-surrogate.json",
        _command_with("x\\ud800"),
        9,
        "config.test_definition.argv[1]",
        "contains a lone surrogate (U+D800), which is not text; write the character itself",
    ),
    *(
        Case(
            "hook.yaml",
            _escalation_with(url),
            12,
            "config.targets.lead.url",
            f"the url {url!r} is not an http:// or https:// URL",
        )
        for url in ["ftp://127.0.0.1/hook", "file:///tmp/hook", "127.0.0.1:8080/hook"]
    ),
]
IDS = [
    "toml-offset-datetime",
    "toml-local-datetime",
    "toml-date",
    "toml-time",
    "argv-nul",
    "argv-surrogate",
    "url-ftp",
    "url-file",
    "url-without-scheme",
]

PASSING_TEST = """\
from pathlib import Path

def test_app():
    Path("test-ran").write_text("yes")
"""


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_gate_run_stops_at_load_with_exit_11(
    pytester: pytest.Pytester, write_config: Any, case: Case
) -> None:
    write_config(case.name, case.text)
    pytester.makepyfile(test_app=PASSING_TEST)
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    output = result.stdout.str() + "\n" + result.stderr.str()
    assert result.ret == 11, output
    assert (
        f".maf/preflight-configs/{case.name}:{case.line}: {case.path}: {case.message}" in output
    ), output
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output
    assert not (pytester.path / "test-ran").exists()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_validate_reports_the_same_error(tmp_path: Path, case: Case) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / case.name).write_text(case.text)
    result = subprocess.run(
        [sys.executable, "-m", "pytest_maf_preflight.cli", "validate", "configs"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result
    assert (
        f"configs/{case.name}:{case.line}: {case.path}: {case.message}"
        in result.stdout.splitlines()
    ), result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_the_values_json_and_the_os_can_carry_still_load(tmp_path: Path) -> None:
    """The rules refuse only what must fail: a date written as a string, any real character
    in argv, and a url whose scheme comes from the environment all load."""
    files = {
        "api.toml": _api_with('"2024-01-01T10:00:00Z"'),
        "cmd.json": _command_with("caf\\u00e9 \\ud83d\\ude00"),  # a surrogate *pair* is one char
        "hook.yaml": _escalation_with("${ENV:LEAD_WEBHOOK_URL}"),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    loaded = ConfigLoader(builtin_registry(), "development").load_files(sorted(tmp_path.iterdir()))
    by_id = {config.id: config for config in loaded}
    api = by_id["api-date"].definition
    assert api is not None
    assert api.model_dump()["json_body"]["items"] == [{"since": "2024-01-01T10:00:00Z"}]
    command = by_id["argv-bad"].definition
    assert command is not None
    assert command.model_dump()["argv"] == ["echo", "café \U0001f600"]

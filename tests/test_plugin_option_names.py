"""One naming scheme for options and ini keys (``--maf-<setting>``, ``maf_<setting>``), and the
earlier spellings still understood: the same settings from either, an error when an ini file
gives both spellings different values."""

from __future__ import annotations

import dataclasses
import re

import pytest

from pytest_maf_preflight.settings import Settings, resolve


def settings(pytester: pytest.Pytester, *args: str) -> Settings:
    return resolve(pytester.parseconfig("-p", "maf_preflight", *args), environ={})


#: (new spelling, old spelling): command-line options whose old spelling is kept as an alias,
#: each with a value that differs from the default.
CLI_ALIASES = [
    ("--maf-config=extra.yaml", "--maf-preflight-config=extra.yaml"),
    ("--maf-report=gate.json", "--maf-preflight-report=gate.json"),
    ("--maf-warnings-as-errors", "--maf-preflight-warnings-as-errors"),
    ("--maf-max-concurrency=7", "--maf-preflight-max-concurrency=7"),
    ("--maf-base-url=http://127.0.0.1:9", "--maf-preflight-base-url=http://127.0.0.1:9"),
]

#: (new key, old key, value): ini keys whose old spelling is kept as an alias.
INI_ALIASES = [
    ("maf_config", "maf_preflight_paths", "extra"),
    ("maf_report", "maf_preflight_report", "gate.json"),
    ("maf_warnings_as_errors", "maf_preflight_warnings_as_errors", "true"),
    ("maf_max_concurrency", "maf_preflight_max_concurrency", "7"),
    ("maf_gc_freeze", "maf_preflight_gc_freeze", "false"),
    ("maf_base_url", "maf_preflight_base_url", "http://127.0.0.1:9"),
    ("maf_max_config_bytes", "maf_preflight_max_config_bytes", "2048"),
    ("maf_default_escalation", "maf_preflight_default_escalation", "on-call"),
]


@pytest.mark.parametrize(("new", "old"), CLI_ALIASES, ids=[new for new, _ in CLI_ALIASES])
def test_old_option_spellings_set_the_same_settings(
    pytester: pytest.Pytester, new: str, old: str
) -> None:
    default = settings(pytester)
    assert settings(pytester, old) == settings(pytester, new) != default


@pytest.mark.parametrize(
    ("new", "old", "value"), INI_ALIASES, ids=[new for new, _, _ in INI_ALIASES]
)
def test_old_ini_keys_set_the_same_settings(
    pytester: pytest.Pytester, new: str, old: str, value: str
) -> None:
    default = settings(pytester)
    pytester.makeini(f"[pytest]\n{new} = {value}\n")
    from_new = settings(pytester)
    pytester.makeini(f"[pytest]\n{old} = {value}\n")
    from_old = settings(pytester)
    pytester.makeini(f"[pytest]\n{new} = {value}\n{old} = {value}\n")  # both, agreeing
    assert from_old == from_new == settings(pytester) != default


def test_both_spellings_with_different_values_are_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmaf_report = new.json\nmaf_preflight_report = old.json\n")
    pytester.makepyfile("def test_one():\n    pass\n")
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: maf_report and maf_preflight_report in the config file: set to different "
            "values ('new.json' and 'old.json'); maf_preflight_report is the old spelling of "
            "maf_report: remove it"
        ]
    )


def test_a_key_set_to_its_default_still_conflicts_with_its_old_spelling(
    pytester: pytest.Pytester,
) -> None:
    # maf_gc_freeze is on by default: written out, it is still a value the old key contradicts.
    pytester.makeini("[pytest]\nmaf_gc_freeze = true\nmaf_preflight_gc_freeze = false\n")
    with pytest.raises(pytest.UsageError, match=r"^maf_gc_freeze and maf_preflight_gc_freeze "):
        settings(pytester)


def test_errors_name_the_spelling_that_was_used(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmaf_preflight_max_concurrency = 0\n")
    with pytest.raises(
        pytest.UsageError,
        match=r"^maf_preflight_max_concurrency in the config "
        r"file: expected a number of at least 1, got 0$",
    ):
        settings(pytester)
    pytester.makepyfile("def test_one():\n    pass\n")
    result = pytester.runpytest(
        "-p", "maf_preflight", "--maf-preflight", "--maf-preflight-report", "gate.json"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*write --maf-preflight-report=PATH (with '=')*"])


def test_help_shows_both_spellings(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "maf_preflight", "--help")
    result.stdout.fnmatch_lines(
        [
            "*--maf-config=PATH, --maf-preflight-config=PATH*",
            "*--maf-report=PATH, --maf-preflight-report=PATH*",
        ]
    )
    alias = r"\n  maf_preflight_report \(\w+\):\s+Alias of maf_report\n"
    assert re.search(alias, str(result.stdout))


def test_the_new_names_set_what_they_say(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nmaf_config = from-ini\nmaf_max_config_bytes = 2048\n"
        "maf_default_escalation = on-call\nmaf_gc_freeze = false\n"
    )
    resolved = settings(
        pytester,
        "--maf-config=from-cli",
        "--maf-report=gate.json",
        "--maf-warnings-as-errors",
        "--maf-max-concurrency=7",
        "--maf-base-url=http://127.0.0.1:9",
    )
    assert dataclasses.asdict(resolved) | {"config_paths": [], "runtime": None} == (
        dataclasses.asdict(settings(pytester))
        | {
            "config_paths": [],
            "runtime": None,
            "report_path": pytester.path / "gate.json",
            "warnings_as_errors": True,
            "max_concurrency": 7,
            "base_url": "http://127.0.0.1:9",
        }
    )
    assert resolved.config_paths == (
        pytester.path / ".maf/preflight-configs",
        pytester.path / "from-ini",
        pytester.path / "from-cli",
    )
    assert (resolved.max_config_bytes, resolved.default_escalation, resolved.gc_freeze) == (
        2048,
        "on-call",
        False,
    )

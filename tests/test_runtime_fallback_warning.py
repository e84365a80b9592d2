"""A runtime that falls back is a ``MafRuntimeFallback`` warning too, so CI can refuse it.

The terminal says it as before; the warning reaches pytest's warnings summary, and a filter
naming the class (``-W`` or ini ``filterwarnings``) makes the run fail. A generic ``error``
filter shows it, as it does every warning of the plugin (see ``gate.issued_warnings``).
"""

from __future__ import annotations

import pytest

from helpers_configs import PASSING_CHECK, WriteConfig

AS_ERROR = "error::pytest_maf_preflight.warning_types.MafRuntimeFallback"
BY_FILTER = "MafRuntimeFallback is an error by the warning filters"


@pytest.fixture
def corrupt_store(
    pytester: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """A project whose SQLite store is no database: the gate falls back to JSON as it opens."""
    write_config("checks.yaml", PASSING_CHECK)
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    db = pytester.path / ".maf" / "runtime.db"
    db.write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(pytester.path / "mail"))
    return pytester


def gate(project: pytest.Pytester, *args: str, subprocess: bool = False) -> pytest.RunResult:
    # A filter naming the class runs in a process of its own: pytest caches parsed filters,
    # class included, across the in-process runs of one test session, which reload the class.
    run = project.runpytest_subprocess if subprocess else project.runpytest
    return run("-p", "maf_preflight", "--maf-preflight", *args)


def test_a_fallback_reaches_the_warnings_summary(corrupt_store: pytest.Pytester) -> None:
    corrupt_store.makeini("[pytest]\n")
    result = gate(corrupt_store)
    assert result.ret == 0
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "maf-preflight: WARNING runtime sqlite: *runtime.db*",  # the header, as before
            "*= warnings summary =*",
            "*MafRuntimeFallback: maf-preflight: runtime sqlite: *runtime.db is not a SQLite "
            "database*; using the next mode",
            "*= maf-preflight =*",
            "maf-preflight: runtime sqlite: *; using the next mode",  # the summary, as before
            "maf-preflight: recorded 1 execution(s) in json *",
        ]
    )


@pytest.mark.parametrize("where", ["-W", "ini"])
def test_a_filter_naming_the_warning_fails_the_run(
    corrupt_store: pytest.Pytester, where: str
) -> None:
    if where == "ini":
        corrupt_store.makeini(f"[pytest]\nfilterwarnings =\n    {AS_ERROR}\n")
        result = gate(corrupt_store, subprocess=True)
    else:
        corrupt_store.makeini("[pytest]\n")
        result = gate(corrupt_store, "-W", AS_ERROR, subprocess=True)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: maf-preflight: runtime sqlite: *runtime.db is not a "
            f"SQLite database*; using the next mode ({BY_FILTER})"
        ]
    )
    result.assert_outcomes()  # refused before any test ran


def test_a_generic_error_filter_shows_it(corrupt_store: pytest.Pytester) -> None:
    corrupt_store.makeini("[pytest]\nfilterwarnings = error\n")
    result = gate(corrupt_store)
    assert result.ret == 0
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(["*MafRuntimeFallback: maf-preflight: runtime sqlite: *"])


LOG_BECOMES_A_DIRECTORY = """\
import os

def test_breaks_the_store():
    log = os.path.join(os.environ["MAF_AGENT_MAIL_ROOT"], "runtime", "executions.jsonl")
    if os.path.exists(log):
        os.remove(log)
    os.makedirs(log)
"""


@pytest.mark.parametrize("as_error", [False, True], ids=["warning", "error"])
def test_a_fallback_while_recording(
    pytester: pytest.Pytester,
    write_config: WriteConfig,
    monkeypatch: pytest.MonkeyPatch,
    as_error: bool,
) -> None:
    """JSON opens, then cannot record (a test broke its log): the session goes to memory."""
    write_config("checks.yaml", PASSING_CHECK)
    pytester.makepyfile(test_app=LOG_BECOMES_A_DIRECTORY)
    pytester.makeini("[pytest]\n")
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(pytester.path / "mail"))
    monkeypatch.setenv("MAF_RUNTIME_MODE", "json,memory")
    result = gate(pytester, *(("-W", AS_ERROR) if as_error else ()), subprocess=as_error)
    fallback = "runtime json could not record: *executions.jsonl*"
    if as_error:
        # The tests ran: the run fails as it ends, with the same code.
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stdout.fnmatch_lines(
            [
                f"maf-preflight: {BY_FILTER}, exit code 4: {fallback}",
                f"maf-preflight: {fallback}",
                "*recorded 1 execution(s) in memory only*",
            ]
        )
    else:
        assert result.ret == 0
        result.assert_outcomes(passed=2, warnings=1)
        result.stdout.fnmatch_lines(
            [
                f"*MafRuntimeFallback: maf-preflight: {fallback}",
                f"maf-preflight: {fallback}",
                "*recorded 1 execution(s) in memory only*",
            ]
        )

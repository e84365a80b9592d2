"""The checks start as the gate's plugin configures, before the session opens, or as collection
starts when the project may still set up what they look at or one needs the runtime first, and
run while pytest starts up and collects the tests (issue 14), with every guarantee of checks
that ran at the first test: none in pytest's modes that run no test, nothing recorded when
collection fails or the session ends before its tests, observers on the main thread, commands
killed on Ctrl-C or SIGTERM, the environment the tests see, failures closed.

Real pytest processes, a real HTTP server on 127.0.0.1, real signals. Overlap is proven by the
order of events (files written by the server and by the collected module), never by timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers_configs import WriteConfig, command_config
from helpers_http import HttpServer, Request, Response, StartHttpServer
from helpers_processes import gone
from pytest_maf_preflight.processes.run import run_process
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

GATE = ("-p", "maf_preflight", "--maf-preflight")
#: How long a collected module waits for the check's request before giving up on it.
PATIENCE = 10.0


def api_config(url: str) -> str:
    return json.dumps(
        {
            "id": "slow-api",
            "name": "An API that answers after a second",
            "config_type": "smoke_test",
            "config": {
                "test_type": "api",
                "timeout_seconds": 30,
                "test_definition": {"url": url},
            },
        }
    )


def slow_server(http_server: StartHttpServer, arrived: Path) -> HttpServer:
    """A server that writes when a request arrived into ``arrived``, then answers a second
    later."""

    def answer(request: Request) -> Response:
        arrived.write_text(repr(time.time()))
        return Response(200, "ok", delay=1.0)

    return http_server(answer)


def waiting_module(arrived: Path, then: str = "") -> str:
    """A test module whose collection writes when it started and ended, and waits meanwhile for
    the server to see the check's request (or for ``PATIENCE`` seconds, if it never comes)."""
    return textwrap.dedent(f"""\
        import pathlib, time
        pathlib.Path("collect-start").write_text(repr(time.time()))
        end = time.monotonic() + {PATIENCE}
        while not pathlib.Path({str(arrived)!r}).exists() and time.monotonic() < end:
            time.sleep(0.01)
        pathlib.Path("collect-end").write_text(repr(time.time()))
        {then}

        def test_app():
            pass
        """)


def moment(path: Path) -> float:
    return float(path.read_text())


def test_checks_run_while_the_tests_are_collected(
    pytester: pytest.Pytester, write_config: WriteConfig, http_server: StartHttpServer
) -> None:
    arrived = pytester.path / "arrived"
    server = slow_server(http_server, arrived)
    write_config("api.json", api_config(server.url("/health")))
    pytester.makepyfile(test_app=waiting_module(arrived))
    result = pytester.runpytest_subprocess(*GATE, "--maf-runtime=memory")
    result.assert_outcomes(passed=2)
    assert len(server.requests) == 1
    # Before collection ended (checks used to wait for the test loop); it may come before the
    # module started, since checks start as collection begins.
    assert moment(arrived) < moment(pytester.path / "collect-end")


def waiting_hook(hook: str, arrived: Path, patience: float = PATIENCE) -> str:
    """A conftest whose ``hook`` waits (at most ``patience`` seconds) for the check's request
    to arrive, and writes whether it had."""
    return textwrap.dedent(f"""\
        import pathlib, time

        def {hook}():
            end = time.monotonic() + {patience}
            while not pathlib.Path({str(arrived)!r}).exists() and time.monotonic() < end:
                time.sleep(0.01)
            pathlib.Path("seen-at-{hook}").write_text(str(pathlib.Path({str(arrived)!r}).exists()))
        """)


@pytest.mark.parametrize("installed_setup", [False, True])
def test_checks_start_before_the_session_starts(
    pytester: pytest.Pytester,
    write_config: WriteConfig,
    http_server: StartHttpServer,
    monkeypatch: pytest.MonkeyPatch,
    installed_setup: bool,
) -> None:
    arrived = pytester.path / "arrived"
    server = slow_server(http_server, arrived)
    write_config("api.json", api_config(server.url("/health")))
    options: tuple[str, ...] = ()
    if installed_setup:  # an installed plugin's set-up hooks are not waited for
        installed_plugin(
            pytester,
            monkeypatch,
            "keeps_books",
            "def pytest_sessionstart(session):\n    pass\n\n"
            "def pytest_configure(config):\n    pass\n",
        )
        options = ("-p", "keeps_books")
    # The header is printed as the session starts (not a set-up hook of the project's: see
    # the test below); by then the check that started with pytest_configure sent its request.
    pytester.makeconftest(waiting_hook("pytest_report_header", arrived))
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    db = pytester.path / "store" / "runtime.db"
    monkeypatch.setenv("MAF_DB_PATH", str(db))
    result = pytester.runpytest_subprocess(*options, *GATE, "--maf-runtime=sqlite")
    result.assert_outcomes(passed=2)
    assert (pytester.path / "seen-at-pytest_report_header").read_text() == "True"
    assert len(server.requests) == 1
    store = SqliteRuntime(db)
    try:  # the session began when its checks did
        [session] = store.sessions()
        [execution] = [e for e in store.executions() if e.kind == "check"]
        assert session.started_at <= execution.started_at
    finally:
        store.close()


def test_checks_that_need_the_runtime_first_start_with_collection(
    pytester: pytest.Pytester, write_config: WriteConfig, http_server: StartHttpServer
) -> None:
    """A check that may reuse a recent pass reads the runtime before it runs: it starts once the
    runtime is open (as collection starts), never before the session does."""
    arrived = pytester.path / "arrived"
    server = slow_server(http_server, arrived)
    config = json.loads(api_config(server.url("/health")))
    config["config"]["reuse_passed_for_seconds"] = 60
    write_config("api.json", json.dumps(config))
    # A request sent before the session would arrive well within two seconds.
    pytester.makeconftest(waiting_hook("pytest_report_header", arrived, patience=2.0))
    pytester.makepyfile(test_app=waiting_module(arrived))
    pytester.runpytest_subprocess(*GATE, "--maf-runtime=json").assert_outcomes(passed=2)
    assert (pytester.path / "seen-at-pytest_report_header").read_text() == "False"
    assert moment(arrived) < moment(pytester.path / "collect-end")  # still during collection
    # And it is reused next time: the runtime was read before the check could run.
    pytester.runpytest_subprocess(*GATE, "--maf-runtime=json").assert_outcomes(passed=2)
    assert len(server.requests) == 1


TOUCH_TYPE = """\
import pathlib, time
from pytest_maf_preflight.checks.base import CheckType, Definition, Observation


class Touch(Definition):
    pass


def run(definition, ctx):
    pathlib.Path("ran").write_text("")
    return Observation(True, "ran", "ran")


def pytest_maf_preflight_register_check_types(registry, config):
    registry.register(CheckType("touch", Touch, run))


def pytest_unconfigure(config):
    # A check started as pytest configured would have run by now: the session may be too
    # short for an attempt to get its turn before it ends.
    end = time.monotonic() + 1.0
    while not pathlib.Path("ran").exists() and time.monotonic() < end:
        time.sleep(0.01)
"""


@pytest.mark.parametrize(
    "mode", ["--collect-only", "--markers", "--fixtures", "--fixtures-per-test", "--cache-show"]
)
def test_modes_that_run_no_test_run_no_check(
    pytester: pytest.Pytester, write_config: WriteConfig, mode: str
) -> None:
    write_config(
        "touch.json",
        json.dumps(
            {
                "id": "touch",
                "name": "Writes a file as it runs",
                "config_type": "smoke_test",
                "config": {"test_type": "touch", "test_definition": {}},
            }
        ),
    )
    pytester.makeconftest(TOUCH_TYPE)
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    result = pytester.runpytest_subprocess(*GATE, "--maf-runtime=memory", mode)
    assert result.ret == 0, result.stdout.str()
    assert not (pytester.path / "ran").exists()
    pytester.runpytest_subprocess(*GATE, "--maf-runtime=memory").assert_outcomes(passed=2)
    assert (pytester.path / "ran").exists()  # the probe: a run that tests does run the check


PROBE_TYPE = """\
import pathlib
from pytest_maf_preflight.checks.base import CheckType, Definition, Observation


class Probe(Definition):
    pass


ATTEMPTS = iter(range(1, 100))


def run(definition, ctx):
    pathlib.Path(f"attempt-{next(ATTEMPTS)}").write_text("")
    return Observation(False, "a pass", "a failure, to be tried again")


def pytest_maf_preflight_register_check_types(registry, config):
    registry.register(CheckType("probe", Probe, run))
"""


def test_a_session_that_ends_before_it_starts_cancels_the_early_checks(
    pytester: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another plugin's usage error in pytest_configure: no controller ever takes the run over.
    In this process (pytester runs it in-process), which goes on after the session: no attempt
    starts after it, its command is killed, nothing is recorded, and later commands run."""
    db = pytester.path / "store" / "runtime.db"
    monkeypatch.setenv("MAF_DB_PATH", str(db))
    pidfile = pytester.path / "check.pid"
    write_config(
        "sleeps.json",
        command_config("sleeps", [sys.executable, "-c", SLEEPER, str(pidfile)], timeout=120),
    )
    write_config(
        "retries.json",
        json.dumps(
            {
                "id": "retries",
                "name": "Fails, and is tried again 0.3 s later",
                "config_type": "smoke_test",
                "config": {
                    "test_type": "probe",
                    "retry_count": 5,
                    "retry_delay_seconds": 0.3,
                    "test_definition": {},
                },
            }
        ),
    )
    pytester.makeconftest(PROBE_TYPE)
    first_attempt = pytester.path / "attempt-1"
    directory = installed_plugin(
        pytester,
        monkeypatch,
        "refuses",
        f"""\
        import pathlib, time
        import pytest

        @pytest.hookimpl(trylast=True)  # after the gate's: its checks are running
        def pytest_configure(config):
            end = time.monotonic() + {PATIENCE}
            while time.monotonic() < end and not (
                pathlib.Path({str(pidfile)!r}).exists()
                and pathlib.Path({str(first_attempt)!r}).exists()
            ):
                time.sleep(0.01)
            raise pytest.UsageError("this plugin refuses the session")
        """,
    )
    monkeypatch.syspath_prepend(str(directory))
    result = pytester.runpytest_inprocess("-p", "refuses", *GATE, "--maf-runtime=sqlite")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    pid = int(pidfile.read_text())  # the checks ran while pytest configured
    try:
        assert gone(pid, within=5.0), f"check process {pid} outlived the session"
    finally:
        if not gone(pid, within=0.0):
            os.kill(pid, signal.SIGKILL)
    assert first_attempt.exists()
    time.sleep(1.0)  # the next attempt was due 0.3 s after the first
    assert not (pytester.path / "attempt-2").exists()
    assert (
        run_process([sys.executable, "-c", "pass"], deadline=time.monotonic() + 30).returncode == 0
    )
    if db.exists():
        store = SqliteRuntime(db)
        try:
            assert store.sessions() == []
            assert store.messages() == []
        finally:
            store.close()


def test_a_variable_a_plugin_sets_as_pytest_configures_is_seen_by_the_checks(
    pytester: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set after the checks started: they run again with the environment the tests see."""
    write_config("var.json", _needs_variable_config())
    installed_plugin(
        pytester,
        monkeypatch,
        "sets_variable",
        """\
        import os
        import pytest

        @pytest.hookimpl(trylast=True)
        def pytest_configure(config):
            os.environ['MAF_TEST_SET_BY_CONFTEST'] = '1'
        """,
    )
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "sets_variable", *GATE, "--maf-runtime=memory")
    result.stdout.fnmatch_lines(["*gate open*"])
    result.assert_outcomes(passed=2)


def installed_plugin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, name: str, source: str
) -> Path:
    """A plugin module outside the project (beside its rootdir, on ``PYTHONPATH``), as an
    installed plugin is: the gate does not wait for its set-up hooks. Its directory."""
    directory = pytester.path.parent / f"{pytester.path.name}-installed"
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.setenv("PYTHONPATH", str(directory))
    return directory


PROJECT_SETUP = """\
import pathlib, time

def {hook}({args}):
    time.sleep(0.2)  # a service takes a moment to come up
    pathlib.Path("made-by-the-project").write_text("")
"""


@pytest.mark.parametrize(
    ("where", "hook", "args", "xdist"),
    [
        ("conftest", "pytest_sessionstart", "session", ()),
        ("conftest", "pytest_sessionstart", "session", ("-p", "xdist", "-n", "1")),
        # Given with -p before the gate's plugin: pytest configures it after the gate's.
        ("plugin", "pytest_configure", "config", ()),
    ],
)
def test_checks_look_after_the_project_set_up_the_session(
    pytester: pytest.Pytester,
    write_config: WriteConfig,
    where: str,
    hook: str,
    args: str,
    xdist: tuple[str, ...],
) -> None:
    """What a conftest or a plugin module of the project sets up in pytest_sessionstart, or
    in a pytest_configure that runs after the gate's, is there when the checks look."""
    write_config(
        "made.json",
        json.dumps(
            {
                "id": "made",
                "name": "What the project makes as the session starts",
                "config_type": "smoke_test",
                "config": {
                    "test_type": "file_system",
                    "test_definition": {"paths": [{"path": "made-by-the-project"}]},
                },
            }
        ),
    )
    source = PROJECT_SETUP.format(hook=hook, args=args)
    if where == "conftest":
        pytester.makeconftest(source)
        options: tuple[str, ...] = ()
    else:
        pytester.makepyfile(project_setup=source)
        pytester.syspathinsert()
        options = ("-p", "project_setup")
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    result = pytester.runpytest_subprocess(*options, *GATE, *xdist, "--maf-runtime=memory")
    result.stdout.fnmatch_lines(["*gate open*"])
    result.assert_outcomes(passed=2)


def _needs_variable_config() -> str:
    return json.dumps(
        {
            "id": "needs-var",
            "name": "A variable a conftest sets",
            "config_type": "smoke_test",
            "config": {
                "test_type": "environment",
                "test_definition": {"required": ["MAF_TEST_SET_BY_CONFTEST"]},
            },
        }
    )


def test_a_collection_error_ends_the_run_as_before_and_records_nothing(
    pytester: pytest.Pytester,
    write_config: WriteConfig,
    http_server: StartHttpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = pytester.path / "store" / "runtime.db"
    monkeypatch.setenv("MAF_DB_PATH", str(db))
    arrived = pytester.path / "arrived"
    server = slow_server(http_server, arrived)
    write_config("api.json", api_config(server.url("/health")))
    # The check is under way when collection fails: its request arrived first.
    pytester.makepyfile(test_app=waiting_module(arrived, then="raise RuntimeError('broken')"))
    result = pytester.runpytest_subprocess(*GATE, "--maf-runtime=sqlite")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*RuntimeError: broken*", "*1 error*"])
    assert moment(arrived) < moment(pytester.path / "collect-end")
    store = SqliteRuntime(db)
    try:
        assert store.sessions() == []
        assert store.messages() == []  # not even the start of the check that ran
    finally:
        store.close()


OBSERVER = """\
import json, threading

def pytest_maf_preflight_check_executed(config, result):
    with open("observed.jsonl", "a") as handle:
        main = threading.current_thread() is threading.main_thread()
        handle.write(json.dumps([result.check_id, main]) + "\\n")
"""


def test_observers_are_called_on_the_main_thread(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    pytester.makeconftest(OBSERVER)
    for name in ("one", "two"):
        write_config(f"{name}.json", command_config(name, [sys.executable, "-c", "pass"]))
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    pytester.runpytest_subprocess(*GATE, "--maf-runtime=memory").assert_outcomes(passed=3)
    lines = (pytester.path / "observed.jsonl").read_text().splitlines()
    assert sorted(json.loads(line) for line in lines) == [["one", True], ["two", True]]


def test_a_variable_set_during_collection_is_seen_by_the_checks(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("var.json", _needs_variable_config())
    # Not named test*: pytest loads this conftest while it collects, after the checks started.
    pytester.mkpydir("suite")
    (pytester.path / "suite" / "conftest.py").write_text(
        "import os\nos.environ['MAF_TEST_SET_BY_CONFTEST'] = '1'\n"
    )
    (pytester.path / "suite" / "test_app.py").write_text("def test_app():\n    pass\n")
    result = pytester.runpytest_subprocess(*GATE, "--maf-runtime=memory")
    result.stdout.fnmatch_lines(["*gate open*"])
    result.assert_outcomes(passed=2)


SLEEPER = (
    "import os, sys, time; open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid())); "
    "os.replace(sys.argv[1] + '.tmp', sys.argv[1]); time.sleep(60)"
)


def _wait_for(path: Path, proc: subprocess.Popen[bytes], within: float = 30.0) -> None:
    end = time.monotonic() + within
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"pytest ended first ({proc.returncode}): {out!r} {err!r}")
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGINT, pytest.ExitCode.INTERRUPTED), (signal.SIGTERM, -signal.SIGTERM)],
)
def test_a_signal_during_collection_kills_the_checks_commands(
    pytester: pytest.Pytester, write_config: WriteConfig, signum: int, code: int
) -> None:
    pidfile = pytester.path / "check.pid"
    write_config(
        "sleeps.json",
        command_config("sleeps", [sys.executable, "-c", SLEEPER, str(pidfile)], timeout=120),
    )
    pytester.makepyfile(
        test_app=(
            "import pathlib, time\npathlib.Path('collecting').write_text('')\ntime.sleep(60)\n"
            "def test_app():\n    pass\n"
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *GATE, "--maf-runtime=memory", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    pid = None
    try:
        _wait_for(pidfile, proc)
        _wait_for(pytester.path / "collecting", proc)
        pid = int(pidfile.read_text())
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == code, out.decode()
        assert gone(pid, within=5.0), f"check process {pid} outlived the session"
        assert b"INTERNALERROR" not in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if pid is not None and not gone(pid, within=0.0):
            os.kill(pid, signal.SIGKILL)


BROKEN_TYPE = """\
from pytest_maf_preflight.checks.base import CheckType, Definition, Observation


class Broken(Definition):
    pass


def run(definition, ctx):
    return Observation(True, 123, "an expectation that is no text breaks the runner")


def pytest_maf_preflight_register_check_types(registry, config):
    registry.register(CheckType("broken", Broken, run))
"""


def test_a_runner_that_fails_on_its_thread_fails_the_run(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    pytester.makeconftest(BROKEN_TYPE)
    write_config(
        "broken.json",
        json.dumps(
            {
                "id": "broken",
                "name": "Breaks the runner",
                "config_type": "smoke_test",
                "config": {"test_type": "broken", "test_definition": {}},
            }
        ),
    )
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    result = pytester.runpytest_subprocess(*GATE, "--maf-runtime=memory")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(["INTERNALERROR>*TypeError*"])
    result.stdout.no_fnmatch_line("*passed*")

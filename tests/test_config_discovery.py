"""Config locations hold config files and directories, and nothing else goes unnoticed.

A dangling symlink, a symlink loop, a FIFO or an entry that cannot be read used to drop out of
discovery: the gate opened with fewer checks, or with none. Each is now a config error naming
it, in the loader, in a real gate run (exit 11) and in ``maf-preflight validate`` (exit 1).

Permission bits mean nothing to root (the suite runs as root in CI), so the permission cases
run their gate or CLI in a subprocess that ``setpriv`` has stripped of the two capabilities that
bypass them; unprivileged users run it directly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.config.errors import ConfigError, ConfigLoadError
from pytest_maf_preflight.config.loader import ConfigLoader, discover

GOOD = """\
id: good
name: A check that passes
config_type: smoke_test
config:
  test_type: command
  test_definition: {argv: ["true"]}
"""
CONFIG_DIR = Path(".maf") / "preflight-configs"
PASSING_TEST = "def test_app():\n    pass\n"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _dangling(directory: Path) -> Path:
    path = directory / "dangling.yaml"
    path.symlink_to(directory / "moved-away.yaml")
    return path


def _loop(directory: Path) -> Path:
    path = directory / "loop.json"
    path.symlink_to(path)
    return path


def _fifo(directory: Path) -> Path:
    path = directory / "pipe.yaml"
    os.mkfifo(path)  # nobody ever writes: opening it for reading would block forever
    return path


def _symlink_to_fifo(directory: Path) -> Path:
    os.mkfifo(directory / "real-pipe")  # no config suffix: itself not a config
    path = directory / "via-link.toml"
    path.symlink_to(directory / "real-pipe")
    return path


#: (how to make the hostile entry, what the error must say about it)
UNUSABLE: list[tuple[Callable[[Path], Path], str]] = [
    (_dangling, "is a dangling symlink (to "),
    (_loop, "is a symlink loop"),
    (_fifo, "is a named pipe (FIFO), not a regular file"),
    (_symlink_to_fifo, "is a named pipe (FIFO), not a regular file"),
]
IDS = ["dangling-symlink", "symlink-loop", "fifo", "symlink-to-fifo"]


def _errors(paths: list[Path]) -> list[ConfigError]:
    files, errors = discover(paths)
    try:
        ConfigLoader(builtin_registry(), "development").load_files(files)
    except ConfigLoadError as exc:
        errors.extend(exc.errors)
    return errors


@pytest.mark.parametrize(("make", "message"), UNUSABLE, ids=IDS)
def test_unusable_entry_in_a_directory_is_a_located_error(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    bad = make(tmp_path)
    errors = _errors([tmp_path])
    assert [(e.file, e.path) for e in errors] == [(str(bad), ())]
    assert message in errors[0].message


@pytest.mark.parametrize(("make", "message"), UNUSABLE, ids=IDS)
def test_gate_with_unusable_entry_exits_11_naming_it(
    pytester: pytest.Pytester, make: Callable[[Path], Path], message: str
) -> None:
    directory = pytester.path / CONFIG_DIR
    directory.mkdir(parents=True)
    (directory / "good.yaml").write_text(GOOD)
    bad = make(directory)
    pytester.makepyfile(test_app=PASSING_TEST)
    # In a subprocess with a deadline: a regression that opens the FIFO would block forever.
    result = pytester.runpytest_subprocess("-p", "maf_preflight", "--maf-preflight", timeout=120)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 11, output
    assert f"{CONFIG_DIR / bad.name}: (document): {message}" in output
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output


def _cli(
    *args: str | Path, cwd: Path, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "pytest_maf_preflight.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("make", "message"), UNUSABLE, ids=IDS)
def test_validate_with_unusable_entry_is_invalid_naming_it(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    directory = tmp_path / CONFIG_DIR
    directory.mkdir(parents=True)
    (directory / "good.yaml").write_text(GOOD)
    bad = make(directory)
    result = _cli("validate", cwd=tmp_path)
    assert result.returncode == 1, result
    assert f"{CONFIG_DIR / bad.name}: (document): {message}" in result.stdout
    assert result.stdout.rstrip().endswith("invalid: 1 error in 1 file (2 checked)")


def test_default_directory_that_is_a_dangling_symlink_closes_the_gate(
    pytester: pytest.Pytester,
) -> None:
    """Not "no configs, nothing to check": someone set the location up, and it is gone."""
    (pytester.path / ".maf").mkdir()
    (pytester.path / CONFIG_DIR).symlink_to(pytester.path / "shared-configs-not-mounted")
    pytester.makepyfile(test_app=PASSING_TEST)
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    assert result.ret == 11
    result.stderr.fnmatch_lines(
        [f"*{CONFIG_DIR}: (document): is a dangling symlink (to *shared-configs-not-mounted)*"]
    )
    validate = _cli("validate", cwd=pytester.path)
    assert validate.returncode != 0
    assert f"{CONFIG_DIR}: is a dangling symlink" in validate.stderr


def test_default_directory_below_a_dangling_symlink_closes_the_gate(tmp_path: Path) -> None:
    (tmp_path / ".maf").symlink_to(tmp_path / "gone")
    _, errors = discover([tmp_path / CONFIG_DIR])
    assert [e.message for e in errors] == [
        f"lies below {tmp_path / '.maf'}, which is a dangling symlink (to {tmp_path / 'gone'}); "
        "expected a config file or directory"
    ]


def test_a_missing_default_directory_still_holds_no_configs(tmp_path: Path) -> None:
    assert discover([tmp_path / CONFIG_DIR]) == ([], [])


def test_only_config_names_are_read_and_subdirectories_are_not_walked(tmp_path: Path) -> None:
    """The rule kept (and documented): entries are chosen by suffix; hidden ones and
    subdirectories are left alone, even when they could not be read."""
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "README.md").write_text("# notes")
    os.mkfifo(tmp_path / "notes")  # no config suffix: never opened
    (tmp_path / ".draft.yaml").symlink_to(tmp_path / "nowhere")
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "broken.yaml").write_text("{")
    files, errors = discover([tmp_path])
    assert (files, errors) == ([tmp_path / "good.yaml"], [])


def test_a_fifo_swapped_in_after_discovery_does_not_block(tmp_path: Path) -> None:
    """The read itself never waits for a writer, whatever discovery saw."""
    (tmp_path / "c.yaml").write_text(GOOD)
    files, _ = discover([tmp_path])
    (tmp_path / "c.yaml").unlink()
    os.mkfifo(tmp_path / "c.yaml")
    found: list[list[ConfigError]] = []
    loader = ConfigLoader(builtin_registry(), "development")
    reader = threading.Thread(
        target=lambda: found.append(loader.load_file(files[0])[1]), daemon=True
    )
    reader.start()
    reader.join(10)
    if reader.is_alive():  # blocked in open(): let a writer in so the thread can end
        os.close(os.open(tmp_path / "c.yaml", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading a FIFO blocked until a writer came")
    errors = found[0]
    assert [e.message for e in errors] == [
        "is a named pipe (FIFO), not a regular file; expected a config file or directory"
    ]


def test_a_named_fifo_is_refused_without_blocking(pytester: pytest.Pytester) -> None:
    os.mkfifo(pytester.path / "extra.yaml")
    pytester.makepyfile(test_app=PASSING_TEST)
    result = pytester.runpytest_subprocess(
        "-p", "maf_preflight", "--maf-preflight", "--maf-config=extra.yaml", timeout=120
    )
    assert result.ret == 11
    result.stderr.fnmatch_lines(["*extra.yaml: (document): is a named pipe (FIFO)*"])


# --- permissions (as root: in a subprocess without the capabilities that bypass them) ------


def _unprivileged() -> tuple[str, ...]:
    """A command prefix under which permission bits apply, or a skip saying why none exists."""
    if not IS_ROOT:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, which bypasses permissions, and setpriv is missing")
    prefix = (setpriv, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search")
    probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
    if probe.returncode != 0:  # e.g. a container that forbids changing the bounding set
        pytest.skip(f"running as root and setpriv cannot drop capabilities: {probe.stderr!r}")
    return prefix


@pytest.fixture
def locked(pytester: pytest.Pytester) -> Iterator[list[Path]]:
    """Paths to restore to 0o755 afterwards, so pytest can clean the tree up."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        path.chmod(0o755)


def _gate(pytester: pytest.Pytester) -> tuple[int, str]:
    result = pytester.run(
        *_unprivileged(),
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "maf_preflight",
        "--maf-preflight",
        "-p",
        "no:cacheprovider",
        timeout=120,
    )
    return result.ret, result.stdout.str() + result.stderr.str()


def test_config_directory_that_cannot_be_listed_is_named(
    pytester: pytest.Pytester, locked: list[Path]
) -> None:
    directory = pytester.path / CONFIG_DIR
    directory.mkdir(parents=True)
    (directory / "good.yaml").write_text(GOOD)
    pytester.makepyfile(test_app=PASSING_TEST)
    directory.chmod(0o000)
    locked.append(directory)
    code, output = _gate(pytester)
    assert code == 11, output
    assert f"{CONFIG_DIR}: (document): cannot list the directory: Permission denied" in output
    assert "cannot prepare the check types" not in output
    validate = _cli("validate", cwd=pytester.path, prefix=_unprivileged())
    assert validate.returncode != 0
    assert f"{CONFIG_DIR}: cannot list the directory: Permission denied" in validate.stderr


def test_entries_of_a_directory_that_cannot_be_searched_are_named(
    pytester: pytest.Pytester, locked: list[Path]
) -> None:
    """Listable but not searchable (r without x): the names are there, the files are not."""
    directory = pytester.path / CONFIG_DIR
    directory.mkdir(parents=True)
    (directory / "good.yaml").write_text(GOOD)
    pytester.makepyfile(test_app=PASSING_TEST)
    directory.chmod(0o444)
    locked.append(directory)
    code, output = _gate(pytester)
    assert code == 11, output
    assert f"{CONFIG_DIR / 'good.yaml'}: (document): cannot be read: Permission denied" in output


def test_unreadable_file_is_named(pytester: pytest.Pytester, locked: list[Path]) -> None:
    directory = pytester.path / CONFIG_DIR
    directory.mkdir(parents=True)
    (directory / "good.yaml").write_text(GOOD)
    pytester.makepyfile(test_app=PASSING_TEST)
    (directory / "good.yaml").chmod(0o000)
    locked.append(directory / "good.yaml")
    code, output = _gate(pytester)
    assert code == 11, output
    assert f"{CONFIG_DIR / 'good.yaml'}: (document): cannot read file: Permission denied" in output

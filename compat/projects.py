"""The real projects whose own test suites are run with and without the plugin, pinned.

Each is taken from its published source distribution (checked against the sha256 below), and
installed with the test requirements its sdist names (``tox.ini``, requirements files,
dependency groups), pinned here so every run of the suite sees the same code. Coverage,
linters and docs tools are left out: they change nothing a test asserts.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Project:
    #: The distribution name on PyPI, also the name on the command line.
    name: str
    version: str
    sha256: str
    #: Test requirements, pinned.
    requirements: tuple[str, ...]
    #: What pytest runs, relative to the unpacked sdist.
    test_paths: tuple[str, ...] = ("tests",)
    #: Arguments every variant gets (all variants alike, so they never make a difference).
    pytest_args: tuple[str, ...] = ()
    #: The project's pytest configuration, named with ``-c``: the work directory lies inside
    #: this repository, whose own ``pyproject.toml`` pytest would otherwise find above a
    #: project that has no pytest section of its own (more-itertools) and run it with ours.
    config_file: str = "pyproject.toml"
    #: Tests ``--quick`` leaves out (in every variant alike): the few that take most of the time.
    slow_tests: tuple[str, ...] = ()
    #: Seconds one pytest run may take before it is killed and reported.
    timeout: float = 600.0

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


PYTEST = "pytest==9.2.0"
XDIST = "pytest-xdist==3.8.0"
HYPOTHESIS = "hypothesis==6.170.27"
# A fixed seed: Hypothesis otherwise draws different examples in each variant.
HYPOTHESIS_SEED = ("--hypothesis-seed=0",)

PROJECTS: tuple[Project, ...] = (
    # unittest-style tests (tox runs ``python -m unittest``), no test dependencies; pytest
    # collects them as they are. The smallest suite: the one CI runs.
    Project(
        name="more-itertools",
        version="11.2.1",
        sha256="cbf08fd0af284dc69718b9b76a8e6203df624d70209ea511e4219d350c856f63",
        requirements=(PYTEST, XDIST),
        # About half of the suite's time here, in one test.
        slow_tests=("tests/test_recipes.py::PrimeFunctionTests::test_primes",),
        timeout=300.0,
    ),
    # ``filterwarnings = ["error"]``, ``--strict-config``, and ``-p no:tmpdir`` among its
    # addopts: a plugin that needs tmp_path_factory breaks here.
    Project(
        name="packaging",
        version="26.4",
        sha256="c4b671c41ddb9bf26e543c37723610d28fb6bf7affc4da17cf048d419d2c062a",
        # The ``test`` dependency group, without coverage.
        requirements=(PYTEST, XDIST, HYPOTHESIS, "pretend==1.0.9", "tomli-w==1.2.0"),
        pytest_args=HYPOTHESIS_SEED,
    ),
    # ``filterwarnings = error`` as well, plus freezegun and Hypothesis property tests.
    Project(
        name="python-dateutil",
        version="4.0.0",
        sha256="d7295ff14fdc0f92f662100bfb6c551d160ca090f2939f1ec5b9794265c03f06",
        # requirements-dev.txt without coverage and build. pytest-cov stays (coverage is not
        # turned on): its conftest marks tests ``no_cover``, a marker pytest-cov registers.
        requirements=(
            PYTEST,
            XDIST,
            HYPOTHESIS,
            "freezegun==1.5.5",
            "attrs==26.1.0",
            "pytest-cov==7.1.0",
        ),
        pytest_args=HYPOTHESIS_SEED,
    ),
    # ``--import-mode=importlib`` and ``--strict-config``; the ``tests`` dependency group.
    Project(
        name="attrs",
        version="26.1.0",
        sha256="d03ceb89cb322a8fd706d4fb91940737b6642aa36998fe130a9bc96c985eff32",
        requirements=(PYTEST, XDIST, HYPOTHESIS, "cloudpickle==3.1.3", "pympler==1.1"),
        pytest_args=HYPOTHESIS_SEED,
    ),
)


def by_name(name: str) -> Project | None:
    return next((p for p in PROJECTS if p.name == name), None)

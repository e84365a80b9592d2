"""The stores raise ``EscalationError`` without importing the escalation engine: a pytest run
that records its session must not pay for the engine, its channels and their HTTP clients."""

from __future__ import annotations

import json
import subprocess
import sys

from pytest_maf_preflight.escalation.errors import EscalationError
from pytest_maf_preflight.runtime.errors import RuntimeStateError

PROBE = """
import json, sys
import pytest_maf_preflight.runtime.jsonl
import pytest_maf_preflight.runtime.memory
import pytest_maf_preflight.runtime.postgres
import pytest_maf_preflight.runtime.sqlite
print(json.dumps(sorted(m for m in sys.modules if m.startswith("pytest_maf_preflight.escalation"))))
"""


def test_the_stores_import_the_escalation_errors_and_not_the_engine() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        "pytest_maf_preflight.escalation",
        "pytest_maf_preflight.escalation.errors",
    ]


def test_an_escalation_error_is_a_runtime_error() -> None:
    # What the CLI and the gate catch as a store failure includes a delivery the store refused.
    assert issubclass(EscalationError, RuntimeStateError)

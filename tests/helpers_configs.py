"""Preflight configs the tests write again and again, and where they write them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: What the ``write_config`` fixture (conftest.py) gives: write a config file of the pytester
#: project by name and text, get its path.
WriteConfig = Callable[[str, str], Path]

#: A smoke test that passes wherever the tests run.
PASSING_CHECK = """\
id: has-path
name: PATH is set
config_type: smoke_test
config:
  test_type: environment
  test_definition: {required: [PATH]}
"""

#: A smoke test that fails until the test sets MAF_TEST_ESCALATION_VAR, escalated along the
#: ``on-call`` path.
ESCALATING_CHECK = """\
id: needs-var
name: A variable this test controls
config_type: smoke_test
escalation_path: on-call
config:
  test_type: environment
  test_definition: {required: [MAF_TEST_ESCALATION_VAR]}
"""


def command_config(
    check_id: str, argv: list[str], *, severity: str = "critical", timeout: float = 10, **extra: Any
) -> str:
    """A command smoke test as JSON; ``extra`` adds top-level fields (``is_active``...)."""
    return json.dumps(
        {
            "id": check_id,
            "name": f"{check_id} command",
            "config_type": "smoke_test",
            "version": "1.0.0",
            "severity": severity,
            "config": {
                "test_type": "command",
                "timeout_seconds": timeout,
                "test_definition": {"argv": argv},
            },
            **extra,
        }
    )


def write_config_in(root: Path, name: str, text: str) -> Path:
    """Write a config file under ``root/.maf/preflight-configs``."""
    path = root / ".maf" / "preflight-configs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path

"""``maf-preflight config migrate`` on TOML files: what it writes reads back as the migrated data.

The TOML text is written by ``tomli_w``; these tests check what users see of it through the
command's own code path (``migrate_file``): strings and keys that need quoting or escaping,
arrays of tables, long arrays, the header comments kept, and any data a config may hold.
"""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.cli.config_migrate import _render, migrate_file
from pytest_maf_preflight.compat import tomllib
from pytest_maf_preflight.config.loader import ConfigLoader

HOSTILE = "quote \" backslash \\ tab \t newline \n bell \x07 del \x7f é ☃ 'single'"

ORIGINAL_TOML = r"""# Checks in the original spelling.
# Two comment lines, both kept.

[[configs]]
id = "git-available"
name = "quote \" backslash \\ tab \t newline \n bell \u0007 del \u007f é ☃ 'single'"
configType = "smoke_test"
tags = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9", "t10", "t11", "t12", "t13"]

[configs.config]
testType = "command"
timeoutSeconds = 2.5

[configs.config.testDefinition]
argv = ["git", "--version"]
stdoutRegex = 'git version \d+\.\d+'
env = { "GIT PAGER" = "cat", "a.b" = "dotted key", "é" = "non-ascii key", "" = "empty key" }

[configs.environmentOverrides."ci.linux".testDefinition]
argv = ["git"]

[[configs]]
id = "on-call"
name = "Page on-call"
configType = "escalation_path"

[configs.config]
maxEscalationLevel = 2

[[configs.config.triggerConditions]]
condition = "preflight_failure"
operator = "gte"
threshold = 2

[[configs.config.escalationSteps]]
level = 1
action = "notify"
target = "on-call-agent"
timeoutMinutes = 5

[[configs.config.escalationSteps]]
level = 2
action = "escalate"
target = "lead"
timeoutMinutes = 30
"""


def loader() -> ConfigLoader:
    return ConfigLoader(builtin_registry(), "development")


def test_migrated_toml_reads_back_as_the_migrated_data(tmp_path: Path) -> None:
    target = tmp_path / "checks.toml"
    target.write_text(ORIGINAL_TOML, encoding="utf-8")
    expected = [config.document for config in loader().load_files([target])]

    outcome = migrate_file(target, loader(), dry_run=False)

    assert outcome.status == "migrated", [e.message for e in outcome.errors]
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# Checks in the original spelling.\n# Two comment lines, both kept.\n")
    assert tomllib.loads(text) == {"configs": expected}
    first, second = expected
    assert first["name"] == HOSTILE
    assert first["config"]["test_definition"]["env"] == {
        "GIT PAGER": "cat",
        "a.b": "dotted key",
        "é": "non-ascii key",
        "": "empty key",
    }
    assert first["config"]["test_definition"]["stdout_regex"] == r"git version \d+\.\d+"
    assert "ci.linux" in first["environment_overrides"]
    assert [s["target"] for s in second["config"]["escalation_steps"]] == ["on-call-agent", "lead"]
    migrated = loader().load_files([target])
    assert [c.source_format for c in migrated] == [2, 2]
    assert migration_is_done(target)


def migration_is_done(target: Path) -> bool:
    return migrate_file(target, loader(), dry_run=True).status == "up_to_date"


def test_random_documents_read_back_as_written() -> None:
    """Any data a TOML config file can hold comes back the same from the rendered text."""
    rnd = random.Random(20240501)
    alphabet = string.printable + "\x00\x01\x1f\x7fé☃\"'\\"

    def text() -> str:
        return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 10)))

    def scalar() -> Any:
        kind = rnd.randrange(5)
        if kind == 0:
            return rnd.randint(-(2**63), 2**63 - 1)
        if kind == 1:
            return rnd.uniform(-1, 1) * 10 ** rnd.randint(-300, 300)
        if kind == 2:
            return rnd.random() < 0.5
        return text()

    def value(depth: int) -> Any:
        roll = rnd.random()
        if depth > 3 or roll < 0.5:
            return scalar()
        if roll < 0.65:
            return [scalar() for _ in range(rnd.randint(0, 25))]
        if roll < 0.8:
            return [table(depth + 1) for _ in range(rnd.randint(1, 3))]
        if roll < 0.85:
            return [table(depth + 1), scalar()]
        return table(depth + 1)

    def table(depth: int) -> dict[str, Any]:
        return {text(): value(depth) for _ in range(rnd.randint(0, 5))}

    for _ in range(500):
        document = table(0)
        assert tomllib.loads(_render("toml", document, "# header\n")) == document

"""Channels that plugins add (SPEC S8): a package's entry point in the group
``maf_preflight.channels`` (installed for real: ``helpers_channel_pkg``) delivers in a gate run
and in ``maf-preflight escalations tick``; a conftest delivers through
``pytest_maf_preflight_deliver_escalation``; a target naming a channel nobody adds is a config
error. Real pytest runs, real child processes, real SQLite files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from helpers_channel_pkg import install_channel_pkg
from helpers_cli import cli
from helpers_configs import ESCALATING_CHECK, WriteConfig
from pytest_maf_preflight.config.models import EscalationPathBody
from pytest_maf_preflight.escalation.engine import EscalationEngine
from pytest_maf_preflight.escalation.paths import PathRef
from pytest_maf_preflight.runtime.records import DeliveryRecord
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

QUIET = ("-W", "ignore::pytest.PytestWarning")
HOUR = 3600.0


def path_config(channel: str, options: dict[str, Any] | None = None) -> str:
    """The ``on-call`` path (threshold 1) whose one target, ``pager``, uses ``channel``."""
    target: dict[str, Any] = {"channel": channel}
    if options:
        target["options"] = options
    return json.dumps(
        {
            "id": "on-call",
            "name": "Page through a plugin's channel",
            "config_type": "escalation_path",
            "config": {
                "trigger_conditions": [{"condition": "preflight_failure", "threshold": 1}],
                "escalation_steps": [
                    {"level": 1, "action": "notify", "target": "pager", "timeout_minutes": 30}
                ],
                "targets": {"pager": target},
            },
        },
        indent=2,
    )


def channel_line(text: str) -> int:
    """The line of the one ``channel`` key in ``text``."""
    [line] = [n for n, row in enumerate(text.splitlines(), 1) if '"channel"' in row]
    return line


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory holding the installed test channel package (put it on PYTHONPATH)."""
    return install_channel_pkg(tmp_path / "site")


def outbox_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def deliveries(db: Path) -> list[DeliveryRecord]:
    with SqliteRuntime(db) as runtime:
        return runtime.deliveries()


# --- config errors -------------------------------------------------------------------------------


def test_a_target_naming_an_unknown_channel_is_a_config_error_in_the_gate(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("check.yaml", ESCALATING_CHECK)
    line = channel_line(path_config("slack"))
    write_config("path.json", path_config("slack"))
    pytester.makepyfile(test_app="def test_ordinary():\n    pass\n")
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "--maf-runtime=sqlite")
    assert result.ret == 11
    result.stderr.fnmatch_lines(
        [
            f"*.maf/preflight-configs/path.json:{line}: config.targets.pager.channel: "
            "unknown channel "
            "'slack' (known: agent_mail, command, mailbox, webhook); a plugin adds one through "
            "the entry-point group 'maf_preflight.channels' or the "
            "pytest_maf_preflight_deliver_escalation hook*"
        ]
    )


def test_validate_knows_the_installed_channels(tmp_path: Path, site: Path) -> None:
    configs = tmp_path / "project" / ".maf" / "preflight-configs"
    configs.mkdir(parents=True)
    (configs / "path.json").write_text(path_config("outbox", {"path": "/tmp/outbox"}))
    override = json.loads(path_config("mailbox"))
    override["environment_overrides"] = {"ci": {"targets": {"pager": {"channel": "sms"}}}}
    (configs / "other.json").write_text(json.dumps({**override, "id": "other"}, indent=2))

    bare = cli(tmp_path / "project", "validate")
    assert bare.returncode == 1
    line = channel_line(path_config("outbox"))
    assert (
        f"path.json:{line}: config.targets.pager.channel: unknown channel 'outbox'" in bare.stdout
    )
    sms = (configs / "other.json").read_text().splitlines().index('          "channel": "sms"') + 1
    assert (
        f"other.json:{sms}: environment_overrides.ci.targets.pager.channel: unknown channel 'sms'"
        in bare.stdout
    )

    installed = cli(tmp_path / "project", "validate", PYTHONPATH=str(site))
    assert installed.returncode == 1
    assert "'outbox'" not in installed.stdout  # the package adds it
    assert "unknown channel 'sms' (known: agent_mail, broken, command, mailbox, outbox" in (
        installed.stdout
    )

    (configs / "other.json").unlink()
    assert cli(tmp_path / "project", "validate", PYTHONPATH=str(site)).returncode == 0


# --- delivering in the gate ----------------------------------------------------------------------


def test_the_gate_delivers_through_an_installed_channel(
    pytester: pytest.Pytester,
    write_config: WriteConfig,
    site: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outbox = pytester.path / "outbox.jsonl"
    write_config("check.yaml", ESCALATING_CHECK)
    write_config("path.json", path_config("outbox", {"path": str(outbox)}))
    pytester.makepyfile(test_app="def test_ordinary():\n    pass\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(pytester.path / "mail"))
    monkeypatch.setenv("OUTBOX_TOKEN", "s3cr3t-0utb0x")
    args = ("-p", "maf_preflight", "--maf-preflight", "--maf-runtime=sqlite", *QUIET)

    result = pytester.runpytest_subprocess(*args)
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        [
            "*escalation opened: * on-call:needs-var:failed at level 1*",
            "*delivery outbox -> pager (level 1, attempt 1): delivered*",
        ]
    )
    monkeypatch.setenv("MAF_TEST_ESCALATION_VAR", "set")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*delivery outbox -> pager (level 1, attempt 1): delivered*"])

    request, resolution = outbox_lines(outbox)
    assert (request["kind"], request["message_type"], request["level"]) == (
        "request",
        "ESCALATION_REQUEST",
        1,
    )
    assert request["dedup_key"] == "on-call:needs-var:failed"
    assert (resolution["kind"], resolution["message_type"]) == ("resolution", "ESCALATION_RESPONSE")
    assert request["token"] == "s3cr3t-0utb0x"  # the channel reads the environment it is given
    records = deliveries(pytester.path / ".maf" / "runtime.db")
    assert [(d.channel, d.target, d.status) for d in records] == [
        ("outbox", "pager", "delivered")
    ] * 2
    # What the channel answered is kept, its secrets are not.
    assert records[0].response == {"file": "outbox.jsonl", "token": "***"}


CONFTEST_CHANNEL = """
import json
from pathlib import Path

from pytest_maf_preflight.escalation.plugin_channels import ChannelResult

def pytest_maf_preflight_escalation_channels(config):
    return ["conftest-pager"]

def pytest_maf_preflight_deliver_escalation(config, channel, notice, target, environ):
    if channel != "conftest-pager":
        return None
    with Path(target.options["path"]).open("a") as handle:
        handle.write(json.dumps({"kind": notice.kind, "target": notice.target}) + "\\n")
    return ChannelResult(True, response={"via": "hook"})
"""


def test_a_conftest_delivers_through_the_hook(
    pytester: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = pytester.path / "hooked.jsonl"
    write_config("check.yaml", ESCALATING_CHECK)
    write_config("path.json", path_config("conftest-pager", {"path": str(outbox)}))
    pytester.makepyfile(test_app="def test_ordinary():\n    pass\n")
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(pytester.path / "mail"))
    args = ("-p", "maf_preflight", "--maf-preflight", "--maf-runtime=sqlite", *QUIET)

    # Without a plugin naming the channel, it is unknown.
    assert pytester.runpytest(*args).ret == 11
    pytester.makeconftest(CONFTEST_CHANNEL)
    result = pytester.runpytest(*args)
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        ["*delivery conftest-pager -> pager (level 1, attempt 1): delivered*"]
    )
    assert outbox_lines(outbox) == [{"kind": "request", "target": "pager"}]
    [record] = deliveries(pytester.path / ".maf" / "runtime.db")
    assert record.response == {"via": "hook"}


# --- delivering in maf-preflight escalations tick ------------------------------------------------


def due_escalation(runtime: SqliteRuntime, project: Path, channel: str, **options: Any) -> str:
    """An escalation whose level 2 (a target on ``channel``) is due now; its id."""
    body = EscalationPathBody.model_validate(
        {
            "trigger_conditions": [{"condition": "preflight_failure"}],
            "escalation_steps": [
                {"level": 1, "action": "notify", "target": "first", "timeout_minutes": 1},
                {"level": 2, "action": "escalate", "target": "second", "timeout_minutes": 60},
            ],
            "targets": {"second": {"channel": channel, "options": options}},
        }
    )
    path = PathRef(f"via-{channel}-{len(options)}", "1.0.0", body)
    engine = EscalationEngine(
        runtime,
        {path.id: path},
        agent_id="gate-agent",
        mail_root=project / "mail",
        environ={},
        clock=lambda: time.time() - HOUR,
    )
    record = engine.raise_manual(path.id, summary=f"through {channel}")
    assert record is not None
    return record.id


def test_escalations_tick_delivers_through_installed_channels(tmp_path: Path, site: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    outbox = tmp_path / "outbox.jsonl"
    with SqliteRuntime(project / ".maf" / "runtime.db") as runtime:
        ids = {
            "outbox": due_escalation(runtime, project, "outbox", path=str(outbox)),
            "refused": due_escalation(runtime, project, "outbox", path="-", refuse=True),
            "broken": due_escalation(runtime, project, "broken"),
            "unloadable": due_escalation(runtime, project, "unloadable"),
            "nobody": due_escalation(runtime, project, "nobody"),
        }
    env = {
        "PYTHONPATH": str(site),
        "MAF_RUNTIME_MODE": "sqlite",
        "MAF_AGENT_MAIL_ROOT": str(project / "mail"),
        "OUTBOX_TOKEN": "s3cr3t-0utb0x",
    }
    done = cli(project, "escalations", "tick", **env)
    assert done.returncode == 0, done.stderr
    assert "delivery outbox -> second (level 2, attempt 1): delivered" in done.stdout
    [line] = outbox_lines(outbox)
    assert (line["escalation_id"], line["level"], line["target"]) == (ids["outbox"], 2, "second")

    with SqliteRuntime(project / ".maf" / "runtime.db") as runtime:
        level_2 = {
            name: [(d.channel, d.status, d.error) for d in runtime.deliveries(eid) if d.level == 2]
            for name, eid in ids.items()
        }
    assert level_2["outbox"] == [("outbox", "delivered", None)]
    # A channel's failure is a failed delivery, never a failed tick; secrets stay out of it.
    assert level_2["refused"] == [("outbox", "failed", "the outbox refused it (***)")]
    assert level_2["broken"] == [
        ("broken", "failed", "channel 'broken' raised RuntimeError: the outbox is on fire")
    ]
    [(_, status, error)] = level_2["unloadable"]
    assert status == "failed"
    assert error is not None
    assert error.startswith(
        "cannot load channel 'unloadable' (maf_test_channel_missing:deliver): "
        "ModuleNotFoundError: No module named 'maf_test_channel_missing'"
    )
    [(_, status, error)] = level_2["nobody"]
    assert status == "failed"
    assert error is not None
    assert error.startswith("unknown channel 'nobody' (known: agent_mail, broken, command")


def test_entry_points_are_not_read_while_every_channel_is_built_in(
    tmp_path: Path, site: Path
) -> None:
    """Reading entry points scans every installed distribution: a tick whose deliveries are all
    built in never does (the package's entry point would be imported if it did)."""
    project = tmp_path / "project"
    project.mkdir()
    with SqliteRuntime(project / ".maf" / "runtime.db") as runtime:
        due_escalation(runtime, project, "mailbox")
    probe = textwrap.dedent(
        """
        import importlib.metadata, sys
        from pytest_maf_preflight.cli.main import main
        calls = []
        original = importlib.metadata.entry_points
        importlib.metadata.entry_points = lambda **kw: calls.append(kw) or original(**kw)
        code = main(["escalations", "tick"])
        print("channel lookups:", [c for c in calls if c.get("group") == "maf_preflight.channels"])
        sys.exit(code)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(site), "MAF_RUNTIME_MODE": "sqlite"}
    env["MAF_AGENT_MAIL_ROOT"] = str(project / "mail")
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "delivery mailbox -> second (level 2, attempt 1): delivered" in done.stdout
    assert "channel lookups: []" in done.stdout

"""A channel added by a package: appends each notice to the file its target names.

``options.path`` is the file (one JSON object per line); ``options.refuse`` makes it report a
failed delivery, as a service answering with an error would.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from pytest_maf_preflight.config.models import EscalationTarget
from pytest_maf_preflight.escalation.channels.notice import Notice
from pytest_maf_preflight.escalation.plugin_channels import ChannelResult


def deliver(notice: Notice, target: EscalationTarget, environ: Mapping[str, str]) -> ChannelResult:
    if target.options.get("refuse"):
        return ChannelResult(False, f"the outbox refused it ({environ.get('OUTBOX_TOKEN')})")
    path = Path(str(target.options["path"]))
    line = {
        "kind": notice.kind,
        "escalation_id": notice.escalation.id,
        "dedup_key": notice.escalation.dedup_key,
        "level": notice.level,
        "target": notice.target,
        "summary": notice.summary,
        "message_type": notice.message["type"],
        "token": environ.get("OUTBOX_TOKEN"),
    }
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")
    return ChannelResult(True, response={"file": path.name, "token": environ.get("OUTBOX_TOKEN")})


def explode(notice: Notice, target: EscalationTarget, environ: Mapping[str, str]) -> ChannelResult:
    raise RuntimeError("the outbox is on fire")

"""A path's ``permissions`` policy: who may acknowledge, resolve, and escalate where (SPEC S4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.config.loader import ConfigLoader
from pytest_maf_preflight.config.models import EscalationPathBody, EscalationPermissions
from pytest_maf_preflight.escalation.permissions import (
    PermissionDenied,
    check_acknowledge,
    check_escalate_to,
    check_resolve,
)

PATH_YAML = """\
id: guarded-escalation
name: Only the leads close escalations
config_type: escalation_path
config:
  trigger_conditions:
    - {condition: preflight_failure, threshold: 2}
  escalation_steps:
    - {level: 1, action: notify, target: on-call}
    - {level: 2, action: escalate, target: lead}
  permissions:
    acknowledge: [on-call, lead]
    resolve: [lead]
    escalate_to:
      codex-1: [on-call]
      "*": [lead]
"""


def policy(**fields: Any) -> EscalationPermissions:
    return EscalationPermissions.model_validate(fields)


def loaded_policy(tmp_path: Path) -> EscalationPermissions:
    """The policy as a real config file declares it."""
    file = tmp_path / "guarded-escalation.yaml"
    file.write_text(PATH_YAML)
    [loaded] = ConfigLoader(builtin_registry(), "development").load_files([file])
    assert isinstance(loaded.body, EscalationPathBody)
    assert loaded.body.permissions is not None
    return loaded.body.permissions


def test_no_policy_allows_everyone() -> None:
    for permissions in (None, policy()):
        check_acknowledge(permissions, "anyone")
        check_resolve(permissions, "anyone", path_id="p")
        check_escalate_to(permissions, "anyone", "vp-engineering")


def test_only_listed_agents_may_acknowledge_and_resolve(tmp_path: Path) -> None:
    permissions = loaded_policy(tmp_path)
    check_acknowledge(permissions, "on-call", path_id="guarded-escalation")
    check_acknowledge(permissions, "lead", path_id="guarded-escalation")
    check_resolve(permissions, "lead", path_id="guarded-escalation")
    with pytest.raises(PermissionDenied) as refused:
        check_resolve(permissions, "on-call", path_id="guarded-escalation")
    assert str(refused.value) == (
        "agent 'on-call' may not resolve escalations of path "
        "'guarded-escalation' (permissions.resolve: lead)"
    )
    assert refused.value.rule == "permissions.resolve"
    assert (refused.value.agent, refused.value.allowed) == ("on-call", ("lead",))
    with pytest.raises(PermissionDenied) as refused:
        check_acknowledge(permissions, "codex-1", path_id="guarded-escalation")
    assert str(refused.value) == (
        "agent 'codex-1' may not acknowledge escalations of path "
        "'guarded-escalation' (permissions.acknowledge: on-call, lead)"
    )
    assert refused.value.rule == "permissions.acknowledge"


def test_a_star_allows_everyone_and_an_empty_list_nobody() -> None:
    check_acknowledge(policy(acknowledge=["lead", "*"]), "codex-9")
    check_resolve(policy(acknowledge=["lead"]), "codex-9")  # no resolve rule: allowed
    with pytest.raises(PermissionDenied) as refused:
        check_resolve(policy(resolve=[]), "lead")
    assert (
        str(refused.value)
        == "agent 'lead' may not resolve escalations (permissions.resolve: nobody)"
    )


def test_agents_escalate_only_to_their_targets_plus_everyones(tmp_path: Path) -> None:
    permissions = loaded_policy(tmp_path)
    check_escalate_to(permissions, "codex-1", "on-call")
    check_escalate_to(permissions, "codex-1", "lead")  # from the "*" entry
    check_escalate_to(permissions, "claude-2", "lead")  # not listed: the "*" entry only
    with pytest.raises(PermissionDenied) as refused:
        check_escalate_to(permissions, "codex-1", "vp-engineering", path_id="guarded-escalation")
    assert str(refused.value) == (
        "agent 'codex-1' may not escalate to 'vp-engineering' on path 'guarded-escalation' "
        "(permissions.escalate_to.codex-1: on-call, lead)"
    )
    assert refused.value.rule == "permissions.escalate_to.codex-1"
    with pytest.raises(PermissionDenied) as refused:
        check_escalate_to(permissions, "claude-2", "on-call")
    assert (
        str(refused.value)
        == "agent 'claude-2' may not escalate to 'on-call' (permissions.escalate_to.*: lead)"
    )
    assert refused.value.rule == "permissions.escalate_to.*"


def test_an_agent_escalate_to_does_not_cover_may_escalate_nowhere() -> None:
    permissions = policy(escalate_to={"codex-1": ["lead"]})
    with pytest.raises(PermissionDenied) as refused:
        check_escalate_to(permissions, "claude-2", "lead", path_id="p")
    assert str(refused.value) == (
        "agent 'claude-2' may not escalate to 'lead' on path 'p' "
        "(permissions.escalate_to: no entry for 'claude-2')"
    )
    assert refused.value.rule == "permissions.escalate_to"
    assert refused.value.allowed == ()


def test_a_star_target_means_any_target() -> None:
    permissions = policy(escalate_to={"lead": ["*"]})
    check_escalate_to(permissions, "lead", "vp-engineering")
    with pytest.raises(PermissionDenied, match=r"permissions\.escalate_to: no entry"):
        check_escalate_to(permissions, "codex-1", "vp-engineering")

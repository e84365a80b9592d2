"""``environment`` checks: variables present, patterns matched, values never shown."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from pydantic import ValidationError

from pytest_maf_preflight.checks import environment
from pytest_maf_preflight.checks.base import CheckContext, CheckStatus, Observation
from pytest_maf_preflight.checks.environment import EnvironmentDefinition
from pytest_maf_preflight.checks.runner import PlannedCheck, run_checks

#: A value that must never be shown. Its variable name does not look secret, so only the check's
#: own discipline (not the runner's key-based redaction) keeps it out of results.
VALUE = "v4lue-that-must-not-leak"


def _ctx(tmp_path: Path, environ: Mapping[str, str]) -> CheckContext:
    return CheckContext(
        rootdir=tmp_path, environ=dict(environ), environment="test", agent_id="agent-1"
    )


def _run(tmp_path: Path, environ: Mapping[str, str], **definition: object) -> Observation:
    return environment.run(
        EnvironmentDefinition.model_validate(definition), _ctx(tmp_path, environ)
    )


def _text(observation: Observation) -> str:
    return json.dumps([observation.expected, observation.observed, observation.details])


def test_required_present_passes(tmp_path: Path) -> None:
    obs = _run(tmp_path, {"SERVICE_URL": VALUE, "REGION": "eu"}, required=["SERVICE_URL", "REGION"])
    assert obs.passed
    assert obs.details["missing"] == []
    assert obs.details["present"] == ["SERVICE_URL", "REGION"]
    assert VALUE not in _text(obs)


def test_required_missing_fails_and_names_it(tmp_path: Path) -> None:
    obs = _run(tmp_path, {"SERVICE_URL": VALUE}, required=["SERVICE_URL", "REGION"])
    assert not obs.passed
    assert obs.details["missing"] == ["REGION"]
    assert "REGION" in obs.observed
    assert VALUE not in _text(obs)


def test_required_empty_counts_as_missing(tmp_path: Path) -> None:
    obs = _run(tmp_path, {"REGION": ""}, required=["REGION"])
    assert not obs.passed
    assert obs.details["missing"] == ["REGION"]


def test_required_empty_allowed_when_allow_empty(tmp_path: Path) -> None:
    obs = _run(tmp_path, {"REGION": ""}, required=["REGION"], allow_empty=True)
    assert obs.passed


def test_optional_missing_is_reported_but_does_not_fail(tmp_path: Path) -> None:
    obs = _run(
        tmp_path,
        {"REGION": "eu", "DEBUG_LEVEL": ""},
        required=["REGION"],
        optional=["DEBUG_LEVEL", "TRACE_ID", "REGION"],
    )
    assert obs.passed
    assert obs.details["optional_missing"] == ["DEBUG_LEVEL", "TRACE_ID"]


def test_pattern_matching_passes(tmp_path: Path) -> None:
    obs = _run(tmp_path, {"PORT": "8080"}, required=["PORT"], patterns={"PORT": r"\d{2,5}"})
    assert obs.passed


def test_pattern_is_a_fullmatch_not_a_search(tmp_path: Path) -> None:
    # "8080x" contains a match of \d+ but is not one: the whole value must match.
    obs = _run(tmp_path, {"PORT": "8080x"}, required=["PORT"], patterns={"PORT": r"\d+"})
    assert not obs.passed
    assert "PORT does not match" in obs.observed
    assert "8080x" not in _text(obs)


def test_pattern_mismatch_never_shows_the_value(tmp_path: Path) -> None:
    obs = _run(
        tmp_path,
        {"SERVICE_URL": VALUE},
        required=["SERVICE_URL"],
        patterns={"SERVICE_URL": r"https://.*"},
    )
    assert not obs.passed
    assert "SERVICE_URL" in obs.observed
    assert VALUE not in _text(obs)


def test_pattern_on_an_unset_optional_variable_is_not_a_failure(tmp_path: Path) -> None:
    obs = _run(tmp_path, {}, optional=["LOG_FORMAT"], patterns={"LOG_FORMAT": "json|text"})
    assert obs.passed


def test_empty_value_must_match_its_pattern_when_empty_is_allowed(tmp_path: Path) -> None:
    obs = _run(
        tmp_path, {"PORT": ""}, required=["PORT"], patterns={"PORT": r"\d+"}, allow_empty=True
    )
    assert not obs.passed
    assert "PORT does not match" in obs.observed


def test_invalid_pattern_is_rejected_at_load() -> None:
    with pytest.raises(ValidationError, match="invalid regular expression"):
        EnvironmentDefinition.model_validate({"patterns": {"PORT": "(unclosed"}})


def test_invalid_variable_names_are_rejected_at_load() -> None:
    with pytest.raises(ValidationError):
        EnvironmentDefinition.model_validate({"required": ["NOT-A-NAME"]})
    with pytest.raises(ValidationError):
        EnvironmentDefinition.model_validate({"patterns": {"1BAD": ".*"}})


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError):
        EnvironmentDefinition.model_validate({"requird": ["PORT"]})


def test_values_absent_from_the_whole_result_through_the_runner(tmp_path: Path) -> None:
    environ = {"SERVICE_URL": VALUE, "REGION": "eu", "API_TOKEN": "tok-abcdef"}
    checks = [
        PlannedCheck(
            check_id=f"env-{i}",
            name="env",
            severity="critical",
            check_type=environment.CHECK_TYPE,
            definition=EnvironmentDefinition.model_validate(definition),
            timeout=5.0,
            retry_count=0,
            retry_delay=0.0,
        )
        for i, definition in enumerate(
            [
                {"required": ["SERVICE_URL", "API_TOKEN"]},
                {
                    "required": ["SERVICE_URL", "MISSING_ONE"],
                    "patterns": {"SERVICE_URL": "https://.*", "API_TOKEN": "x+"},
                },
            ]
        )
    ]
    results = run_checks(checks, _ctx(tmp_path, environ))
    assert [r.status for r in results] == [CheckStatus.PASSED, CheckStatus.FAILED]
    everything = json.dumps([r.to_dict() for r in results])
    assert VALUE not in everything
    assert "tok-abcdef" not in everything
    assert "MISSING_ONE" in results[1].observed

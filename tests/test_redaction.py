"""Secret redaction: what counts as a secret, and that it is hidden wherever it appears."""

from __future__ import annotations

import pytest

from pytest_maf_preflight.redaction import (
    REDACTED,
    env_references,
    is_secret_key,
    redact_mapping,
    redact_text,
)


@pytest.mark.parametrize(
    "key",
    [
        "PASSWORD",
        "db_passwd",
        "GITHUB_TOKEN",
        "api_key",
        "X-Api-Key",
        "Authorization",
        "AWS_SECRET_ACCESS_KEY",
        "credentials",
        "Cookie",
        "PRIVATE_KEY",
        "SENTRY_DSN",
        "SSH_KEY",
        "signing-key",
        "key",
    ],
)
def test_secret_looking_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["HOME", "PATH", "stdout", "exit_code", "keyboard", "monkey_see"])
def test_ordinary_keys_are_not_secret(key: str) -> None:
    assert not is_secret_key(key)


def test_redact_text_replaces_every_occurrence() -> None:
    text = "token=s3cr3t-value; again s3cr3t-value"
    assert redact_text(text, ["s3cr3t-value"]) == f"token={REDACTED}; again {REDACTED}"


def test_redact_text_longest_secret_first() -> None:
    # "abcdef" contains "abc": replacing the short one first would leave "***def" behind.
    assert redact_text("x abcdef y", ["abc", "abcdef"]) == f"x {REDACTED} y"


def test_redact_text_ignores_empty_and_very_short_values() -> None:
    # A one- or two-character "secret" would blank out unrelated text everywhere.
    assert redact_text("a1 b2", ["", "a", "b2"]) == "a1 b2"


def test_redact_mapping_hides_values_under_secret_keys_and_known_values() -> None:
    data = {
        "headers": {"Authorization": "Bearer abc123", "Accept": "text/plain"},
        "stdout": "the value is hunter22 indeed",
        "argv": ["tool", "--flag", "hunter22"],
        "count": 3,
    }
    out = redact_mapping(data, ["hunter22"])
    assert out == {
        "headers": {"Authorization": REDACTED, "Accept": "text/plain"},
        "stdout": f"the value is {REDACTED} indeed",
        "argv": ["tool", "--flag", REDACTED],
        "count": 3,
    }
    # A copy: the input is untouched.
    assert data["headers"]["Authorization"] == "Bearer abc123"  # type: ignore[index]


def test_redact_mapping_hides_whole_subtrees_under_secret_keys() -> None:
    data = {
        "credentials": {"user": "bob", "pw": "not-a-secret-looking-key"},
        "tokens": ["t-one", "t-two"],
        "api_key": 12345,
        "password": None,
    }
    out = redact_mapping(data)
    assert out == {
        "credentials": {"user": REDACTED, "pw": REDACTED},
        "tokens": [REDACTED, REDACTED],
        "api_key": REDACTED,
        "password": None,
    }


def test_env_references() -> None:
    template = "Bearer ${ENV:API_TOKEN} for ${ENV:USER_NAME}"
    assert env_references(template) == ["API_TOKEN", "USER_NAME"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DATABASE_URL=postgres://u:pw123456@h/db", "DATABASE_URL=postgres://u:***@h/db"),
        ("redis://:s3cret@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("a http://ann:one@x and ftp://bob:p%40ss@y/z", "a http://ann:***@x and ftp://bob:***@y/z"),
        # An unencoded '/' or '#' in the password does not let its tail leak.
        ("postgres://u:p/w#1@h/db", "postgres://u:***@h/db"),
        ('{"url": "amqp+ssl://u:pw@broker"}', '{"url": "amqp+ssl://u:***@broker"}'),
    ],
)
def test_redact_text_hides_url_passwords(text: str, expected: str) -> None:
    assert redact_text(text, []) == expected


@pytest.mark.parametrize(
    "text",
    [
        "https://user@host/path",
        "https://host:8443/x",
        "see http://host:80/ or mail a@b",
        "https://h/x?u=a:b@c",
        "plain a:b@c",
    ],
)
def test_redact_text_leaves_urls_without_a_password_alone(text: str) -> None:
    assert redact_text(text, []) == text


def test_redact_mapping_hides_url_passwords_in_string_values() -> None:
    data = {
        "stdout": "DATABASE_URL=postgres://u:pw123456@h/db\n",
        "argv": ["psql", "postgresql://app:hunter22@db:5432/app"],
    }
    assert redact_mapping(data) == {
        "stdout": "DATABASE_URL=postgres://u:***@h/db\n",
        "argv": ["psql", "postgresql://app:***@db:5432/app"],
    }

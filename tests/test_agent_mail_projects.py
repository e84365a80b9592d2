"""mcp_agent_mail's project keys and slugs, computed as the server computes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_maf_preflight.agent_mail.projects import canonical_project_key, slugify


@pytest.mark.parametrize(
    ("key", "slug"),
    [
        ("/srv/repos/my-project", "srv-repos-my-project"),
        ("  Backend  ", "backend"),
        ("/Users/Me/Code/Web App_2", "users-me-code-web-app-2"),
        ("///", "project"),
        ("srv-repos-app", "srv-repos-app"),  # a slug is its own slug
        ("Ünïcode Pröject", "n-code-pr-ject"),  # str.lower, then non-[a-z0-9] runs become '-'
    ],
)
def test_slugify_matches_mcp_agent_mail(key: str, slug: str) -> None:
    assert slugify(key) == slug


def test_path_like_project_keys_are_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert canonical_project_key(".", tmp_path) == str(tmp_path)
    assert canonical_project_key("sub/../x", tmp_path) == str(tmp_path / "x")
    assert canonical_project_key("~/code", tmp_path) == str(tmp_path / "home" / "code")
    assert canonical_project_key("Backend", tmp_path) == "Backend"
    assert canonical_project_key("/a//b/", tmp_path) == "/a/b"

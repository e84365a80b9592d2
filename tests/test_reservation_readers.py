"""``max_concurrent_readers``: how readers of a shared reservation are counted."""

from __future__ import annotations

from pytest_maf_preflight.reservations.conflicts import Holding, reader_counts


def shared(
    agent: str, pattern: str, *, exclusive: bool = False, dialect: str = "gitignore"
) -> Holding:
    return Holding(
        agent=agent,
        pattern=pattern,
        exclusive=exclusive,
        expires_at=0.0,
        source="leases",
        dialect=dialect,  # type: ignore[arg-type]
    )


def counted(holdings: list[Holding], limit: int) -> dict[str | None, str]:
    return {c.path: c.detail.split(" agents")[0] for c in reader_counts(holdings, limit)}


def test_readers_are_distinct_agents_on_overlapping_shared_patterns() -> None:
    holdings = [
        shared("b", "docs/**"),
        shared("c", "docs/*.md"),
        shared("d", "docs/x.md"),
        shared("b", "docs/x.md"),  # one agent twice is one reader
        shared("e", "docs/y.md", exclusive=True),  # a writer is no reader
        shared("f", "src/**"),
    ]
    assert counted(holdings, 1) == {"docs/**": "3", "docs/*.md": "3", "docs/x.md": "3"}
    assert counted(holdings, 3) == {}


def test_overlap_is_pairwise_so_the_count_errs_towards_a_conflict() -> None:
    """``src/**`` overlaps both others, which do not overlap each other: three readers of
    ``src/**`` though no single file has more than two."""
    holdings = [shared("a", "src/**"), shared("b", "src/one/**"), shared("c", "src/two/**")]
    assert counted(holdings, 2) == {"src/**": "3"}


def test_agent_mail_reservations_count_in_their_own_dialect() -> None:
    # fnmatch's ``*`` crosses ``/``: ``docs*`` covers docs/x.md as the server would decide.
    holdings = [shared("a", "docs/x.md"), shared("BlueLake", "docs*", dialect="agent_mail")]
    assert counted(holdings, 1) == {"docs/x.md": "2", "docs*": "2"}

"""Reservations (SPEC S3): lease patterns, changed files, external reservations, conflicts.

- ``patterns``: gitignore-style lease patterns; path matching and exact pattern overlap.
- ``index``: many patterns against many paths, without trying every pair.
- ``changes``: the files an agent changed, from git or a list.
- ``lockfiles``: stale filelock-style ``.lock`` files.
- ``conflicts``: the conflict rule, applied to our leases and the external reservations.

The lease store itself is part of the runtime (``pytest_maf_preflight.runtime``); the
reservations of mcp_agent_mail are read by ``pytest_maf_preflight.agent_mail.reservations``.
"""

"""mcp_agent_mail, the coordination server agents share: what this plugin reads and asks of it.

- ``mcp``: a small client for its Streamable HTTP MCP endpoint (JSON-RPC 2.0 over POST):
  ``McpSession`` with ``request``, ``read_resource`` and ``call_tool``; ``McpError``.
- ``projects``: project keys and slugs, computed as mcp_agent_mail computes them.
- ``times``: its stored times (naive UTC text, ISO-8601, epoch numbers) as epoch seconds.
- ``reservations``: its file reservations, read-only, from its server, database or archive.

Nothing is imported here: the submodules are loaded only where they are used.
"""
